"""The only module that reads or writes files.

Writes are atomic: a run's output directory is assembled under a temporary name beside the
target and swapped in at the end, and single files (the model bundle) are written to a
temporary file and `os.replace`d. A run killed midway therefore leaves the previous good
outputs and model in place.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from pipeline import layout
from pipeline.errors import InputError, LockedError, OutputError, quote

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
BUILTIN_SOURCES = {
    # The CDNOW master file (Fader & Hardie) ships inside the lifetimes wheel.
    "lifetimes:cdnow": "CDNOW_master.txt",
}
_PARQUET_MAGIC = b"PAR1"


def _read_cdnow(path: Path) -> pd.DataFrame:
    return pd.read_csv(
        path,
        sep=r"\s+",
        dtype={"customer_id": "string", "date": "string"},
    )


def read_table(source: str, *, string_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet file, or a named built-in data set, as it is.

    CSV columns named in ``string_columns`` are kept as text, so that ids such as ``00042``
    or ``12346`` are not turned into numbers (and then floats once a value is missing).

    Raises
    ------
    InputError
        The file is missing, empty, or not in the format its name says.
    """
    if source in BUILTIN_SOURCES:
        from pipeline.clv import lifetimes_dataset_path  # the one place that knows lifetimes

        return _read_cdnow(lifetimes_dataset_path(BUILTIN_SOURCES[source]))
    check_readable(source)
    path = Path(source)
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        try:
            _check_parquet_columns(path, source)
            return pd.read_parquet(path)
        except InputError:
            raise
        except Exception as error:  # pyarrow raises several unrelated types for corrupt files
            raise InputError(
                source, f"cannot read the Parquet file ({error.__class__.__name__})"
            ) from None
    if name.endswith(CSV_SUFFIXES):
        sep = "\t" if name.endswith(".tsv") else ","
        try:
            header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype="string")
            names = [str(v) for v in header.iloc[0].tolist()]
            check_unique_names(names, source)
            _check_no_nul(path, source, names=names, sep=sep)
            return pd.read_csv(
                path,
                sep=sep,
                dtype={column: "string" for column in string_columns},
                low_memory=False,
            )
        except pd.errors.EmptyDataError:
            raise InputError(source, "the file is empty") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            detail = quote(str(error).splitlines()[0], 200)
            raise InputError(source, f"not a readable CSV file ({detail})") from None
        except (EOFError, OSError, zlib.error) as error:
            # A truncated or not-really-gzip .csv.gz (EOFError would otherwise end as a bare
            # "Aborted!": click reads it as Ctrl-D).
            if not name.endswith(".gz"):
                raise
            raise InputError(
                source,
                f"cannot decompress the gzip file ({quote(str(error) or type(error).__name__)})",
                "The file is truncated or not gzip-compressed: copy it again, or drop the .gz "
                "from a plain-text name",
            ) from None
    raise InputError(source, "unknown file type", "Use a .csv, .csv.gz or .parquet file")


