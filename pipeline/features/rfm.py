"""RFM and the inputs of the BTYD models, exactly as lifetimes defines them.

A purchase is a customer's *purchase day*: several transactions on one day are one purchase
whose value is their sum (lifetimes' ``freq="D"``). Time is in whole days.

Money is summed as exact decimals and day counts as integers, so every sum is the same
whatever order an engine adds the rows in: two runs, or two engines, give identical features.
"""

from __future__ import annotations

import datetime as dt

import ibis

from pipeline.schema import AMOUNT, CUSTOMER_ID, TIMESTAMP

DAY = "day"
# 18 digits with 4 decimals: exact sums of any realistic amounts, and fast (a 64-bit integer).
MONEY = "decimal(18, 4)"
WIDE_MONEY = "decimal(38, 4)"


def purchase_days(lines: ibis.Table) -> ibis.Table:
    """One row per customer and purchase day, from one row per transaction line.

    Returns columns ``customer_id``, ``day`` (a date) and ``amount`` (the day's exact total).
    """
    # A day's total fits MONEY again: later sums stay on 64-bit integers, not 128-bit ones.
    return lines.group_by(
        **{CUSTOMER_ID: lines[CUSTOMER_ID], DAY: lines[TIMESTAMP].date()}
    ).aggregate(**{AMOUNT: lines[AMOUNT].cast(MONEY).sum().cast(MONEY)})


def purchase_history(days: ibis.Table, *, as_of: dt.date, period_days: int) -> ibis.Table:
    """Purchase days up to ``as_of``, each with its place in the customer's history.

    Adds ``gap_days`` (days since the customer's previous purchase day; null on the first),
    ``age_days`` (days before ``as_of``) and ``period`` (``age_days // period_days``: 0 is the
    latest period).
    """
    observed = days.filter(days[DAY] <= ibis.date(as_of))
    in_order = ibis.window(group_by=observed[CUSTOMER_ID], order_by=observed[DAY])
    age_days = ibis.date(as_of).delta(observed[DAY], unit="day")
    return observed.mutate(
        gap_days=observed[DAY].delta(observed[DAY].lag().over(in_order), unit="day"),
        age_days=age_days,
        period=age_days // period_days,
    )


def rfm_sums(history: ibis.Table, *, as_of: dt.date) -> dict[str, ibis.Value]:
    """Per-customer sums over :func:`purchase_history` behind the RFM features."""
    return {
        "orders": history.count(),
        "tenure_days": ibis.date(as_of).delta(history[DAY].min(), unit="day"),
        "days_since_last_purchase": ibis.date(as_of).delta(history[DAY].max(), unit="day"),
        "total_spend_exact": history[AMOUNT].sum(),
        "first_spend_exact": history[AMOUNT].argmin(history[DAY]),
    }


def rfm_features(sums: ibis.Table) -> dict[str, ibis.Value]:
    """RFM from :func:`rfm_sums`, consistent with lifetimes' ``summary_data_from_transaction_data``.

    ``frequency`` (repeat purchase days), ``recency_days`` (first to last purchase day),
    ``tenure_days`` (first purchase day to as-of, lifetimes' ``T``), ``monetary`` (mean value of
    repeat purchase days, 0 without one), ``days_since_last_purchase``, ``orders`` (purchase
    days), ``total_spend`` and ``avg_order_value``.
    """
    frequency = sums.orders - 1
    repeat_spend = (sums.total_spend_exact - sums.first_spend_exact).cast("float64")
    total_spend = sums.total_spend_exact.cast("float64")
    return {
        "frequency": frequency,
        "recency_days": (sums.tenure_days - sums.days_since_last_purchase).cast("float64"),
        "tenure_days": sums.tenure_days.cast("float64"),
        "monetary": ibis.ifelse(frequency > 0, repeat_spend / frequency, 0.0),
        "days_since_last_purchase": sums.days_since_last_purchase.cast("float64"),
        "orders": sums.orders,
        "total_spend": total_spend,
        "avg_order_value": total_spend / sums.orders,
    }
