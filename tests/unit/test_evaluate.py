from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import FeatureConfig
from pipeline.evaluate import (
    PSI_EPSILON,
    bin_shares,
    decile_table,
    distribution_reference,
    drifted_features,
    holdout_metrics,
    kpis_across_runs,
    normalized_gini,
    planted_recovery,
    population_stability,
    psi,
    refinements,
    status_kpis,
    status_shares,
    status_summary,
)
from pipeline.features import build_features


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


def kpi_segments() -> pd.DataFrame:
    """Eight customers, a 180-day window; the comments say who counts where."""
    rows = [
        # status, frequency, tenure_days, days_since_last_purchase, spend_recent
        ("a", "loyal", 5, 400, 10, 100.0),  # before the window, bought in it: retained
        ("b", "loyal", 2, 300, 200, 0.0),  # before the window, silent in it: not retained
        ("c", "loyal", 0, 100, 100, 30.0),  # first bought inside the window: not in the base
        ("d", "lost", 1, 500, 400, 0.0),
        ("g", "lost", 1, 180, 179, 20.0),  # first purchase exactly at the window start: in base
        ("h", "lost", 3, 800, 180, 0.0),  # last purchase exactly 180 days ago: outside it
        ("e", "new", 0, 20, 20, 15.0),
        ("f", "new", 1, 60, 5, 40.0),
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "status",
            "frequency",
            "tenure_days",
            "days_since_last_purchase",
            "spend_recent",
        ],
    )


def test_kpis_per_status_are_exact_on_a_hand_made_table():
    table, metrics = status_kpis(kpi_segments(), recent_window_days=180)
    table = table.set_index("status")
    assert list(table.index) == ["new", "loyal", "lost"]
    assert table.loc["loyal", "customers"] == 3 and table.loc["loyal", "retention_base"] == 2
    assert metrics["kpi_retention_loyal"] == 0.5
    assert metrics["kpi_repeat_rate_loyal"] == pytest.approx(2 / 3)
    assert metrics["kpi_avg_spend_loyal"] == pytest.approx(130 / 3)
    assert metrics["kpi_retention_lost"] == pytest.approx(1 / 3)
    assert metrics["kpi_repeat_rate_lost"] == 1.0
    assert metrics["kpi_avg_spend_lost"] == pytest.approx(20 / 3)
    assert metrics["kpi_repeat_rate_new"] == 0.5 and metrics["kpi_avg_spend_new"] == 27.5


def test_an_undefined_kpi_is_left_out_not_logged_as_nan_or_zero():
    table, metrics = status_kpis(kpi_segments(), recent_window_days=180)
    # nobody new was a customer before the window: no retention base
    assert table.set_index("status").loc["new", "retention_base"] == 0
    assert np.isnan(table.set_index("status").loc["new", "retention"])
    assert "kpi_retention_new" not in metrics
    # statuses nobody has get no KPI at all
    assert not any(name.endswith(("_active", "_at_risk")) for name in metrics)
    assert len(metrics) == 3 * 3 - 1
    assert all(np.isfinite(value) for value in metrics.values())


def test_kpi_windows_match_the_recent_spend_feature(six_rows):
    # as of 2024-02-10 with a 30-day window: a's purchase on 01-11 is exactly 30 days old (out)
    features = build_features(
        six_rows,
        as_of=pd.Timestamp("2024-02-10"),
        settings=FeatureConfig(recent_window_days=30),
    )
    _, metrics = status_kpis(features.assign(status="loyal"), recent_window_days=30)
    # a (since 01-01, bought 01-31) is retained; c (one purchase 01-02) is not; b is too new
    assert metrics["kpi_retention_loyal"] == 0.5
    assert metrics["kpi_repeat_rate_loyal"] == pytest.approx(1 / 3)
    assert metrics["kpi_avg_spend_loyal"] == pytest.approx((30.0 + 7.0 + 0.0) / 3)


def test_kpis_need_their_columns():
    with pytest.raises(ValueError, match="spend_recent"):
        status_kpis(kpi_segments().drop(columns="spend_recent"), recent_window_days=180)


def test_kpis_across_runs_put_this_run_beside_earlier_ones_one_row_per_date():
    earlier = pd.DataFrame(
        {
            "run_id": ["r3", "r2", "r1"],  # newest first
            "as_of": ["2025-11-30", "2025-10-31", "2025-11-30"],
            "kpi_retention_loyal": [0.8, 0.7, 0.1],
            "kpi_avg_spend_lost": [1.0, np.nan, 3.0],
        }
    )
    current = {"kpi_retention_loyal": 0.9, "kpi_repeat_rate_new": 0.4, "share_loyal": 0.2}
    across = kpis_across_runs(earlier, current, as_of=pd.Timestamp("2025-12-31"))
    assert across["as_of"].dt.strftime("%Y-%m-%d").tolist() == [
        "2025-10-31",
        "2025-11-30",
        "2025-12-31",
    ]
    # the newer of two runs on one date stands for it; this run has an empty run id
    assert across["run_id"].tolist() == ["r2", "r3", ""]
    assert across["kpi_retention_loyal"].tolist() == [0.7, 0.8, 0.9]
    assert list(across.columns) == [
        "as_of",
        "run_id",
        "kpi_avg_spend_lost",
        "kpi_repeat_rate_new",
        "kpi_retention_loyal",
    ]
    assert across["kpi_repeat_rate_new"].isna().tolist() == [True, True, False]