def check_unique_names(names: list[str], source: str) -> None:
    """A header naming one column twice: reading would silently use the first of the two."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(
                source,
                "the header names this column more than once",
                "Rename or remove the duplicate column",
                column=quote(name),
            )
        seen.add(name)


def check_column_names(source: str) -> None:
    """Refuse a file whose header names a column twice, or a Parquet file with nested columns,
    before a reader that renames or picks silently (DuckDB, Spark) sees it. Built-in data sets
    and paths that are not local files (a Spark table, a folder, a glob) are left to the reader.
    """
    path = Path(source)
    if source in BUILTIN_SOURCES or not path.is_file():
        return
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        _check_parquet_columns(path, source)
    elif name.endswith(CSV_SUFFIXES):
        sep = "\t" if name.endswith(".tsv") else ","
        try:
            header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype="string")
        except (
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            UnicodeDecodeError,
            EOFError,
            OSError,
            zlib.error,
        ):
            return  # an unreadable file: the reader tells what is wrong, in its own words
        check_unique_names([str(v) for v in header.iloc[0].tolist()], source)


def _check_no_nul(path: Path, source: str, *, names: list[str], sep: str) -> None:
    """A NUL byte ends a value early in the CSV parser (``C1\\0X`` would be read as ``C1``, a
    phantom customer): refused, naming its row and column. One pass over the bytes."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    offset, tail = 0, b""
    with opener(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**22), b""):
            at = block.find(b"\0")
            if at < 0:
                offset += block.count(b"\n")
                tail = block[block.rfind(b"\n") + 1 :] if b"\n" in block else tail + block
                continue
            line_start = block.rfind(b"\n", 0, at)
            row = offset + block.count(b"\n", 0, at)  # 0-based line: the header is line 0
            line = (block[line_start + 1 :] if line_start >= 0 else tail + block).split(b"\n")[0]
            fields = line.decode("utf-8", "replace").split(sep)
            column = next((i for i, f in enumerate(fields) if "\0" in f), None)
            raise InputError(
                source,
                "a NUL byte (a control character) inside a value; it would cut the value short",
                "Remove NUL bytes from the file (e.g. tr -d '\\000')",
                column=quote(names[column]) if column is not None and column < len(names) else None,
                row=row if row > 0 else None,
            )


def _check_parquet_columns(path: Path, source: str) -> None:
    """Duplicate names and nested columns (lists, structs, maps) cannot be a table's cells."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    check_unique_names(list(schema.names), source)
    for field in schema:
        if pa.types.is_nested(field.type):
            raise InputError(
                source,
                f"a nested column ({quote(field.type, 40)}), not plain values",
                "Flatten it or drop it from the Parquet file",
                column=quote(field.name),
            )


def check_readable(source: str) -> None:
    """A file that exists, is not empty, and is of the kind its name says.

    Raises
    ------
    InputError
        Saying which of these it is not.
    """
    path = Path(source)
    name = path.name.lower()
    if not path.exists():
        raise InputError(
            source, "file not found", "Check the path given by --transactions or data.transactions"
        )
    if path.is_dir() or path.stat().st_size == 0:
        raise InputError(
            source, "the file is empty" if path.is_file() else "is a directory, not a file"
        )
    if not name.endswith((*PARQUET_SUFFIXES, *CSV_SUFFIXES)):
        raise InputError(source, "unknown file type", "Use a .csv, .csv.gz or .parquet file")
    with path.open("rb") as handle:
        is_parquet = handle.read(4) == _PARQUET_MAGIC
    if name.endswith(PARQUET_SUFFIXES) and not is_parquet:
        raise InputError(source, "is not a Parquet file although its name says so")
    if name.endswith(CSV_SUFFIXES) and is_parquet:
        raise InputError(
            source, "is a Parquet file although its name says CSV", "Rename it to .parquet"
        )


def source_location(source: str) -> str:
    """Where a data source really is: an absolute path (built-in data sets resolved to their file)."""
    if source in BUILTIN_SOURCES:
        from pipeline.clv import lifetimes_dataset_path

        return str(lifetimes_dataset_path(BUILTIN_SOURCES[source]))
    if source.startswith("spark:"):  # a table in the Spark catalogue
        return source
    return str(Path(source).resolve())


def fingerprint(frame: pd.DataFrame) -> str:
    """A short content hash of a frame: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame as Parquet or CSV by the path's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        # Microseconds: Spark and most warehouses cannot read nanosecond timestamps.
        frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
    else:
        frame.to_csv(path, index=False)


def write_json(payload: dict[str, Any], path: Path) -> None:
    path.write_text(
        json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )


