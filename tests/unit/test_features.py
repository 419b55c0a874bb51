from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes.utils import summary_data_from_transaction_data

from pipeline.actions import assign_sub_segments
from pipeline.config import EngineConfig, FeatureConfig, SubSegmentRule
from pipeline.engine import connect
from pipeline.features import (
    BASKET_FEATURES,
    CAMPAIGN_FEATURES,
    FEATURE_COLUMNS,
    LOYALTY_FEATURES,
    CustomerHistory,
    build_features,
    feature_columns,
    population_gap_prior,
)
from tests.conftest import transactions

AS_OF = pd.Timestamp("2024-02-10")


def features_of(tx: pd.DataFrame, as_of: pd.Timestamp = AS_OF, **settings) -> pd.DataFrame:
    return build_features(tx, as_of=as_of, settings=FeatureConfig(**settings)).set_index(
        "customer_id"
    )


def test_transactions_on_one_day_are_one_purchase_with_their_summed_value(six_rows):
    features = features_of(six_rows)
    # a bought on three days (two transactions on 2024-01-11): 10, 25 and 30
    assert features.loc["a", "orders"] == 3
    assert features.loc["a", "total_spend"] == 65.0
    assert features.loc["a", "monetary"] == pytest.approx(27.5)  # (25 + 30) / 2


def test_rfm_has_exact_values_for_hand_made_customers(six_rows):
    rfm = features_of(six_rows)
    assert rfm.loc["a", "frequency"] == 2
    assert rfm.loc["a", "recency_days"] == 30
    assert rfm.loc["a", "tenure_days"] == 40
    assert rfm.loc["a", "monetary"] == pytest.approx(27.5)  # first purchase excluded
    assert rfm.loc["a", "days_since_last_purchase"] == 10
    assert rfm.loc["a", "avg_order_value"] == pytest.approx(65 / 3)
    assert rfm.loc["b", ["frequency", "recency_days", "tenure_days", "monetary"]].tolist() == [
        0,
        0,
        20,
        0,
    ]
    assert rfm.loc["c", "tenure_days"] == 39


def test_rfm_matches_lifetimes_summary_on_the_same_transactions(six_rows):
    ours = features_of(six_rows)
    theirs = summary_data_from_transaction_data(
        six_rows,
        "customer_id",
        "timestamp",
        monetary_value_col="amount",
        observation_period_end=AS_OF,
        freq="D",
    )
    for our_column, their_column in [
        ("frequency", "frequency"),
        ("recency_days", "recency"),
        ("tenure_days", "T"),
        ("monetary", "monetary_value"),
    ]:
        np.testing.assert_allclose(
            ours[our_column].to_numpy(float), theirs.loc[ours.index, their_column].to_numpy(float)
        )


def test_transactions_after_the_as_of_date_are_not_seen(six_rows):
    early = features_of(six_rows, as_of=pd.Timestamp("2024-01-11"))
    # a's 2024-01-31 purchase and b (first bought 2024-01-21) are in the future
    assert list(early.index) == ["a", "c"]
    assert early.loc["a", ["frequency", "total_spend", "tenure_days"]].tolist() == [1, 35.0, 10.0]


def test_rhythm_measures_gaps_and_how_overdue_a_customer_is(six_rows):
    rhythm = build_features(six_rows, as_of=AS_OF, prior_gap_days=20.0).set_index("customer_id")
    # a: gaps 10 and 20 -> mean 15, population sd 5 -> cv 1/3
    assert rhythm.loc["a", "mean_gap_days"] == 15
    assert rhythm.loc["a", "gap_cv"] == pytest.approx(1 / 3)
    # shrunk towards the prior by one pseudo-gap: (30 + 20) / 3
    assert rhythm.loc["a", "typical_gap_days"] == pytest.approx(50 / 3)
    assert rhythm.loc["a", "overdue_ratio"] == pytest.approx(10 / (50 / 3))
    assert rhythm.loc["a", "repeat_purchases_per_year"] == pytest.approx(2 / 40 * 365.25)
    # b never repeated: no gap of their own, the prior stands in
    assert np.isnan(rhythm.loc["b", "mean_gap_days"]) and np.isnan(rhythm.loc["b", "gap_cv"])
    assert rhythm.loc["b", "typical_gap_days"] == 20
    assert rhythm.loc["b", "overdue_ratio"] == 1.0
    assert rhythm.loc["b", "repeat_purchases_per_year"] == 0


