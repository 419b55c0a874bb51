"""Rhythm and trend: what separates a customer who is late from one who is always slow.

An occasional buyer who last bought 120 days ago is on time; a weekly buyer silent for 120
days is not. These features measure each customer against their own rhythm, and their recent
spend against their earlier spend.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.features.rfm import DAY
from pipeline.schema import AMOUNT, CUSTOMER_ID

# A month floor keeps two purchases in a customer's first week from reading as a hundred a year.
MIN_RATE_DAYS = 30.0
# Fallback rhythm when nobody in the data has bought twice.
FALLBACK_GAP_DAYS = 30.0


def population_gap_prior(rfm: pd.DataFrame) -> float:
    """Median mean gap between purchase days among repeat customers: the prior rhythm."""
    repeaters = rfm[rfm["frequency"] > 0]
    if repeaters.empty:
        return FALLBACK_GAP_DAYS
    return float((repeaters["recency_days"] / repeaters["frequency"]).median())


def rhythm_features(
    daily: pd.DataFrame, rfm: pd.DataFrame, *, prior_gap_days: float
) -> pd.DataFrame:
    """Gaps between purchase days and how overdue each customer is against their own rhythm.

    Parameters
    ----------
    daily
        One row per customer and purchase day (:func:`pipeline.features.rfm.purchase_days`).
    rfm
        Output of :func:`pipeline.features.rfm.rfm_features`, same customers.
    prior_gap_days
        The rhythm assumed before a customer has shown one (:func:`population_gap_prior`).

    Returns
    -------
    pd.DataFrame
        One row per customer (``customer_id`` order of ``rfm``): ``mean_gap_days`` (NaN before a
        repeat purchase), ``gap_cv`` (coefficient of variation of gaps; NaN with fewer than two
        gaps), ``typical_gap_days`` (the mean gap shrunk towards the prior by one pseudo-gap, so
        it exists for everyone and is not fooled by a single short gap), ``overdue_ratio``
        (days since last purchase / typical gap) and ``repeat_purchases_per_year``.
    """
    same_customer = daily[CUSTOMER_ID].eq(daily[CUSTOMER_ID].shift())
    gaps = daily[DAY].diff().dt.days.where(same_customer)
    gap_stats = (
        pd.DataFrame({CUSTOMER_ID: daily[CUSTOMER_ID], "gap": gaps})
        .dropna()
        .groupby(CUSTOMER_ID, observed=True)["gap"]
        .agg(["mean", "std", "count"])
    )
    # Population standard deviation: a customer's gaps are all of their history, not a sample.
    gap_std = gap_stats["std"] * np.sqrt((gap_stats["count"] - 1) / gap_stats["count"])
    gap_cv = (gap_std / gap_stats["mean"]).where(gap_stats["count"] >= 2)

    indexed = rfm.set_index(CUSTOMER_ID)
    frequency = indexed["frequency"].astype("float64")
    typical_gap = (indexed["recency_days"] + prior_gap_days) / (frequency + 1.0)
    rate_days = indexed["tenure_days"].clip(lower=MIN_RATE_DAYS)
    result = pd.DataFrame(
        {
            "mean_gap_days": (indexed["recency_days"] / frequency).where(frequency > 0),
            "gap_cv": gap_cv.reindex(indexed.index),
            "typical_gap_days": typical_gap,
            "overdue_ratio": indexed["days_since_last_purchase"] / typical_gap,
            "repeat_purchases_per_year": frequency / rate_days * 365.25,
        }
    )
    return result.rename_axis(CUSTOMER_ID).reset_index()


def trend_features(daily: pd.DataFrame, *, as_of: pd.Timestamp, window_days: int) -> pd.DataFrame:
    """Spend in the most recent window against the window before it.

    Returns
    -------
    pd.DataFrame
        One row per customer: ``spend_recent`` (the last ``window_days`` up to as-of),
        ``spend_previous`` (the ``window_days`` before those) and ``spend_change`` =
        (recent - previous) / (recent + previous), in [-1, 1] and 0 when both are 0.
    """
    as_of = pd.Timestamp(as_of).normalize()
    age_days = (as_of - daily[DAY]).dt.days
    recent = daily[AMOUNT].where(age_days < window_days, 0.0)
    previous = daily[AMOUNT].where((age_days >= window_days) & (age_days < 2 * window_days), 0.0)
    sums = (
        pd.DataFrame(
            {CUSTOMER_ID: daily[CUSTOMER_ID], "spend_recent": recent, "spend_previous": previous}
        )
        .groupby(CUSTOMER_ID, sort=True, observed=True)
        .sum()
    )
    both = sums["spend_recent"] + sums["spend_previous"]
    sums["spend_change"] = (
        (sums["spend_recent"] - sums["spend_previous"]) / both.where(both > 0)
    ).fillna(0.0)
    return sums.reset_index()