def test_a_rerun_on_the_same_date_replaces_the_earlier_run():
    earlier = pd.DataFrame(
        {"run_id": ["r1"], "as_of": ["2025-12-31"], "kpi_retention_loyal": [0.1]}
    )
    across = kpis_across_runs(
        earlier, {"kpi_retention_loyal": 0.9}, as_of=pd.Timestamp("2025-12-31")
    )
    assert len(across) == 1 and across["kpi_retention_loyal"].item() == 0.9
    alone = kpis_across_runs(
        pd.DataFrame(), {"kpi_retention_loyal": 0.9}, as_of=pd.Timestamp("2025-12-31")
    )
    assert len(alone) == 1


def test_reference_bins_cut_at_observed_quantiles_and_merge_ties():
    training = pd.DataFrame(
        {
            "spend": np.arange(1.0, 11.0),  # 1..10
            "frequency": [0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            "gap": [np.nan, np.nan, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, np.inf],
            "customer_id": list("abcdefghij"),  # not numeric: no reference
        }
    )
    reference = distribution_reference(training, bins=2)
    assert set(reference) == {"spend", "frequency", "gap"}
    assert reference["spend"].cuts == (5.0,)
    assert reference["spend"].shares == (0.5, 0.5, 0.0)  # <= 5, > 5, missing
    # six zeros: the deciles 0.1..0.6 all cut at 0 and are merged into one bin
    deciles = distribution_reference(training)
    assert deciles["frequency"].cuts == (0.0, 1.0, 2.0, 3.0)
    assert deciles["frequency"].shares == pytest.approx((0.6, 0.1, 0.1, 0.1, 0.1, 0.0))
    # NaN and infinity fall in the missing bin; cuts come from the finite values only
    assert reference["gap"].cuts == (4.0,)
    assert reference["gap"].shares == pytest.approx((0.4, 0.3, 0.3))


def test_values_beyond_the_training_range_fall_in_the_outer_bins():
    shares = bin_shares(np.array([-100.0, 2.0, 2.5, 3.0, 1000.0, np.nan]), (2.0, 3.0))
    assert shares.tolist() == pytest.approx([2 / 6, 2 / 6, 1 / 6, 1 / 6])


def test_psi_is_zero_for_identical_distributions():
    training = pd.DataFrame({"spend": np.arange(1.0, 101.0), "orders": np.arange(100) % 7})
    reference = distribution_reference(training)
    shuffled = training.sample(frac=1.0, random_state=0)
    table, metrics = population_stability(shuffled, reference)
    assert metrics == {"drift_psi_spend": 0.0, "drift_psi_orders": 0.0, "drift_psi_max": 0.0}
    assert set(table["feature"]) == {"spend", "orders"}


def test_psi_of_a_known_shift_is_the_hand_computed_value():
    reference = distribution_reference(pd.DataFrame({"spend": np.arange(1.0, 11.0)}), bins=2)
    # 4..13 against 1..10 cut at 5: shares (0.2, 0.8) against (0.5, 0.5)
    shifted = pd.DataFrame({"spend": np.arange(4.0, 14.0)})
    _, metrics = population_stability(shifted, reference)
    expected = (0.2 - 0.5) * np.log(0.2 / 0.5) + (0.8 - 0.5) * np.log(0.8 / 0.5)
    assert expected == pytest.approx(0.3 * np.log(4))
    assert metrics["drift_psi_spend"] == pytest.approx(expected)
    assert metrics["drift_psi_max"] == pytest.approx(expected)


def test_an_empty_bin_counts_with_epsilon_instead_of_an_infinite_log():
    # training: half <= 2, half > 2, nobody missing; now: half <= 2, nobody > 2, half missing
    assert psi(np.array([0.5, 0.0, 0.5]), np.array([0.5, 0.5, 0.0])) == pytest.approx(
        2 * (0.5 - PSI_EPSILON) * np.log(0.5 / PSI_EPSILON)
    )
    reference = distribution_reference(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), bins=2)
    _, metrics = population_stability(pd.DataFrame({"x": [1.0, 2.0, np.nan, np.nan]}), reference)
    assert np.isfinite(metrics["drift_psi_x"])
    assert metrics["drift_psi_x"] == pytest.approx(
        2 * (0.5 - PSI_EPSILON) * np.log(0.5 / PSI_EPSILON)
    )


def test_psi_compares_only_the_features_both_sides_have_largest_first():
    training = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0), "gone": np.arange(10.0)})
    reference = distribution_reference(training, bins=2)
    new = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) + 3, "added": np.zeros(10)})
    table, metrics = population_stability(new, reference)
    assert table["feature"].tolist() == ["b", "a"]
    assert set(metrics) == {"drift_psi_a", "drift_psi_b", "drift_psi_max"}
    assert drifted_features(metrics, threshold=0.2) == {"b": metrics["drift_psi_b"]}
    assert drifted_features(metrics, threshold=metrics["drift_psi_b"]) == {}


def test_refinements_count_customer_rules_by_reason_and_mixed_clusters_by_status():
    segments = pd.DataFrame(
        {
            "status": ["new", "new", "lost", "at_risk", "at_risk", "active"],
            "status_source": [
                "customer_rule",
                "customer_rule",
                "customer_rule",
                "own_signals",
                "own_signals",
                "cluster",
            ],
            "status_reason": [
                "customer rule: just arrived",
                "customer rule: just arrived",
                "customer rule: silent",
                "cluster 1 is mixed (50% of its members meet 'active'): own signals: overdue",
                "cluster 2 is mixed (40% of its members meet 'lost'): own signals: overdue",
                "cluster 0: buying",
            ],
        }
    )
    table = refinements(segments)
    assert table.to_dict("records") == [
        {"source": "customer_rule", "reason": "customer rule: just arrived", "customers": 2},
        {"source": "customer_rule", "reason": "customer rule: silent", "customers": 1},
        {
            "source": "own_signals",
            "reason": "member of a mixed cluster, own signals say at_risk",
            "customers": 2,
        },
    ]
