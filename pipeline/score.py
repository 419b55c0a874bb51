"""Scoring: apply a fitted bundle to new transactions without refitting anything.

The same features, cluster assignment, customer value forecasts and labeler mapping as at
training, so the output table is the training segment table's: scoring the training data
reproduces the training statuses exactly. ``loyalty score`` and the MLflow pyfunc model
(:class:`LoyaltySegmentationModel`) both segment through :func:`segment_clean`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from pipeline import io, layout
from pipeline.config import EngineConfig, TransactionColumns
from pipeline.engine import connect
from pipeline.evaluate import (
    drift_check,
    shares_from_summary,
    status_summary,
    summary_from_totals,
)
from pipeline.features import customer_history
from pipeline.ingest import load_transactions
from pipeline.model import SegmentationModel
from pipeline.schema import CleanLines, clean_transactions
from pipeline.tables import OptionalTables, read_optional_tables


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
    engine = engine or model.config.engine
    horizon_days = horizon_days or model.config.horizon_days
    # The bundle's own input rules, through the same way in as training.
    data = model.config.data
    clean = load_transactions(transactions, data=data, engine=engine, as_of=as_of).clean
    # The optional tables the bundle was trained with, read from the paths its config names.
    optional = read_optional_tables(data, as_of=clean.as_of)
    if engine.name == "spark":
        return _score_on_spark(
            model,
            clean,
            optional,
            transactions=transactions,
            output=output,
            horizon_days=horizon_days,
            engine=engine,
        )
    segments = segment_clean(model, clean, optional, engine=engine, horizon_days=horizon_days)
    summary = status_summary(segments)
    drift, psi_metrics, drifted, extra = _drift(model, segments)
    with io.atomic_directory(output) as staging:
        io.write_frame(segments, staging / layout.SEGMENTS)
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


def segment_clean(
    model: SegmentationModel,
    clean: CleanLines,
    optional: OptionalTables,
    *,
    engine: EngineConfig,
    horizon_days: int,
) -> pd.DataFrame:
    """The segment table of cleaned transactions: the training's features, clusters, value
    forecasts and statuses, nothing refitted (``loyalty score`` and the pyfunc model alike)."""
    with connect(engine) as opened:
        history = customer_history(opened, clean, model.config.features, **optional.events())
        features = history.features(clean.as_of, prior_gap_days=model.prior_gap_days)
    return model.segment_features(
        features, as_of=clean.as_of, horizon_days=horizon_days, attributes=optional.attributes
    )


def _write_outputs(
    staging: Path,
    *,
    model: SegmentationModel,
    clean: CleanLines,
    transactions: str,
    summary: pd.DataFrame,
    drift: pd.DataFrame | None,
    metrics: dict[str, float],
    extra: dict[str, Any],
) -> None:
    """Everything a scoring writes besides the segment table (whichever engine wrote that)."""
    clean.write_quarantine(staging / layout.QUARANTINE)
    io.write_frame(summary, staging / layout.STATUS_SUMMARY)
    if drift is not None:
        io.write_frame(drift, staging / layout.DATA_DRIFT)
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
        staging / layout.METRICS,
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
    clean: CleanLines,
    optional: OptionalTables,
    *,
    transactions: str,
    output: Path,
    horizon_days: int,
    engine: EngineConfig,
) -> ScoringOutcome:
    from pipeline import distributed

    with connect(engine) as opened:
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
            distributed.write_parquet(segments, staging / layout.SEGMENTS)
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


class LoyaltySegmentationModel(mlflow.pyfunc.PythonModel):
    """The fitted bundle as an MLflow pyfunc: transactions in, segment table out.

    The input has the canonical columns (``customer_id``, ``timestamp``, ``amount``) and is
    cleaned by the bundle's own rules, then segmented by :func:`segment_clean`, the path
    ``loyalty score`` takes. ``params={"as_of": "YYYY-MM-DD"}`` sets the observation end
    (default: the training as-of). Optional tables the bundle was trained with (customers,
    loyalty events, campaigns) are read from the paths its config names.
    """

    def load_context(self, context: Any) -> None:
        self.bundle = io.load_bundle(Path(context.artifacts["bundle"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        bundle: SegmentationModel = self.bundle
        as_of = (params or {}).get("as_of") or bundle.trained_as_of
        data = bundle.config.data.model_copy(update={"columns": TransactionColumns()})
        clean = clean_transactions(
            model_input, data=data, source="model input", as_of=pd.Timestamp(as_of)
        )
        optional = read_optional_tables(bundle.config.data, as_of=clean.as_of)
        # In the serving process the input is a pandas frame: the embedded engine, whatever
        # engine the bundle was trained on.
        return segment_clean(
            bundle,
            clean,
            optional,
            engine=EngineConfig(),
            horizon_days=bundle.config.horizon_days,
        )
