"""Customer value, measured rather than assumed: candidates compared on a holdout, the best used.

The question a forecast answers is "what will each customer do in the next ``horizon_days``?".
The holdout asks the same question of the past: the value models are scored on a window of the
same length (shorter only when the history is too short, and then said), and, when the history
holds a year plus the horizon, on the same season a year earlier, because a forecast made before
the peak and one made after it are different questions.

Candidates:

- the BTYD models (BG/NBD, Pareto/NBD, MBG/NBD, NBD without dropout), each with Gamma-Gamma;
- ``last_period``: "the last window again", the baseline a user would pick instead;
- ``learned``: gradient boosting on every feature and the BTYD outputs
  (:class:`~pipeline.learned_value.LearnedValueModel`), trained on the window before the holdout
  and scored on the holdout, as it is used: forecasting a period after the one it learned from
  (scored on the same period, customers it did not see, it looked better than it was: on a
  single cohort whose customers age between the two, its level was half the truth).

Two choices are made on the holdout: the value forecast (``expected_purchases`` /
``expected_spend``) by ``clv.selection_metric``, and ``p_purchase`` (the chance of at least one
purchase within the horizon) by the Brier score, a proper scoring rule that rewards both ranking
and calibration, of each candidate calibrated on the holdout (:func:`_calibrate_candidates`).
``last_period`` is a candidate of both, so the chosen model is never worse than
the naive rule on the selection metric; the run says which won and by how much.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from pipeline import forecast_metrics
from pipeline.clv import (
    NO_DROPOUT,
    CustomerValueModel,
    DropoutCollapsed,
    releases_isolated_workers,
)
from pipeline.config import CLVConfig, FeatureConfig
from pipeline.errors import InsufficientHistoryError
from pipeline.evaluate import decile_table, holdout_metrics
from pipeline.features import CustomerHistory
from pipeline.learned_value import (
    BTYD_INPUTS,
    MIN_CALIBRATION_OUTCOMES,
    LearnedSpendModel,
    LearnedValueModel,
    calibrate_on_holdout,
)
from pipeline.sampling import seeded_rows
from pipeline.schema import CUSTOMER_ID

log = logging.getLogger(__name__)

LEARNED = "learned"
# The models in which a customer can have left: p_alive comes from one of them, in this order.
ALIVE_KINDS = ("pareto_nbd", "mbgnbd")
LAST_PERIOD = "last_period"
# Metrics where a smaller value is better; the others are better larger.
SMALLER_IS_BETTER = {"spend_mae", "purchases_mae", "purchases_rmse", "brier"}
# A window shorter than four weeks measures the weekday mix of the purchases, not a customer's
# value: below it the holdout is skipped and the configured BTYD model is used as is.
MIN_WINDOW_DAYS = 28
# The same-season level correction is trusted within a factor of two: a season that doubles or
# halves what a model forecasts says the model is wrong, not that the season is.
LEVEL_FACTOR_RANGE = (0.5, 2.0)
# value_trend: a customer is declining (rising) only when their recent buying is this unlikely
# under their own past: each of the two one-sided tests (purchases, spend per purchase) at the
# conventional 5%, the pair Bonferroni-corrected to this family level.
TREND_LEVEL = 0.10
DAYS_PER_YEAR = 365
# The renewal dispersion CV^2 is bounded: a CV below 0.5 measured on a handful of gaps is luck,
# not a clockwork customer, and above 2 the "rhythm" is a few bursts, for which no count test
# is worth its name.
DISPERSION_RANGE = (0.25, 4.0)


def window_columns(days: int) -> tuple[str, str]:
    """The activity-window features counting purchases and spend in the last ``days``."""
    return f"purchases_last_{days}d", f"spend_last_{days}d"


def settings_with_window(settings: FeatureConfig, *days: int) -> FeatureConfig:
    """Feature settings that also count purchases and spend in the last ``days``."""
    windows = settings.activity_windows_days
    extra = {d for d in days if d >= MIN_WINDOW_DAYS and d not in windows}
    if not extra:
        return settings
    return settings.model_copy(update={"activity_windows_days": tuple(sorted({*windows, *extra}))})


def naive_window_days(*, first_day: pd.Timestamp, as_of: pd.Timestamp, horizon_days: int) -> int:
    """The window "the last period again" repeats: the horizon itself when the history covers
    it (the baseline a user would pick), else the whole history."""
    return int(min(horizon_days, max((as_of - first_day).days, 1)))


def holdout_days_for(config: CLVConfig, horizon_days: int) -> int:
    """The holdout's length: the configured one, else the forecast's own horizon."""
    return config.holdout_days if config.holdout_days is not None else horizon_days


@dataclass(frozen=True)
class ValueWindow:
    """Features at a cut-off and what each of those customers bought in the ``days`` after it."""

    cutoff: pd.Timestamp
    days: int
    features: pd.DataFrame
    purchases: np.ndarray
    spend: np.ndarray


@dataclass(frozen=True)
class HoldoutWindows:
    """What the value models are compared on, and what the learned model is trained on.

    ``window_days`` is the holdout's length (the horizon, or half the history when that is
    shorter). ``evaluation`` is the window the candidates are scored on (None when the history
    is too short for any); ``training`` the windows the final learned model learns from (the
    latest, ending at as-of, and the evaluation window when that is another); ``learning`` the
    window that ends where the evaluation window starts, on which the learned model is trained
    to be scored as it will be used, forecasting a period after the one it learned from (None
    when the history is too short: the learned model is then not a candidate).
    """

    window_days: int
    first_day: pd.Timestamp
    evaluation: ValueWindow | None = None
    training: tuple[ValueWindow, ...] = ()
    same_season: bool = False
    notes: tuple[str, ...] = ()
    learning: ValueWindow | None = None

    @property
    def holdout_days(self) -> int:
        return self.window_days


def plan_windows(
    *, first_day: pd.Timestamp, as_of: pd.Timestamp, holdout_days: int
) -> tuple[int, pd.Timestamp | None, pd.Timestamp | None, list[str]]:
    """(window length, evaluation cut-off, latest cut-off, notes) for a history and a holdout.

    A window needs as long a calibration before it as itself (a customer's rate is not known
    from less than the period it forecasts), so it is at most half the history.
    """
    span = int((as_of - first_day).days)
    days = min(holdout_days, span // 2)
    notes = []
    if days < holdout_days:
        notes.append(
            f"history from {first_day.date()} holds {span} days: the holdout is {days} days, "
            f"not the {holdout_days} the forecast covers"
        )
    if days < MIN_WINDOW_DAYS:
        notes.append(f"a holdout shorter than {MIN_WINDOW_DAYS} days compares nothing: skipped")
        return days, None, None, notes
    latest = as_of - pd.Timedelta(days=days)
    year_ago = as_of - pd.Timedelta(days=DAYS_PER_YEAR)
    same_season = (
        days == holdout_days and days <= DAYS_PER_YEAR and (year_ago - first_day).days >= days
    )
    evaluation = year_ago if same_season else latest
    return days, evaluation, latest, notes


def holdout_windows(
    history: CustomerHistory,
    *,
    as_of: pd.Timestamp,
    holdout_days: int,
    first_day: pd.Timestamp | None = None,
) -> HoldoutWindows:
    """Compute the :class:`HoldoutWindows` on the feature engine (its only use of it);
    ``first_day``, the history's first purchase day, when the caller already has it."""
    first_day = first_day if first_day is not None else history.first_day()
    days, evaluation_cutoff, latest_cutoff, notes = plan_windows(
        first_day=first_day, as_of=as_of, holdout_days=holdout_days
    )
    if evaluation_cutoff is None or latest_cutoff is None:
        return HoldoutWindows(days, first_day, notes=tuple(notes))
    history = replace(history, settings=settings_with_window(history.settings, days))

    def window(cutoff: pd.Timestamp) -> ValueWindow:
        features = history.features(cutoff)
        purchases, spend = history.purchases_between(
            features[CUSTOMER_ID], start=cutoff, end=cutoff + pd.Timedelta(days=days)
        )
        return ValueWindow(cutoff, days, features, purchases, spend)

    latest = window(latest_cutoff)
    evaluation = latest if evaluation_cutoff == latest_cutoff else window(evaluation_cutoff)
    learning_cutoff = evaluation_cutoff - pd.Timedelta(days=days)
    learning = window(learning_cutoff) if (learning_cutoff - first_day).days >= days else None
    training = (latest,) if evaluation is latest else (latest, evaluation)
    if evaluation is not latest:
        notes.append(
            f"holdout: the same season a year earlier ({evaluation_cutoff.date()} + {days} days)"
        )
    return HoldoutWindows(
        days, first_day, evaluation, training, evaluation is not latest, tuple(notes), learning
    )


