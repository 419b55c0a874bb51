"""Loyalty-programme events: their contract (both layouts, errors, rows set aside) and features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import (
    FeatureConfig,
    LoyaltyColumns,
    LoyaltyEventsConfig,
    LoyaltyEventValues,
    load_config,
)
from pipeline.errors import ConfigError, InputError
from pipeline.features import LOYALTY_FEATURES, build_features
from pipeline.schema import clean_loyalty_events
from tests.conftest import transactions

AS_OF = pd.Timestamp("2024-06-30")
SETTINGS = {"recent_window_days": 30}

WIDE = LoyaltyEventsConfig(
    path="points.csv",
    columns=LoyaltyColumns(
        customer_id="member",
        timestamp="at",
        points_earned="earned",
        points_redeemed="redeemed",
    ),
)
LONG = LoyaltyEventsConfig(
    path="ledger.csv",
    columns=LoyaltyColumns(customer_id="member", timestamp="at", points="pts", event_type="kind"),
    event_values=LoyaltyEventValues(earned=("earn",), redeemed=("redeem",), ignored=("expire",)),
)


def wide_raw(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["member", "at", "earned", "redeemed"]).astype("string")


def long_raw(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["member", "at", "kind", "pts"]).astype("string")


# Recent window: the 30 days up to 2024-06-30 (ages 0-29); the window before: ages 30-59.
WIDE_ROWS = [
    ["a", "2024-04-10", "100", None],  # age 81: before both windows
    ["a", "2024-05-20", "40", None],  # age 41: previous window
    ["a", "2024-05-31", "2", None],  # age 30: the first day of the previous window
    ["a", "2024-06-10", None, "-30"],  # age 20, recent; a ledger's negative redemption
    ["a", "2024-06-20 18:00", "10.5", "5"],  # age 10: earned and redeemed on one row
    ["a", "2024-07-05", "999", "999"],  # after as-of: not yet known
    ["b", "2024-06-01", None, "50"],  # age 29: still recent
    ["b", "2024-06-30 23:00", "1", None],  # the as-of day counts whole
    ["zz", "2024-06-01", "10", None],  # a member who never bought
    [None, "2024-06-01", "10", None],  # no customer: set aside
]
# The same events as a long ledger: one row per movement, event types in any case.
LONG_ROWS = [
    ["a", "2024-04-10", "EARN", "100"],
    ["a", "2024-05-20", "earn", "40"],
    ["a", "2024-05-31", " Earn ", "2"],
    ["a", "2024-06-10", "redeem", "-30"],
    ["a", "2024-06-20 18:00", "earn", "10.5"],
    ["a", "2024-06-20 18:00", "redeem", "5"],
    ["a", "2024-06-25", "expire", "70"],  # an ignored type: set aside, never counted
    ["a", "2024-07-05", "earn", "999"],
    ["a", "2024-07-05", "redeem", "999"],
    ["b", "2024-06-01", "redeem", "50"],
    ["b", "2024-06-30 23:00", "earn", "1"],
    ["zz", "2024-06-01", "earn", "10"],
    [None, "2024-06-01", "earn", "10"],
]


def buyers() -> pd.DataFrame:
    return transactions(
        [("a", "2024-06-01", 10.0), ("b", "2024-06-02", 20.0), ("c", "2024-06-20", 30.0)]
    )


def loyalty_features_of(events: pd.DataFrame, as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    features = build_features(
        buyers(), as_of=as_of, settings=FeatureConfig(**SETTINGS), loyalty=events
    )
    return features.set_index("customer_id")[list(LOYALTY_FEATURES)]


def test_the_wide_layout_gives_exact_points_balance_and_trend_per_buyer():
    clean = clean_loyalty_events(wide_raw(WIDE_ROWS), config=WIDE, source="points.csv")
    features = loyalty_features_of(clean.events)
    a, b, c = (features.loc[k] for k in "abc")
    assert a["points_earned"] == 152.5  # 100 + 40 + 2 + 10.5; the July event is not yet known
    assert a["points_redeemed"] == 35.0  # |-30| + 5
    assert a["redemption_rate"] == pytest.approx(35 / 152.5)
    assert a["points_balance"] == 117.5
    assert a["points_balance_change_recent"] == -24.5  # -30 + (10.5 - 5)
    assert a["points_balance_change_previous"] == 42.0  # 40 + 2
    assert a["points_balance_trend"] == -66.5
    assert a["days_since_last_redemption"] == 10.0  # 2024-06-20
    # b redeemed points earned before the data began: a rate above 1, a negative balance
    assert b[["points_earned", "points_redeemed", "points_balance"]].tolist() == [1.0, 50.0, -49.0]
    assert b["redemption_rate"] == 50.0
    assert b["points_balance_change_recent"] == -49.0 and b["days_since_last_redemption"] == 29.0
    # c has no events: no points, and no rate or redemption to measure
    assert c[["points_earned", "points_redeemed", "points_balance"]].tolist() == [0.0, 0.0, 0.0]
    assert c[["points_balance_change_recent", "points_balance_trend"]].tolist() == [0.0, 0.0]
    assert np.isnan(c["redemption_rate"]) and np.isnan(c["days_since_last_redemption"])
    assert "zz" not in features.index  # members who never bought are not segmented


def test_the_long_layout_reads_into_the_same_features_as_the_wide_one():
    wide = clean_loyalty_events(wide_raw(WIDE_ROWS), config=WIDE, source="points.csv")
    long = clean_loyalty_events(long_raw(LONG_ROWS), config=LONG, source="ledger.csv")
    pd.testing.assert_frame_equal(
        loyalty_features_of(long.events), loyalty_features_of(wide.events), check_exact=True
    )
    assert long.counts_by_reason() == {"ignored_event_type": 1, "missing_customer_id": 1}
    assert long.rows_in == len(LONG_ROWS) == len(long.events) + len(long.set_aside)


def test_events_after_an_earlier_as_of_are_not_seen():
    clean = clean_loyalty_events(wide_raw(WIDE_ROWS), config=WIDE, source="points.csv")
    early = pd.Timestamp("2024-06-15")  # a bought on 06-01 and b on 06-02; c not yet
    features = loyalty_features_of(clean.events, as_of=early)
    assert list(features.index) == ["a", "b"]
    a = features.loc["a"]
    assert a[["points_earned", "points_redeemed", "points_balance"]].tolist() == [
        142.0,
        30.0,
        112.0,
    ]
    # recent: ages 0-29 (05-17 .. 06-15): 40 + 2 - 30; previous: 04-17 .. 05-16: nothing
    assert a[["points_balance_change_recent", "points_balance_change_previous"]].tolist() == [
        12.0,
        0.0,
    ]
    assert a["days_since_last_redemption"] == 5.0
    assert features.loc["b", "points_redeemed"] == 50.0 and features.loc["b", "points_earned"] == 0


def test_rows_without_a_customer_are_set_aside_with_their_source_row():
    clean = clean_loyalty_events(wide_raw(WIDE_ROWS), config=WIDE, source="points.csv")
    assert clean.counts_by_reason() == {"missing_customer_id": 1}
    row = clean.set_aside.iloc[0]
    assert (row["source_row"], row["reason"], row["source_file"]) == (
        10,
        "missing_customer_id",
        "points.csv",
    )
    assert len(clean.events) == 9 and clean.rows_in == 10


def test_loyalty_features_follow_basket_features_in_a_fixed_order():
    clean = clean_loyalty_events(wide_raw(WIDE_ROWS), config=WIDE, source="points.csv")
    tx = buyers().assign(product=pd.Series(["x", "y", "x"], dtype="string"))
    features = build_features(tx, as_of=AS_OF, loyalty=clean.events)
    columns = list(features.columns)
    assert columns[-len(LOYALTY_FEATURES) :] == list(LOYALTY_FEATURES)
    assert columns.index("top_product") < columns.index("points_earned")


# -- errors: one clear line naming the file, the column and the first bad row -----------------
def test_a_mapped_column_missing_from_the_file_is_named():
    with pytest.raises(InputError) as caught:
        clean_loyalty_events(
            wide_raw(WIDE_ROWS).drop(columns="redeemed"), config=WIDE, source="points.csv"
        )
    assert str(caught.value).startswith(
        "points.csv, column 'redeemed': column of the loyalty_events mapping missing"
    )


def test_an_unparsable_date_names_its_row_and_the_setting_to_fix():
    rows = [["a", "2024-06-01", "1", None], ["a", "2024-13-01", "1", None]]
    with pytest.raises(InputError) as caught:
        clean_loyalty_events(wide_raw(rows), config=WIDE, source="points.csv")
    message = str(caught.value)
    assert message.startswith("points.csv, column 'at', row 2: cannot read '2024-13-01' as a date")
    assert "data.loyalty_events.timestamp_format" in message


def test_non_numeric_points_name_their_row():
    rows = [["a", "2024-06-01", "ten", None]]
    with pytest.raises(InputError) as caught:
        clean_loyalty_events(wide_raw(rows), config=WIDE, source="points.csv")
    assert str(caught.value) == (
        "points.csv, column 'earned', row 1: cannot read 'ten' as a number. "
        "Points must be plain numbers"
    )


def test_an_empty_file_is_an_error():
    with pytest.raises(InputError, match=r"^points.csv: the file has a header but no rows"):
        clean_loyalty_events(wide_raw([]), config=WIDE, source="points.csv")


def test_an_event_type_nobody_mapped_is_an_error_naming_its_row():
    rows = [["a", "2024-06-01", "earn", "5"], ["a", "2024-06-02", "bonus", "5"]]
    with pytest.raises(InputError) as caught:
        clean_loyalty_events(long_raw(rows), config=LONG, source="ledger.csv")
    assert str(caught.value).startswith(
        "ledger.csv, column 'kind', row 2: event value 'bonus' is not listed in "
        "data.loyalty_events.event_values"
    )


def test_a_file_with_no_usable_row_is_an_error():
    with pytest.raises(InputError, match="no usable loyalty event rows"):
        clean_loyalty_events(
            wide_raw([[None, "2024-06-01", "1", None]]), config=WIDE, source="points.csv"
        )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("columns: {customer_id: m, timestamp: t}", "map either points_earned"),
        ("columns: {points_earned: e, points: p, event_type: k}", "map either points_earned"),
        ("columns: {points: p}", "needs both points and event_type"),
        ("columns: {points: p, event_type: k}", "needs event_values"),
        (
            "columns: {points: p, event_type: k}\n    event_values: {earned: [x], redeemed: [X]}",
            "event value 'X' is listed twice",
        ),
        (
            "columns: {points_earned: e}\n    event_values: {earned: [x]}",
            "only apply to the long layout",
        ),
    ],
)
def test_the_config_accepts_one_layout_or_the_other(tmp_path, section, message):
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  loyalty_events:\n    path: p.csv\n    {section}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)
