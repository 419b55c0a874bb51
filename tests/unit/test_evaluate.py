from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate import (
    decile_table,
    holdout_metrics,
    normalized_gini,
    planted_recovery,
    status_shares,
    status_summary,
)


def segments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "status": ["loyal", "loyal", "lost", "new"],
            "expected_spend": [30.0, 10.0, 0.0, 10.0],
            "p_alive": [0.9, 0.8, 0.1, 1.0],
        }
    )


def test_shares_cover_every_status_including_absent_ones():
    shares = status_shares(segments())
    assert shares["share_loyal"] == 0.5 and shares["share_at_risk"] == 0.0
    assert sum(shares.values()) == pytest.approx(1.0)
    assert len(shares) == 7


def test_summary_orders_statuses_and_splits_value():
    summary = status_summary(segments()).set_index("status")
    assert list(summary.index) == ["new", "loyal", "lost"]
    assert summary.loc["loyal", "customers"] == 2
    assert summary.loc["loyal", "mean_expected_spend"] == 20.0
    assert summary.loc["loyal", "value_share"] == pytest.approx(0.8)


def test_planted_recovery_scores_and_counts_exactly():
    truth = pd.DataFrame(
        {"customer_id": ["a", "b", "c", "d"], "status": ["loyal", "active", "lost", "new"]}
    )
    metrics, confusion = planted_recovery(segments(), truth)
    assert metrics["planted_accuracy"] == 0.75
    assert metrics["planted_f1_loyal"] == pytest.approx(2 / 3)
    assert metrics["planted_f1_active"] == 0.0
    # macro over the four statuses present: (1 + 2/3 + 0 + 1) / 4
    assert metrics["planted_macro_f1"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert confusion.loc["active", "loyal"] == 1
    assert confusion.to_numpy().sum() == 4


def test_normalized_gini_is_one_for_a_perfect_ranking_and_zero_for_a_constant():
    actual = np.array([0.0, 1.0, 5.0, 10.0])
    assert normalized_gini(actual, actual * 3) == pytest.approx(1.0)
    assert normalized_gini(actual, -actual) < 0
    # ties are broken against the prediction: a constant ranks worst-first, no credit
    assert normalized_gini(actual, np.ones(4)) == pytest.approx(-1.0)


def test_normalized_gini_by_hand():
    actual = np.array([1.0, 0.0, 3.0])
    predicted = np.array([2.0, 3.0, 1.0])  # order by prediction: 0, 1, 3
    # cumulative shares 0, 1/4, 1 -> gini = (5/4)/3 - 4/6; perfect order 3, 1, 0 -> 3/4, 1, 1
    expected = ((1.25 / 3) - 4 / 6) / ((2.75 / 3) - 4 / 6)
    assert normalized_gini(actual, predicted) == pytest.approx(expected)


def test_holdout_metrics_are_exact_on_a_hand_made_forecast():
    metrics = holdout_metrics(
        actual_purchases=np.array([0.0, 2.0, 4.0]),
        predicted_purchases=np.array([1.0, 2.0, 3.0]),
        actual_spend=np.array([0.0, 20.0, 40.0]),
        predicted_spend=np.array([10.0, 20.0, 30.0]),
    )
    assert metrics["purchases_aggregate_error_pct"] == 0.0
    assert metrics["purchases_mae"] == pytest.approx(2 / 3)
    assert metrics["purchases_rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert metrics["spend_mae"] == pytest.approx(20 / 3)
    assert metrics["spend_spearman"] == pytest.approx(1.0)
    assert metrics["spend_gini"] == pytest.approx(1.0)
    spend_only = holdout_metrics(
        actual_purchases=None,
        predicted_purchases=None,
        actual_spend=np.array([1.0, 2.0]),
        predicted_spend=np.array([2.0, 4.0]),
    )
    assert "purchases_mae" not in spend_only and spend_only["spend_aggregate_error_pct"] == 100.0


def test_decile_table_averages_prediction_and_outcome_per_decile():
    predicted = np.arange(20, dtype=float)
    table = decile_table(actual=predicted * 2, predicted=predicted)
    assert table["decile"].tolist() == list(range(1, 11))
    assert (table["customers"] == 2).all()
    assert table.loc[0, "mean_predicted"] == 0.5 and table.loc[0, "mean_actual"] == 1.0
