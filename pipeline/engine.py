"""Feature engines: where the per-customer aggregations run.

The feature stage is written once, as `ibis <https://ibis-project.org>`_ expressions over a
transactions table (:mod:`pipeline.features`). An engine executes them:

- ``duckdb`` (default): in-process, no server; streams files larger than memory and spills to
  a temporary directory when an aggregation does not fit.
- ``spark``: Apache Spark through PySpark (``pip install '.[spark]'``), for data beyond one
  machine; local mode needs only a Java runtime.

This is the only module that opens a feature engine; the stages only build expressions.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa

from pipeline.config import EngineConfig
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

_TEXT_TYPES = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}


@dataclass
class Engine:
    """An open feature engine: the ibis backend and what it needs to be closed again."""

    name: str
    backend: Any
    _temporary: list[str] = field(default_factory=list)
    _scratch: tempfile.TemporaryDirectory | None = None

    def _temporary_name(self) -> str:
        """A fresh name for a table this engine drops again on close."""
        name = f"loyalty_{uuid.uuid4().hex[:12]}"
        self._temporary.append(name)
        return name

    def table(self, frame: pd.DataFrame) -> ibis.Table:
        """Hand a pandas frame to the engine (a temporary table on it)."""
        name = self._temporary_name()
        if self.name == "spark":
            # The schema from the dtypes: an empty frame has no rows to infer it from.
            self.session.createDataFrame(frame, schema=spark_schema(frame)).createOrReplaceTempView(
                name
            )
            return self.backend.table(name)
        return self.backend.create_table(name, frame, temp=True)

    @property
    def session(self) -> Any:
        """The Spark session of a spark engine."""
        if self.name != "spark":
            raise TypeError("only the spark engine has a Spark session")
        return self.backend._session

    def register(self, frame: Any) -> ibis.Table:
        """A Spark DataFrame already on this engine's session, as a table."""
        if self.name != "spark":
            raise TypeError("only the spark engine holds Spark DataFrames")
        name = self._temporary_name()
        frame.createOrReplaceTempView(name)
        return self.backend.table(name)

    def read(self, path: str | Path) -> ibis.Table:
        """A Parquet or CSV file (or a directory / glob of them) as a table, read lazily."""
        text = str(path)
        lower = text.lower()
        if lower.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
            return self.backend.read_csv(text)
        return self.backend.read_parquet(text)

    def materialize(self, expression: ibis.Table) -> ibis.Table:
        """Compute an expression once and keep the result on the engine for several queries."""
        name = self._temporary_name()
        if self.name == "spark":
            frame = self.session.sql(ibis.to_sql(expression, dialect="pyspark"))
            frame.cache().createOrReplaceTempView(name)
            return self.backend.table(name)
        return self.backend.create_table(name, expression, temp=True)

    def collect(self, expression: ibis.Table) -> pd.DataFrame:
        """Run an expression and return its result as a pandas frame (text as ``string``)."""
        # Straight to pandas' string dtype (no detour through Python objects for millions of
        # ids), each column handed over and freed in turn (not the whole table held twice).
        table = self.backend.to_pyarrow(expression)
        return table.to_pandas(types_mapper=_TEXT_TYPES.get, split_blocks=True, self_destruct=True)

    def close(self) -> None:
        for name in self._temporary:
            try:
                if self.name == "spark":
                    self.session.catalog.dropTempView(name)
                else:
                    self.backend.drop_table(name, force=True)
            except Exception:  # the session may already be gone; nothing is left to clean
                log.debug("could not drop temporary table %s", name)
        self._temporary.clear()
        if self.name == "duckdb":
            self.backend.disconnect()
        if self._scratch is not None:
            self._scratch.cleanup()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(config: EngineConfig) -> Engine:
    """Open the configured engine."""
    if config.name == "spark":
        return _connect_spark(config)
    # Operators that outgrow the memory limit spill to a scratch directory (removed on close),
    # so data larger than memory streams through. Results are sorted by customer afterwards, so
    # the engine need not keep rows in input order (less memory, more parallel).
    scratch = tempfile.TemporaryDirectory(prefix="loyalty-duckdb-")
    settings: dict[str, Any] = {"temp_directory": scratch.name, "preserve_insertion_order": False}
    if config.duckdb_threads is not None:
        settings["threads"] = config.duckdb_threads
    if config.duckdb_memory_limit is not None:
        settings["memory_limit"] = config.duckdb_memory_limit
    backend = ibis.duckdb.connect(**settings)
    return Engine("duckdb", backend, _scratch=scratch)


def _connect_spark(config: EngineConfig) -> Engine:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "engine.name is spark but PySpark is not installed: run `make setup-spark` "
            "(or pip install -e '.[spark]') and put a Java 17 runtime on PATH; "
            "or use the default engine, duckdb"
        ) from None
    if _java_missing():
        # PySpark would otherwise fail later with "Java gateway process exited" and a traceback.
        raise ConfigError(
            "engine.name is spark but no Java runtime is on PATH or in JAVA_HOME: install a "
            "Java 17 runtime (`make setup-spark` says how, without root); "
            "or use the default engine, duckdb"
        )
    # Executors must run the same interpreter as the driver (same pandas, same pipeline).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("loyalty-segmentation")
    if config.spark_master is not None:
        builder = builder.master(config.spark_master)
    settings = {
        # Days are cut in UTC, as the embedded engine does, whatever the cluster's local zone.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # A scheduler's log is no place for progress bars.
        "spark.ui.showConsoleProgress": "false",
    }
    if (config.spark_master or "").startswith("local"):
        # 200 shuffle partitions are made for a cluster; on one machine they are overhead.
        settings["spark.sql.shuffle.partitions"] = "8"
    settings.update(config.spark_conf)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return Engine("spark", ibis.pyspark.connect(session))


def spark_schema(frame: pd.DataFrame) -> Any:
    """The Spark schema of a pandas frame, from its dtypes (a column of nulls is still typed)."""
    from pyspark.sql import types as T

    def spark_type(dtype: Any) -> Any:
        if pd.api.types.is_bool_dtype(dtype):
            return T.BooleanType()
        if pd.api.types.is_integer_dtype(dtype):
            return T.LongType()
        if pd.api.types.is_float_dtype(dtype):
            return T.DoubleType()
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return T.TimestampType()
        return T.StringType()

    return T.StructType(
        [T.StructField(str(name), spark_type(dtype)) for name, dtype in frame.dtypes.items()]
    )


def _java_missing() -> bool:
    """True when neither PATH nor JAVA_HOME offers a ``java`` for Spark's driver."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.path.exists(os.path.join(java_home, "bin", "java")):
        return False
    return shutil.which("java") is None
