"""Spark: the data stage and scoring, for data beyond one machine.

Nothing here is a second copy of the pipeline's logic. The pandas functions that clean a file
(:func:`pipeline.schema.classify_rows`, :func:`~pipeline.schema.finish_rows`) and apply a fitted
model (:meth:`pipeline.model.SegmentationModel.segment_features`) run unchanged on each
partition of customers (``applyInPandas`` / ``mapInPandas``); every rule they apply concerns one
customer's rows, so the partitions' results put together are the whole file's (a test proves it
in pandas, another in Spark). The features in between are the ibis definitions of
:mod:`pipeline.features`, run by Spark.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.config import DataConfig
from pipeline.engine import spark_schema
from pipeline.errors import InputError
from pipeline.schema import (
    AMOUNT,
    CUSTOMER_ID,
    DISCOUNT,
    INVOICE,
    PRODUCT,
    QUANTITY,
    REASON,
    SOURCE_ROW,
    TIMESTAMP,
    EngineLines,
    IdNotice,
    check_columns,
    classify_rows,
    customer_id_keys,
    finish_rows,
    first_problem,
    reason_counts,
    resolve_as_of,
    returns_identifiable,
    tell_id_notices,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from pipeline.engine import Engine
    from pipeline.model import SegmentationModel
    from pipeline.tables import OptionalTables

TABLE_PREFIX = "spark:"
# Internal columns of the partition functions' output.
_KIND, _ROW, _PROBLEM, _LATEST = "__kind", "__row", "__problem", "__latest"
_RAW = "__raw__"
# How many partitions of customers the cleaning is spread over, per million rows (at least 4).
ROWS_PER_PARTITION = 500_000


def read_raw(session: SparkSession, source: str) -> DataFrame:
    """A Spark table (``spark:db.table``), or Parquet / CSV files (a file, a folder or a glob).

    CSV is read as text, as :func:`pipeline.io.read_table` keeps ids: the cleaning types it.
    """
    if source.startswith(TABLE_PREFIX):
        return session.table(source.removeprefix(TABLE_PREFIX))
    lower = source.lower().rstrip("/")
    if lower.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
        separator = "\t" if lower.endswith(".tsv") else ","
        # Spark renames a repeated header name (amount0, amount2) where pandas would refuse
        # it: the header is read first, wherever the file is, and checked as in memory.
        first = session.read.text(source).first()
        if first is not None:
            from pipeline.io import check_unique_names

            check_unique_names(next(csv.reader([first.value], delimiter=separator)), source)
        return session.read.csv(source, header=True, sep=separator, inferSchema=False)
    return session.read.parquet(source)


def _with_source_rows(raw: DataFrame) -> DataFrame:
    """Each row's 0-based place in the input: ``zipWithIndex`` follows the file's order."""
    from pyspark.sql.types import LongType, StructField, StructType

    schema = StructType([*raw.schema.fields, StructField(_ROW, LongType(), nullable=False)])
    indexed = raw.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1]))
    return raw.sparkSession.createDataFrame(indexed, schema)


def _customer_key(column: str) -> Any:
    """Each row's customer id as the cleaning will make it (12346.0 is customer 12346,
    full-width ＣＵＳ１ is CUS1: :func:`pipeline.schema.customer_id_keys`), so that every row
    of one customer lands in one partition, whatever its spelling."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")  # type: ignore[call-overload]
    def keys(ids: pd.Series) -> pd.Series:
        return customer_id_keys(ids)

    return keys(F.col(f"`{column}`").cast("string"))


def _to_json(records: list[InputError] | list[IdNotice]) -> str:
    """Problems or notices of a partition, as text for a Spark column."""
    return json.dumps([asdict(record) for record in records])


def _problems_from(texts: list[str]) -> list[InputError]:
    return [InputError(**fields) for text in texts for fields in json.loads(text)]


def _notices_from(texts: list[str]) -> list[IdNotice]:
    return [IdNotice(**fields) for text in texts for fields in json.loads(text)]


def _partition_frame(pdf: pd.DataFrame) -> pd.DataFrame:
    return pdf.set_index(_ROW).rename_axis(None)


@dataclass
class SparkCleanTransactions:
    """Clean transactions on Spark: what :class:`pipeline.schema.CleanTransactions` holds in pandas."""

    lines: DataFrame
    returns: DataFrame | None  # None when the mapping cannot tell returns
    quarantine: pd.DataFrame
    as_of: pd.Timestamp
    rows_in: int
    rows_used: int
    fingerprint: str

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)

    def write_quarantine(self, path: Any) -> None:
        from pipeline.io import write_frame

        write_frame(self.quarantine, path)

    def counts_by_reason(self) -> dict[str, int]:
        return reason_counts(self.quarantine)

    def on_engine(self, engine: Engine) -> EngineLines:
        """The clean lines, already on Spark, registered as the engine's tables."""
        return EngineLines(
            engine.register(self.lines),
            engine.register(self.returns) if self.returns is not None else None,
        )


