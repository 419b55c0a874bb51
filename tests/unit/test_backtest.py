"""Backtest stages on hand-made customers: what each did before and after a cut-off, the
cut-off checks, and the per-status table of a judged cut-off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.backtest import (
    LAST_PERIOD,
    PROJECT,
    by_status_table,
    check_cutoffs,
    customer_history,
    judge_cutoff,
    metrics_table,
    next_period,
    rolling_cutoffs,
    wins_table,
)
from pipeline.baselines import BaselineForecast
from pipeline.errors import InputError
from tests.conftest import transactions

CUTOFF = pd.Timestamp("2024-01-31")


def test_customer_history_has_lifetimes_summary_and_the_last_horizon(six_rows):
    history = customer_history(six_rows, cutoff=CUTOFF, horizon_days=15).set_index("customer_id")
    # a: purchase days Jan 1, 11 (two lines: 25), 31 -> 2 repeat days, recency 30, T 30
    assert history.loc["a", ["frequency", "recency", "T"]].tolist() == [2, 30, 30]
    assert history.loc["a", "monetary_value"] == pytest.approx((25 + 30) / 2)
    # last 15 days: (Jan 16, Jan 31] holds a's Jan 31 and b's Jan 21
    assert history.loc["a", ["purchases_last", "spend_last"]].tolist() == [1, 30]
    assert history.loc["b", ["purchases_last", "spend_last"]].tolist() == [1, 7]
    assert history.loc["c", ["frequency", "monetary_value", "purchases_last"]].tolist() == [0, 0, 0]
    # all spend over the days since the first purchase, both ends counted
    assert history.loc["a", "past_daily_spend"] == pytest.approx(65 / 31)
    assert history.loc["c", "past_daily_spend"] == pytest.approx(50 / 30)


def test_customer_history_ignores_what_happened_after_the_cutoff(six_rows):
    later = pd.concat([six_rows, transactions([("c", "2024-02-01 00:00", 99.0)])])
    assert customer_history(later, cutoff=CUTOFF, horizon_days=15).equals(
        customer_history(six_rows, cutoff=CUTOFF, horizon_days=15)
    )


def test_next_period_counts_purchase_days_in_the_horizon_after_the_cutoff():
    after = transactions(
        [
            ("a", "2024-01-31 23:00", 100.0),  # on the cut-off day: not next period
            ("a", "2024-02-01 09:00", 10.0),
            ("a", "2024-02-01 17:00", 5.0),  # same day: one purchase
            ("a", "2024-02-10 09:00", 20.0),  # the horizon's last day: in
            ("b", "2024-02-11 09:00", 40.0),  # one day past the horizon: out
        ]
    )
    outcome = next_period(
        after, pd.Series(["a", "b", "c"]), cutoff=CUTOFF, horizon_days=10
    ).set_index("customer_id")
    assert outcome.loc["a"].tolist() == [2, 35, 1]
    assert outcome.loc["b"].tolist() == [0, 0, 0]
    assert outcome.loc["c"].tolist() == [0, 0, 0]


def test_rolling_cutoffs_end_one_horizon_before_the_data_end():
    cutoffs = rolling_cutoffs(pd.Timestamp("2025-12-31"), folds=2, horizon_days=180)
    assert cutoffs == [pd.Timestamp("2025-01-05"), pd.Timestamp("2025-07-04")]
    assert all(
        (b - a).days == 180
        for a, b in zip(cutoffs, [*cutoffs[1:], pd.Timestamp("2025-12-31")], strict=True)
    )


def test_a_horizon_past_the_data_is_refused_naming_the_dates():
    with pytest.raises(InputError, match=r"2025-07-05 \+ 180 days ends on 2026-01-01.*2025-12-31"):
        check_cutoffs(
            [pd.Timestamp("2025-07-05")],
            first_day=pd.Timestamp("2024-01-01"),
            last_day=pd.Timestamp("2025-12-31"),
            horizon_days=180,
            source="x.csv",
        )


def test_a_cutoff_with_less_than_one_horizon_of_history_is_refused():
    with pytest.raises(
        InputError, match=r"2024-03-01 has 61 days.*at least one horizon \(180 days\)"
    ):
        check_cutoffs(
            [pd.Timestamp("2024-03-01")],
            first_day=pd.Timestamp("2024-01-01"),
            last_day=pd.Timestamp("2025-12-31"),
            horizon_days=180,
            source="x.csv",
        )
    # exactly one horizon (both ends counted) is enough
    check_cutoffs(
        [pd.Timestamp("2024-06-28")],
        first_day=pd.Timestamp("2024-01-01"),
        last_day=pd.Timestamp("2025-12-31"),
        horizon_days=180,
        source="x.csv",
    )


def _judged():
    """Four customers: two loyal (both buy again), two lost (one buys again)."""
    segments = pd.DataFrame(
        {
            "customer_id": pd.Series(list("abcd"), dtype="string"),
            "status": ["loyal", "loyal", "lost", "lost"],
            "value_trend": ["stable", "rising", "declining", "declining"],
            "p_alive": [0.9, 0.8, 0.3, 0.1],
            "expected_purchases": [2.0, 1.0, 0.5, 0.1],
            "expected_spend": [40.0, 20.0, 5.0, 1.0],
            "days_since_last_purchase": [1, 2, 3, 4],
            "orders": [5, 4, 3, 2],
        }
    )
    history = pd.DataFrame(
        {
            "customer_id": pd.Series(list("dcba"), dtype="string"),  # another order on purpose
            "purchases_last": [0.0, 0.0, 1.0, 3.0],
            "spend_last": [0.0, 0.0, 10.0, 60.0],
            "past_daily_spend": [0.1, 0.1, 0.2, 0.5],
        }
    )
    outcomes = pd.DataFrame(
        {
            "customer_id": pd.Series(list("abcd"), dtype="string"),
            "purchases": [3.0, 1.0, 1.0, 0.0],
            "spend": [60.0, 20.0, 20.0, 0.0],
            "bought": [1.0, 1.0, 1.0, 0.0],
        }
    )
    failed = BaselineForecast("lifetimes_pareto", None, "failed: ConvergenceError: no")
    return judge_cutoff(
        CUTOFF, segments=segments, history=history, outcomes=outcomes, lifetimes=[failed]
    )


def test_per_status_shares_buying_again_are_the_hand_counted_ones():
    table = by_status_table([_judged()])
    status = table[(table["cutoff"] == "2024-01-31") & (table["grouping"] == "project status")]
    status = status.set_index("group")
    assert list(status.index) == ["loyal", "lost"]  # in the statuses' order
    assert status.loc["loyal", "share_buying_again"] == 1.0
    assert status.loc["lost", "share_buying_again"] == 0.5
    # the base buys again at 3/4
    assert status.loc["loyal", "lift"] == pytest.approx(1 / 0.75)
    assert status.loc["lost", "share_of_revenue"] == pytest.approx(20 / 100)
    assert status.loc["loyal", "forecast_vs_actual"] == pytest.approx(60 / 80)
    pooled = table[table["cutoff"] == "pooled"]
    assert set(pooled["grouping"]) == {"project status", "rfm segment"}


def test_metrics_per_model_with_a_failed_fit_reported_not_hidden():
    metrics = metrics_table([_judged()])
    at = metrics[metrics["cutoff"] == "2024-01-31"].set_index(["model", "metric"])
    # project: p_alive .9 .8 .3 (buyers) vs .1 -> every pair ordered well
    assert at.loc[(PROJECT, "roc_auc"), "value"] == 1.0
    # last horizon again: a (3 purchases), b (1) bought; c bought with 0 before, d not: the
    # score ties c with d -> (1 + 1 + 0.5) / 3
    assert at.loc[(LAST_PERIOD, "roc_auc"), "value"] == pytest.approx(2.5 / 3)
    assert at.loc[(LAST_PERIOD, "spend_aggregate_error_pct"), "value"] == pytest.approx(
        100 * (70 - 100) / 100
    )
    assert at.loc[("lifetimes_pareto", "fit_failed"), "note"].startswith("failed: Convergence")
    wins = wins_table(metrics).set_index("metric")
    assert wins.loc["roc_auc", "verdict"] == "wins"
    assert wins.loc["roc_auc", "best_baseline"] == LAST_PERIOD
    assert np.isnan(wins.loc["roc_auc", "lifetimes_pareto"])


def test_the_training_report_puts_the_holdout_beside_the_backtest_and_flags_opposite_signs():
    from pipeline.report import holdout_beside_backtest

    table = holdout_beside_backtest(
        {"holdout_spend_gini": 0.7, "holdout_spend_aggregate_error_pct": -34.0},
        {
            "cutoffs": "2011-06-09",
            "horizon_days": "180",
            "metrics": {
                "project.spend_gini": 0.77,
                "last_period_again.spend_gini": 0.78,
                "project.spend_aggregate_error_pct": 61.0,
            },
        },
    ).set_index("measure")
    assert table.loc["spend normalized Gini", "training holdout"] == 0.7
    assert table.loc["spend normalized Gini", "backtest 2011-06-09 (180 days)"] == 0.77
    assert table.loc["spend normalized Gini", "last horizon again, same backtest"] == 0.78
    assert table.loc["spend aggregate error %", "note"].startswith("opposite signs")
    assert table.loc["spend normalized Gini", "note"] == ""


def test_the_backtest_report_is_self_contained_and_names_failures_and_the_value_model():
    import matplotlib

    matplotlib.use("Agg")
    from pipeline import plots, report
    from pipeline.backtest import BacktestResult, backtest_tables

    judged = _judged()
    judged.value_model = "bgnbd"
    tables = backtest_tables([judged], horizon_days=10)
    pngs = plots.render_pngs(plots.backtest_figures(tables))
    result = BacktestResult([judged.cutoff], 10, "x.csv", "fp", [judged], tables)
    html = report.render_backtest_report(result, pngs, run_id=None)
    assert "2024-01-31 bgnbd" in html
    assert "lifetimes_pareto: failed: ConvergenceError: no" in html
    assert html.count("data:image/png;base64,") == 3 and 'src="http' not in html
