from __future__ import annotations

import os

from threadpoolctl import threadpool_info

from pipeline.threads import _cgroup_quota_cores, available_cores, limit_threads, resolve_threads


def test_a_cgroup_v2_quota_of_one_and_a_half_cores_allows_two(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert _cgroup_quota_cores(cpu_max, (tmp_path / "no", tmp_path / "no")) == 2


def test_an_unlimited_cgroup_sets_no_quota(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert _cgroup_quota_cores(cpu_max, (tmp_path / "no", tmp_path / "no")) is None


def test_a_cgroup_v1_quota_is_read_when_there_is_no_v2_file(tmp_path):
    quota, period = tmp_path / "quota", tmp_path / "period"
    quota.write_text("100000\n")
    period.write_text("100000\n")
    assert _cgroup_quota_cores(tmp_path / "absent", (quota, period)) == 1
    quota.write_text("-1\n")  # v1's "no limit"
    assert _cgroup_quota_cores(tmp_path / "absent", (quota, period)) is None


def test_the_default_is_the_cores_this_process_may_run_on():
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))
    assert resolve_threads(None) == available_cores()
    assert resolve_threads(3) == 3


def test_the_cap_holds_for_openmp_and_blas_inside_and_is_lifted_after():
    def pools():
        return {(p["user_api"], p["filepath"]): p["num_threads"] for p in threadpool_info()}

    import sklearn.cluster  # noqa: F401  (loads the OpenMP runtime k-means uses)

    before = pools()
    with limit_threads(1) as used:
        assert used == 1
        inside = pools()
    assert {"openmp", "blas"} <= {api for api, _ in inside}
    assert all(count == 1 for count in inside.values())
    assert pools() == before
