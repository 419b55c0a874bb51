from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from pipeline import clv
from pipeline.clv import CustomerValueModel, lifetimes_dataset_path
from pipeline.features import build_features


def cdnow_sample_calibration() -> pd.DataFrame:
    """The CDNOW 1/10 sample of Fader, Hardie & Lee (2005), calibration period to 1997-09-30."""
    raw = pd.read_csv(
        lifetimes_dataset_path("CDNOW_sample.txt"),
        sep=r"\s+",
        header=None,
        names=["customer_id", "customer_index", "date", "number_of_cds", "dollar_value"],
        dtype={"customer_id": "string"},
    )
    transactions = pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "timestamp": pd.to_datetime(raw["date"].astype(str), format="%Y%m%d"),
            "amount": raw["dollar_value"],
        }
    )
    calibration = transactions[transactions["timestamp"] <= "1997-09-30"]
    return build_features(calibration, as_of=pd.Timestamp("1997-09-30"))


def with_trend_inputs(rfm: pd.DataFrame) -> pd.DataFrame:
    return rfm.assign(spend_recent=0.0)


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return cdnow_sample_calibration()


def test_bgnbd_reproduces_the_published_cdnow_parameters(cdnow):
    assert len(cdnow) == 2357
    # The paper works in weeks; alpha is a rate scale, so in days it is 7x larger.
    weeks = cdnow.assign(
        recency_days=cdnow["recency_days"] / 7, tenure_days=cdnow["tenure_days"] / 7
    )
    model = CustomerValueModel(penalizer=0.0, monetary_penalizer=0.0).fit(with_trend_inputs(weeks))
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert model.purchase_params_[name] == pytest.approx(value, rel=0.01), name
    days = CustomerValueModel(penalizer=0.0, monetary_penalizer=0.0).fit(with_trend_inputs(cdnow))
    assert days.purchase_params_["alpha"] == pytest.approx(4.414 * 7, rel=0.01)
    assert days.purchase_params_["r"] == pytest.approx(0.243, rel=0.01)


def test_gamma_gamma_reproduces_the_published_cdnow_parameters(cdnow):
    model = CustomerValueModel(penalizer=0.0, monetary_penalizer=0.0).fit(with_trend_inputs(cdnow))
    # Fader, Hardie & Lee (2005), "RFM and CLV": p = 6.25, q = 3.74, gamma = 15.44
    for name, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert model.spend_params_[name] == pytest.approx(value, rel=0.01), name


def customers(**columns) -> pd.DataFrame:
    base = {
        "customer_id": ["x"],
        "frequency": [4],
        "recency_days": [200.0],
        "tenure_days": [220.0],
        "monetary": [30.0],
        "spend_recent": [60.0],
        "total_spend": [150.0],
    }
    base.update({k: [v] if not isinstance(v, list) else v for k, v in columns.items()})
    return pd.DataFrame(base)


@pytest.fixture(scope="module")
def fitted(cdnow) -> CustomerValueModel:
    total = cdnow["total_spend"]
    return CustomerValueModel().fit(cdnow.assign(spend_recent=total * 0.3))


def test_predictions_are_finite_and_in_range_even_for_extreme_customers(fitted):
    extreme = pd.DataFrame(
        {
            "customer_id": ["heavy", "never-back", "fresh", "zero-spend"],
            "frequency": [300, 0, 0, 3],
            "recency_days": [273.0, 0.0, 0.0, 100.0],
            "tenure_days": [273.0, 5000.0, 0.0, 200.0],
            "monetary": [20.0, 0.0, 0.0, 0.0],
            "spend_recent": [3000.0, 0.0, 10.0, 0.0],
            "total_spend": [6000.0, 10.0, 10.0, 0.0],
        }
    )
    predicted = fitted.predict(extreme, horizon_days=180)
    numbers = predicted[
        ["p_alive", "expected_purchases", "expected_spend", "trend_ratio"]
    ].to_numpy()
    assert np.isfinite(numbers).all()
    assert predicted["p_alive"].between(0, 1).all()
    assert (predicted["expected_spend"] >= 0).all()


