"""Scoring: apply a fitted bundle to new transactions without refitting anything.

The same features, cluster assignment, customer value forecasts and labeler mapping as at
training, so the output table is the training segment table's: scoring the training data
reproduces the training statuses exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import io, tracking
from pipeline.evaluate import status_shares, status_summary
from pipeline.model import SegmentationModel
from pipeline.schema import clean_transactions


@dataclass(frozen=True)
class ScoringOutcome:
    segments: pd.DataFrame
    summary: pd.DataFrame
    output: Path
    rows_quarantined: int


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
    return io.load_bundle(path)


def run_scoring(
    model: SegmentationModel,
    *,
    transactions: str,
    as_of: pd.Timestamp | None,
    output: Path,
    horizon_days: int | None = None,
) -> ScoringOutcome:
    """Read and validate transactions with the bundle's own input rules, segment, write atomically."""
    data = model.config.data
    raw = io.read_table(transactions, string_columns=(data.columns.customer_id,))
    clean = clean_transactions(raw, data=data, source=transactions, as_of=as_of)
    segments = model.segment(
        clean.transactions, as_of=clean.as_of, horizon_days=horizon_days, returns=clean.returns
    )
    summary = status_summary(segments)
    with io.atomic_directory(output) as staging:
        io.write_frame(segments, staging / "segments.parquet")
        io.write_frame(clean.quarantine, staging / "quarantine.csv")
        io.write_frame(summary, staging / "status_summary.csv")
        io.write_json(
            {
                "as_of": str(clean.as_of.date()),
                "trained_as_of": str(pd.Timestamp(model.trained_as_of).date()),
                "source": transactions,
                "metrics": {
                    "customers": float(len(segments)),
                    "rows_in": float(clean.rows_in),
                    "rows_used": float(len(clean.transactions)),
                    "rows_quarantined": float(len(clean.quarantine)),
                    **status_shares(segments),
                },
            },
            staging / "metrics.json",
        )
    return ScoringOutcome(segments, summary, Path(output), len(clean.quarantine))