# -- the value trend: a statistical statement -------------------------------------------------
def value_trend(
    customers: pd.DataFrame, *, window_days: int, spend_shape: float | None
) -> pd.DataFrame:
    """``trend_ratio``, ``trend_confidence`` and ``value_trend`` from each customer's own past.

    The past is the customer's history before the last ``window_days`` (repeat purchases only:
    the first purchase starts a history, it is not a rate). Two tests, each comparing the
    recent window with the past as two samples: the purchase count (the exact conditional test
    of two Poisson rates) and the spend per purchase (order values Gamma-distributed with the
    shape p Gamma-Gamma fitted on the base, so the ratio of the two means is F-distributed).
    A customer is ``declining`` when
    their recent value rate is below their past one and either tail probability (Bonferroni for
    the two) is below :data:`TREND_LEVEL`; ``rising`` likewise above. ``trend_confidence`` is
    one minus that tail probability; ``trend_ratio`` the recent value rate over the past one.
    A customer without a past window of their own (tenure under two windows) is ``stable``
    with confidence 0: nothing to compare with is no evidence of change.
    """
    window = float(window_days)
    tenure = customers["tenure_days"].to_numpy(dtype="float64")
    total_spend = customers["total_spend"].to_numpy(dtype="float64")
    recent_spend = customers["spend_recent"].to_numpy(dtype="float64")
    recent_count = customers["purchases_recent"].to_numpy(dtype="float64")
    purchase_days = customers["frequency"].to_numpy(dtype="float64") + 1.0
    past_days = np.maximum(tenure - window, 0.0)
    past_count = np.maximum(purchase_days - recent_count, 0.0)
    past_spend = np.maximum(total_spend - recent_spend, 0.0)
    has_past = (tenure >= 2 * window) & (past_count >= 2) & (past_spend > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        past_value_rate = past_spend / past_days
        ratio = np.where(has_past, (recent_spend / window) / past_value_rate, 1.0)
        order_ratio = (recent_spend / recent_count) / (past_spend / past_count)
    ratio = np.clip(np.nan_to_num(ratio, nan=1.0, posinf=100.0), 0.0, 100.0)
    # Both rates are estimates, so each test compares two samples. Purchases: a customer's
    # purchases are a renewal process, whose count over a window has variance about
    # CV^2 x its mean (Cox 1962; CV of the gaps between purchases: 1 for a memoryless buyer,
    # well under 1 for a regular one, whose shortfall is therefore clearer). The past rate's own
    # error adds CV^2 mu^2 / n. One-sided normal tail of the standardised shortfall.
    dispersion = np.clip(
        np.nan_to_num(customers["gap_cv"].to_numpy(dtype="float64"), nan=1.0) ** 2,
        *DISPERSION_RANGE,
    )
    repeats_before = np.maximum(past_count - 1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = repeats_before / np.maximum(past_days, 1.0) * window
        spread = np.sqrt(dispersion * expected * (1.0 + expected / repeats_before))
        z = (recent_count - expected) / spread
    z = np.nan_to_num(z, nan=0.0)
    fewer = stats.norm.cdf(z)
    more = stats.norm.sf(z)
    # Spend per purchase: the mean of k Gamma(p) order values over the mean of n past ones is
    # F(2kp, 2np) distributed under one spend level.
    if spend_shape is not None and spend_shape > 0:
        shape = spend_shape
        dfn = 2 * np.maximum(recent_count, 1.0) * shape
        dfd = 2 * np.maximum(past_count, 1.0) * shape
        usable = (recent_count > 0) & np.isfinite(order_ratio)
        safe_ratio = np.where(usable, order_ratio, 1.0)
        smaller = np.where(usable, stats.f.cdf(safe_ratio, dfn, dfd), 1.0)
        larger = np.where(usable, stats.f.sf(safe_ratio, dfn, dfd), 1.0)
    else:
        smaller = larger = np.ones(len(customers))
    down = np.minimum(1.0, 2 * np.minimum(fewer, np.nan_to_num(smaller, nan=1.0)))
    up = np.minimum(1.0, 2 * np.minimum(more, np.nan_to_num(larger, nan=1.0)))
    p_value = np.where(ratio < 1.0, down, up)
    p_value = np.where(has_past, np.nan_to_num(p_value, nan=1.0), 1.0)
    significant = p_value < TREND_LEVEL
    trend = np.select(
        [significant & (ratio < 1.0), significant & (ratio > 1.0)],
        ["declining", "rising"],
        default="stable",
    )
    return pd.DataFrame(
        {"trend_ratio": ratio, "trend_confidence": 1.0 - p_value, "value_trend": trend},
        index=customers.index,
    )


def order_value_shape(customers: pd.DataFrame, *, window_days: int) -> float | None:
    """The Gamma shape of a customer's order values around their own mean, measured on the base.

    For a customer whose spend per purchase did not change, log(recent mean / past mean) has
    variance about CV^2 (1/k + 1/n) (k recent, n past purchases, CV the order values' own
    coefficient of variation). The median over customers of log-ratio^2 / (1/k + 1/n) is
    CV^2 times the median of a chi-square with one degree of freedom (0.455): a median, so that
    the customers whose spend did change (a minority in any base) do not inflate it. Shape =
    1 / CV^2. Gamma-Gamma's own shape is not used: it is weakly identified and went to 130
    (CV 9%) on a base whose order values vary by 30%, which called a quarter of steady buyers
    declining. None when fewer than 30 customers can be measured (a median of fewer is noise).
    """
    window = float(window_days)
    tenure = customers["tenure_days"].to_numpy(dtype="float64")
    recent_count = customers["purchases_recent"].to_numpy(dtype="float64")
    past_count = customers["frequency"].to_numpy(dtype="float64") + 1.0 - recent_count
    recent_spend = customers["spend_recent"].to_numpy(dtype="float64")
    past_spend = customers["total_spend"].to_numpy(dtype="float64") - recent_spend
    usable = (
        (tenure >= 2 * window)
        & (recent_count >= 1)
        & (past_count >= 1)
        & (recent_spend > 0)
        & (past_spend > 0)
    )
    if usable.sum() < 30:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(
            (recent_spend[usable] / recent_count[usable])
            / (past_spend[usable] / past_count[usable])
        )
    scaled = log_ratio**2 / (1.0 / recent_count[usable] + 1.0 / past_count[usable])
    cv_squared = float(np.median(scaled[np.isfinite(scaled)])) / stats.chi2.median(1)
    return 1.0 / cv_squared if cv_squared > 0 else None


# -- the fitted value model of a bundle --------------------------------------------------------
@dataclass
class ValueForecaster:
    """The value model of a bundle: BTYD purchases and spend, optionally a learned or naive forecast.

    ``purchase_model`` (BTYD + Gamma-Gamma) always runs: it gives the discounting schedule of
    ``clv`` and the BTYD inputs of the learned model. ``alive_model`` gives ``p_alive`` from a
    model in which a one-time buyer can have left (Pareto/NBD or MBG/NBD); None: the purchase
    model's own. ``value_source`` and ``probability_source`` name what forecasts the value and
    ``p_purchase``: a BTYD model, ``learned`` or ``last_period``.
    """

    purchase_model: CustomerValueModel
    spend_model: LearnedSpendModel | None = None
    spend_window_days: int | None = None
    alive_model: CustomerValueModel | None = None
    learned: LearnedValueModel | None = None
    window_days: int | None = None
    value_source: str | None = None
    probability_source: str | None = None
    naive_rates: tuple[float, float] | None = None
    level_factor: float = 1.0
    trend_window_days: int | None = None
    trend_spend_shape: float | None = None
    naive_days: int | None = None
    # Maps the BTYD model's p_purchase over ``window_days`` to the share who bought, as measured
    # on the holdout (None: bundles before it, or a probability from another source).
    probability_calibrator: object | None = None

    @property
    def name(self) -> str:
        if self.value_source is not None:
            return self.value_source
        return LEARNED if self.spend_model is not None else self.purchase_model.purchase_model

    def predict(self, features: pd.DataFrame, *, horizon_days: int) -> pd.DataFrame:
        """Per customer: p_alive, p_purchase, expected purchases and spend, clv, value trend."""
        forecast = self.purchase_model.predict(features, horizon_days=horizon_days)
        if self.value_source is None:
            return self._predict_legacy(features, forecast, horizon_days)
        days = int(self.window_days or horizon_days)
        scale = horizon_days / days
        btyd_purchases = forecast["expected_purchases"].to_numpy()
        btyd_spend = forecast["expected_spend"].to_numpy()
        learned = None
        window = forecast
        calibrated = self.probability_calibrator is not None and self.probability_source not in (
            LEARNED,
            LAST_PERIOD,
        )
        if calibrated or (
            LEARNED in (self.value_source, self.probability_source) and self.learned is not None
        ):
            # The BTYD forecast of the holdout's window: the learned model's inputs, what the
            # calibrator was fitted on, and the short end of p_purchase's extension to the horizon.
            window = (
                forecast.copy()
                if days == horizon_days
                else self.purchase_model.predict(features, horizon_days=days)
            )
        if LEARNED in (self.value_source, self.probability_source) and self.learned is not None:
            learned = self.learned.predict(with_btyd_inputs(features, window))
        if self.alive_model is not None:
            # After the learned inputs: they are the purchase model's own, as in training.
            forecast["p_alive"] = self.alive_model.predict(features, horizon_days=horizon_days)[
                "p_alive"
            ].to_numpy()
        if self.value_source == LEARNED and learned is not None:
            purchases = learned["expected_purchases"].to_numpy() * scale
            spend = learned["expected_spend"].to_numpy() * scale
        elif self.value_source == LAST_PERIOD:
            naive_days = int(self.naive_days or days)
            bought_col, spend_col = window_columns(naive_days)
            purchases = features[bought_col].to_numpy(dtype="float64") * horizon_days / naive_days
            spend = features[spend_col].to_numpy(dtype="float64") * horizon_days / naive_days
        else:
            purchases, spend = btyd_purchases, btyd_spend
        purchases = purchases * self.level_factor
        spend = spend * self.level_factor
        if self.probability_source == LEARNED and learned is not None:
            probability = extend_probability(
                learned["p_purchase"].to_numpy(),
                short=window["p_purchase"],
                long=forecast["p_purchase"],
            )
        elif self.probability_source == LAST_PERIOD and self.naive_rates is not None:
            bought_col, _ = window_columns(days)
            bought = features[bought_col].to_numpy(dtype="float64") > 0
            probability = np.where(bought, self.naive_rates[1], self.naive_rates[0])
        elif calibrated:
            probability = extend_probability(
                self.probability_calibrator.predict(window["p_purchase"].to_numpy()),
                short=window["p_purchase"],
                long=forecast["p_purchase"],
            )
        else:
            probability = forecast["p_purchase"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            rescale = np.where(btyd_spend > 0, spend / btyd_spend, 0.0)
        # clv keeps the BTYD model's timing of the purchases and takes the chosen level; where
        # BTYD expects nothing, the chosen spend is discounted at the horizon's midpoint.
        midpoint = (1.0 + self.purchase_model.annual_discount_rate) ** (
            -horizon_days / 2 / DAYS_PER_YEAR
        )
        forecast["clv"] = np.where(
            btyd_spend > 0, forecast["clv"].to_numpy() * rescale, spend * midpoint
        )
        forecast["expected_purchases"] = purchases
        forecast["expected_spend"] = spend
        forecast["p_purchase"] = np.clip(probability, 0.0, 1.0)
        with np.errstate(divide="ignore"):
            forecast["days_to_next_purchase"] = np.where(
                purchases >= 0.01, horizon_days / np.maximum(purchases, 0.01), np.nan
            )
        trend = value_trend(
            features,
            window_days=int(self.trend_window_days or self.purchase_model.trend_window_days),
            spend_shape=self.trend_spend_shape,
        )
        forecast[["trend_ratio", "trend_confidence", "value_trend"]] = trend
        return forecast

    def _predict_legacy(
        self, features: pd.DataFrame, forecast: pd.DataFrame, horizon_days: int
    ) -> pd.DataFrame:
        """Bundles saved before the holdout chose p_purchase: scored exactly as they were trained."""
        # Their trend was a ratio against fixed cuts: no tail probability to report.
        forecast["trend_confidence"] = np.nan
        if self.spend_model is None:
            return forecast
        window = self.purchase_model.predict(features, horizon_days=self.spend_window_days)
        inputs = pd.concat(
            [features, window[["p_alive", "expected_purchases", "expected_spend"]]], axis=1
        )
        spend = self.spend_model.predict(inputs) * horizon_days / self.spend_window_days
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(
                forecast["expected_spend"] > 0, spend / forecast["expected_spend"], 1.0
            )
        forecast["clv"] = np.where(forecast["expected_spend"] > 0, forecast["clv"] * scale, spend)
        forecast["expected_spend"] = spend
        ratio = self.purchase_model._trend_ratio(features, spend, horizon_days)
        forecast["trend_ratio"] = ratio
        forecast["value_trend"] = self.purchase_model.classify_trend(ratio)
        return forecast


def extend_probability(
    probability: np.ndarray, *, short: pd.Series | np.ndarray, long: pd.Series | np.ndarray
) -> np.ndarray:
    """A probability over a short window extended to a longer one, customer by customer.

    The cumulative hazard -log(1 - P) of the learned window is scaled by the BTYD model's own
    ratio of cumulative hazards, long over short: the BTYD model knows how a customer's chance
    grows with time (a buyer who may have left gains less from a longer window than one who
    is surely alive); the learned model knows the level. Equal windows leave it unchanged.
    """
    short = np.clip(np.asarray(short, dtype="float64"), 0.0, 1 - 1e-9)
    long = np.clip(np.asarray(long, dtype="float64"), 0.0, 1 - 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(short > 0, np.log1p(-long) / np.log1p(-short), 1.0)
    ratio = np.clip(np.nan_to_num(ratio, nan=1.0), 1.0, None)
    hazard = -np.log1p(-np.clip(probability, 0.0, 1 - 1e-9)) * ratio
    return 1.0 - np.exp(-hazard)


def with_btyd_inputs(features: pd.DataFrame, forecast: pd.DataFrame) -> pd.DataFrame:
    """Features with a BTYD model's forecast of the learned model's window (``p_alive``,
    ``p_purchase``, ``expected_purchases``, ``expected_spend``) as the learned model's inputs."""
    extra = pd.DataFrame(
        {
            name: forecast[column].to_numpy()
            for name, column in zip(
                BTYD_INPUTS,
                ("p_alive", "p_purchase", "expected_purchases", "expected_spend"),
                strict=True,
            )
        },
        index=features.index,
    )
    return pd.concat([features, extra], axis=1)


@dataclass
class ValueSelection:
    """The chosen forecaster and the evidence for the choice."""

    forecaster: ValueForecaster
    chosen: str
    comparison: pd.DataFrame
    deciles: pd.DataFrame | None
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)


def _ranked(comparison: pd.DataFrame, metric: str, among: list[str]) -> list[str]:
    """Candidates in ``among`` that were scored, best first (unscored ones are left out)."""
    if metric not in comparison.columns:
        return []
    scored = [n for n in among if n in comparison.index]
    values = {n: comparison.loc[n, metric] for n in scored}
    usable = [n for n in scored if pd.notna(values[n])]
    return sorted(usable, key=lambda n: values[n], reverse=metric not in SMALLER_IS_BETTER)


def _best(comparison: pd.DataFrame, metric: str, among: list[str]) -> str | None:
    ranked = _ranked(comparison, metric, among)
    return ranked[0] if ranked else None


def holdout_scores(window: ValueWindow, forecast: pd.DataFrame) -> dict[str, float]:
    """A candidate's forecast of ``window`` (``expected_purchases``, ``expected_spend``,
    ``p_purchase``) against what happened: the value metrics of :func:`holdout_metrics` and the
    purchase probability's ROC AUC, Brier score, mean and the share who bought."""
    probability = forecast_metrics.probability_metrics(
        window.purchases > 0, forecast["p_purchase"].to_numpy(dtype="float64")
    )
    return {
        **holdout_metrics(
            actual_purchases=window.purchases,
            predicted_purchases=forecast["expected_purchases"].to_numpy(dtype="float64"),
            actual_spend=window.spend,
            predicted_spend=forecast["expected_spend"].to_numpy(dtype="float64"),
        ),
        "p_purchase_auc": probability["roc_auc"],
        "brier": probability["brier"],
        "p_purchase_mean": probability["mean_probability"],
        "buyers_share": probability["base_rate"],
    }


class _Candidates:
    """Builds candidate models with the run's settings and keeps their fits.

    A fit is named by its cut-off (``at``; None for the as-of features) and kind: asked for
    again, it is the same fit or the same failure (the learned model's inputs reuse the
    holdout's fits). Fits are made one after the other: each already runs its two starts on
    both cores (fitting the holdout's three candidates side by side measured no faster: 7.9 s
    against 8.2 s on 100,000 customers, four alternating runs each).
    """

    def __init__(self, config: CLVConfig, *, trend_window_days: int, random_state: int) -> None:
        self.config = config
        self.trend_window_days = trend_window_days
        self.random_state = random_state
        self._fits: dict[tuple[pd.Timestamp | None, str], CustomerValueModel | Exception] = {}

    def purchase_model(self, kind: str) -> CustomerValueModel:
        clv = self.config
        return CustomerValueModel(
            purchase_model=kind,
            penalizer=clv.penalizer,
            monetary_penalizer=clv.monetary_penalizer,
            trend_window_days=self.trend_window_days,
            declining_below=clv.declining_below,
            rising_above=clv.rising_above,
            annual_discount_rate=clv.annual_discount_rate,
            fit_sample_size=clv.fit_sample_size,
            random_state=self.random_state,
        )

    def _fit(
        self, kind: str, features: pd.DataFrame, at: pd.Timestamp | None
    ) -> CustomerValueModel:
        if (at, kind) not in self._fits:
            try:
                self._fits[(at, kind)] = self.purchase_model(kind).fit(features)
            except (RuntimeError, ValueError) as error:  # DropoutCollapsed is a RuntimeError
                self._fits[(at, kind)] = error
        outcome = self._fits[(at, kind)]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def fit_btyd(
        self,
        kinds: Sequence[str],
        features: pd.DataFrame,
        notes: list[str],
        collapsed_kinds: list[str] | None = None,
        *,
        at: pd.Timestamp | None = None,
    ) -> dict[str, CustomerValueModel]:
        """Fit each kind on ``features``; a collapsed dropout gives way to the NBD by name (and
        the kind is added to ``collapsed_kinds``)."""
        fitted: dict[str, CustomerValueModel] = {}
        for kind in kinds:
            try:
                fitted[kind] = self._fit(kind, features, at)
            except DropoutCollapsed as collapsed:
                notes.append(f"{collapsed}: the NBD (no dropout) stands in for {kind}")
                if collapsed_kinds is not None:
                    collapsed_kinds.append(kind)
                if NO_DROPOUT not in fitted and NO_DROPOUT not in kinds:
                    try:
                        fitted[NO_DROPOUT] = self._fit(NO_DROPOUT, features, at)
                    except (RuntimeError, ValueError) as error:
                        notes.append(f"{NO_DROPOUT} could not be fitted: {error}")
            except (RuntimeError, ValueError) as error:
                notes.append(f"{kind} could not be fitted: {error}")
        return fitted

    def sampled_rows(self, total: int) -> np.ndarray | None:
        """The learned model's seeded sample of ``total`` rows (its cost stays bounded)."""
        return seeded_rows(total, self.config.learned_sample_size, random_state=self.random_state)

    def learned_inputs(
        self, windows: Sequence[ValueWindow], kind: str
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The learned model's inputs over ``windows`` (features and the forecast of ``kind``
        fitted at each window's cut-off), purchases and spend, sampled.

        The sample is drawn first and only the sampled customers are forecast: on a large base
        the BTYD forecasts of rows the sample drops cost seconds and change nothing.
        """
        sizes = [len(w.features) for w in windows]
        rows = self.sampled_rows(sum(sizes))
        inputs, purchases, spend = [], [], []
        starts = np.cumsum([0, *sizes])
        for window, start, end in zip(windows, starts[:-1], starts[1:], strict=True):
            keep = slice(None) if rows is None else rows[(rows >= start) & (rows < end)] - start
            model = self.fitted_at(window, kind)
            features = window.features.iloc[keep]
            inputs.append(
                with_btyd_inputs(features, model.predict(features, horizon_days=window.days))
            )
            purchases.append(window.purchases[keep])
            spend.append(window.spend[keep])
        return (
            pd.concat(inputs, ignore_index=True),
            np.concatenate(purchases),
            np.concatenate(spend),
        )

    def fitted_at(self, window: ValueWindow, kind: str) -> CustomerValueModel:
        """``kind`` fitted at a window's cut-off, else the NBD (a collapsed dropout's limit)."""
        fitted = self.fit_btyd([kind], window.features, [], at=window.cutoff)
        if not fitted:
            fitted = self.fit_btyd([NO_DROPOUT], window.features, [], at=window.cutoff)
        if not fitted:
            raise ValueError(f"neither {kind} nor {NO_DROPOUT} fits at {window.cutoff.date()}")
        return next(iter(fitted.values()))


def scored_sample(window: ValueWindow, limit: int | None, *, random_state: int) -> ValueWindow:
    """At most ``limit`` of a holdout's customers, seeded: candidates are compared on them."""
    rows = seeded_rows(len(window.features), limit, random_state=random_state)
    if rows is None:
        return window
    return replace(
        window,
        features=window.features.iloc[rows].reset_index(drop=True),
        purchases=window.purchases[rows],
        spend=window.spend[rows],
    )


def _naive(window: ValueWindow, features_at_cutoff: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    bought_col, spend_col = window_columns(window.days)
    return (
        features_at_cutoff[bought_col].to_numpy(dtype="float64"),
        features_at_cutoff[spend_col].to_numpy(dtype="float64"),
    )


@releases_isolated_workers
def select_value_model(
    windows: HoldoutWindows,
    features: pd.DataFrame,
    *,
    config: CLVConfig,
    trend_window_days: int,
    random_state: int,
    naive_days: int | None = None,
) -> ValueSelection:
    """Compare the candidates on the holdout, refit the best on the full history.

    Parameters
    ----------
    windows
        Features at the holdout's cut-offs and what happened after them (:func:`holdout_windows`).
        Their features must hold the activity window of ``windows.window_days``.
    features
        Features at as-of (one row per customer) for the final fit.
    naive_days
        The window "the last period again" repeats at as-of (:func:`naive_window_days`; its
        activity-window features must be in ``features``); None: the holdout's.
    """
    candidates = _Candidates(config, trend_window_days=trend_window_days, random_state=random_state)
    purchase_kinds = [c for c in config.candidates if c != LEARNED]
    notes: list[str] = list(windows.notes)
    rows: dict[str, dict[str, float]] = {}
    forecasts: dict[str, pd.DataFrame] = {}
    calibrators: dict[str, object] = {}
    collapsed_kinds: list[str] = []
    days = windows.window_days
    evaluation = windows.evaluation
    naive_rates = None
    if evaluation is not None:
        scored = scored_sample(evaluation, config.holdout_sample_size, random_state=random_state)
        if scored is not evaluation:
            notes.append(
                f"candidates scored on a seeded sample of {len(scored.features):,} of the "
                f"holdout's {len(evaluation.features):,} customers (clv.holdout_sample_size)"
            )
        evaluation = scored
        bought = evaluation.purchases > 0
        fitted = candidates.fit_btyd(
            purchase_kinds, evaluation.features, notes, collapsed_kinds, at=evaluation.cutoff
        )
        for kind, model in fitted.items():
            forecasts[kind] = model.predict(evaluation.features, horizon_days=days)
            rows[kind] = holdout_scores(evaluation, forecasts[kind])
        # The naive rule: the last window again, and as a probability the share of last
        # window's buyers (and non-buyers) who bought again.
        naive_purchases, naive_spend = _naive(evaluation, evaluation.features)
        naive_bought = naive_purchases > 0
        naive_rates = (
            float(bought[~naive_bought].mean()) if (~naive_bought).any() else 0.0,
            float(bought[naive_bought].mean()) if naive_bought.any() else 0.0,
        )
        forecasts[LAST_PERIOD] = pd.DataFrame(
            {
                "expected_purchases": naive_purchases,
                "expected_spend": naive_spend,
                "p_purchase": np.where(naive_bought, naive_rates[1], naive_rates[0]),
            }
        )
        rows[LAST_PERIOD] = holdout_scores(evaluation, forecasts[LAST_PERIOD])
        unmeasured = min(int(naive_bought.sum()), int((~naive_bought).sum()))
        if LEARNED in config.candidates and fitted and windows.learning is None:
            notes.append(
                "the learned model is judged as it is used, trained on a window before the one it "
                f"forecasts: the history holds no {days}-day window before the holdout, so it is "
                "not a candidate"
            )
        elif LEARNED in config.candidates and fitted:
            base_kind = _best(pd.DataFrame.from_dict(rows, orient="index"), "brier", list(fitted))
            try:
                inputs, purchases, spend = candidates.learned_inputs([windows.learning], base_kind)
                model = LearnedValueModel(random_state=random_state).fit(
                    inputs, purchases=purchases, spend=spend
                )
                learned = model.predict(with_btyd_inputs(evaluation.features, forecasts[base_kind]))
            except (RuntimeError, ValueError) as error:
                notes.append(f"learned model could not be scored on the holdout: {error}")
            else:
                forecasts[LEARNED] = learned
                rows[LEARNED] = holdout_scores(evaluation, learned)
        calibrators = _calibrate_candidates(evaluation, forecasts, rows, random_state=random_state)
        if unmeasured < MIN_CALIBRATION_OUTCOMES:
            # A share measured on a handful of customers is not a rate: when (nearly) everyone
            # bought in the last window before the holdout (a history barely longer than the
            # window), the rule has no chance to give those who did not.
            rows[LAST_PERIOD]["brier"] = np.nan
            notes.append(
                f"the naive rule's probability is not a candidate: {unmeasured} customers of the "
                "holdout were on one side of 'bought in the last window'"
            )
    comparison = pd.DataFrame.from_dict(rows, orient="index").rename_axis("candidate")
    metric = config.selection_metric
    value_source = _best(comparison, metric, list(comparison.index))

    # The BTYD model the bundle runs: the best-scoring one by the value metric, refitted on the
    # full history; one that fails there gives way to the next, never to a crash.
    btyd_kinds = [k for k in comparison.index if k not in (LEARNED, LAST_PERIOD)]
    ranked = _ranked(comparison, metric, btyd_kinds)
    if ranked and ranked[0] == NO_DROPOUT and collapsed_kinds:
        # The NBD scored on the holdout is the limit of each dropout model that collapsed there
        # (no one seen to leave in the holdout's shorter history). The full history may show
        # dropout, so those models are refitted first, in the configured order but BG/NBD last
        # (it cannot let a one-time buyer leave); one that collapses again gives way to the NBD,
        # its limit.
        limits = sorted(dict.fromkeys(collapsed_kinds), key=lambda k: k == "bgnbd")
        ranked = [*limits, *ranked]
    order = list(dict.fromkeys([*ranked, *purchase_kinds, NO_DROPOUT]))
    purchase_model, failure = None, ""
    for kind in order:
        final = candidates.fit_btyd([kind], features, notes)
        if final:
            purchase_model = next(iter(final.values()))
            break
        failure = kind
    if purchase_model is None:
        repeaters = int((features["frequency"] > 0).sum())
        raise InsufficientHistoryError(
            f"too little purchase history to fit any customer-value model: {len(features)} "
            f"customers, {repeaters} with a repeat purchase (the last model tried: {failure}). "
            "The BTYD models need repeat buyers: train on more customers or a longer history"
        )
    fitted_kind = purchase_model.purchase_model
    if value_source is None or value_source not in (LEARNED, LAST_PERIOD):
        value_source = fitted_kind
    # p_purchase: the best by Brier score among what the bundle can run (its BTYD model, the
    # learned model, the naive rule). A BTYD model is judged by the row it was scored under
    # (a dropout model that collapsed on the holdout, by its limit, the NBD); its holdout
    # calibrator runs only on the very model it was fitted for, else its raw probability does.
    scored_as = fitted_kind
    if fitted_kind not in comparison.index and fitted_kind in collapsed_kinds:
        scored_as = NO_DROPOUT
    scores = comparison.copy()
    if scored_as != fitted_kind and scored_as in scores.index:
        scores.loc[fitted_kind] = scores.loc[scored_as]
        scores.loc[fitted_kind, "brier"] = (
            scores.loc[scored_as, "brier_uncalibrated"]
            if "brier_uncalibrated" in scores.columns
            else np.nan
        )
        calibrators.pop(fitted_kind, None)
        notes.append(
            f"{fitted_kind} fits the full history but collapsed to the NBD on the holdout: its "
            "p_purchase is its own, uncalibrated (judged by the NBD's raw probability there)"
        )
    probability_source = _best(scores, "brier", [fitted_kind, LEARNED, LAST_PERIOD]) or fitted_kind

    # p_alive from a model in which a one-time buyer can have left.
    alive_model = None
    if fitted_kind not in ALIVE_KINDS:
        for kind in ALIVE_KINDS:
            alive = candidates.fit_btyd([kind], features, notes)
            if kind in alive:
                alive_model = alive[kind]
                break
        if alive_model is None:
            notes.append("no dropout model fits this history: p_alive is 1 (no one seen to leave)")

    learned_model = None
    if LEARNED in (value_source, probability_source):
        try:
            inputs, purchases, spend = candidates.learned_inputs(windows.training, fitted_kind)
            learned_model = LearnedValueModel(random_state=random_state).fit(
                inputs, purchases=purchases, spend=spend
            )
        except ValueError as error:
            notes.append(f"learned model could not be trained ({error}); {fitted_kind} used")
            value_source = fitted_kind if value_source == LEARNED else value_source
            probability_source = (
                fitted_kind if probability_source == LEARNED else probability_source
            )

    # The same season's aggregate error, reported always; applied only when asked
    # (clv.seasonal_level_correction): on a base that grows or ages between the two years the
    # year-ago error is not this year's (measured on the embedded sample: the corrected
    # spend total was +62% off in the backtest against +23% uncorrected).
    level_factor = 1.0
    if windows.same_season and value_source in comparison.index:
        error_pct = comparison.loc[value_source, "spend_aggregate_error_pct"]
        if pd.notna(error_pct) and error_pct > -100:
            suggested = float(np.clip(100.0 / (100.0 + error_pct), *LEVEL_FACTOR_RANGE))
            if config.seasonal_level_correction:
                level_factor = suggested
                notes.append(
                    f"level corrected by {level_factor:.3f}: {value_source} was "
                    f"{error_pct:+.1f}% off in the same season a year earlier"
                )
            else:
                notes.append(
                    f"{value_source} was {error_pct:+.1f}% off in the same season a year earlier "
                    "(not corrected: clv.seasonal_level_correction is off)"
                )

    forecaster = ValueForecaster(
        purchase_model,
        alive_model=alive_model,
        learned=learned_model,
        window_days=days if evaluation is not None else None,
        value_source=value_source,
        probability_source=probability_source,
        naive_rates=naive_rates,
        level_factor=level_factor,
        trend_window_days=trend_window_days,
        trend_spend_shape=order_value_shape(features, window_days=trend_window_days),
        naive_days=naive_days,
        probability_calibrator=calibrators.get(probability_source),
    )
    metrics = {f"{k}": float(v) for k, v in purchase_model.metrics_.items()}
    metrics["holdout_days"] = float(days)
    metrics["holdout_same_season"] = float(windows.same_season)
    metrics["level_factor"] = level_factor
    if value_source in scores.index:
        metrics.update(
            {f"holdout_{k}": float(v) for k, v in scores.loc[value_source].items() if pd.notna(v)}
        )
    if probability_source in scores.index:
        for name in (
            "p_purchase_auc",
            "brier",
            "brier_uncalibrated",
            "p_purchase_mean",
            "buyers_share",
        ):
            value = scores.loc[probability_source, name]
            if pd.notna(value):
                metrics[f"holdout_{name}"] = float(value)
    if LAST_PERIOD in scores.index and value_source in scores.index:
        # How much the chosen model beats the naive rule, in the selection metric's own units.
        metrics[f"holdout_{metric}_vs_last_period"] = float(
            scores.loc[value_source, metric] - scores.loc[LAST_PERIOD, metric]
        )
    if LAST_PERIOD in scores.index and probability_source in scores.index:
        brier_gain = scores.loc[probability_source, "brier"] - scores.loc[LAST_PERIOD, "brier"]
        if pd.notna(brier_gain):
            metrics["holdout_brier_vs_last_period"] = float(brier_gain)
    if evaluation is not None:
        notes.append(
            f"value forecast: {value_source} by {metric}; p_purchase: {probability_source} "
            "by Brier score"
        )
    for note in notes:
        log.info(note)
    deciles = (
        decile_table(evaluation.spend, forecasts[value_source]["expected_spend"].to_numpy())
        if evaluation is not None and value_source in forecasts
        else None
    )
    return ValueSelection(
        forecaster, value_source, comparison.reset_index(), deciles, metrics, notes
    )


def _calibrate_candidates(
    evaluation: ValueWindow,
    forecasts: dict[str, pd.DataFrame],
    rows: dict[str, dict[str, float]],
    *,
    random_state: int,
) -> dict[str, object]:
    """Every candidate's p_purchase calibrated on the holdout the same way; their calibrators.

    A raw BTYD probability says what its model assumes (no one leaves, under the NBD), not how
    often such customers bought, and the naive rule's two rates are the holdout's own shares: a
    Brier score over uncalibrated and calibrated candidates compares their calibration more than
    their knowledge. So each candidate's score is calibrated on the holdout (isotonic or Platt,
    whichever its cross-validated Brier prefers) and scored cross-fitted: ``brier`` is the
    calibrated score p_purchase is chosen by, ``brier_uncalibrated`` the raw one, ``p_purchase_mean``
    the calibrated mean. The learned model is calibrated here for the comparison only: the one
    the bundle runs is refitted on later windows and carries its own calibration.
    """
    bought = evaluation.purchases > 0
    calibrators: dict[str, object] = {}
    for name, forecast in forecasts.items():
        calibration = calibrate_on_holdout(
            forecast["p_purchase"].to_numpy(dtype="float64"), bought, random_state=random_state
        )
        if calibration is None:
            continue
        calibrators[name] = calibration.calibrator
        rows[name]["brier_uncalibrated"] = rows[name]["brier"]
        rows[name]["brier"] = calibration.brier
        rows[name]["p_purchase_mean"] = calibration.mean_probability
    return calibrators
