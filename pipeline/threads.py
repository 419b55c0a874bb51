"""How many threads the numeric libraries may use, and the cap that enforces it.

k-means (OpenMP) and BLAS each start one thread per core of the *machine* by default, whatever
the process may actually use: on a shared or containerised host they oversubscribe the cores
and a training runs twice as long (measured: 217 s against 98 s with ``OMP_NUM_THREADS=1``).
The cap is the cores this process may run on (its CPU affinity, and a cgroup CPU quota when
one is set), or the number asked for with ``--threads`` / ``threads:``.

Results do not depend on the cap: every k-means fit runs its OpenMP loop on one thread (see
:func:`pipeline.clustering.fit_clusters`) and the cap only decides how many fits run at once.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

from threadpoolctl import threadpool_limits

# cgroup v2 keeps "quota period" (or "max quota") in cpu.max; v1 two files.
_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = (
    Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)


def _cgroup_quota_cores(v2: Path = _CGROUP_V2, v1: tuple[Path, Path] = _CGROUP_V1) -> int | None:
    """Whole cores allowed by a cgroup CPU quota (rounded up), None when there is none."""
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            if quota == "max":
                return None
            return max(1, math.ceil(int(quota) / int(period)))
        if v1[0].exists() and v1[1].exists():
            quota_us, period_us = int(v1[0].read_text()), int(v1[1].read_text())
            if quota_us <= 0:
                return None
            return max(1, math.ceil(quota_us / period_us))
    except (OSError, ValueError):
        return None  # an unreadable or odd file: no quota we can honour
    return None


def available_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = _cgroup_quota_cores()
    return max(1, min(cores, quota) if quota else cores)


def resolve_threads(requested: int | None) -> int:
    """The thread count to use: the one requested, else every core available to the process."""
    return requested if requested is not None else available_cores()


@contextlib.contextmanager
def limit_threads(threads: int | None) -> Iterator[int]:
    """Cap BLAS and OpenMP thread pools to ``threads`` (None: the cores available) inside.

    Yields the number used, for the stages that run work side by side.
    """
    count = resolve_threads(threads)
    with threadpool_limits(limits=count):
        yield count