def _line_schema(data: DataConfig) -> list[tuple[str, str]]:
    mapped = {k for k, v in data.columns.model_dump().items() if v is not None}
    schema = [(CUSTOMER_ID, "string"), (TIMESTAMP, "timestamp"), (AMOUNT, "double")]
    optional = [
        (QUANTITY, "double", QUANTITY in mapped),
        (PRODUCT, "string", PRODUCT in mapped),
        (INVOICE, "string", INVOICE in mapped),
        (DISCOUNT, "double", DISCOUNT in mapped),
    ]
    return schema + [(name, kind) for name, kind, present in optional if present]


def clean_on_spark(
    raw: DataFrame,
    *,
    data: DataConfig,
    source: str,
    as_of: pd.Timestamp | None = None,
) -> SparkCleanTransactions:
    """:func:`pipeline.schema.clean_transactions` on Spark, one partition of customers at a time.

    Raises
    ------
    InputError
        The same first problem as cleaning the whole file in pandas would tell.
    """
    from pyspark.sql import functions as F

    check_columns(raw.columns, data=data, source=source)
    indexed = _with_source_rows(raw).persist()
    rows_in = indexed.count()
    if rows_in == 0:
        raise InputError(
            source, "the file has a header but no rows", "Point at a file with transactions"
        )
    partitions = max(4, rows_in // ROWS_PER_PARTITION)
    key = F.abs(F.hash(_customer_key(data.columns.customer_id))) % partitions
    # A column first: the key holds a pandas UDF, which Spark evaluates in a projection.
    grouped = indexed.withColumn("__partition", key).groupBy("__partition")
    raw_columns = list(raw.columns)

    def latest(pdf: pd.DataFrame) -> pd.DataFrame:
        rows = classify_rows(_partition_frame(pdf[[*raw_columns, _ROW]]), data=data, source=source)
        return pd.DataFrame(
            {_LATEST: [rows.latest_usable()], _PROBLEM: [_to_json(rows.problems.found)]}
        )

    if as_of is None:
        found = grouped.applyInPandas(latest, f"{_LATEST} timestamp, {_PROBLEM} string").collect()
        _raise_first(_problems_from([row[_PROBLEM] for row in found]))
        as_of = resolve_as_of(None, [row[_LATEST] for row in found], source=source)
    else:
        as_of = pd.Timestamp(as_of).normalize()

    lines = _line_schema(data)
    out_schema = (
        [(_KIND, "string"), (SOURCE_ROW, "long"), (REASON, "string"), (_PROBLEM, "string")]
        + lines
        + [(f"{_RAW}{name}", "string") for name in raw_columns]
    )

    def finish(pdf: pd.DataFrame) -> pd.DataFrame:
        rows = classify_rows(_partition_frame(pdf[[*raw_columns, _ROW]]), data=data, source=source)
        if rows.problems.found:
            return _frame(out_schema, problem=_to_json(rows.problems.found))
        part = finish_rows(rows, data=data, as_of=as_of)
        kept = part.transactions.assign(**{_KIND: "line", SOURCE_ROW: part.transactions.index + 1})
        returned = part.returns.assign(**{_KIND: "return"})
        set_aside = part.quarantine.rename(columns={c: f"{_RAW}{c}" for c in raw_columns})
        set_aside = set_aside.astype({f"{_RAW}{c}": "string" for c in raw_columns})
        parts = [kept, returned, set_aside.assign(**{_KIND: "quarantine"})]
        if rows.problems.notices:
            parts.append(
                pd.DataFrame({_KIND: ["notice"], _PROBLEM: [_to_json(rows.problems.notices)]})
            )
        return _frame(out_schema, *parts)

    cleaned = grouped.applyInPandas(finish, ", ".join(f"`{n}` {t}" for n, t in out_schema))
    cleaned = cleaned.persist()
    problems = cleaned.filter(F.col(_KIND) == "problem").select(_PROBLEM).collect()
    _raise_first(_problems_from([row[_PROBLEM] for row in problems]))
    notices = cleaned.filter(F.col(_KIND) == "notice").select(_PROBLEM).collect()
    tell_id_notices(_notices_from([row[_PROBLEM] for row in notices]))
    line_columns = [name for name, _ in lines]
    kept = cleaned.filter(F.col(_KIND) == "line")
    rows_used = kept.count()
    if rows_used == 0:
        raise InputError(
            source,
            f"no transactions on or before the as-of date {as_of.date()}",
            "Choose a later --as-of",
        )
    quarantine = (
        cleaned.filter(F.col(_KIND) == "quarantine")
        .select(SOURCE_ROW, *(F.col(f"`{_RAW}{c}`").alias(c) for c in raw_columns), REASON)
        .toPandas()
        .sort_values(SOURCE_ROW, kind="mergesort")
    )
    # The pandas quarantine starts with source_row and ends with reason, the raw columns between.
    quarantine = quarantine[[SOURCE_ROW, *raw_columns, REASON]].reset_index(drop=True)
    indexed.unpersist()
    return SparkCleanTransactions(
        lines=kept.select(*line_columns),
        returns=cleaned.filter(F.col(_KIND) == "return").select(CUSTOMER_ID, TIMESTAMP, AMOUNT)
        if returns_identifiable(data)
        else None,
        quarantine=quarantine,
        as_of=as_of,
        rows_in=rows_in,
        rows_used=rows_used,
        fingerprint=fingerprint(raw),
    )


_PANDAS_TYPES = {
    "string": "string",
    "double": "float64",
    "long": "Int64",
    "timestamp": "datetime64[ns]",
}


def _frame(schema: list[tuple[str, str]], *parts: pd.DataFrame, problem: str | None = None):
    """One output frame in the declared column order and types (missing columns null)."""
    names = [name for name, _ in schema]
    types = {name: _PANDAS_TYPES[kind] for name, kind in schema}
    if problem is not None:
        parts = (pd.DataFrame({_KIND: ["problem"], _PROBLEM: [problem]}),)
    frames = [part.reindex(columns=names).astype(types) for part in parts if len(part)]
    if not frames:
        return pd.DataFrame(columns=names).astype(types)
    return pd.concat(frames, ignore_index=True)


def _raise_first(problems: list[InputError]) -> None:
    problem = first_problem(problems)
    if problem is not None:
        raise problem


def fingerprint(raw: DataFrame) -> str:
    """A content hash of a Spark table, whatever its partitioning: row count and XOR of row hashes."""
    from pyspark.sql import functions as F

    columns = [F.col(f"`{name}`") for name in raw.columns]
    row = raw.agg(F.count(F.lit(1)).alias("n"), F.bit_xor(F.xxhash64(*columns)).alias("x")).first()
    summary = f"{','.join(raw.columns)}|{row['n']}|{row['x']}"
    return hashlib.sha256(summary.encode()).hexdigest()[:16]


def score_on_spark(
    model: SegmentationModel,
    clean: SparkCleanTransactions,
    engine: Engine,
    *,
    horizon_days: int,
    optional: OptionalTables | None = None,
) -> DataFrame:
    """The segment table as a Spark DataFrame: features on Spark, the model per partition.

    ``optional``: the customers, loyalty and campaign tables the bundle was trained with.
    """
    import ibis

    from pipeline.features import customer_aggregates, customer_features, customer_history
    from pipeline.tables import OptionalTables

    optional = optional or OptionalTables()
    attributes = optional.attributes
    history = customer_history(engine, clean, model.config.features, **optional.events())
    aggregates = customer_aggregates(
        history.lines,
        history.days,
        as_of=clean.as_of.date(),
        settings=model.config.features,
        returns=history.returns,
        loyalty=history.loyalty,
        campaigns=history.campaigns,
    )
    # Every feature on Spark, with the training's population rhythm: no customer's features
    # depend on who else is in their partition.
    features = customer_features(
        aggregates, settings=model.config.features, prior_gap_days=model.prior_gap_days
    )
    frame = engine.session.sql(ibis.to_sql(features, dialect="pyspark"))
    as_of = clean.as_of

    def segment(frames):
        for batch in frames:
            if len(batch):
                yield model.segment_features(
                    batch.astype({CUSTOMER_ID: "string"}),
                    as_of=as_of,
                    horizon_days=horizon_days,
                    attributes=attributes,
                )

    # The output schema is the pandas table's: take it from the model applied to a few rows.
    sample = next(segment([frame.limit(50).toPandas()]))
    return frame.mapInPandas(segment, spark_schema(sample))


def status_totals(segments: DataFrame) -> pd.DataFrame:
    """:func:`pipeline.evaluate.status_totals` of a Spark segment table."""
    from pyspark.sql import functions as F

    totals = (
        segments.groupBy("status")
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum("expected_spend").alias("expected_spend"),
            F.sum("p_alive").alias("p_alive"),
        )
        .toPandas()
    )
    return totals.set_index("status")


def sample_rows(frame: DataFrame, columns: list[str], *, limit: int, seed: int) -> pd.DataFrame:
    """At most about ``limit`` rows of some columns, a seeded sample, as pandas."""
    present = [c for c in columns if c in frame.columns]
    total = frame.count()
    chosen = frame.select(*present)
    if total > limit:
        chosen = chosen.sample(fraction=limit / total, seed=seed)
    return chosen.toPandas()


def write_parquet(frame: DataFrame, path: Any) -> None:
    """A segment table as a folder of Parquet parts, in customer order."""
    frame.orderBy(CUSTOMER_ID).write.parquet(str(path))
