from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline import io
from pipeline.errors import InputError, LockedError, OutputError


def test_csv_ids_stay_text_so_leading_zeros_survive(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("customer_id,timestamp,amount\n00042,2024-01-01,1\n")
    frame = io.read_table(str(path), string_columns=("customer_id",))
    assert frame["customer_id"].tolist() == ["00042"]


def test_parquet_is_read(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"x": [1, 2]}).to_parquet(path)
    assert io.read_table(str(path))["x"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", b"", "the file is empty"),
        ("fake.parquet", b"customer_id,timestamp\n", "is not a Parquet file"),
        ("data.xlsx", b"PK\x03\x04", "unknown file type"),
    ],
)
def test_unusable_files_give_one_clear_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        io.read_table(str(path))
    assert str(caught.value).startswith(str(path))


def test_a_parquet_file_named_csv_is_recognised(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": [1]}).to_parquet(path)
    with pytest.raises(InputError, match="is a Parquet file"):
        io.read_table(str(path))


def test_the_cdnow_data_in_the_lifetimes_wheel_is_readable():
    frame = io.read_table("lifetimes:cdnow")
    assert list(frame.columns) == ["customer_id", "date", "number_of_cds", "dollar_value"]
    assert len(frame) == 69659
    assert frame["customer_id"].nunique() == 23570


def test_atomic_directory_replaces_the_target_only_on_success(tmp_path):
    target = tmp_path / "out"
    with io.atomic_directory(target) as staging:
        (staging / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"

    with pytest.raises(RuntimeError), io.atomic_directory(target) as staging:
        (staging / "a.txt").write_text("half-written")
        raise RuntimeError("killed midway")
    assert (target / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging left behind

    with io.atomic_directory(target) as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == [io.OUTPUT_MARKER, "b.txt"]


def test_a_swap_interrupted_between_its_two_renames_is_recovered(tmp_path):
    target = tmp_path / "out"
    backup = tmp_path / ".out.previous"
    backup.mkdir()
    (backup / "a.txt").write_text("previous good")
    io.recover_interrupted_swap(target)
    assert (target / "a.txt").read_text() == "previous good"
    assert not backup.exists()


def test_bundles_are_saved_atomically_and_load_back(tmp_path):
    path = tmp_path / "models" / "m.joblib"
    io.save_bundle({"k": 3}, path)
    assert io.load_bundle(path) == {"k": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.joblib", "m.joblib.sha256"]


def test_fingerprint_changes_with_the_data_and_only_with_it():
    a = pd.DataFrame({"x": [1, 2]})
    assert io.fingerprint(a) == io.fingerprint(a.copy())
    assert io.fingerprint(a) != io.fingerprint(pd.DataFrame({"x": [1, 3]}))


def test_a_published_copy_replaces_the_destination_whole(tmp_path):
    source, destination = tmp_path / "new.joblib", tmp_path / "models" / "m.joblib"
    io.save_bundle({"version": 1}, destination)
    io.save_bundle({"version": 2}, source)
    io.publish_copy(source, destination)
    assert io.load_bundle(destination) == {"version": 2}
    assert sorted(p.name for p in destination.parent.iterdir()) == ["m.joblib", "m.joblib.sha256"]


def test_a_lock_refused_for_bad_input_leaves_no_trace_but_an_existing_one_stays(tmp_path):
    lock = tmp_path / "models" / "deep" / ".training.lock"
    with pytest.raises(InputError), io.exclusive_lock(lock, remove_created_on=InputError):
        raise InputError("x.csv", "bad")
    assert not (tmp_path / "models").exists()

    lock.parent.mkdir(parents=True)
    lock.write_text("")
    with pytest.raises(InputError), io.exclusive_lock(lock, remove_created_on=InputError):
        raise InputError("x.csv", "bad")
    assert lock.exists()  # it was there before: another run may rely on it


def test_a_held_lock_refuses_a_second_holder(tmp_path):
    lock = tmp_path / ".training.lock"
    with (
        io.exclusive_lock(lock),
        pytest.raises(LockedError, match="another training is running"),
        io.exclusive_lock(lock),
    ):
        pass
    with io.exclusive_lock(lock):  # released: free again
        pass


def test_a_source_is_located_where_it_really_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert io.source_location("lifetimes:cdnow").endswith("CDNOW_master.txt")
    assert Path(io.source_location("lifetimes:cdnow")).exists()
    assert io.source_location("sales.csv") == str(tmp_path / "sales.csv")
    assert io.source_location("spark:warehouse.sales") == "spark:warehouse.sales"


# -- the output folder: only ever replace what this pipeline wrote ------------------------------
def test_a_folder_of_someone_elses_files_is_refused_and_left_intact(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="did not write"), io.atomic_directory(keep) as staging:
        (staging / "segments.parquet").write_text("never swapped in")
    assert (keep / "notes.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_a_folder_written_earlier_carries_the_marker_and_is_replaced(tmp_path):
    target = tmp_path / "out"
    with io.atomic_directory(target, run_id="r1") as staging:
        (staging / "a.txt").write_text("first")
    assert io.read_json(target / io.OUTPUT_MARKER)["run"] == "r1"
    with io.atomic_directory(target, run_id="r2") as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == [io.OUTPUT_MARKER, "b.txt"]


def test_an_output_folder_from_before_the_marker_is_recognised_by_its_metrics(tmp_path):
    legacy = tmp_path / "out"
    legacy.mkdir()
    (legacy / "segments.parquet").write_bytes(b"PAR1")
    io.write_json(
        {"as_of": "2025-01-01", "metrics": {}, "source": "x.csv"}, legacy / "metrics.json"
    )
    io.check_output_target(legacy)  # ours: no error
    (legacy / "metrics.json").write_text('{"unrelated": 1}')
    with pytest.raises(OutputError):
        io.check_output_target(legacy)


def test_an_empty_or_missing_folder_is_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    io.check_output_target(tmp_path / "empty")
    io.check_output_target(tmp_path / "not" / "yet" / "there")


@pytest.mark.parametrize("name", [".", ".."])
def test_the_working_directory_and_its_parents_are_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="working directory"):
        io.check_output_target(Path(name))


def test_the_project_folder_is_refused_even_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = Path(io.__file__).resolve().parent.parent
    with pytest.raises(OutputError, match="project"):
        io.check_output_target(project)


def test_an_output_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("mine")
    with pytest.raises(OutputError, match="names a file"):
        io.check_output_target(target)
    assert target.read_text() == "mine"


def test_a_read_only_location_is_refused_before_any_work(tmp_path, monkeypatch):
    # Simulated: CI may run as root, for whom chmod does not forbid writing.
    monkeypatch.setattr(io.os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="cannot write"):
        io.check_output_target(tmp_path / "out")


def test_a_full_disk_is_refused_before_any_work(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(io.shutil, "disk_usage", lambda _: usage._replace(free=1024))
    with pytest.raises(OutputError, match="free"):
        io.check_output_target(tmp_path / "out")


def test_a_folder_that_changes_hands_during_the_run_is_not_replaced(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(OutputError, match="now holds"), io.atomic_directory(target) as staging:
        (staging / "a.txt").write_text("ours")
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")
    assert (target / "theirs.txt").read_text() == "theirs"


# -- hostile files (issue 15) --------------------------------------------------------------------
def test_a_nul_byte_in_a_csv_is_an_error_naming_row_and_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"customer_id,timestamp,amount\nC0,2024-01-01,5\nC1\x00X,2024-01-01,5\n")
    # pandas alone would read C1\0X as C1: a phantom customer.
    with pytest.raises(InputError, match="column 'customer_id', row 2: a NUL byte"):
        io.read_table(str(path))


def test_a_header_naming_a_column_twice_is_an_error_naming_it(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("customer_id,timestamp,customer_id,amount\nC0,2024-01-01,C9,5\n")
    with pytest.raises(InputError, match="column 'customer_id': the header names this column more"):
        io.read_table(str(path))


def test_a_nested_parquet_column_is_an_error_naming_it(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"customer_id": ["a"], "tags": [[1, 2]]}).to_parquet(path)
    with pytest.raises(InputError, match="column 'tags': a nested column"):
        io.read_table(str(path))


@pytest.mark.parametrize("kind", ["truncated", "plain text"])
def test_a_broken_csv_gz_is_a_one_line_error(tmp_path, kind):
    import gzip

    body = b"customer_id,timestamp,amount\n" + b"C1,2024-01-01,5\n" * 5000
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(body)[:200] if kind == "truncated" else body)
    with pytest.raises(InputError, match="cannot decompress the gzip file"):
        io.read_table(str(path))


def test_a_bundle_records_its_sha256_and_a_changed_byte_is_refused(tmp_path):
    path = tmp_path / "model.joblib"
    digest = io.save_bundle({"k": 3}, path)
    assert io.recorded_sha256(path) == digest == io.file_sha256(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="does not match the recorded"):
        io.load_bundle(path)


def test_a_truncated_bundle_without_a_recorded_hash_is_a_one_line_error(tmp_path):
    path = tmp_path / "model.joblib"
    io.save_bundle({"k": list(range(1000))}, path)
    io.hash_path(path).unlink()
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(InputError, match="cannot load the bundle .*corrupt, truncated"):
        io.load_bundle(path)


def test_an_unknown_bundle_is_refused_with_how_to_verify_it(tmp_path):
    import joblib

    path = tmp_path / "evil.joblib"
    joblib.dump({"k": 1}, path)
    with pytest.raises(InputError, match="only bundles from a trusted source.*sha256sum"):
        io.load_bundle(path, require_hash=True)
    # Recording the hash (after checking the source) is how a user vouches for it.
    io.hash_path(path).write_text(f"{io.file_sha256(path)}  evil.joblib\n")
    assert io.load_bundle(path, require_hash=True) == {"k": 1}


def test_a_published_bundle_carries_its_hash_along(tmp_path):
    source, destination = tmp_path / "a" / "m.joblib", tmp_path / "b" / "m.joblib"
    io.save_bundle({"v": 2}, source)
    io.publish_copy(source, destination)
    assert io.recorded_sha256(destination) == io.file_sha256(destination)


@pytest.mark.parametrize(
    ("code", "message"),
    [(28, "the disk is full"), (30, "the file system is read-only"), (13, "permission denied")],
)
def test_a_disk_that_refuses_writes_midway_is_one_line_and_replaces_nothing(
    tmp_path, code, message
):
    import errno

    assert (errno.ENOSPC, errno.EROFS, errno.EACCES) == (28, 30, 13)
    target = tmp_path / "out"
    with io.atomic_directory(target) as staging:
        (staging / "segments.parquet").write_text("good")
    for opener in (io.atomic_directory, io.staging_directory):
        with pytest.raises(OutputError, match=message), opener(target) as staging:
            raise OSError(code, "refused", str(staging / "x"))
        assert (target / "segments.parquet").read_text() == "good"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(OutputError, match=message), io._atomic_file(tmp_path / "m.joblib"):
        raise OSError(code, "refused")
    assert not (tmp_path / "m.joblib").exists()


def test_a_staged_folder_is_published_where_the_caller_decides(tmp_path):
    target, elsewhere = tmp_path / "out", tmp_path / "out-held-back"
    with io.staging_directory(target) as staging:
        (staging / "a.csv").write_text("x")
        io.publish_directory(staging, elsewhere)
    assert not target.exists()
    assert (elsewhere / "a.csv").read_text() == "x" and (elsewhere / io.OUTPUT_MARKER).exists()
    with io.staging_directory(target) as staging:  # not published: nothing is left
        (staging / "a.csv").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-held-back"]
