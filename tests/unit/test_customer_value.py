from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.config import CLVConfig
from pipeline.customer_value import (
    extend_probability,
    holdout_windows,
    plan_windows,
    select_value_model,
    settings_with_window,
)
from pipeline.features import build_features
from pipeline.learned_value import INPUT_COLUMNS, LearnedSpendModel
from pipeline.synthetic import generate_transactions
from tests.conftest import history_of

AS_OF = pd.Timestamp("2025-12-31")


@pytest.fixture(scope="module")
def planted_transactions() -> pd.DataFrame:
    tx, _ = generate_transactions(1500, as_of=AS_OF, random_state=11)
    return tx.astype({"customer_id": "string"})


@pytest.fixture(scope="module")
def planted(engine, planted_transactions):
    history = history_of(engine, planted_transactions)
    windows = holdout_windows(history, as_of=AS_OF, holdout_days=180)
    settings = settings_with_window(history.settings, 180)
    return windows, replace(history, settings=settings).features(AS_OF)


@pytest.fixture(scope="module")
def selection(planted):
    windows, features = planted
    return select_value_model(
        windows, features, config=CLVConfig(), trend_window_days=180, random_state=0
    )


def test_the_holdout_asks_the_forecasts_question_in_the_same_season_a_year_earlier(planted):
    windows, _ = planted
    # Two years of history, a 180-day horizon: scored on the 180 days after as-of - 365.
    assert windows.window_days == 180 and windows.same_season
    assert windows.evaluation.cutoff == AS_OF - pd.Timedelta(days=365)
    # The learned model trains on the latest window (ending at as-of) and the same-season one.
    assert [w.cutoff for w in windows.training] == [
        AS_OF - pd.Timedelta(days=180),
        AS_OF - pd.Timedelta(days=365),
    ]


@pytest.mark.parametrize(
    ("span_days", "horizon", "expected"),
    [
        (730, 180, (180, 365, 180)),  # a year plus the horizon: the same season
        (400, 180, (180, 180, 180)),  # less: the latest window
        (250, 180, (125, 125, 125)),  # half the history when that is shorter than the horizon
        (40, 180, (20, None, None)),  # too short to compare anything
        (900, 400, (400, 400, 400)),  # a horizon beyond a year has no same season
    ],
)
def test_the_holdout_plan_follows_the_history(span_days, horizon, expected):
    first = AS_OF - pd.Timedelta(days=span_days)
    days, evaluation, latest, _ = plan_windows(first_day=first, as_of=AS_OF, holdout_days=horizon)
    back = [None if c is None else (AS_OF - c).days for c in (evaluation, latest)]
    assert (days, *back) == expected


def test_every_candidate_and_the_naive_rule_are_scored_and_the_best_is_used(selection):
    comparison = selection.comparison.set_index("candidate")
    assert {"bgnbd", "pareto_nbd", "mbgnbd", "last_period", "learned"} <= set(comparison.index)
    assert selection.chosen == comparison["spend_mae"].idxmin()
    assert selection.forecaster.probability_source == comparison["brier"].idxmin()
    # Never worse than the naive rule on the metrics it was chosen by.
    assert selection.metrics["holdout_spend_mae_vs_last_period"] <= 0
    assert selection.metrics["holdout_brier_vs_last_period"] <= 0
    assert selection.deciles is not None and len(selection.deciles) == 10
    assert (comparison["spend_spearman"] > 0.5).all()


def test_p_purchase_is_a_probability_and_one_time_buyers_can_be_gone(selection, planted):
    _, features = planted
    forecast = selection.forecaster.predict(features, horizon_days=180)
    assert forecast["p_purchase"].between(0, 1).all()
    one_time = features["frequency"].to_numpy() == 0
    # p_alive comes from a model in which a one-time buyer may have left.
    assert forecast.loc[one_time, "p_alive"].min() < 0.9
    # A longer horizon never lowers the chance of buying.
    year = selection.forecaster.predict(features, horizon_days=360)
    assert (year["p_purchase"].to_numpy() >= forecast["p_purchase"].to_numpy() - 1e-9).all()
    numbers = year.drop(columns=["value_trend", "days_to_next_purchase"]).to_numpy(dtype=float)
    assert np.isfinite(numbers).all()


