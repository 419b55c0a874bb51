from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.config import CLVConfig
from pipeline.customer_value import (
    _Candidates,
    extend_probability,
    holdout_windows,
    order_value_shape,
    plan_windows,
    select_value_model,
    settings_with_window,
    value_trend,
    with_btyd_inputs,
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
    # It is judged trained on the window before the holdout, as it will be used.
    assert windows.learning.cutoff == AS_OF - pd.Timedelta(days=365 + 180)
    # The final learned model trains on the latest window (ending at as-of) and the same-season one.
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
    runnable = [selection.forecaster.purchase_model.purchase_model, "learned", "last_period"]
    assert selection.forecaster.probability_source == comparison.loc[runnable, "brier"].idxmin()
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
    naive = dataclasses.replace(selection.forecaster, value_source="last_period", level_factor=1.0)
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


def planted_trend_customers(n: int, *, seed: int, spend_after: float, gap_after: float):
    """Customers with regular gamma gaps (CV 0.5) over two years, recent window 180 days.

    In the last 180 days each order's value is multiplied by ``spend_after`` and each gap by
    ``gap_after``: 1 and 1 is a stationary customer.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        gap, level, t = rng.uniform(10, 40), rng.lognormal(3.5, 0.5), 0.0
        days, values = [], []
        while t < 730:
            recent = t >= 550
            t += rng.gamma(4.0, gap * (gap_after if recent else 1.0) / 4.0)
            if t < 730:
                days.append(t)
                values.append(level * (spend_after if t >= 550 else 1.0) * rng.lognormal(0, 0.3))
        days, values = np.array(days), np.array(values)
        recent = days >= 550
        rows.append(
            {
                "tenure_days": 730 - days[0],
                "frequency": len(days) - 1.0,
                "total_spend": values.sum(),
                "spend_recent": values[recent].sum(),
                "purchases_recent": float(recent.sum()),
                "gap_cv": np.diff(days).std() / np.diff(days).mean(),
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [1, 2])
def test_value_trend_calls_few_steady_customers_declining_and_most_decliners(seed):
    steady = planted_trend_customers(400, seed=seed, spend_after=1.0, gap_after=1.0)
    by_spend = planted_trend_customers(200, seed=seed + 10, spend_after=0.45, gap_after=1.0)
    by_rhythm = planted_trend_customers(200, seed=seed + 20, spend_after=1.0, gap_after=2.5)
    # Order values have CV 0.3 (lognormal sigma 0.3): shape about 1 / 0.3^2 = 11 on steady buyers.
    assert 7 < order_value_shape(steady, window_days=180) < 16
    # The product measures it on the whole base, decliners (a quarter here) included.
    shape = order_value_shape(pd.concat([steady, by_spend, by_rhythm]), window_days=180)

    def declining(frame):
        trend = value_trend(frame, window_days=180, spend_shape=shape)
        return (trend["value_trend"] == "declining").mean()

    assert declining(steady) <= 0.10  # issue 12: stationary buyers called declining <= 10%
    assert declining(pd.concat([by_spend, by_rhythm])) >= 0.80  # issue 12: planted decliners
    # Half the value per order is plain after a few orders; a slower rhythm needs more time.
    assert declining(by_spend) >= 0.95
    assert declining(by_rhythm) >= 0.6
    trend = value_trend(steady, window_days=180, spend_shape=shape)
    assert trend["trend_confidence"].between(0, 1).all()


def test_a_customer_without_a_past_of_their_own_is_stable_with_no_confidence():
    young = pd.DataFrame(
        {
            "tenure_days": [200.0],
            "frequency": [5.0],
            "total_spend": [100.0],
            "spend_recent": [10.0],
            "purchases_recent": [1.0],
            "gap_cv": [0.5],
        }
    )
    trend = value_trend(young, window_days=180, spend_shape=10.0)
    assert trend.iloc[0].tolist() == [1.0, 0.0, "stable"]


def candidates_of(config: CLVConfig) -> _Candidates:
    return _Candidates(config, trend_window_days=180, random_state=0)


def test_the_btyd_fits_and_the_learned_model_each_take_their_own_sample_size():
    # Population parameters need fewer customers than trees over two dozen inputs: the two
    # samples are set apart, so shrinking one never starves the other.
    candidates = candidates_of(CLVConfig(fit_sample_size=2000, learned_sample_size=3000))
    assert candidates.purchase_model("bgnbd").fit_sample_size == 2000
    rows = candidates.sampled_rows(5000)
    assert len(rows) == len(np.unique(rows)) == 3000 and rows.max() < 5000
    assert (np.diff(rows) > 0).all()  # seeded rows kept in their order
    assert candidates_of(CLVConfig(learned_sample_size=None)).sampled_rows(5000) is None


def test_the_learned_inputs_forecast_only_the_sampled_customers_and_equal_forecasting_all(planted):
    windows, _ = planted
    config = CLVConfig(fit_sample_size=1000, learned_sample_size=1000)
    candidates = candidates_of(config)
    inputs, purchases, spend = candidates.learned_inputs(windows.training, "bgnbd")
    # What it replaces: every customer of every window forecast, then the sample drawn.
    whole = pd.concat(
        [
            with_btyd_inputs(
                w.features,
                candidates.fitted_at(w, "bgnbd").predict(w.features, horizon_days=w.days),
            )
            for w in windows.training
        ],
        ignore_index=True,
    )
    rows = candidates.sampled_rows(len(whole))
    assert len(whole) > 1000 and len(inputs) == 1000
    pd.testing.assert_frame_equal(inputs, whole.iloc[rows].reset_index(drop=True))
    every_purchase = np.concatenate([w.purchases for w in windows.training])
    every_spend = np.concatenate([w.spend for w in windows.training])
    np.testing.assert_array_equal(purchases, every_purchase[rows])
    np.testing.assert_array_equal(spend, every_spend[rows])


def test_a_large_holdout_is_scored_on_a_seeded_sample_of_its_customers(planted):
    windows, features = planted
    holdout = len(windows.evaluation.features)
    config = CLVConfig(holdout_sample_size=1000)
    assert holdout > 1000

    def select():
        return select_value_model(
            windows, features, config=config, trend_window_days=180, random_state=0
        )

    first, again = select(), select()
    assert f"seeded sample of 1,000 of the holdout's {holdout:,} customers" in " ".join(first.notes)
    assert first.deciles["customers"].sum() == 1000
    pd.testing.assert_frame_equal(first.comparison, again.comparison)
    pd.testing.assert_frame_equal(
        first.forecaster.predict(features, horizon_days=180),
        again.forecaster.predict(features, horizon_days=180),
    )


def test_a_fit_asked_for_again_at_the_same_cut_off_is_the_same_fit(planted, monkeypatch):
    windows, _ = planted
    from pipeline.clv import CustomerValueModel

    original, calls = CustomerValueModel.fit, []

    def counted(self, customers, y=None):
        calls.append(self.purchase_model)
        if self.purchase_model == "mbgnbd":
            raise RuntimeError("did not converge")
        return original(self, customers, y)

    monkeypatch.setattr(CustomerValueModel, "fit", counted)
    evaluation, notes = windows.evaluation, []
    candidates = candidates_of(CLVConfig())
    fitted = candidates.fit_btyd(
        ["bgnbd", "mbgnbd"], evaluation.features, notes, at=evaluation.cutoff
    )
    # The learned model's inputs at the holdout's cut-off reuse its fit (and its failure).
    assert candidates.fitted_at(evaluation, "bgnbd") is fitted["bgnbd"]
    assert candidates.fit_btyd(["mbgnbd"], evaluation.features, notes, at=evaluation.cutoff) == {}
    assert calls == ["bgnbd", "mbgnbd"]
    assert notes == ["mbgnbd could not be fitted: did not converge"] * 2
    # Another cut-off is another fit.
    candidates.fit_btyd(["bgnbd"], windows.learning.features, [], at=windows.learning.cutoff)
    assert calls[2] == "bgnbd"  # (after which a collapse there calls for the NBD)


def test_every_probability_is_scored_calibrated_on_the_holdout(selection):
    comparison = selection.comparison.set_index("candidate")
    btyd = [c for c in ("bgnbd", "pareto_nbd", "mbgnbd") if c in comparison.index]
    # Raw, the BTYD probabilities overstate the share who bought (no one leaves under the NBD
    # limit; dropout models lag); calibrated and cross-fitted, each gives that share.
    assert (comparison.loc[btyd, "brier"] < comparison.loc[btyd, "brier_uncalibrated"]).all()
    gap = (comparison["p_purchase_mean"] - comparison["buyers_share"]).abs()
    assert (gap < 0.01).all()


def test_a_btyd_probability_runs_through_its_holdout_calibrator(selection, planted):
    _, features = planted

    class Halves:
        def predict(self, score):
            return np.full(len(score), 0.5)

    kind = selection.forecaster.purchase_model.purchase_model
    calibrated = dataclasses.replace(
        selection.forecaster, probability_source=kind, probability_calibrator=Halves()
    )
    np.testing.assert_allclose(calibrated.predict(features, horizon_days=180)["p_purchase"], 0.5)
    # A longer horizon extends the calibrated window's chance by the model's own hazard ratio.
    year = calibrated.predict(features, horizon_days=360)["p_purchase"].to_numpy()
    assert (year >= 0.5 - 1e-12).all() and (year > 0.5).any()


def test_a_dropout_model_collapsed_on_a_short_holdout_is_refitted_on_the_full_history(
    engine, planted_transactions
):
    # A year of history: the holdout's cut-off has 190 days behind it, too few to see anyone
    # leave, so every dropout model collapses there to the NBD; the full year shows dropout.
    as_of = pd.Timestamp("2025-01-05")
    tx = planted_transactions[planted_transactions["timestamp"] <= as_of]
    history = history_of(engine, tx)
    windows = holdout_windows(history, as_of=as_of, holdout_days=180)
    features = replace(history, settings=settings_with_window(history.settings, 180)).features(
        as_of
    )
    selection = select_value_model(
        windows, features, config=CLVConfig(), trend_window_days=180, random_state=0
    )
    comparison = selection.comparison.set_index("candidate")
    assert "nbd" in comparison.index and "pareto_nbd" not in comparison.index
    forecaster = selection.forecaster
    assert forecaster.purchase_model.purchase_model in {"pareto_nbd", "mbgnbd"}
    assert any("collapsed to the NBD on the holdout" in note for note in selection.notes)
    # Its calibrator was fitted for the NBD: the dropout model's probability runs uncalibrated.
    assert forecaster.probability_calibrator is None
    # Everyone bought in the 180 days before the holdout: the naive rule has no rate for
    # those who did not, so it is no probability candidate.
    assert np.isnan(comparison.loc["last_period", "brier"])
    assert forecaster.probability_source == forecaster.purchase_model.purchase_model
    forecast = forecaster.predict(features, horizon_days=180)
    one_time = features["frequency"].to_numpy() == 0
    assert forecast.loc[one_time, "p_alive"].max() < 1.0
