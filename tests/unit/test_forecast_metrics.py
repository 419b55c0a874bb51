"""Forecast metrics on hand-made customers whose values are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.forecast_metrics import (
    LOG_LOSS_EPSILON,
    expected_calibration_error,
    group_outcomes,
    probability_metrics,
    reliability_table,
    trend_outcomes,
    value_deciles,
    value_metrics,
)

BOUGHT = np.array([1, 0, 1, 0])
PROBABILITY = np.array([0.9, 0.8, 0.3, 0.1])


def test_probability_metrics_are_the_hand_computed_values():
    metrics = probability_metrics(BOUGHT, PROBABILITY)
    # 4 buyer/non-buyer pairs: 0.9 > 0.8, 0.9 > 0.1, 0.3 < 0.8, 0.3 > 0.1 -> 3 of 4 ordered well
    assert metrics["roc_auc"] == pytest.approx(0.75)
    # precision at each buyer in ranked order: 1/1 at 0.9, 2/3 at 0.3 -> (1 + 2/3) / 2
    assert metrics["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["brier"] == pytest.approx((0.01 + 0.64 + 0.49 + 0.01) / 4)
    expected_loss = -(math.log(0.9) + math.log(0.2) + math.log(0.3) + math.log(0.9)) / 4
    assert metrics["log_loss"] == pytest.approx(expected_loss)
    # one customer per bin: ECE is the mean absolute gap
    assert metrics["ece"] == pytest.approx((0.1 + 0.8 + 0.7 + 0.1) / 4)
    assert metrics["base_rate"] == 0.5 and metrics["mean_probability"] == pytest.approx(0.525)


def test_a_separate_score_ranks_while_the_probability_is_scored():
    hard = np.array([1.0, 1.0, 0.0, 0.0])
    metrics = probability_metrics(BOUGHT, hard, score=np.array([4.0, 3.0, 2.0, 1.0]))
    # ranked by the score: buyers at ranks 1 and 3 -> same pairs as above
    assert metrics["roc_auc"] == pytest.approx(0.75)
    # a wrong certain forecast costs -ln(epsilon), not infinity
    assert metrics["log_loss"] == pytest.approx(-2 * math.log(LOG_LOSS_EPSILON) / 4, rel=1e-6)
    assert metrics["brier"] == pytest.approx(0.5)


def test_aucs_are_blank_when_everyone_bought():
    metrics = probability_metrics(np.ones(3), np.array([0.2, 0.5, 0.9]))
    assert math.isnan(metrics["roc_auc"]) and math.isnan(metrics["pr_auc"])


def test_reliability_table_has_ten_bins_and_puts_one_in_the_last():
    table = reliability_table(np.array([1, 0, 1, 1, 0]), np.array([0.05, 0.12, 0.18, 1.0, 0.95]))
    assert len(table) == 10 and list(table["bin"]) == list(range(10))
    assert table["customers"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table.loc[1, "mean_probability"] == pytest.approx(0.15)
    assert table.loc[1, "share_bought"] == pytest.approx(0.5)
    assert table.loc[9, "share_bought"] == pytest.approx(0.5)
    assert math.isnan(table.loc[5, "mean_probability"])
    # bins weighted by customers: |0.05-1|*1 + |0.15-0.5|*2 + |0.975-0.5|*2, over 5
    assert expected_calibration_error(table) == pytest.approx((0.95 + 0.7 + 0.95) / 5)


def test_value_metrics_are_the_hand_computed_values():
    actual = np.array([10.0, 30.0, 0.0, 0.0])
    predicted = np.array([4.0, 3.0, 2.0, 1.0])
    metrics = value_metrics(actual, predicted)
    # Gini of actual ordered by the forecast: cumulative shares .25, 1, 1, 1 -> 3.25/4 - 5/8;
    # the perfect order: .75, 1, 1, 1 -> 3.75/4 - 5/8; ratio 0.1875 / 0.3125
    assert metrics["gini"] == pytest.approx(0.6)
    assert metrics["mae"] == pytest.approx((6 + 27 + 2 + 1) / 4)
    assert metrics["rmse"] == pytest.approx(math.sqrt((36 + 729 + 4 + 1) / 4))
    assert metrics["aggregate_error_pct"] == pytest.approx(100 * (10 - 40) / 40)
    # ranks: actual (3, 4, 1.5, 1.5), forecast (4, 3, 2, 1)
    assert metrics["spearman"] == pytest.approx(np.corrcoef([3, 4, 1.5, 1.5], [4, 3, 2, 1])[0, 1])


def test_a_perfect_ranking_has_gini_one_and_a_useless_one_zero():
    actual = np.array([10.0, 30.0, 0.0, 0.0])
    assert value_metrics(actual, np.array([3.0, 4.0, 1.0, 2.0]))["gini"] == pytest.approx(1.0)
    assert value_metrics(actual, np.array([1.0, 3.0, 2.0, 4.0]))["gini"] == pytest.approx(0.0)


def test_value_deciles_share_the_realised_total():
    actual = np.arange(20, dtype=float)
    table = value_deciles(actual, actual)
    assert table["customers"].tolist() == [2] * 10
    assert table["share_of_actual"].sum() == pytest.approx(1.0)
    assert table.loc[9, "share_of_actual"] == pytest.approx((18 + 19) / actual.sum())


def test_group_outcomes_give_each_status_its_share_buying_again_and_lift():
    table = group_outcomes(
        pd.Series(["a", "a", "b", "b", "b"]),
        np.array([1, 0, 2, 0, 0]),
        np.array([10.0, 0, 30, 0, 0]),
        np.array([5.0, 5, 10, 10, 10]),
        order=["b", "a"],
    ).set_index("group")
    assert list(table.index) == ["b", "a"]
    assert table.loc["a", "customers"] == 2 and table.loc["b", "customers"] == 3
    assert table.loc["a", "share_buying_again"] == pytest.approx(0.5)
    assert table.loc["b", "share_buying_again"] == pytest.approx(1 / 3)
    # the base buys again at 2/5
    assert table.loc["a", "lift"] == pytest.approx(0.5 / 0.4)
    assert table.loc["b", "lift"] == pytest.approx((1 / 3) / 0.4)
    assert table.loc["a", "share_of_revenue"] == pytest.approx(0.25)
    assert table.loc["b", "median_spend"] == 0 and table.loc[
        "b", "mean_purchases"
    ] == pytest.approx(2 / 3)
    assert table.loc["a", "forecast_vs_actual"] == pytest.approx(1.0)
    assert table.loc["b", "mean_forecast_spend"] == pytest.approx(10.0)


def test_group_outcomes_without_a_forecast_leave_it_blank():
    table = group_outcomes(pd.Series(["x"]), np.array([1]), np.array([3.0]))
    assert math.isnan(table.loc[0, "forecast_vs_actual"])


def test_trend_outcomes_compare_next_spend_with_the_own_past_rate():
    table = trend_outcomes(
        pd.Series(["declining", "declining", "rising"]),
        np.array([1.0, 2.0, 0.5]),
        np.array([5.0, 30.0, 20.0]),
        horizon_days=10,
    ).set_index("value_trend")
    assert list(table.index) == ["declining", "rising"]
    assert table.loc["declining", "spend_at_own_rate"] == pytest.approx(30.0)
    assert table.loc["declining", "actual_vs_own_rate"] == pytest.approx(35 / 30)
    assert table.loc["declining", "median_ratio"] == pytest.approx(1.0)  # 0.5 and 1.5
    assert table.loc["declining", "share_below_own_rate"] == pytest.approx(0.5)
    assert table.loc["rising", "actual_vs_own_rate"] == pytest.approx(4.0)