def test_the_naive_rule_as_the_chosen_forecast_repeats_the_last_window(selection, planted):
    _, features = planted
    naive = dataclasses.replace(
        selection.forecaster, value_source="last_period", level_factor=1.0
    )
    forecast = naive.predict(features, horizon_days=360)
    np.testing.assert_allclose(
        forecast["expected_spend"], 2 * features["spend_last_180d"].to_numpy()
    )


def test_too_short_a_history_uses_a_purchase_model_and_says_why(engine, planted_transactions):
    full = planted_transactions
    tx = full[full["timestamp"] > AS_OF - pd.Timedelta(days=40)]
    features = build_features(tx, as_of=AS_OF)
    selection = select_value_model(
        holdout_windows(history_of(engine, tx), as_of=AS_OF, holdout_days=180),
        features,
        config=CLVConfig(),
        trend_window_days=180,
        random_state=0,
    )
    assert selection.comparison.empty and selection.deciles is None
    assert any("compares nothing" in note for note in selection.notes)
    assert selection.chosen in {"bgnbd", "pareto_nbd", "mbgnbd", "nbd"}


def test_a_probability_from_a_short_window_extends_by_the_btyd_hazard_ratio():
    # The BTYD model says the long window holds twice the short one's cumulative hazard.
    short = 1 - np.exp(-np.array([0.1, 0.5]))
    long = 1 - np.exp(-np.array([0.2, 1.0]))
    learned = np.array([0.3, 0.3])
    extended = extend_probability(learned, short=short, long=long)
    np.testing.assert_allclose(extended, 1 - (1 - 0.3) ** 2)
    np.testing.assert_allclose(extend_probability(learned, short=short, long=short), learned)


def test_the_learned_model_predicts_non_negative_spend_and_learns_a_signal():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.uniform(0, 1, size=(400, len(INPUT_COLUMNS))), columns=list(INPUT_COLUMNS)
    )
    spend = 100 * frame["spend_recent"].to_numpy() ** 2
    model = LearnedSpendModel(random_state=0).fit(frame, spend)
    predicted = model.predict(frame)
    assert (predicted >= 0).all()
    assert np.corrcoef(predicted, spend)[0, 1] > 0.95
    with pytest.raises(ValueError, match="non-negative"):
        LearnedSpendModel().fit(frame, -spend)
    with pytest.raises(ValueError, match=r"needs columns \['frequency'\]"):
        model.predict(frame.drop(columns="frequency"))


def test_a_chosen_model_that_fails_on_the_full_history_gives_way_to_the_next(planted, monkeypatch):
    windows, features = planted
    from pipeline.clv import CustomerValueModel

    original = CustomerValueModel.fit

    def fail_on_everyone(self, customers, y=None):
        if self.purchase_model == "pareto_nbd" and len(customers) == len(features):
            raise RuntimeError("Pareto/NBD could not be fitted after 3 retries")
        return original(self, customers, y)

    monkeypatch.setattr(CustomerValueModel, "fit", fail_on_everyone)
    config = CLVConfig(candidates=("pareto_nbd", "bgnbd"), selection_metric="spend_mae")
    selection = select_value_model(
        windows,
        features,
        config=config,
        trend_window_days=180,
        random_state=0,
    )
    assert selection.forecaster.purchase_model.purchase_model == "bgnbd"
    assert any("pareto_nbd could not be fitted" in note for note in selection.notes)
    assert (
        selection.metrics["holdout_spend_mae"]
        == selection.comparison.set_index("candidate").loc[selection.chosen, "spend_mae"]
    )