def test_customers_without_repeat_spend_get_the_population_mean_per_purchase(fitted):
    p, q, v = (fitted.spend_params_[k] for k in ("p", "q", "v"))
    assert fitted.population_mean_spend_ == pytest.approx(p * v / (q - 1))
    one_timer = customers(frequency=0, recency_days=0.0, monetary=0.0)
    predicted = fitted.predict(one_timer, horizon_days=90).iloc[0]
    assert predicted["expected_spend"] == pytest.approx(
        predicted["expected_purchases"] * fitted.population_mean_spend_
    )


def test_a_customer_silent_since_long_ago_is_less_likely_alive_than_a_recent_one(fitted):
    both = customers(
        customer_id=["recent", "silent"],
        frequency=[8, 8],
        recency_days=[250.0, 60.0],
        tenure_days=[260.0, 260.0],
        monetary=[30.0, 30.0],
        spend_recent=[90.0, 0.0],
        total_spend=[270.0, 270.0],
    )
    predicted = fitted.predict(both, horizon_days=180)
    assert predicted.loc[1, "p_alive"] < 0.5 * predicted.loc[0, "p_alive"]
    assert predicted.loc[1, "expected_purchases"] < predicted.loc[0, "expected_purchases"]


def test_value_trend_compares_recent_and_forecast_rates_with_the_customers_past():
    model = CustomerValueModel(trend_window_days=100, declining_below=0.7, rising_above=1.3)
    # past rate: (total - recent) / (tenure - window) = 300 / 300 = 1 per day
    frame = customers(
        customer_id=["steady", "slowing", "short"],
        tenure_days=[400.0, 400.0, 150.0],
        recency_days=[390.0, 390.0, 140.0],
        total_spend=[400.0, 330.0, 150.0],
        spend_recent=[100.0, 30.0, 150.0],
        frequency=[10, 10, 5],
        monetary=[40.0, 33.0, 30.0],
    )
    expected_spend = np.array([100.0, 30.0, 150.0])  # forecast over a 100-day horizon
    ratio = model._trend_ratio(frame, expected_spend, horizon_days=100)
    # steady: mean(1, 1) / 1; slowing: mean(0.3, 0.3) / 1; short history: forecast 1.5/day vs lifetime 1/day
    np.testing.assert_allclose(ratio, [1.0, 0.3, 1.5])


def test_value_trend_classes_follow_the_thresholds(fitted):
    frame = fitted.predict(
        customers(
            customer_id=["a", "b"],
            frequency=[4, 4],
            recency_days=[200.0, 200.0],
            tenure_days=[400.0, 400.0],
            monetary=[30.0, 30.0],
            spend_recent=[0.0, 400.0],
            total_spend=[150.0, 550.0],
        ),
        horizon_days=180,
    )
    assert frame.loc[0, "value_trend"] == "declining" and frame.loc[0, "trend_ratio"] < 0.7
    strict = clone(fitted).set_params(declining_below=0.0001, rising_above=1000)
    strict.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    assert set(strict.predict(customers(), horizon_days=180)["value_trend"]) == {"stable"}


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"columns \['monetary'\]"):
        CustomerValueModel().fit(customers().drop(columns="monetary"))
    with pytest.raises(ValueError, match="'recency_days' exceeds tenure_days for customer x"):
        CustomerValueModel().fit(customers(recency_days=300.0))
    with pytest.raises(ValueError, match="'frequency' is negative for customer x"):
        CustomerValueModel().fit(customers(frequency=-1))


