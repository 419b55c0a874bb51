"""Rhythm and trend: what separates a customer who is late from one who is always slow.

An occasional buyer who last bought 120 days ago is on time; a weekly buyer silent for 120
days is not. These features measure each customer against their own rhythm, and their recent
buying against their earlier buying.
"""

from __future__ import annotations

import ibis
import pandas as pd

from pipeline.schema import AMOUNT

# A month floor keeps two purchases in a customer's first week from reading as a hundred a year.
MIN_RATE_DAYS = 30.0
# Fallback rhythm when nobody in the data has bought twice.
FALLBACK_GAP_DAYS = 30.0
DAYS_PER_YEAR = 365.25


def population_gap_prior(features: pd.DataFrame) -> float:
    """Median mean gap between purchase days among repeat customers: the prior rhythm."""
    return gap_prior_of(features["recency_days"], features["frequency"])


def gap_prior_of(recency_days: pd.Series, frequency: pd.Series) -> float:
    """:func:`population_gap_prior` from the two columns it needs (fallback: a month)."""
    repeat = frequency > 0
    if not repeat.any():
        return FALLBACK_GAP_DAYS
    return float((recency_days[repeat] / frequency[repeat]).median())


def rhythm_sums(history: ibis.Table) -> dict[str, ibis.Value]:
    """Per-customer sum of squared gaps between purchase days (an integer: exact).

    The gaps' count and sum need no sum of their own: a customer has ``orders - 1`` gaps, and
    they add up to the days from the first purchase to the last.
    """
    return {"gap_square_sum": (history.gap_days * history.gap_days).sum()}


def rhythm_features(sums: ibis.Table) -> dict[str, ibis.Value]:
    """Gaps between purchase days and the purchase rate.

    ``mean_gap_days`` (null before a repeat purchase), ``gap_cv`` (population coefficient of
    variation of the gaps, null with fewer than two: a customer's gaps are all of their history,
    not a sample) and ``repeat_purchases_per_year`` (over at least a month of tenure).
    """
    n = sums.orders - 1
    gap_sum = sums.tenure_days - sums.days_since_last_purchase
    mean_gap = gap_sum.cast("float64") / n
    # n * sum(g^2) - (sum g)^2 is an exact integer: no cancellation error in the variance.
    spread = (n * sums.gap_square_sum - gap_sum * gap_sum).cast("float64")
    gap_sd = (spread / (n * n)).sqrt()
    rate_days = ibis.greatest(sums.tenure_days.cast("float64"), MIN_RATE_DAYS)
    return {
        "mean_gap_days": ibis.ifelse(n > 0, mean_gap, ibis.null("float64")),
        "gap_cv": ibis.ifelse(n >= 2, gap_sd / mean_gap, ibis.null("float64")),
        "repeat_purchases_per_year": n.cast("float64") / rate_days * DAYS_PER_YEAR,
    }


def gap_prior_features(customers: ibis.Table, *, prior_gap_days: float) -> dict[str, ibis.Value]:
    """The features that measure a customer against their own rhythm.

    ``typical_gap_days``: the mean gap shrunk towards the population's by one pseudo-gap, so it
    exists for everyone and is not fooled by a single short gap; ``overdue_ratio``: days since
    the last purchase / the typical gap. They depend on a population figure, so they are made
    from ``prior_gap_days`` once the customers are aggregated (scoring passes the prior learned
    at training: a customer's features never depend on who else is scored with them).
    """
    typical_gap = (customers.recency_days + prior_gap_days) / (customers.frequency + 1.0)
    return {
        "typical_gap_days": typical_gap,
        "overdue_ratio": customers.days_since_last_purchase / typical_gap,
    }


def trend_sums(
    history: ibis.Table, *, window_days: int, activity_windows_days: tuple[int, ...]
) -> dict[str, ibis.Value]:
    """Per-customer sums of purchases and spend in time windows, and the spend-trend sums."""
    age = history.age_days
    amount = history[AMOUNT]
    recent = age < window_days
    previous = (age >= window_days) & (age < 2 * window_days)
    # Filtered sums: the engine skips the other rows instead of adding zeros; an empty filter
    # sums to null, hence the zero fill.
    sums = {
        "spend_recent_exact": amount.sum(where=recent).fill_null(0),
        "spend_previous_exact": amount.sum(where=previous).fill_null(0),
        "purchases_recent": amount.count(where=recent),
        "purchases_previous": amount.count(where=previous),
        # sum(period x spend) over every purchase day: with the first day's own (it is the
        # customer's oldest period), all that the spend trend needs.
        "period_weighted_spend_exact": (amount.cast("decimal(38, 4)") * history.period).sum(),
    }
    # The same season a year earlier: the window of the same length that began 365 days before
    # as-of, i.e. the year-ago counterpart of the period a forecast from as-of covers.
    year_ago = (age >= max(365 - window_days, 0)) & (age < 365)
    sums["purchases_year_ago"] = amount.count(where=year_ago)
    sums["spend_year_ago_exact"] = amount.sum(where=year_ago).fill_null(0)
    for days in activity_windows_days:
        within = age < days
        sums[f"purchases_last_{days}d"] = amount.count(where=within)
        sums[f"spend_last_{days}d_exact"] = amount.sum(where=within).fill_null(0)
    return sums