def test_the_purchase_rate_uses_at_least_a_month_of_tenure():
    tx = transactions([("a", "2024-02-01", 1.0), ("a", "2024-02-03", 1.0)])
    features = features_of(tx, as_of=pd.Timestamp("2024-02-05"))
    # tenure 4 days, but the rate is over 30: one repeat is 12 a year, not 91
    assert features.loc["a", "repeat_purchases_per_year"] == pytest.approx(365.25 / 30)


def test_population_gap_prior_is_the_median_mean_gap_of_repeat_customers(six_rows):
    features = build_features(six_rows, as_of=AS_OF)
    assert population_gap_prior(features) == 15
    assert population_gap_prior(features[features["frequency"] == 0]) == 30.0  # fallback


def test_recent_buying_is_compared_with_the_window_before():
    tx = transactions(
        [
            ("up", "2024-01-05", 10.0),
            ("up", "2024-03-05", 30.0),
            ("up", "2024-03-20", 5.0),
            ("down", "2024-01-05", 40.0),
            ("down", "2024-03-05", 10.0),
            ("gone", "2023-01-05", 10.0),
        ]
    )
    trend = features_of(tx, as_of=pd.Timestamp("2024-03-31"), recent_window_days=60)
    assert trend.loc["up", ["spend_recent", "spend_previous"]].tolist() == [35.0, 10.0]
    assert trend.loc["up", "spend_change"] == pytest.approx(25 / 45)
    assert trend.loc["up", ["purchases_recent", "purchases_previous"]].tolist() == [2, 1]
    assert trend.loc["up", "purchase_change"] == pytest.approx(1 / 3)
    assert trend.loc["down", "spend_change"] == pytest.approx(-0.6)
    assert trend.loc["down", "purchase_change"] == 0.0  # one purchase in each window
    assert trend.loc["gone", ["spend_change", "purchase_change"]].tolist() == [0.0, 0.0]


def test_activity_windows_count_purchase_days_and_spend_up_to_as_of():
    tx = transactions(
        [
            ("a", "2024-03-30 10:00", 4.0),
            ("a", "2024-03-30 15:00", 1.0),
            ("a", "2024-03-10", 2.0),
            ("a", "2024-01-02", 8.0),  # 89 days before as-of: inside the last 90
            ("a", "2024-01-01", 100.0),  # 90 days before: outside
        ]
    )
    windows = features_of(tx, as_of=pd.Timestamp("2024-03-31"), activity_windows_days=(90, 7))
    assert windows.loc["a", ["purchases_last_7d", "spend_last_7d"]].tolist() == [1, 5.0]
    assert windows.loc["a", ["purchases_last_90d", "spend_last_90d"]].tolist() == [3, 15.0]


def weighted_trend(spend_by_period: list[float], exposure_of_oldest: float) -> float:
    """The spend trend by plain numpy: periods latest first, the oldest one partly observed."""
    periods = np.arange(len(spend_by_period))
    exposure = np.where(periods == periods[-1], exposure_of_oldest, 1.0)
    rate = np.asarray(spend_by_period) / exposure
    # np.polyfit weights residuals, least squares weighted by exposure needs its square root
    slope = np.polyfit(-periods, rate, 1, w=np.sqrt(exposure))[0]
    return slope / (np.sum(spend_by_period) / exposure.sum()) * 365.25 / 30


