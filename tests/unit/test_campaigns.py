"""Campaign interactions: their contract (sources, event values, errors) and their features."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.actions import assign_sub_segments
from pipeline.config import (
    CampaignColumns,
    CampaignEventValues,
    CampaignSource,
    SubSegmentRule,
    load_config,
)
from pipeline.errors import ConfigError, InputError
from pipeline.features import CAMPAIGN_FEATURES, build_features
from pipeline.schema import clean_campaign_events, combine_events
from tests.conftest import transactions

AS_OF = pd.Timestamp("2024-06-30")

# Which campaigns each customer was sent: no dates, every row a send.
SENDS = CampaignSource(
    path="sends.csv", columns=CampaignColumns(customer_id="cust", campaign_id="camp"), event="sent"
)
# Responses with an event column, a channel and a date.
RESPONSES = CampaignSource(
    path="responses.csv",
    columns=CampaignColumns(
        customer_id="cust", campaign_id="camp", channel="via", event="status", timestamp="at"
    ),
    event_values=CampaignEventValues(
        opened=("open",), clicked=("click",), converted=("purchase",), ignored=("bounce",)
    ),
)
# Coupon redemptions with no campaign id: each row is one conversion.
COUPONS = CampaignSource(
    path="coupons.csv",
    columns=CampaignColumns(customer_id="cust", timestamp="at"),
    event="converted",
)


def frame(columns: str, rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns.split()).astype("string")


def sends() -> pd.DataFrame:
    return frame(
        "cust camp",
        [["a", "c1"], ["a", "c2"], ["a", "c3"], ["b", "c1"], ["d", "c1"], ["zz", "c1"]],
    )


def responses() -> pd.DataFrame:
    return frame(
        "cust camp via status at",
        [
            ["a", "c1", "email", "open", "2024-06-01"],
            ["a", "c1", "email", "open", "2024-06-02"],  # c1 opened again: still one campaign
            ["a", "c2", "sms", "click", "2024-06-03"],
            ["a", "c2", "sms", "purchase", "2024-06-04"],
            ["a", "c3", "email", "open", "2024-07-10"],  # after as-of: not yet known
            ["b", "c1", "Email", "Open", "2024-06-01"],  # values in any case
            ["b", "c1", "SMS", "click", "2024-06-01"],  # one response per channel: a tie
            ["d", "c1", "push", "bounce", "2024-06-01"],  # ignored: set aside
            [None, "c1", "email", "open", "2024-06-01"],  # no customer: set aside
        ],
    )


def coupons() -> pd.DataFrame:
    return frame("cust at", [["a", "2024-06-10"], ["a", "2024-06-11"]])


def clean_all():
    return combine_events(
        [
            clean_campaign_events(sends(), config=SENDS, source="sends.csv"),
            clean_campaign_events(responses(), config=RESPONSES, source="responses.csv"),
            clean_campaign_events(coupons(), config=COUPONS, source="coupons.csv"),
        ]
    )


def buyers() -> pd.DataFrame:
    return transactions(
        [
            ("a", "2023-12-01", 10.0),
            ("b", "2024-06-02", 20.0),
            ("c", "2024-06-03", 30.0),
            ("d", "2024-06-04", 5.0),
        ]
    )


def campaign_features_of(events: pd.DataFrame, as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    features = build_features(buyers(), as_of=as_of, campaigns=events)
    return features.set_index("customer_id")[list(CAMPAIGN_FEATURES)]


def test_counts_are_of_distinct_campaigns_and_rates_are_per_campaign_sent():
    features = campaign_features_of(clean_all().events)
    counts = ["campaigns_sent", "campaigns_opened", "campaigns_clicked", "campaigns_converted"]
    rates = ["campaign_open_rate", "campaign_click_rate", "campaign_conversion_rate"]
    # a: 3 sent; opened c1 (twice: once); clicked and bought on c2; two coupons without a
    # campaign id are two more conversions; the July open is not yet known
    assert features.loc["a", counts].tolist() == [3, 1, 1, 3]
    assert features.loc["a", rates].tolist() == [1 / 3, 1 / 3, 1.0]
    assert features.loc["b", counts].tolist() == [1, 1, 1, 0]
    assert features.loc["b", rates].tolist() == [1.0, 1.0, 0.0]
    assert features.loc["d", counts].tolist() == [1, 0, 0, 0]  # the bounce is ignored
    assert features.loc["d", rates].tolist() == [0.0, 0.0, 0.0]
    # c had no interaction: zero counts, and no rate without a campaign sent
    assert features.loc["c", counts].tolist() == [0, 0, 0, 0]
    assert features.loc["c", rates].isna().all()
    assert "zz" not in features.index  # sent a campaign but never bought: not segmented


def test_the_preferred_channel_has_the_most_responses_ties_going_to_the_first_name():
    channel = campaign_features_of(clean_all().events)["preferred_channel"]
    assert channel["a"] == "sms"  # sms: a click and a purchase on c2; email: one open
    assert channel["b"] == "email"  # one response each on Email and SMS: e before s
    # d only bounced, c had nothing: no preference shown
    assert pd.isna(channel["c"]) and pd.isna(channel["d"])


def test_a_tie_is_broken_by_name_whatever_the_order_of_the_rows():
    events = clean_all().events
    shuffled = events.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        campaign_features_of(shuffled), campaign_features_of(events), check_exact=True
    )


def test_interactions_without_a_timestamp_count_at_any_as_of():
    early = campaign_features_of(clean_all().events, as_of=pd.Timestamp("2024-01-01"))
    assert list(early.index) == ["a"]  # the only customer who had bought by then
    assert early.loc[
        "a", ["campaigns_sent", "campaigns_opened", "campaigns_converted"]
    ].tolist() == [
        3,
        0,
        0,
    ]
    assert pd.isna(early.loc["a", "preferred_channel"])


def test_without_channel_data_the_preferred_channel_is_null_for_everyone():
    only_sends_and_coupons = combine_events(
        [
            clean_campaign_events(sends(), config=SENDS, source="sends.csv"),
            clean_campaign_events(coupons(), config=COUPONS, source="coupons.csv"),
        ]
    )
    features = campaign_features_of(only_sends_and_coupons.events)
    assert features["preferred_channel"].isna().all()
    assert features.loc["a", "campaign_conversion_rate"] == pytest.approx(2 / 3)


def test_rows_set_aside_are_counted_by_reason_with_their_file_and_row():
    clean = clean_all()
    assert clean.rows_in == 6 + 9 + 2 == len(clean.events) + len(clean.set_aside)
    assert clean.counts_by_reason() == {"ignored_event": 1, "missing_customer_id": 1}
    assert clean.set_aside[["source_file", "source_row", "reason"]].values.tolist() == [
        ["responses.csv", 8, "ignored_event"],
        ["responses.csv", 9, "missing_customer_id"],
    ]
    events = clean.events
    assert set(events["channel"].dropna()) == {"email", "sms"}  # lower case
    assert events.loc[events["channel"].isna(), "event"].unique().tolist() == ["sent", "converted"]


def test_sub_segments_can_use_the_preferred_channel():
    features = build_features(buyers(), as_of=AS_OF, campaigns=clean_all().events)
    segments = features.assign(status=["loyal", "loyal", "loyal", "active"])
    rules = (
        SubSegmentRule(
            name="loyal, prefers email", statuses=("loyal",), when={"preferred_channel": ("email",)}
        ),
        SubSegmentRule(name="converts", when={"campaign_conversion_rate": {"ge": 0.5}}),
    )
    names = assign_sub_segments(segments, rules)
    # a prefers sms but converts; b prefers email; c has no channel; d has no conversions
    assert names.fillna("").tolist() == ["converts", "loyal, prefers email", "", ""]


# -- errors ------------------------------------------------------------------------------------
def test_a_mapped_column_missing_from_the_file_is_named():
    with pytest.raises(InputError) as caught:
        clean_campaign_events(
            responses().drop(columns="via"), config=RESPONSES, source="responses.csv"
        )
    assert str(caught.value).startswith(
        "responses.csv, column 'via': column of the campaigns mapping missing"
    )


def test_an_unparsable_date_names_its_row():
    bad = responses()
    bad.loc[2, "at"] = "03/06/2024"
    with pytest.raises(InputError) as caught:
        clean_campaign_events(bad, config=RESPONSES, source="responses.csv")
    assert str(caught.value).startswith(
        "responses.csv, column 'at', row 3: cannot read '03/06/2024' as a date"
    )
    assert "timestamp_format on this data.campaigns source" in str(caught.value)


def test_an_event_value_nobody_mapped_is_an_error_naming_its_row():
    bad = responses()
    bad.loc[3, "status"] = "unsubscribe"
    with pytest.raises(InputError) as caught:
        clean_campaign_events(bad, config=RESPONSES, source="responses.csv")
    assert str(caught.value).startswith(
        "responses.csv, column 'status', row 4: event value 'unsubscribe' is not listed in "
        "data.campaigns.event_values"
    )


def test_an_empty_file_is_an_error():
    with pytest.raises(InputError, match=r"^sends.csv: the file has a header but no rows"):
        clean_campaign_events(frame("cust camp", []), config=SENDS, source="sends.csv")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{path: s.csv}", "give either columns.event"),
        ("{path: s.csv, event: sent, columns: {event: e}}", "give either columns.event"),
        ("{path: s.csv, columns: {event: e}}", "needs event_values"),
        ("{path: s.csv, event: sent, event_values: {sent: [x]}}", "only apply with an event"),
        ("{path: s.csv, event: delivered}", "'data.campaigns.0.event'"),
    ],
)
def test_each_source_has_an_event_column_or_one_fixed_event(tmp_path, source, message):
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  campaigns:\n    - {source}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_campaign_id_read_as_a_number_matches_the_same_id_as_text():
    as_numbers = pd.DataFrame({"cust": ["a"], "camp": [26.0]})
    as_text = frame("cust camp", [["a", "26"]])
    one = clean_campaign_events(as_numbers, config=SENDS, source="s.csv").events
    other = clean_campaign_events(as_text, config=SENDS, source="s.csv").events
    assert one["campaign_id"].tolist() == other["campaign_id"].tolist() == ["26"]
    both = combine_events(
        [
            clean_campaign_events(as_numbers, config=SENDS, source="s.csv"),
            clean_campaign_events(as_text, config=SENDS, source="s.csv"),
        ]
    )
    sent_once = campaign_features_of(both.events).loc["a"]
    assert sent_once["campaigns_sent"] == 1 and sent_once["campaign_open_rate"] == 0.0