def write_text(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# Every output folder this pipeline writes carries this file (the run that wrote it): only a
# folder that has it, or is empty, is ever replaced. A user's folder named by mistake is refused.
OUTPUT_MARKER = ".loyalty-output"
# Outputs written before the marker existed are recognised by their metrics.json, whose keys only
# this pipeline writes, beside a segment table; nothing else without the marker is ours.
_LEGACY_OUTPUT_KEYS = {"as_of", "metrics", "source"}
# A run needs room for its outputs (tables, plots, a bundle): refusing at the start is cheaper
# than failing after the fit. 64 MiB covers the embedded sample's outputs several times over.
MIN_FREE_BYTES = 64 * 2**20


def _backup_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.previous")


def _is_ours(directory: Path) -> bool:
    """Whether ``directory`` is an output folder this pipeline wrote (or is empty)."""
    if not directory.is_dir():
        return False
    if (directory / OUTPUT_MARKER).is_file() or not any(directory.iterdir()):
        return True
    metrics = directory / layout.METRICS
    if not (metrics.is_file() and (directory / layout.SEGMENTS).exists()):
        return False
    try:
        return set(read_json(metrics)) >= _LEGACY_OUTPUT_KEYS
    except (OSError, ValueError, TypeError):
        return False


def _protected_directories() -> list[Path]:
    """Folders no output may ever replace: the working directory, the project, home and their
    ancestors (``--output .`` or ``--output ..`` would otherwise swap them away)."""
    project = Path(__file__).resolve().parent.parent
    anchors = [Path.cwd().resolve(), project, Path.home().resolve()]
    return [p for anchor in anchors for p in (anchor, *anchor.parents)]


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def check_output_target(target: Path, *, setting: str = "--output") -> None:
    """Refuse, before any work, an output folder that replacing would harm or that cannot be written.

    The target may be missing, empty, or an earlier output of this pipeline (it carries
    :data:`OUTPUT_MARKER`); anything else (a file, a folder of other files, the working
    directory, the project or one of their parents) is refused, as are a read-only location and a
    disk without room.

    Raises
    ------
    pipeline.errors.OutputError
        Naming the folder, the setting it came from and what to do.
    """
    target = Path(target)
    resolved = target.resolve()
    if resolved in _protected_directories():
        raise OutputError(
            str(target),
            f"{setting} names the working directory, the project or one of their parents, "
            "which an output folder would replace",
            "Name a new folder for the outputs, e.g. outputs/latest",
        )
    if target.exists() and not target.is_dir():
        raise OutputError(
            str(target), f"{setting} names a file, not a folder", "Name a folder for the outputs"
        )
    if target.is_dir() and not _is_ours(target):
        raise OutputError(
            str(target),
            f"{setting} names a folder that holds files this pipeline did not write "
            f"(no {OUTPUT_MARKER} marker); it would be replaced whole",
            "Name a new or empty folder, or one an earlier run wrote",
        )
    existing = _nearest_existing(resolved.parent)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            str(target), f"cannot write in {existing}", f"Choose a writable location for {setting}"
        )
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise OutputError(
            str(target),
            f"only {free / 2**20:.0f} MiB free on the disk of {existing}; a run needs at least "
            f"{MIN_FREE_BYTES // 2**20} MiB",
            "Free some space or choose another location",
        )


def recover_interrupted_swap(target: Path) -> None:
    """Finish or undo a directory swap that a killed run left half-done."""
    backup = _backup_name(target)
    if not backup.is_dir():
        return
    if not target.exists():
        backup.rename(target)  # undoing the swap deletes nothing
    elif _is_ours(backup):
        shutil.rmtree(backup)


@contextlib.contextmanager
def atomic_directory(
    target: Path, *, run_id: str = "", setting: str = "--output"
) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``target`` only if the block succeeds.

    Only a missing or empty target, or one this pipeline wrote earlier (it carries
    :data:`OUTPUT_MARKER`, written first into every staging folder), is ever replaced: any
    other folder is refused before the block runs (:func:`check_output_target`). On any
    exception (or a kill) the temporary directory is abandoned and ``target`` keeps its
    previous contents; leftovers are removed by the next run.
    """
    target = Path(target)
    check_output_target(target, setting=setting)
    # Staged, then swapped in: the same two steps a training takes when it decides only later
    # where its outputs belong (the held-back folder or the champion's).
    with staging_directory(target, run_id=run_id) as staging:
        yield staging
        publish_directory(staging, target, setting=setting)


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path that is renamed onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield temporary
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        if error.errno not in _DISK_ERRNOS:
            raise
        raise _output_error(path, error) from None
    finally:
        temporary.unlink(missing_ok=True)


# Beside every bundle: its SHA-256 in ``sha256sum`` format (``sha256sum -c`` checks it).
HASH_SUFFIX = ".sha256"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_path(bundle: Path) -> Path:
    """Where a bundle's recorded SHA-256 lives (``model.joblib.sha256``)."""
    return Path(bundle).with_name(Path(bundle).name + HASH_SUFFIX)