def test_spend_trend_is_the_relative_yearly_slope_of_spend_per_period():
    # as-of 2024-12-30; 30-day periods counted back: p0 = Dec 1-30, p1 = Oct 31-Nov 29, ...
    tx = transactions(
        [
            ("falling", "2024-08-01", 5.0),  # first purchase (left out): age 151, period 5
            ("falling", "2024-09-05", 40.0),  # p3
            ("falling", "2024-10-10", 20.0),  # p2
            ("falling", "2024-11-10", 10.0),  # p1
            ("steady", "2024-08-01", 5.0),
            ("steady", "2024-09-05", 10.0),
            ("steady", "2024-10-10", 10.0),
            ("steady", "2024-11-10", 10.0),
            ("steady", "2024-12-10", 10.0),
            ("young", "2024-12-01", 10.0),
            ("young", "2024-12-20", 10.0),
        ]
    )
    trend = features_of(tx, as_of=pd.Timestamp("2024-12-30"))["spend_trend"]
    # tenure 151 days: periods 0-4 whole, period 5 seen for 2 of its 30 days
    assert trend["falling"] == pytest.approx(weighted_trend([0, 10, 20, 40, 0, 0], 2 / 30))
    assert trend["steady"] == pytest.approx(weighted_trend([10, 10, 10, 10, 0, 0], 2 / 30))
    assert trend["falling"] < -1 < 0 < trend["steady"]
    assert np.isnan(trend["young"])  # not a whole period yet: no trend


def test_basket_features_come_from_the_mapped_line_columns():
    tx = transactions(
        [
            ("a", "2024-01-01 10:00", 10.0),
            ("a", "2024-01-01 10:00", 5.0),
            ("a", "2024-01-01 17:00", 6.0),
            ("a", "2024-01-05 10:00", 9.0),
        ]
    ).assign(
        quantity=[2.0, 1.0, 3.0, 2.0],
        product=pd.Series(["x", "y", "x", "z"], dtype="string"),
        invoice=pd.Series(["1", "1", "2", "3"], dtype="string"),
        discount=[0.0, 5.0, 0.0, 1.0],
    )
    returns = transactions([("a", "2024-01-06 10:00", 10.0)])
    features = build_features(tx, as_of=pd.Timestamp("2024-01-10"), returns=returns).set_index(
        "customer_id"
    )
    assert features.loc["a", "items_per_order"] == pytest.approx(8 / 3)  # three invoices
    assert features.loc["a", "distinct_products"] == 3
    assert features.loc["a", "discount_share"] == pytest.approx(6 / 36)
    assert features.loc["a", "return_rate"] == pytest.approx(10 / 40)
    assert features.loc["a", "top_product"] == "x"  # 16 spent on x, 9 on z, 5 on y


def test_without_an_invoice_an_order_is_a_purchase_day():
    tx = transactions(
        [("a", "2024-01-01 10:00", 1.0), ("a", "2024-01-01 12:00", 1.0), ("b", "2024-01-02", 1.0)]
    ).assign(quantity=[2.0, 4.0, 1.0])
    features = features_of(tx, as_of=pd.Timestamp("2024-01-10"))
    assert features.loc["a", "items_per_order"] == 6.0
    assert "distinct_products" not in features and "return_rate" not in features


def test_build_features_gives_one_row_per_customer_without_touching_its_input(six_rows):
    before = six_rows.copy()
    features = build_features(six_rows, as_of=AS_OF)
    pd.testing.assert_frame_equal(six_rows, before)
    assert features["customer_id"].tolist() == ["a", "b", "c"]
    assert features["customer_id"].is_unique


def test_a_given_prior_makes_a_customers_features_independent_of_the_others(six_rows):
    alone = build_features(six_rows[six_rows["customer_id"] == "b"], as_of=AS_OF, prior_gap_days=15)
    together = build_features(six_rows, as_of=AS_OF, prior_gap_days=15.0)
    pd.testing.assert_frame_equal(
        alone.reset_index(drop=True),
        together[together["customer_id"] == "b"].reset_index(drop=True),
    )


def test_the_feature_catalogue_lists_exactly_the_features_built(six_rows):
    features = build_features(six_rows, as_of=AS_OF, settings=FeatureConfig())
    windows = [f"{kind}_last_{d}d" for d in (30, 90) for kind in ("purchases", "spend")]
    assert list(features.columns) == ["customer_id", *FEATURE_COLUMNS, *windows]
    assert not set(BASKET_FEATURES) & set(features.columns)  # no basket columns mapped


