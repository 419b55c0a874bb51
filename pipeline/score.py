"""Scoring: apply a fitted bundle to new transactions without refitting anything.

The same features, cluster assignment, customer value forecasts and labeler mapping as at
training, so the output table is the training segment table's: scoring the training data
reproduces the training statuses exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import io, tracking
from pipeline.config import EngineConfig
from pipeline.engine import connect
from pipeline.evaluate import (
    drift_check,
    shares_from_summary,
    status_summary,
    summary_from_totals,
)
from pipeline.model import SegmentationModel
from pipeline.schema import clean_transactions
from pipeline.streaming import clean_streaming, streams
from pipeline.tables import read_optional_tables


@dataclass(frozen=True)
class ScoringOutcome:
    segments: pd.DataFrame | None  # None when Spark wrote them (too many to bring here)
    summary: pd.DataFrame
    output: Path
    rows_quarantined: int
    customers: int
    # PSI against the bundle's training data (empty for bundles without a reference), and the
    # features above the warning threshold.
    drift: dict[str, float] = field(default_factory=dict)
    drifted: dict[str, float] = field(default_factory=dict)


def load_model(reference: str, *, tracking_uri: str | None = None) -> SegmentationModel:
    """A bundle from a local ``.joblib`` path or a registry URI such as
    ``models:/loyalty-segmentation@champion``."""
    if reference.startswith(("models:/", "runs:/")):
        return tracking.load_registered_bundle(reference, tracking_uri=tracking_uri)
    path = Path(reference)
    if not path.exists():
        from pipeline.errors import InputError

        raise InputError(
            reference, "model bundle not found", "Give a .joblib path or models:/NAME@ALIAS"
        )
    # A bundle runs code when loaded: one without a recorded SHA-256 is refused, saying how to
    # vouch for it.
    return io.load_bundle(path, require_hash=True)


def run_scoring(
    model: SegmentationModel,
    *,
    transactions: str,
    as_of: pd.Timestamp | None,
    output: Path,
    horizon_days: int | None = None,
    engine: EngineConfig | None = None,
) -> ScoringOutcome:
    """Read and validate transactions with the bundle's own input rules, segment, write atomically.

    ``engine`` (default: the one the bundle was trained with) says where: on Spark the data is
    cleaned, its features built and the model applied one partition of customers at a time, and
    ``segments.parquet`` is a folder of parts written by Spark.
    """
    io.check_output_target(Path(output))
    if (engine or model.config.engine).name == "spark":
        return _score_on_spark(
            model,
            transactions=transactions,
            as_of=as_of,
            output=output,
            horizon_days=horizon_days or model.config.horizon_days,
            engine=engine or model.config.engine,
        )
    data = model.config.data
    if streams(transactions, data):
        # Larger than is wise to hold: cleaned from disk a partition of customers at a time,
        # its features read by the engine from the clean parts.
        clean = clean_streaming(
            transactions, data=data, as_of=as_of, engine=engine or model.config.engine
        )
    else:
        raw = io.read_table(transactions, string_columns=(data.columns.customer_id,))
        clean = clean_transactions(raw, data=data, source=transactions, as_of=as_of)
    # The optional tables the bundle was trained with, read from the paths its config names.
    optional = read_optional_tables(data, as_of=clean.as_of)
    with connect(engine or model.config.engine) as opened:
        history = clean.history(opened, model.config.features, **optional.events())
        features = history.features(clean.as_of, prior_gap_days=model.prior_gap_days)
    segments = model.segment_features(
        features,
        as_of=clean.as_of,
        horizon_days=horizon_days or model.config.horizon_days,
        attributes=optional.attributes,
    )
    summary = status_summary(segments)
    drift, psi_metrics, drifted, extra = _drift(model, segments)
    with io.atomic_directory(output) as staging:
        io.write_frame(segments, staging / "segments.parquet")
        _write_outputs(
            staging,
            model=model,
            clean=clean,
            transactions=transactions,
            summary=summary,
            drift=drift,
            metrics={**optional.metrics(), **psi_metrics},
            extra=extra,
        )
    return ScoringOutcome(
        segments,
        summary,
        Path(output),
        clean.rows_quarantined,
        len(segments),
        psi_metrics,
        drifted,
    )


def _write_outputs(
    staging: Path,
    *,
    model: SegmentationModel,
    clean: Any,
    transactions: str,
    summary: pd.DataFrame,
    drift: pd.DataFrame | None,
    metrics: dict[str, float],
    extra: dict[str, Any],
) -> None:
    """Everything a scoring writes besides the segment table (whichever engine wrote that)."""
    clean.write_quarantine(staging / "quarantine.csv")
    io.write_frame(summary, staging / "status_summary.csv")
    if drift is not None:
        io.write_frame(drift, staging / "data_drift.csv")
    io.write_json(
        {
            "as_of": str(clean.as_of.date()),
            "trained_as_of": str(pd.Timestamp(model.trained_as_of).date()),
            "source": transactions,
            "metrics": {
                "customers": float(summary["customers"].sum()),
                "rows_in": float(clean.rows_in),
                "rows_used": float(clean.rows_used),
                "rows_quarantined": float(clean.rows_quarantined),
                **shares_from_summary(summary),
                **metrics,
            },
            **extra,
        },
        staging / "metrics.json",
    )


def _drift(model: SegmentationModel, customers: pd.DataFrame):
    """Drift against the data the bundle was trained on (bundles older than the check have no
    reference and are scored without it)."""
    reference = getattr(model, "feature_reference", None)
    if not reference:
        return None, {}, {}, {}
    threshold = model.config.monitoring.drift_warn_psi
    drift, psi_metrics, drifted = drift_check(
        customers, reference, threshold=threshold, against="the model's training data"
    )
    extra = {"drift_warn_psi": threshold, "drifted_features": list(drifted)}
    return drift, psi_metrics, drifted, extra


# PSI on Spark is measured on a seeded sample of customers: bins of 10% need no more.
DRIFT_SAMPLE = 200_000


def _score_on_spark(
    model: SegmentationModel,
    *,
    transactions: str,
    as_of: pd.Timestamp | None,
    output: Path,
    horizon_days: int,
    engine: EngineConfig,
) -> ScoringOutcome:
    from pipeline import distributed

    with connect(engine) as opened:
        raw = distributed.read_raw(opened.session, io.source_location(transactions))
        clean = distributed.clean_on_spark(
            raw, data=model.config.data, source=transactions, as_of=as_of
        )
        optional = read_optional_tables(model.config.data, as_of=clean.as_of)
        segments = distributed.score_on_spark(
            model, clean, opened, horizon_days=horizon_days, optional=optional
        )
        segments = segments.persist()
        summary = summary_from_totals(distributed.status_totals(segments))
        customers = int(summary["customers"].sum())
        reference = getattr(model, "feature_reference", None) or {}
        sample = distributed.sample_rows(
            segments, list(reference), limit=DRIFT_SAMPLE, seed=model.config.seed
        )
        drift, psi_metrics, drifted, extra = _drift(model, sample)
        with io.atomic_directory(output) as staging:
            distributed.write_parquet(segments, staging / "segments.parquet")
            _write_outputs(
                staging,
                model=model,
                clean=clean,
                transactions=transactions,
                summary=summary,
                drift=drift,
                metrics={**optional.metrics(), **psi_metrics},
                extra={"engine": "spark", **extra},
            )
        segments.unpersist()
    return ScoringOutcome(
        None, summary, Path(output), clean.rows_quarantined, customers, psi_metrics, drifted
    )
