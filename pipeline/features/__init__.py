"""The feature stage: one row per customer from one row per transaction.

Every feature is defined in this package and documented in its function's docstring;
:func:`build_features` composes them.
"""

from __future__ import annotations

import pandas as pd

from pipeline.features.behaviour import population_gap_prior, rhythm_features, trend_features
from pipeline.features.rfm import purchase_days, rfm_features
from pipeline.schema import CUSTOMER_ID

# Every numeric per-customer feature build_features makes (besides customer_id): the catalogue
# that model inputs and benchmarks choose from.
FEATURE_COLUMNS = (
    "frequency",
    "recency_days",
    "tenure_days",
    "monetary",
    "days_since_last_purchase",
    "orders",
    "total_spend",
    "avg_order_value",
    "mean_gap_days",
    "gap_cv",
    "typical_gap_days",
    "overdue_ratio",
    "repeat_purchases_per_year",
    "spend_recent",
    "spend_previous",
    "spend_change",
)

__all__ = [
    "FEATURE_COLUMNS",
    "build_features",
    "features_from_purchase_days",
    "purchase_days",
    "rfm_features",
    "rhythm_features",
    "trend_features",
]


def build_features(
    transactions: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    recent_window_days: int,
    prior_gap_days: float | None = None,
) -> pd.DataFrame:
    """All per-customer features, sorted by ``customer_id``.

    Parameters
    ----------
    transactions
        Clean transactions (``customer_id``, ``timestamp``, ``amount``), none after ``as_of``.
    as_of
        Observation end.
    recent_window_days
        Length of the recent spend window for the trend features.
    prior_gap_days
        The population rhythm used to shrink single customers' gaps; None measures it on this
        data (training). Scoring passes the value learned at training so that a customer's
        features do not depend on who else is scored with them.
    """
    return features_from_purchase_days(
        purchase_days(transactions),
        as_of=as_of,
        recent_window_days=recent_window_days,
        prior_gap_days=prior_gap_days,
    )


def features_from_purchase_days(
    daily: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    recent_window_days: int,
    prior_gap_days: float | None = None,
) -> pd.DataFrame:
    """:func:`build_features` from purchase days (none after ``as_of``).

    Aggregating transactions to purchase days is the costly step; callers that need features
    at several cut-offs (the holdout evaluation) do it once and filter the days.
    """
    rfm = rfm_features(daily, as_of=as_of)
    prior = population_gap_prior(rfm) if prior_gap_days is None else prior_gap_days
    rhythm = rhythm_features(daily, rfm, prior_gap_days=prior)
    trend = trend_features(daily, as_of=as_of, window_days=recent_window_days)
    features = rfm.merge(rhythm, on=CUSTOMER_ID, validate="1:1").merge(
        trend, on=CUSTOMER_ID, validate="1:1"
    )
    return features.astype({CUSTOMER_ID: "string"})