def recorded_sha256(bundle: Path) -> str | None:
    """The SHA-256 recorded beside a bundle, None when there is none."""
    try:
        text = hash_path(bundle).read_text(encoding="utf-8").split()
    except OSError:
        return None
    return text[0].lower() if text else None


def save_bundle(bundle: Any, path: Path) -> str:
    """Persist a fitted bundle with joblib, atomically, and record its SHA-256 beside it.

    Returns
    -------
    str
        The bundle's SHA-256 (also logged with the run and on the model version).
    """
    with _atomic_file(path) as temporary:
        joblib.dump(bundle, temporary, compress=3)
        digest = file_sha256(temporary)
    with _atomic_file(hash_path(path)) as temporary:
        temporary.write_text(f"{digest}  {Path(path).name}\n", encoding="utf-8")
    return digest


def load_bundle(
    path: Path, *, expected_sha256: str | None = None, require_hash: bool = False
) -> Any:
    """Load a bundle after checking its bytes against the SHA-256 recorded for it.

    A bundle is a pickle: loading one runs whatever code it holds, so only bundles from a
    trusted source may be loaded. ``expected_sha256`` (from the registry) or the ``.sha256``
    file beside the bundle must match; with ``require_hash``, a bundle with neither is refused.

    Raises
    ------
    pipeline.errors.InputError
        The hash does not match, none is recorded (with ``require_hash``), or the file is not a
        readable bundle (corrupt, truncated, written by incompatible code).
    """
    path = Path(path)
    expected = expected_sha256 or recorded_sha256(path)
    if expected is None and require_hash:
        raise InputError(
            str(path),
            f"no SHA-256 recorded for this bundle (no {hash_path(path).name} beside it)",
            "A bundle runs code when loaded: load only bundles from a trusted source. If you "
            f"trust this one, record its hash: sha256sum {path} > {hash_path(path)}",
        )
    if expected is not None:
        actual = file_sha256(path)
        if actual != expected:
            raise InputError(
                str(path),
                f"the bundle's SHA-256 {actual[:12]}... does not match the recorded "
                f"{expected[:12]}... (changed, corrupt or truncated)",
                "Do not load it: retrain, or fetch the bundle again from where it was published",
            )
    try:
        return joblib.load(path)
    except Exception as error:  # unpickling raises anything (EOFError, zlib.error, KeyError...)
        raise InputError(
            str(path),
            f"cannot load the bundle ({type(error).__name__}: {quote(error)}): corrupt, "
            "truncated, or written by other code",
            "Retrain, or load it with the version of this project that wrote it",
        ) from None


def publish_copy(source: Path, destination: Path) -> None:
    """Copy a finished file into place atomically (the last good model is never half-written).

    A bundle's recorded SHA-256 goes with it, written before the bundle is replaced.
    """
    digest = recorded_sha256(source)
    if digest is not None:
        with _atomic_file(hash_path(destination)) as temporary:
            temporary.write_text(f"{digest}  {Path(destination).name}\n", encoding="utf-8")
    with _atomic_file(destination) as temporary:
        shutil.copyfile(source, temporary)


