from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes.utils import summary_data_from_transaction_data

from pipeline.features import build_features, purchase_days, rfm_features
from pipeline.features.behaviour import population_gap_prior, rhythm_features, trend_features
from tests.conftest import transactions

AS_OF = pd.Timestamp("2024-02-10")


def test_transactions_on_one_day_are_one_purchase_with_their_summed_value(six_rows):
    daily = purchase_days(six_rows)
    a = daily[daily["customer_id"] == "a"]
    assert a["amount"].tolist() == [10.0, 25.0, 30.0]
    assert len(daily) == 5


def test_rfm_has_exact_values_for_hand_made_customers(six_rows):
    rfm = rfm_features(purchase_days(six_rows), as_of=AS_OF).set_index("customer_id")
    assert rfm.loc["a", "frequency"] == 2
    assert rfm.loc["a", "recency_days"] == 30
    assert rfm.loc["a", "tenure_days"] == 40
    assert rfm.loc["a", "monetary"] == pytest.approx(27.5)  # (25 + 30) / 2, first purchase excluded
    assert rfm.loc["a", "days_since_last_purchase"] == 10
    assert rfm.loc["a", "total_spend"] == 65.0
    assert rfm.loc["a", "avg_order_value"] == pytest.approx(65 / 3)
    assert rfm.loc["b", ["frequency", "recency_days", "tenure_days", "monetary"]].tolist() == [
        0,
        0,
        20,
        0,
    ]
    assert rfm.loc["c", "tenure_days"] == 39


def test_rfm_matches_lifetimes_summary_on_the_same_transactions(six_rows):
    ours = rfm_features(purchase_days(six_rows), as_of=AS_OF).set_index("customer_id")
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


def test_rhythm_measures_gaps_and_how_overdue_a_customer_is(six_rows):
    daily = purchase_days(six_rows)
    rfm = rfm_features(daily, as_of=AS_OF)
    rhythm = rhythm_features(daily, rfm, prior_gap_days=20.0).set_index("customer_id")
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
    # the rate uses at least a month, so a first-week repeat is not 100 purchases a year
    assert rhythm.loc["b", "repeat_purchases_per_year"] == 0


def test_population_gap_prior_is_the_median_mean_gap_of_repeat_customers(six_rows):
    rfm = rfm_features(purchase_days(six_rows), as_of=AS_OF)
    assert population_gap_prior(rfm) == 15
    assert population_gap_prior(rfm[rfm["frequency"] == 0]) == 30.0  # nobody repeated: fallback


def test_spend_change_compares_the_recent_window_with_the_one_before():
    tx = transactions(
        [
            ("up", "2024-01-05", 10.0),
            ("up", "2024-03-05", 30.0),
            ("down", "2024-01-05", 40.0),
            ("down", "2024-03-05", 10.0),
            ("gone", "2023-01-05", 10.0),
        ]
    )
    trend = trend_features(
        purchase_days(tx), as_of=pd.Timestamp("2024-03-31"), window_days=60
    ).set_index("customer_id")
    assert trend.loc["up", ["spend_recent", "spend_previous"]].tolist() == [30.0, 10.0]
    assert trend.loc["up", "spend_change"] == pytest.approx(0.5)
    assert trend.loc["down", "spend_change"] == pytest.approx(-0.6)
    assert trend.loc["gone", "spend_change"] == 0.0  # nothing in either window


def test_build_features_gives_one_row_per_customer_without_touching_its_input(six_rows):
    before = six_rows.copy()
    features = build_features(six_rows, as_of=AS_OF, recent_window_days=30)
    pd.testing.assert_frame_equal(six_rows, before)
    assert features["customer_id"].tolist() == ["a", "b", "c"]
    assert features["customer_id"].is_unique
    expected = {
        "frequency",
        "recency_days",
        "tenure_days",
        "monetary",
        "days_since_last_purchase",
        "overdue_ratio",
        "gap_cv",
        "spend_change",
        "repeat_purchases_per_year",
    }
    assert expected <= set(features.columns)


def test_a_given_prior_makes_a_customers_features_independent_of_the_others(six_rows):
    alone = build_features(
        six_rows[six_rows["customer_id"] == "b"],
        as_of=AS_OF,
        recent_window_days=30,
        prior_gap_days=15.0,
    )
    together = build_features(six_rows, as_of=AS_OF, recent_window_days=30, prior_gap_days=15.0)
    pd.testing.assert_frame_equal(
        alone.reset_index(drop=True),
        together[together["customer_id"] == "b"].reset_index(drop=True),
    )


def test_the_feature_catalogue_lists_exactly_the_features_built(six_rows):
    from pipeline.features import FEATURE_COLUMNS

    features = build_features(six_rows, as_of=AS_OF, recent_window_days=30)
    assert list(features.columns) == ["customer_id", *FEATURE_COLUMNS]
