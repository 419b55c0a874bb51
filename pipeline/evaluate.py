"""Metric functions: each returns plain numbers (and tables) for the orchestrator to log."""

from __future__ import annotations

import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score

from pipeline.config import STATUSES
from pipeline.schema import CUSTOMER_ID


def status_shares(segments: pd.DataFrame) -> dict[str, float]:
    """Share of customers in every status (0 for a status nobody has), keyed ``share_<status>``."""
    shares = segments["status"].value_counts(normalize=True)
    return {f"share_{status}": float(shares.get(status, 0.0)) for status in STATUSES}


def status_summary(segments: pd.DataFrame) -> pd.DataFrame:
    """One row per status present: customers, share, mean expected spend, share of value."""
    grouped = segments.groupby("status", sort=False)
    total_value = segments["expected_spend"].sum()
    summary = pd.DataFrame(
        {
            "customers": grouped.size(),
            "share": grouped.size() / len(segments),
            "mean_expected_spend": grouped["expected_spend"].mean(),
            "mean_p_alive": grouped["p_alive"].mean(),
            "value_share": grouped["expected_spend"].sum() / total_value
            if total_value > 0
            else 0.0,
        }
    )
    order = [s for s in STATUSES if s in summary.index]
    return summary.loc[order].rename_axis("status").reset_index()


def planted_recovery(
    segments: pd.DataFrame, truth: pd.DataFrame
) -> tuple[dict[str, float], pd.DataFrame]:
    """How well the found statuses recover planted ones.

    Returns
    -------
    metrics
        ``planted_macro_f1``, ``planted_accuracy`` and ``planted_f1_<status>``.
    confusion
        Counts with planted statuses as rows and found statuses as columns.
    """
    joined = truth.merge(
        segments[[CUSTOMER_ID, "status"]], on=CUSTOMER_ID, how="inner", suffixes=("_planted", "")
    )
    planted, found = joined["status_planted"], joined["status"]
    labels = [s for s in STATUSES if s in set(planted) | set(found)]
    per_status = f1_score(planted, found, labels=labels, average=None, zero_division=0)
    metrics = {
        "planted_macro_f1": float(
            f1_score(planted, found, labels=labels, average="macro", zero_division=0)
        ),
        "planted_accuracy": float((planted == found).mean()),
        "planted_customers_matched": float(len(joined)),
    }
    metrics.update({f"planted_f1_{s}": float(v) for s, v in zip(labels, per_status, strict=True)})
    matrix = pd.DataFrame(
        confusion_matrix(planted, found, labels=labels),
        index=pd.Index(labels, name="planted"),
        columns=pd.Index(labels, name="found"),
    )
    return metrics, matrix
