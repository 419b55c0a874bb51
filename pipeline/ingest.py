"""The one way in: where the transactions come from, and how they are read and cleaned.

``train``, ``score``, ``backtest`` and the MLflow pyfunc model all read through here, so one
place decides where cleaning runs: on Spark (the file never comes to this machine), from disk
a partition of customers at a time (a file larger than is wise to hold), or in pandas. Whatever
the place, the result is a :class:`pipeline.schema.CleanLines` the feature stage reads.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import io, synthetic
from pipeline.config import Config, DataConfig, EngineConfig
from pipeline.engine import connect
from pipeline.schema import CleanLines, clean_transactions
from pipeline.streaming import clean_streaming, streams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSource:
    """Where the transactions come from, and the planted truth when there is one."""

    path: str
    truth_path: Path | None = None
    default_as_of: pd.Timestamp | None = None


def data_source(config: Config) -> DataSource:
    """The configured transactions file, or the embedded sample (generated on first use)."""
    if config.data.transactions:
        return DataSource(config.data.transactions)
    return prepare_embedded_sample(config)


def prepare_embedded_sample(config: Config) -> DataSource:
    """Generate the planted sample once per generator setting and reuse it afterwards."""
    settings = config.embedded
    directory = settings.directory
    manifest = {
        "generator": "pipeline.synthetic.generate_transactions",
        # A change to the generator's code must regenerate the sample, not reuse a stale one.
        "generator_code": hashlib.sha256(inspect.getsource(synthetic).encode()).hexdigest()[:16],
        "n_customers": settings.n_customers,
        "as_of": settings.as_of.isoformat(),
        "history_days": settings.history_days,
        "seed": settings.seed,
    }
    transactions_path = directory / "transactions.csv"
    truth_path = directory / "planted_truth.csv"
    manifest_path = directory / "manifest.json"
    current = io.read_json(manifest_path) if manifest_path.exists() else None
    if current != manifest or not transactions_path.exists() or not truth_path.exists():
        log.info(
            "generating the embedded sample (%d customers) in %s", settings.n_customers, directory
        )
        transactions, truth = synthetic.generate_transactions(
            settings.n_customers,
            as_of=pd.Timestamp(settings.as_of),
            history_days=settings.history_days,
            random_state=settings.seed,
        )
        with io.atomic_directory(directory, setting="embedded.directory") as staging:
            io.write_frame(transactions, staging / transactions_path.name)
            io.write_frame(truth, staging / truth_path.name)
            io.write_json(manifest, staging / manifest_path.name)
    return DataSource(str(transactions_path), truth_path, pd.Timestamp(settings.as_of))


@dataclass(frozen=True)
class Loaded:
    """Cleaned transactions, the input's fingerprint, and the raw table when it is in memory
    (None on Spark and for a file cleaned from disk)."""

    clean: CleanLines
    fingerprint: str
    raw: pd.DataFrame | None = None


def load_transactions(
    source: str, *, data: DataConfig, engine: EngineConfig, as_of: pd.Timestamp | None
) -> Loaded:
    """Read and clean the transactions where the engine runs.

    On Spark the file (or ``spark:`` table) never comes to this machine: it is cleaned one
    partition of customers at a time, by the same rules. A file above ``data.stream_above_mb``
    is cleaned from disk the same way; anything else in pandas.
    """
    if engine.name == "spark":
        from pipeline.distributed import clean_on_spark, read_raw

        with connect(engine) as opened:
            raw = read_raw(opened.session, io.source_location(source))
            on_spark = clean_on_spark(raw, data=data, source=source, as_of=as_of)
        return Loaded(on_spark, on_spark.fingerprint)
    if streams(source, data):
        streamed = clean_streaming(source, data=data, as_of=as_of, engine=engine)
        return Loaded(streamed, streamed.fingerprint)
    raw = io.read_table(source, string_columns=(data.columns.customer_id,))
    clean = clean_transactions(raw, data=data, source=source, as_of=as_of)
    return Loaded(clean, io.fingerprint(raw), raw)