def test_features_at_a_cut_off_equal_features_of_the_data_cut_there(six_rows):
    cut = pd.Timestamp("2024-01-20")
    with connect(EngineConfig()) as engine:
        history = CustomerHistory.from_frames(engine, six_rows, settings=FeatureConfig())
        at_cut = history.features(cut, prior_gap_days=12.0)
        purchases, spend = history.purchases_between(
            pd.Series(["a", "b", "zz"]), start=cut, end=AS_OF
        )
        first_day = history.first_day()
    only_before = build_features(
        six_rows[six_rows["timestamp"] < cut + pd.Timedelta(days=1)], as_of=cut, prior_gap_days=12
    )
    pd.testing.assert_frame_equal(at_cut, only_before)
    assert purchases.tolist() == [1.0, 1.0, 0.0]  # a on 01-31, b on 01-21; the cut day excluded
    assert spend.tolist() == [30.0, 7.0, 0.0]
    assert first_day == pd.Timestamp("2024-01-01")


def test_sums_are_exact_so_the_order_of_rows_does_not_matter():
    rng = np.random.default_rng(0)
    tx = transactions(
        [(f"c{i % 7}", f"2024-01-{1 + i % 28:02d}", float(v)) for i, v in enumerate(range(300))]
    )
    tx["amount"] = np.round(rng.uniform(0, 1000, len(tx)), 2)
    shuffled = tx.sample(frac=1.0, random_state=1).reset_index(drop=True)
    as_of = pd.Timestamp("2024-02-01")
    pd.testing.assert_frame_equal(
        build_features(tx, as_of=as_of), build_features(shuffled, as_of=as_of), check_exact=True
    )


def test_the_top_product_has_the_highest_spend_ties_going_to_the_first_name():
    tx = transactions(
        [
            ("a", "2024-01-01", 10.0),  # x: 10 + 6 = 16
            ("a", "2024-01-02", 12.0),  # y: 12
            ("a", "2024-01-03", 6.0),
            ("a", "2024-02-20", 50.0),  # y after as-of: not yet bought
            ("b", "2024-01-01", 7.0),  # q and p both 7: p by name
            ("b", "2024-01-02", 7.0),
            ("c", "2024-01-05", 3.0),  # no product recorded on c's only line
        ]
    ).assign(product=pd.Series(["x", "y", "x", "y", "q", "p", None], dtype="string"))
    features = features_of(tx)
    assert features["top_product"].fillna("(none)").tolist() == ["x", "p", "(none)"]
    assert str(features["top_product"].dtype) == "string"
    later = features_of(tx, as_of=pd.Timestamp("2024-02-20"))
    assert later.loc["a", "top_product"] == "y"  # 62 against 16


def test_a_sub_segment_rule_can_name_a_product_bought():
    tx = transactions([("a", "2024-01-01", 10.0), ("b", "2024-01-01", 10.0)]).assign(
        product=pd.Series(["coffee", "tea"], dtype="string")
    )
    segments = build_features(tx, as_of=AS_OF).assign(status="loyal")
    rules = (
        SubSegmentRule(
            name="loyal coffee buyers", statuses=("loyal",), when={"top_product": ("coffee",)}
        ),
    )
    assert assign_sub_segments(segments, rules).fillna("").tolist() == ["loyal coffee buyers", ""]


def test_the_catalogue_puts_the_optional_features_after_the_basket_in_a_fixed_order():
    available = [
        *reversed(CAMPAIGN_FEATURES),
        *reversed(LOYALTY_FEATURES),
        "top_product",
        "return_rate",
    ]
    columns = feature_columns(FeatureConfig(activity_windows_days=(30,)), available)
    assert columns == [
        *FEATURE_COLUMNS,
        "purchases_last_30d",
        "spend_last_30d",
        "return_rate",
        "top_product",
        *LOYALTY_FEATURES,
        *CAMPAIGN_FEATURES,
    ]