def _balance(recent: ibis.Value, previous: ibis.Value) -> ibis.Value:
    """(recent - previous) / (recent + previous): in [-1, 1], 0 when both are 0."""
    both = recent + previous
    return ibis.ifelse(both > 0, (recent - previous) / both, 0.0)


def trend_features(
    sums: ibis.Table, *, period_days: int, activity_windows_days: tuple[int, ...]
) -> dict[str, ibis.Value]:
    """Recent buying against earlier buying.

    ``spend_recent`` / ``purchases_recent`` (the last ``window_days`` up to as-of),
    ``spend_previous`` / ``purchases_previous`` (the ``window_days`` before those),
    ``spend_change`` and ``purchase_change`` (``(recent - previous) / (recent + previous)``, in
    [-1, 1] and 0 when both are 0), ``purchases_last_<N>d`` and ``spend_last_<N>d`` for each
    activity window, and ``spend_trend``: the slope of the customer's spend per period over
    their tenure (zero periods included; the first purchase left out; the partial oldest period
    weighted by how much of it was observed), relative to their mean spend per period, per year
    (-0.5: spend falling by half its level a year). Null before a whole period has passed or
    without spend after the first purchase. ``purchases_year_ago`` / ``spend_year_ago``: the
    ``window_days`` that began a year before as-of (the season a forecast from as-of covers, a
    year earlier; 0 for a customer whose history is shorter).
    """
    recent = sums.spend_recent_exact.cast("float64")
    previous = sums.spend_previous_exact.cast("float64")
    features: dict[str, ibis.Value] = {
        "spend_recent": recent,
        "spend_previous": previous,
        "spend_change": _balance(recent, previous),
        "purchases_recent": sums.purchases_recent,
        "purchases_previous": sums.purchases_previous,
        "purchase_change": _balance(
            sums.purchases_recent.cast("float64"), sums.purchases_previous.cast("float64")
        ),
        "spend_trend": _spend_trend(sums, period_days=period_days),
        "purchases_year_ago": sums.purchases_year_ago,
        "spend_year_ago": sums.spend_year_ago_exact.cast("float64"),
    }
    for days in activity_windows_days:
        features[f"purchases_last_{days}d"] = sums[f"purchases_last_{days}d"]
        features[f"spend_last_{days}d"] = sums[f"spend_last_{days}d_exact"].cast("float64")
    return features


def _spend_trend(sums: ibis.Table, *, period_days: int) -> ibis.Value:
    # Periods p = 0 (the latest) .. M (the oldest, holding the first purchase and only partly
    # observed: exposure e = (T - M * period + 1) / period of a period); x = -p runs forward in
    # time. The spend rate of each period (spend / exposure, zero periods included) is fitted by
    # least squares weighted by exposure, so the partial period counts for what it covers. The
    # first purchase is left out (it is where the customer starts, not how they go on), which
    # makes every sum a plain per-customer one: sum(spend), sum(p * spend), and closed forms
    # for the exposures.
    tenure = sums.tenure_days
    m = (tenure // period_days).cast("float64")
    e = (tenure - (tenure // period_days) * period_days + 1).cast("float64") / period_days
    sw = m + e
    sx = -(m * (m - 1) / 2 + m * e)
    sxx = (m - 1) * m * (2 * m - 1) / 6 + m * m * e
    first = sums.first_spend_exact.cast("float64")
    sy = sums.total_spend_exact.cast("float64") - first
    sxy = -(sums.period_weighted_spend_exact.cast("float64") - m * first)
    slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
    per_year = slope / (sy / sw) * (DAYS_PER_YEAR / period_days)
    # At least one whole period besides the first, and some spend after the first purchase.
    return ibis.ifelse((m >= 1) & (sy > 0), per_year, ibis.null("float64"))