def test_it_follows_the_scikit_learn_contract(cdnow):
    model = CustomerValueModel(penalizer=0.01, random_state=3)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict(with_trend_inputs(cdnow), horizon_days=30)
    assert model.fit(with_trend_inputs(cdnow)) is model
    assert set(model.metrics_) >= {"bgnbd_r", "gamma_gamma_p", "frequency_monetary_correlation"}


def test_the_penalizer_is_never_raised_beyond_the_configured_one(cdnow, monkeypatch):
    from pipeline import clv

    original = clv._optimise
    tried = []

    def fail_unpenalised(kind, f, r, t, counts, penalizer, rng):
        tried.append(penalizer)
        if penalizer == 0.0:
            raise RuntimeError("optimiser did not converge from any start (planted)")
        return original(kind, f, r, t, counts, penalizer, rng)

    monkeypatch.setattr(clv, "_optimise", fail_unpenalised)
    columns = [cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency_days", "tenure_days")]
    rng = np.random.default_rng(0)
    _, used, _ = clv.fit_purchase_model("bgnbd", *columns, penalizer=0.001, rng=rng)
    assert used == pytest.approx(0.001)
    assert tried == [0.0, 0.001]  # unpenalised first, the configured one last, nothing stronger

    monkeypatch.setattr(
        clv, "_optimise", lambda *a: (_ for _ in ()).throw(RuntimeError("never converges"))
    )
    with pytest.raises(RuntimeError, match="BG/NBD could not be fitted: RuntimeError: never"):
        clv.fit_purchase_model("bgnbd", *columns, penalizer=0.001, rng=rng)


def test_a_unpenalised_fit_reaches_lifetimes_published_optimum(cdnow):
    # Fader, Hardie & Lee (2005) on CDNOW: r 0.243, alpha 4.414, a 0.793, b 2.426.
    model = CustomerValueModel(penalizer=0.0, random_state=0).fit(with_trend_inputs(cdnow))
    assert model.purchase_penalizer_ == 0.0
    params = model.purchase_params_
    assert (params["r"], params["a"], params["b"]) == pytest.approx((0.243, 0.793, 2.426), rel=0.01)


def test_a_collapsed_dropout_is_named_not_escalated():
    from pipeline.clv import DropoutCollapsed

    base = no_dropout_base(4000)
    # Nobody leaves: the dropout models' dropout goes to its limit, said as such.
    for kind in ("bgnbd", "pareto_nbd"):
        with pytest.raises(DropoutCollapsed, match="no dropout in the data"):
            CustomerValueModel(purchase_model=kind, random_state=0).fit(base)


def test_a_start_on_the_slide_to_no_dropout_stops_there_with_the_same_answer(monkeypatch):
    from pipeline import clv

    # Steady buyers (one purchase every 50 days on average) of whom nobody leaves: Pareto/NBD's
    # dropout slides down to the box's edge, where hyp2f1 is slowest.
    base = no_dropout_base(4000, r=4.0, alpha=200.0)
    columns = [base[c].to_numpy(dtype=float) for c in ("frequency", "recency_days", "tenure_days")]
    evaluations = {"count": 0}
    pareto = clv._negative_log_likelihood("pareto_nbd")

    def counted(*args):
        evaluations["count"] += 1
        return pareto(*args)

    monkeypatch.setattr(clv, "_negative_log_likelihood", lambda kind: counted)

    def fit() -> tuple[str, int]:
        evaluations["count"] = 0
        with pytest.raises(clv.DropoutCollapsed, match="no dropout in the data") as collapsed:
            clv.fit_purchase_model(
                "pareto_nbd", *columns, penalizer=0.0, rng=np.random.default_rng(0)
            )
        return str(collapsed.value), evaluations["count"]

    stopped_message, stopped_cost = fit()
    monkeypatch.setattr(clv, "SLIDE_DROPOUT", 0.0)  # followed to the box's edge instead
    followed_message, followed_cost = fit()
    # The same answer, named the same way, for a fraction of the likelihood's evaluations.
    assert stopped_message.split("(")[0] == followed_message.split("(")[0]
    assert stopped_cost < followed_cost / 2


def test_a_native_crash_in_a_fit_is_that_fits_failure_not_the_runs():
    from functools import partial

    from lifetimes import ParetoNBDFitter

    from pipeline.clv import run_isolated

    # The five lines: scipy's hyp2f1 crashes the process (SIGSEGV) on these values.
    crash = partial(
        ParetoNBDFitter._log_A_0,
        [7.693224121061732e-141, 1.5743149074557408e-156, 2.959587696993592e287, np.inf],
        np.array([0.0, 1.0, 3.0, 10.0]),
        np.array([0.0, 30.0, 200.0, 300.0]),
        np.array([100.0, 200.0, 400.0, 500.0]),
    )
    with pytest.raises(RuntimeError, match="crashed in a native routine"):
        run_isolated(crash)
    assert run_isolated(sum, [1, 2]) == 3  # and the next call gets a fresh worker


def test_unknown_data_files_list_what_lifetimes_ships():
    with pytest.raises(FileNotFoundError, match="CDNOW_master.txt"):
        lifetimes_dataset_path("nope.csv")


@pytest.mark.parametrize("kind", ["bgnbd", "pareto_nbd", "mbgnbd"])
def test_fits_on_weighted_distinct_rows_match_lifetimes_own_fit(cdnow, kind):
    from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

    fitter = {
        "bgnbd": BetaGeoFitter,
        "pareto_nbd": ParetoNBDFitter,
        "mbgnbd": ModifiedBetaGeoFitter,
    }[kind]
    weeks = cdnow.assign(
        recency_days=cdnow["recency_days"] / 7, tenure_days=cdnow["tenure_days"] / 7
    )
    theirs = fitter(penalizer_coef=0.0)
    # lifetimes' Pareto/NBD would draw its start from the global random state: give it one
    start = (
        {"initial_params": np.random.default_rng(0).normal(1.0, 0.05, 4)}
        if kind == "pareto_nbd"
        else {}
    )
    theirs.fit(weeks["frequency"], weeks["recency_days"], weeks["tenure_days"], **start)
    ours = CustomerValueModel(
        purchase_model=kind, penalizer=0.0, monetary_penalizer=0.0, random_state=0
    )
    ours.fit(with_trend_inputs(weeks))
    for name, value in theirs.params_.items():
        assert ours.purchase_params_[name] == pytest.approx(value, rel=1e-3), name


def test_pareto_nbd_is_reproducible_from_the_seed(cdnow):
    first = CustomerValueModel(purchase_model="pareto_nbd", random_state=4).fit(
        with_trend_inputs(cdnow)
    )
    again = CustomerValueModel(purchase_model="pareto_nbd", random_state=4).fit(
        with_trend_inputs(cdnow)
    )
    assert first.purchase_params_ == again.purchase_params_


@pytest.mark.parametrize("kind", ["pareto_nbd", "mbgnbd"])
def test_every_purchase_model_gives_finite_forecasts_for_the_heaviest_buyers(cdnow, kind):
    model = CustomerValueModel(purchase_model=kind, random_state=0).fit(with_trend_inputs(cdnow))
    heavy = customers(
        customer_id=["h1", "h2"],
        frequency=[500, 2000],
        recency_days=[270.0, 272.0],
        tenure_days=[273.0, 273.0],
        monetary=[25.0, 25.0],
        spend_recent=[1e4, 4e4],
        total_spend=[2e4, 8e4],
    )
    predicted = model.predict(heavy, horizon_days=365)
    numbers = predicted.drop(columns="value_trend").to_numpy(dtype=float)
    assert np.isfinite(numbers).all()
    assert (predicted["expected_purchases"] > 100).all()


def test_clv_is_the_expected_spend_discounted_over_the_horizon(fitted):
    frame = customers()
    undiscounted = (
        fitted.set_params(annual_discount_rate=0.0).predict(frame, horizon_days=365).iloc[0]
    )
    assert undiscounted["clv"] == pytest.approx(undiscounted["expected_spend"])
    discounted = (
        fitted.set_params(annual_discount_rate=0.2).predict(frame, horizon_days=365).iloc[0]
    )
    # a year at 20% discounts the average purchase (half a year out) by about 1.2 ** -0.5
    assert discounted["clv"] / discounted["expected_spend"] == pytest.approx(1.2**-0.5, rel=0.03)
    fitted.set_params(annual_discount_rate=0.1)


def test_days_to_next_purchase_follow_the_forecast_rate(fitted):
    predicted = fitted.predict(customers(), horizon_days=180).iloc[0]
    assert predicted["days_to_next_purchase"] == pytest.approx(
        180 / predicted["expected_purchases"]
    )


def test_a_stated_sample_fits_close_to_the_full_data(cdnow):
    full = CustomerValueModel(random_state=1).fit(with_trend_inputs(cdnow))
    sampled = CustomerValueModel(fit_sample_size=1500, random_state=1).fit(with_trend_inputs(cdnow))
    assert sampled.metrics_["n_customers_fitted"] == 1500
    assert sampled.purchase_params_["r"] == pytest.approx(full.purchase_params_["r"], rel=0.25)


def test_an_unknown_purchase_model_is_named():
    with pytest.raises(ValueError, match="purchase_model must be one of"):
        CustomerValueModel(purchase_model="bgnbd2").fit(customers())


def test_degenerate_parameters_are_rejected_with_a_reason():
    from pipeline.clv import _check_parameters

    assert _check_parameters(
        {"r": 0.8, "alpha": 69.0, "a": 5e-64, "b": 1e-53}, "MBG/NBD"
    ).startswith("degenerate parameters")
    assert _check_parameters({"r": 0.8, "alpha": 1e7, "a": 0.5, "b": 1.0}, "BG/NBD").startswith(
        "absurd"
    )
    assert _check_parameters({"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}, "BG/NBD") is None


def test_a_non_finite_closed_form_never_reaches_the_forecast(monkeypatch):
    """lifetimes' Pareto/NBD returns NaN for some of the heaviest buyers (25 of 100,000 measured
    here): those count as alive and buy at the posterior mean of their rate, (r + x) / (alpha + T);
    the rest are untouched."""
    from lifetimes import ParetoNBDFitter

    from pipeline.clv import predict_purchases

    params = {"r": 0.55, "alpha": 10.6, "s": 0.6, "beta": 11.7}
    frequency = np.array([2.0, 300.0, 5.0])
    recency = np.array([100.0, 360.0, 200.0])
    tenure = np.array([300.0, 365.0, 300.0])
    clean_alive, clean_purchases, repaired = predict_purchases(
        "pareto_nbd", params, frequency, recency, tenure, (30.0, 60.0)
    )
    assert repaired == 0
    alive_of, purchases_of = (
        ParetoNBDFitter.conditional_probability_alive,
        ParetoNBDFitter.conditional_expected_number_of_purchases_up_to_time,
    )

    def alive_nan_for_heavy(self, f, r, t):
        return np.where(np.asarray(f) > 100, np.nan, alive_of(self, f, r, t))

    def purchases_inf_for_heavy(self, h, f, r, t):
        return np.where(np.asarray(f) > 100, np.inf, purchases_of(self, h, f, r, t))

    monkeypatch.setattr(ParetoNBDFitter, "conditional_probability_alive", alive_nan_for_heavy)
    monkeypatch.setattr(
        ParetoNBDFitter,
        "conditional_expected_number_of_purchases_up_to_time",
        purchases_inf_for_heavy,
    )
    alive, purchases, repaired = predict_purchases(
        "pareto_nbd", params, frequency, recency, tenure, (30.0, 60.0)
    )
    assert repaired == 3  # one p_alive and two horizons
    assert alive[1] == 1.0
    rate = (0.55 + 300) / (10.6 + 365)
    np.testing.assert_allclose(purchases[1], [rate * 30, rate * 60])
    np.testing.assert_array_equal(alive[[0, 2]], clean_alive[[0, 2]])
    np.testing.assert_array_equal(purchases[[0, 2]], clean_purchases[[0, 2]])


def test_bgnbd_one_time_buyers_get_the_closed_form_where_lifetimes_gives_nan():
    """With a + b < 1, lifetimes takes the log of a negative hypergeometric term: NaN for every
    customer without a repeat purchase (826 of 6,000 in the embedded sample one year back)."""
    from lifetimes import BetaGeoFitter
    from scipy.special import hyp2f1

    from pipeline.clv import predict_purchases

    params = {"r": 1.53, "alpha": 55.2, "a": 0.027, "b": 0.63}
    frequency = np.array([0.0, 0.0, 4.0])
    recency = np.array([0.0, 0.0, 120.0])
    tenure = np.array([124.0, 30.0, 200.0])
    fitter = BetaGeoFitter()
    fitter.params_ = pd.Series(params)
    with np.errstate(all="ignore"):
        theirs = fitter.conditional_expected_number_of_purchases_up_to_time(
            180.0, frequency, recency, tenure
        )
    assert np.isnan(theirs[:2]).all() and np.isfinite(theirs[2])

    _, purchases, repaired = predict_purchases(
        "bgnbd", params, frequency, recency, tenure, (180.0,)
    )
    assert repaired == 0  # the closed form, not a fallback
    r, alpha, a, b = params.values()
    z = 180.0 / (alpha + 124.0 + 180.0)
    by_hand = (a + b - 1) / (a - 1) * (1 - hyp2f1(r, b, a + b - 1, z) * (1 - z) ** r)
    assert purchases[0, 0] == pytest.approx(by_hand, rel=1e-12)
    assert 1.0 < purchases[0, 0] < 2.0  # about (r / (alpha + T)) * 180 = 1.54 for one alive
    assert purchases[0, 0] < purchases[1, 0]  # the newer customer is the faster buyer
    assert purchases[2, 0] == pytest.approx(theirs[2], rel=1e-12)  # lifetimes' where it works


def test_a_strong_frequency_spend_correlation_is_measured_and_warned_about(cdnow, caplog):
    independent = CustomerValueModel().fit(with_trend_inputs(cdnow))
    assert abs(independent.metrics_["frequency_monetary_correlation"]) < 0.3
    # the same customers, with spend per purchase made to grow with frequency
    correlated = cdnow.assign(
        monetary=np.where(cdnow["frequency"] > 0, 10.0 + 5.0 * cdnow["frequency"], 0.0)
    )
    with caplog.at_level("WARNING", logger="pipeline.clv"):
        model = CustomerValueModel().fit(with_trend_inputs(correlated))
    assert model.metrics_["frequency_monetary_correlation"] > 0.9
    assert "Gamma-Gamma assumes they do not" in caplog.text


def no_dropout_base(n: int = 20_000, r: float = 2.0, alpha: float = 60.0) -> pd.DataFrame:
    """Customers who never leave: rates lambda ~ Gamma(r, alpha) per day, repeat purchases
    Poisson(lambda T) spread uniformly over (0, T]."""
    rng = np.random.default_rng(11)
    rate = rng.gamma(r, 1 / alpha, n)
    tenure = rng.uniform(200, 700, n).round()
    frequency = rng.poisson(rate * tenure)
    recency = np.array(
        [rng.uniform(0, t, k).max() if k else 0.0 for t, k in zip(tenure, frequency, strict=True)]
    )
    return pd.DataFrame(
        {
            "frequency": frequency.astype(float),
            "recency_days": recency.round(),
            "tenure_days": tenure,
            "monetary": np.where(frequency > 0, rng.gamma(5, 8, n), 0.0),
            "total_spend": frequency * 40.0,
            "spend_recent": 0.0,
            "purchases_recent": 0.0,
        }
    )


def test_the_no_dropout_model_recovers_its_planted_parameters_and_keeps_everyone_alive():
    base = no_dropout_base()
    model = CustomerValueModel(purchase_model="nbd", random_state=0).fit(base)
    assert model.purchase_params_["r"] == pytest.approx(2.0, rel=0.05)
    assert model.purchase_params_["alpha"] == pytest.approx(60.0, rel=0.05)
    forecast = model.predict(base, horizon_days=90)
    assert (forecast["p_alive"] == 1.0).all()
    r, alpha = model.purchase_params_["r"], model.purchase_params_["alpha"]
    expected = (r + base["frequency"]) / (alpha + base["tenure_days"]) * 90
    np.testing.assert_allclose(forecast["expected_purchases"], expected, rtol=1e-12)


def test_when_every_dropout_model_collapses_the_value_stage_uses_no_dropout():
    from pipeline.config import CLVConfig
    from pipeline.customer_value import HoldoutWindows, select_value_model

    base = no_dropout_base(4000)
    windows = HoldoutWindows(window_days=180, first_day=pd.Timestamp("2024-01-01"))
    selection = select_value_model(
        windows,
        base,
        config=CLVConfig(candidates=("bgnbd", "pareto_nbd")),
        trend_window_days=180,
        random_state=0,
    )
    assert selection.forecaster.purchase_model.purchase_model == "nbd"
    assert any("no dropout in the data" in note for note in selection.notes)


def test_a_start_that_meets_a_non_finite_likelihood_stops_at_once(monkeypatch):
    # L-BFGS-B cannot recover from NaN: a start that meets one is abandoned at that evaluation
    # (Online Retail's Pareto/NBD spent 72 s in three such starts before they failed anyway).
    calls = []

    def nan_likelihood(log_params, *args):
        calls.append(log_params)
        return float("nan")

    monkeypatch.setattr(clv, "_negative_log_likelihood", lambda kind: nan_likelihood)
    frequency = np.array([0.0, 1.0, 3.0, 5.0])
    with pytest.raises(RuntimeError, match="non-finite likelihood at parameters"):
        clv.fit_purchase_model(
            "bgnbd",
            frequency,
            np.array([0.0, 20.0, 60.0, 90.0]),
            np.array([100.0, 100.0, 100.0, 100.0]),
            penalizer=0.001,
            rng=np.random.default_rng(0),
        )
    # one evaluation per start (three starts), unpenalised and then penalised
    assert len(calls) == 2 * len(clv.START_SCALES)


@pytest.mark.parametrize("kind", ["bgnbd", "pareto_nbd"])
def test_the_first_two_starts_run_side_by_side_and_give_what_one_after_the_other_gives(
    cdnow, kind, monkeypatch
):
    import concurrent.futures
    import threading

    columns = [cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency_days", "tenure_days")]
    real = clv._negative_log_likelihood
    threads: set[int] = set()

    def spied(name):
        objective = real(name)

        def counted(*args):
            threads.add(threading.get_ident())
            return objective(*args)

        return counted

    monkeypatch.setattr(clv, "_negative_log_likelihood", spied)
    side_by_side = clv.fit_purchase_model(
        kind, *columns, penalizer=0.001, rng=np.random.default_rng(3)
    )
    assert len(threads) == 2

    class OneThread(concurrent.futures.ThreadPoolExecutor):
        def __init__(self, max_workers=None):
            super().__init__(max_workers=1)

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", OneThread)
    threads.clear()
    one_after_the_other = clv.fit_purchase_model(
        kind, *columns, penalizer=0.001, rng=np.random.default_rng(3)
    )
    assert len(threads) == 1
    assert one_after_the_other == side_by_side  # the same bits
