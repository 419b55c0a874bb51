"""Loyalty-programme features, from the optional loyalty events table.

One row per event with the points it earned and redeemed
(:func:`pipeline.schema.clean_loyalty_events` reads both the wide and the long layout into that
form). Points are summed as exact decimals, as money is (:mod:`.rfm`), so both engines and every
rerun give identical figures. Events after the as-of date are not yet known and ignored.
"""

from __future__ import annotations

import datetime as dt

import ibis

from pipeline.features.rfm import MONEY
from pipeline.schema import CUSTOMER_ID, POINTS_EARNED, POINTS_REDEEMED, TIMESTAMP

# In table order: the catalogue's loyalty part (see pipeline.features.feature_columns).
LOYALTY_FEATURES = (
    "points_earned",
    "points_redeemed",
    "redemption_rate",
    "points_balance",
    "points_balance_change_recent",
    "points_balance_change_previous",
    "points_balance_trend",
    "days_since_last_redemption",
)


def loyalty_sums(events: ibis.Table, *, as_of: dt.date, window_days: int) -> ibis.Table:
    """Per-customer sums over the loyalty events up to ``as_of``, one row per customer with one.

    ``window_days`` is the recent window (``features.recent_window_days``): the balance change
    is summed over it and over the window of the same length before it.
    """
    day = events[TIMESTAMP].date()
    observed = events.filter(day <= ibis.date(as_of))
    day = observed[TIMESTAMP].date()
    age_days = ibis.date(as_of).delta(day, unit="day")
    earned = observed[POINTS_EARNED].cast(MONEY)
    redeemed = observed[POINTS_REDEEMED].cast(MONEY)
    net = earned - redeemed
    recent = age_days < window_days
    previous = (age_days >= window_days) & (age_days < 2 * window_days)
    last_redemption = ibis.ifelse(redeemed > 0, day, ibis.null("date")).max()
    return observed.group_by(CUSTOMER_ID).aggregate(
        points_earned_exact=earned.sum(),
        points_redeemed_exact=redeemed.sum(),
        points_net_recent_exact=ibis.ifelse(recent, net, 0).sum(),
        points_net_previous_exact=ibis.ifelse(previous, net, 0).sum(),
        days_since_last_redemption=ibis.date(as_of).delta(last_redemption, unit="day"),
    )


def loyalty_features(customers: ibis.Table) -> dict[str, ibis.Value]:
    """Loyalty features from :func:`loyalty_sums` left-joined to the customer table.

    ``points_earned`` and ``points_redeemed`` (totals up to as-of), ``redemption_rate``
    (redeemed / earned; null when nothing was earned, and above 1 when points earned before the
    data began are redeemed in it), ``points_balance`` (earned - redeemed: the balance the data
    shows, without any opening balance), ``points_balance_change_recent`` and
    ``points_balance_change_previous`` (earned - redeemed in the recent window and in the window
    before it), ``points_balance_trend`` (recent change - previous change: above 0, the balance
    grows faster, or shrinks more slowly, than before) and ``days_since_last_redemption`` (null
    without one). A customer without events has 0 points and null rate and days.
    """
    if "points_earned_exact" not in customers.columns:
        return {}

    def points(column: str) -> ibis.Value:
        return customers[column].cast("float64").coalesce(0.0)

    # Differences are taken on the exact sums, then converted: no float cancellation error.
    balance = customers.points_earned_exact - customers.points_redeemed_exact
    recent = points("points_net_recent_exact")
    previous = points("points_net_previous_exact")
    trend = customers.points_net_recent_exact - customers.points_net_previous_exact
    earned = points("points_earned_exact")
    return {
        "points_earned": earned,
        "points_redeemed": points("points_redeemed_exact"),
        "redemption_rate": ibis.ifelse(
            earned > 0, points("points_redeemed_exact") / earned, ibis.null("float64")
        ),
        "points_balance": balance.cast("float64").coalesce(0.0),
        "points_balance_change_recent": recent,
        "points_balance_change_previous": previous,
        "points_balance_trend": trend.cast("float64").coalesce(0.0),
        "days_since_last_redemption": customers.days_since_last_redemption.cast("float64"),
    }
