"""Campaign features, from the optional campaign interaction files.

One row per interaction: a customer, a campaign (when known), a channel (when known) and an
event: sent, opened, clicked or converted (:func:`pipeline.schema.clean_campaign_events`).

Counts are of distinct campaigns where the campaign is known, of rows otherwise: a customer who
opens one mailing three times, or redeems three coupons of one campaign, has opened or converted
on one campaign, so the rates per campaign sent stay comparable. An interaction without a
timestamp (a file listing the campaigns each customer was sent, with no dates) counts as
observed at any as-of date; one with a timestamp after the as-of date is not yet known.
"""

from __future__ import annotations

import datetime as dt

import ibis

from pipeline.config import CAMPAIGN_EVENTS
from pipeline.schema import CAMPAIGN_ID, CHANNEL, CUSTOMER_ID, EVENT, TIMESTAMP

# In table order: the catalogue's campaign part (see pipeline.features.feature_columns).
CAMPAIGN_FEATURES = (
    "campaigns_sent",
    "campaigns_opened",
    "campaigns_clicked",
    "campaigns_converted",
    "campaign_open_rate",
    "campaign_click_rate",
    "campaign_conversion_rate",
    "preferred_channel",
)
# The events that show a response: what the preferred channel is judged by.
RESPONSES = ("opened", "clicked", "converted")


def _observed(events: ibis.Table, as_of: dt.date) -> ibis.Table:
    return events.filter(
        events[TIMESTAMP].isnull() | (events[TIMESTAMP].date() <= ibis.date(as_of))
    )


def _count(events: ibis.Table, event: str) -> ibis.Value:
    """Distinct campaigns with ``event``, plus the rows with ``event`` and no campaign id."""
    is_event = events[EVENT] == event
    known = ibis.ifelse(
        is_event & events[CAMPAIGN_ID].notnull(), events[CAMPAIGN_ID], ibis.null("string")
    )
    unknown = ibis.ifelse(is_event & events[CAMPAIGN_ID].isnull(), 1, 0)
    return (known.nunique() + unknown.sum()).cast("int64")


def campaign_sums(events: ibis.Table, *, as_of: dt.date) -> ibis.Table:
    """Per-customer event counts up to ``as_of`` and the preferred channel, one row per customer
    with an interaction."""
    observed = _observed(events, as_of)
    counts = observed.group_by(CUSTOMER_ID).aggregate(
        **{f"campaigns_{event}_count": _count(observed, event) for event in CAMPAIGN_EVENTS}
    )
    with_channel = observed.filter(observed[CHANNEL].notnull())
    per_channel = with_channel.group_by([CUSTOMER_ID, CHANNEL]).aggregate(
        responses=sum((_count(with_channel, event) for event in RESPONSES), ibis.literal(0))
    )
    responsive = per_channel.filter(per_channel.responses > 0)
    # Most responses first; among equals the first channel by name, so every engine and every
    # run pick the same one.
    order = ibis.window(
        group_by=responsive[CUSTOMER_ID],
        order_by=[ibis.desc(responsive.responses), responsive[CHANNEL]],
    )
    ranked = responsive.mutate(place=ibis.row_number().over(order))
    best = ranked.filter(ranked.place == 0).select(
        ranked[CUSTOMER_ID], preferred_channel=ranked[CHANNEL]
    )
    joined = counts.left_join(best, CUSTOMER_ID)
    return joined.select(*(counts[c] for c in counts.columns), best.preferred_channel)


def campaign_features(customers: ibis.Table) -> dict[str, ibis.Value]:
    """Campaign features from :func:`campaign_sums` left-joined to the customer table.

    ``campaigns_sent``, ``campaigns_opened``, ``campaigns_clicked`` and ``campaigns_converted``
    (counts up to as-of, 0 for a customer without interactions); ``campaign_open_rate``,
    ``campaign_click_rate`` and ``campaign_conversion_rate`` (opened, clicked and converted per
    campaign sent; null when none was sent, and above 1 only if the data records responses to
    campaigns whose sending it does not); ``preferred_channel``: the channel with the most
    opens + clicks + conversions (ties: the first by name; null without a response on a known
    channel).
    """
    if "campaigns_sent_count" not in customers.columns:
        return {}
    counts = {
        event: customers[f"campaigns_{event}_count"].coalesce(0).cast("int64")
        for event in CAMPAIGN_EVENTS
    }
    sent = counts["sent"].cast("float64")

    def per_sent(event: str) -> ibis.Value:
        return ibis.ifelse(sent > 0, counts[event].cast("float64") / sent, ibis.null("float64"))

    return {
        **{f"campaigns_{event}": counts[event] for event in CAMPAIGN_EVENTS},
        "campaign_open_rate": per_sent("opened"),
        "campaign_click_rate": per_sent("clicked"),
        "campaign_conversion_rate": per_sent("converted"),
        "preferred_channel": customers.preferred_channel,
    }
