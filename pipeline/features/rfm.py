"""RFM and the inputs of the BTYD models, exactly as lifetimes defines them.

A purchase is a customer's *purchase day*: several transactions on one day are one purchase
whose value is their sum (lifetimes' ``freq="D"``). Time is in whole days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.schema import AMOUNT, CUSTOMER_ID, TIMESTAMP

DAY = "day"


def purchase_days(transactions: pd.DataFrame) -> pd.DataFrame:
    """One row per customer and purchase day, from one row per transaction.

    Returns columns ``customer_id``, ``day`` (midnight timestamps) and ``amount`` (the day's
    total), sorted by customer and day.
    """
    days = transactions[TIMESTAMP].dt.normalize().rename(DAY)
    customers = transactions[CUSTOMER_ID]
    if not isinstance(customers.dtype, pd.CategoricalDtype):
        # Grouping on category codes is several times faster than on strings, and every later
        # per-customer aggregation reuses them; categories sort as the strings do.
        customers = customers.astype("category")
    return (
        transactions[AMOUNT]
        .groupby([customers, days], sort=True, observed=True)
        .sum()
        .reset_index()
    )


def rfm_features(daily: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per-customer RFM from purchase days, consistent with lifetimes' summary.

    Parameters
    ----------
    daily
        Output of :func:`purchase_days`.
    as_of
        Observation end (a day); lifetimes' ``observation_period_end``.

    Returns
    -------
    pd.DataFrame
        One row per customer, sorted by ``customer_id``: ``frequency`` (repeat purchase days),
        ``recency_days`` (first to last purchase day), ``tenure_days`` (first purchase day to
        as-of, lifetimes' ``T``), ``monetary`` (mean value of repeat purchase days, 0 without
        one), ``days_since_last_purchase``, ``orders`` (purchase days), ``total_spend`` and
        ``avg_order_value``.
    """
    grouped = daily.groupby(CUSTOMER_ID, sort=True, observed=True)
    first_day = grouped[DAY].min()
    last_day = grouped[DAY].max()
    orders = grouped.size()
    total_spend = grouped[AMOUNT].sum()
    first_spend = grouped[AMOUNT].first()
    frequency = orders - 1
    as_of = pd.Timestamp(as_of).normalize()

    repeat_spend = total_spend - first_spend
    monetary = np.where(frequency > 0, repeat_spend / frequency.clip(lower=1), 0.0)
    recency_days = (last_day - first_day).dt.days.astype("float64")
    tenure_days = (as_of - first_day).dt.days.astype("float64")
    return (
        pd.DataFrame(
            {
                "frequency": frequency.astype("int64"),
                "recency_days": recency_days,
                "tenure_days": tenure_days,
                "monetary": monetary,
                "days_since_last_purchase": tenure_days - recency_days,
                "orders": orders.astype("int64"),
                "total_spend": total_spend.astype("float64"),
                "avg_order_value": (total_spend / orders).astype("float64"),
            }
        )
        .rename_axis(CUSTOMER_ID)
        .reset_index()
    )
