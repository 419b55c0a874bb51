"""The data stage for files larger than memory, on the embedded engine (DuckDB).

DuckDB splits the file into partitions of customers on disk, in one pass and out of core; each
partition is cleaned by the same pandas rules as a whole file (:func:`pipeline.schema
.classify_rows`, :func:`~pipeline.schema.finish_rows`: every rule concerns one customer's rows)
and its clean lines are written back as Parquet, which the feature engine reads. Only one
partition is in memory at a time. Problems the user must fix are told as for the whole file:
the first in the file, with rows counted over every partition.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import duckdb.sqltypes
import pandas as pd

from pipeline import io
from pipeline.config import DataConfig, EngineConfig
from pipeline.errors import InputError
from pipeline.schema import (
    NON_ASCII,
    REASON,
    SOURCE_ROW,
    EngineLines,
    check_columns,
    classify_rows,
    finish_rows,
    first_problem,
    normalise_id,
    resolve_as_of,
    returns_identifiable,
    tell_id_notices,
)

if TYPE_CHECKING:
    from pipeline.engine import Engine

_ROW, _PART = "__row", "__part"
# Rows per partition: a partition (its raw text and its typed copy) must fit comfortably.
ROWS_PER_PARTITION = 2_000_000


@dataclass
class StreamedCleanTransactions:
    """Clean transactions as Parquet parts on disk: what :class:`pipeline.schema
    .CleanTransactions` holds in memory, for a file that does not fit there."""

    folder: Path
    as_of: pd.Timestamp
    rows_in: int
    rows_used: int
    reasons: dict[str, int]
    fingerprint: str
    has_returns: bool
    _scratch: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def rows_quarantined(self) -> int:
        return sum(self.reasons.values())

    def counts_by_reason(self) -> dict[str, int]:
        return dict(sorted(self.reasons.items()))

    def write_quarantine(self, path: Path) -> None:
        """Every row set aside, in file order, as CSV (a header only when none was)."""
        parts = sorted((self.folder / "quarantine").glob("*.parquet"))
        if not parts:
            io.write_frame(pd.DataFrame(columns=[SOURCE_ROW, REASON]), path)
            return
        files = ", ".join(f"'{part}'" for part in parts)
        # Sorting a large quarantine may spill: into this run's scratch folder, not the cwd.
        spill = {"temp_directory": str(self.folder / "spill")}
        with duckdb.connect(config=spill) as connection:
            connection.execute(
                f"COPY (SELECT * FROM read_parquet([{files}], union_by_name=true) "
                f"ORDER BY {SOURCE_ROW}) TO '{path}' (FORMAT csv, HEADER)"
            )

    def on_engine(self, engine: Engine) -> EngineLines:
        """The clean lines read by the feature engine straight from their Parquet parts."""
        returns = self.folder / "returns"
        return EngineLines(
            engine.read(str(self.folder / "lines" / "*.parquet")),
            engine.read(str(returns / "*.parquet")) if self.has_returns else None,
        )


def streams(source: str, data: DataConfig) -> bool:
    """Whether a transactions file is cleaned from disk (larger than ``data.stream_above_mb``)."""
    path = Path(source)
    if data.stream_above_mb is None or source in io.BUILTIN_SOURCES or not path.is_file():
        return False
    return path.stat().st_size > data.stream_above_mb * 2**20


def _scan(source: str) -> str:
    """The DuckDB table function that reads a file as it is (CSV as text, like pandas' ids)."""
    lower = source.lower()
    if lower.endswith(io.PARQUET_SUFFIXES):
        return f"read_parquet('{source}')"
    separator = "\\t" if lower.endswith(".tsv") else ","
    return f"read_csv('{source}', all_varchar=true, header=true, delim='{separator}')"


def file_fingerprint(path: str) -> str:
    """A content hash of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def clean_streaming(
    source: str,
    *,
    data: DataConfig,
    as_of: pd.Timestamp | None = None,
    engine: EngineConfig | None = None,
) -> StreamedCleanTransactions:
    """:func:`pipeline.schema.clean_transactions` for a file larger than memory.

    Raises
    ------
    InputError
        The same first problem as cleaning the whole file in memory would tell.
    """
    io.check_readable(source)
    # DuckDB would rename a repeated header name (amount, amount_1): refused as in memory.
    io.check_column_names(source)
    settings = engine or EngineConfig()
    scratch = tempfile.TemporaryDirectory(prefix="loyalty-stream-")
    folder = Path(scratch.name)
    config: dict[str, Any] = {"temp_directory": str(folder / "spill")}
    if settings.duckdb_memory_limit is not None:
        config["memory_limit"] = settings.duckdb_memory_limit
    if settings.duckdb_threads is not None:
        config["threads"] = settings.duckdb_threads
    try:
        columns, rows_in = _partition_on_disk(source, folder, data=data, config=config)
    except duckdb.Error as error:
        detail = str(error).strip().splitlines()[0]
        raise InputError(source, f"cannot be read ({detail})") from None
    parts = sorted((folder / "raw").glob(f"{_PART}=*"))

    def partition(part: Path) -> pd.DataFrame:
        frame = pd.read_parquet(part).sort_values(_ROW, kind="mergesort")
        return frame.set_index(_ROW).rename_axis(None)[columns]

    if as_of is None:
        latest, problems = [], []
        for part in parts:
            rows = classify_rows(partition(part), data=data, source=source)
            latest.append(rows.latest_usable())
            problems.extend(rows.problems.found)
        _raise_first(problems)
        resolved = resolve_as_of(None, latest, source=source)
    else:
        resolved = pd.Timestamp(as_of).normalize()

    problems, notices, reasons, rows_used = [], [], {}, 0
    for number, part in enumerate(parts):
        rows = classify_rows(partition(part), data=data, source=source)
        problems.extend(rows.problems.found)
        notices.extend(rows.problems.notices)
        if problems:
            continue  # a problem stops the run: keep looking only to tell the first one
        cleaned = finish_rows(rows, data=data, as_of=resolved)
        rows_used += len(cleaned.transactions)
        for reason, count in cleaned.quarantine[REASON].value_counts().items():
            reasons[str(reason)] = reasons.get(str(reason), 0) + int(count)
        _write(cleaned.transactions.reset_index(drop=True), folder / "lines", number)
        # Returns are kept even when there are none yet: the return rate exists wherever the
        # mapping can tell returns, as in memory.
        _write(
            cleaned.returns.reset_index(drop=True), folder / "returns", number, empty=number == 0
        )
        set_aside = cleaned.quarantine.astype({c: "string" for c in columns})
        _write(set_aside, folder / "quarantine", number)
    _raise_first(problems)
    tell_id_notices(notices)
    if rows_used == 0:
        raise InputError(
            source,
            f"no transactions on or before the as-of date {resolved.date()}",
            "Choose a later --as-of",
        )
    return StreamedCleanTransactions(
        folder=folder,
        as_of=resolved,
        rows_in=int(rows_in),
        rows_used=rows_used,
        reasons=reasons,
        fingerprint=file_fingerprint(source),
        has_returns=returns_identifiable(data),
        _scratch=scratch,
    )


def _partition_on_disk(
    source: str, folder: Path, *, data: DataConfig, config: dict[str, Any]
) -> tuple[list[str], int]:
    """Split the file into Parquet partitions of customers, each row with its place in the file.

    Returns the file's columns and its number of rows.
    """
    # Insertion order kept (the default): row_number() then follows the file's order.
    with duckdb.connect(config=config) as connection:
        scan = _scan(source)
        columns = [
            row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        ]
        check_columns(columns, data=data, source=source)
        rows_in = connection.execute(f"SELECT count(*) FROM {scan}").fetchone()[0]
        if rows_in == 0:
            raise InputError(
                source, "the file has a header but no rows", "Point at a file with transactions"
            )
        partitions = max(1, -(-rows_in // ROWS_PER_PARTITION))
        customer = f'"{data.columns.customer_id}"'
        # The id the cleaning will make (pipeline.schema.customer_id_keys: 12346.0 is customer
        # 12346, full-width ＣＵＳ１ is CUS1), so that every row of one customer lands in one
        # partition, whatever its spelling. In SQL, so that only ids outside ASCII go through
        # Python (the whole column through pandas would cost this one pass several times over).
        connection.create_function(
            "normalise_id", normalise_id, [duckdb.sqltypes.VARCHAR], duckdb.sqltypes.VARCHAR
        )
        text = f"trim(CAST({customer} AS VARCHAR))"
        key = (
            f"coalesce(regexp_replace(CASE WHEN regexp_matches({text}, '{NON_ASCII}') "
            f"THEN normalise_id({text}) ELSE {text} END, '^(\\d+)\\.0+$', '\\1'), '')"
        )
        connection.execute(
            f"COPY (SELECT *, row_number() OVER () - 1 AS {_ROW}, "
            f"hash({key}) % {partitions} AS {_PART} FROM {scan}) "
            f"TO '{folder / 'raw'}' (FORMAT parquet, PARTITION_BY ({_PART}))"
        )
    return columns, int(rows_in)


def _write(frame: pd.DataFrame, folder: Path, number: int, *, empty: bool = False) -> None:
    if len(frame) or empty:
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / f"part-{number:05d}.parquet", index=False)


def _raise_first(problems: list[InputError]) -> None:
    problem = first_problem(problems)
    if problem is not None:
        raise problem