def write_pngs(pngs: dict[str, bytes], directory: Path) -> None:
    """Rendered figures (:func:`pipeline.plots.render_pngs`) as ``<name>.png`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, png in pngs.items():
        (directory / f"{name}.png").write_bytes(png)


def append_frame(frame: pd.DataFrame, path: Path) -> None:
    """Append rows to a Parquet table, atomically (the old table or the new one, never half)."""
    path = Path(path)
    combined = (
        pd.concat([pd.read_parquet(path), frame], ignore_index=True) if path.exists() else frame
    )
    with _atomic_file(path) as temporary:
        combined.to_parquet(temporary, index=False)


def _missing_parents(path: Path) -> list[Path]:
    """The ancestors of ``path`` that do not exist yet, nearest first."""
    return [parent for parent in path.parents if not parent.exists()]


@contextlib.contextmanager
def exclusive_lock(
    path: Path, *, remove_created_on: type[BaseException] | None = None
) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on ``path`` for the block.

    The operating system releases it when the process ends, however it ends (kill -9
    included), so a killed run never leaves a stale lock behind.

    Parameters
    ----------
    remove_created_on
        When the block raises this exception and the lock file did not exist before, the lock
        file and the directories made for it are removed again: a run refused for bad input
        leaves nothing behind.

    Raises
    ------
    pipeline.errors.LockedError
        Another process holds the lock.
    """
    path = Path(path)
    created_dirs = _missing_parents(path.absolute())
    created_file = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(path):
            yield
    except BaseException as error:
        if remove_created_on is not None and isinstance(error, remove_created_on) and created_file:
            path.unlink(missing_ok=True)
            for directory in created_dirs:
                with contextlib.suppress(OSError):  # not empty: something else lives there now
                    directory.rmdir()
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LockedError(f"another training is running ({holder}); lock file {path}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- two-step publication: stage the outputs, then decide where they go ---------------------------
@contextlib.contextmanager
def staging_directory(target: Path, *, run_id: str = "") -> Iterator[Path]:
    """A fresh folder beside ``target`` for a run's outputs, abandoned if the block fails.

    Unlike :func:`atomic_directory` nothing is swapped in at the end: the caller publishes the
    folder with :func:`publish_directory` once it knows where it belongs (the champion's
    output folder, or the held-back one beside it). A disk that fills up or turns read-only
    while writing is an :class:`~pipeline.errors.OutputError`, not a traceback.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        if _is_ours(stale):
            shutil.rmtree(stale, ignore_errors=True)
    staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir()
        write_json({"written_by": "loyalty-segmentation", "run": run_id}, staging / OUTPUT_MARKER)
        yield staging
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if error.errno not in _DISK_ERRNOS:
            raise
        raise _output_error(target, error) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if staging.exists():  # not yet published: the block decided against it
        shutil.rmtree(staging, ignore_errors=True)


# What a disk says when it refuses a write: full, over quota, read-only, no permission.
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def publish_directory(staging: Path, target: Path, *, setting: str = "--output") -> None:
    """Swap a finished staging folder in as ``target`` (only over a folder this pipeline wrote)."""
    target = Path(target)
    recover_interrupted_swap(target)
    if target.exists() and not _is_ours(target):
        raise OutputError(
            str(target),
            f"{setting} now holds files this pipeline did not write; the outputs were not written",
            "Name a new or empty folder and run again",
        )
    backup = _backup_name(target)
    try:
        if target.exists():
            target.rename(backup)
        staging.rename(target)
        if backup.exists():
            shutil.rmtree(backup)
    except OSError as error:
        raise _output_error(target, error) from None


def _output_error(target: Path, error: OSError) -> OutputError:
    """A write that the disk refused, as one line saying what to do."""
    reasons = {
        errno.ENOSPC: ("the disk is full", "Free some space and run again"),
        errno.EDQUOT: ("the disk quota is exceeded", "Free some space and run again"),
        errno.EROFS: ("the file system is read-only", "Choose a writable location for --output"),
        errno.EACCES: ("permission denied", "Choose a writable location for --output"),
        errno.EPERM: ("permission denied", "Choose a writable location for --output"),
    }
    problem, hint = reasons.get(error.errno, (f"cannot write ({quote(error)})", ""))
    return OutputError(
        str(target), f"{problem} while writing the outputs; nothing was replaced", hint
    )
