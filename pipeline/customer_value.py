"""Customer value, measured rather than assumed: candidates compared on a holdout, the best used.

The history is split by date: everything up to ``as_of - holdout_days`` calibrates, the last
``holdout_days`` are what actually happened. Every candidate (BG/NBD, Pareto/NBD, MBG/NBD with
Gamma-Gamma, and a learned spend model) forecasts the holdout from the calibration data; the
best by the configured metric is refitted on the full history and used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from pipeline.clv import NO_DROPOUT, CustomerValueModel
from pipeline.config import CLVConfig
from pipeline.errors import InsufficientHistoryError
from pipeline.evaluate import decile_table, holdout_metrics
from pipeline.features import CustomerHistory
from pipeline.learned_value import LearnedSpendModel
from pipeline.schema import CUSTOMER_ID

log = logging.getLogger(__name__)

LEARNED = "learned"
# Metrics where a smaller value is better; the others are better larger.
SMALLER_IS_BETTER = {"spend_mae", "purchases_mae", "purchases_rmse"}


@dataclass
class ValueForecaster:
    """The fitted value model of a bundle: purchases from a BTYD model, spend optionally learned."""

    purchase_model: CustomerValueModel
    spend_model: LearnedSpendModel | None = None
    spend_window_days: int | None = None

    @property
    def name(self) -> str:
        return LEARNED if self.spend_model is not None else self.purchase_model.purchase_model

    def predict(self, features: pd.DataFrame, *, horizon_days: int) -> pd.DataFrame:
        """Same columns as :meth:`CustomerValueModel.predict`, with the learned spend if any."""
        forecast = self.purchase_model.predict(features, horizon_days=horizon_days)
        if self.spend_model is None:
            return forecast
        window = self.purchase_model.predict(features, horizon_days=self.spend_window_days)
        inputs = pd.concat(
            [features, window[["p_alive", "expected_purchases", "expected_spend"]]], axis=1
        )
        # The learned model forecasts its training window; a longer horizon scales linearly.
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


@dataclass
class ValueSelection:
    """The chosen forecaster and the evidence for the choice."""

    forecaster: ValueForecaster
    chosen: str
    comparison: pd.DataFrame
    deciles: pd.DataFrame | None
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)


def _is_better(metric: str, candidate: float, incumbent: float) -> bool:
    if np.isnan(candidate):
        return False
    if np.isnan(incumbent):
        return True
    return candidate < incumbent if metric in SMALLER_IS_BETTER else candidate > incumbent


def _best(comparison: pd.DataFrame, metric: str, among: list[str]) -> str | None:
    ranked = _ranked(comparison, metric, among)
    return ranked[0] if ranked else None


def _ranked(comparison: pd.DataFrame, metric: str, among: list[str]) -> list[str]:
    """Candidates in ``among`` that were scored, best first (unscored ones are left out)."""
    scored = [n for n in among if n in comparison.index and metric in comparison.columns]
    values = {n: comparison.loc[n, metric] for n in scored}
    usable = [n for n in scored if not np.isnan(values[n])]
    return sorted(usable, key=lambda n: values[n], reverse=metric not in SMALLER_IS_BETTER)


class _Candidates:
    """Builds candidate models with the run's settings."""

    def __init__(self, config: CLVConfig, *, trend_window_days: int, random_state: int) -> None:
        self.config = config
        self.trend_window_days = trend_window_days
        self.random_state = random_state

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

    def learned_model(
        self, features: pd.DataFrame, spend: np.ndarray, *, window_days: int, base_kind: str
    ) -> LearnedSpendModel:
        """Train on features at a cut-off against each customer's spend in the window after it."""
        base = (
            self.purchase_model(base_kind).fit(features).predict(features, horizon_days=window_days)
        )
        inputs = pd.concat(
            [features, base[["p_alive", "expected_purchases", "expected_spend"]]], axis=1
        )
        limit = self.config.fit_sample_size
        if limit is not None and len(inputs) > limit:
            rows = np.sort(
                np.random.default_rng(self.random_state).choice(len(inputs), limit, replace=False)
            )
            inputs, spend = inputs.iloc[rows], spend[rows]
        return LearnedSpendModel(random_state=self.random_state).fit(inputs, spend)


@dataclass(frozen=True)
class HoldoutWindows:
    """What the value models are compared on: features at earlier cut-offs and what followed.

    ``calibration`` holds the features at ``as_of - holdout_days`` and ``holdout_purchases`` /
    ``holdout_spend`` what each of those customers bought in the holdout after it (None when
    the history is too short for a holdout and as much calibration); ``learning`` /
    ``learning_spend`` the same one holdout earlier, on which the learned model is trained
    before it is scored (None when the history is too short for that too).
    """

    holdout_days: int
    first_day: pd.Timestamp
    calibration: pd.DataFrame | None = None
    holdout_purchases: np.ndarray | None = None
    holdout_spend: np.ndarray | None = None
    learning: pd.DataFrame | None = None
    learning_spend: np.ndarray | None = None


def holdout_windows(
    history: CustomerHistory, *, as_of: pd.Timestamp, holdout_days: int
) -> HoldoutWindows:
    """Compute the :class:`HoldoutWindows` on the feature engine (its only use of it)."""
    holdout = pd.Timedelta(days=holdout_days)
    first_day = history.first_day()
    calibration_end = as_of - holdout
    if calibration_end - first_day < holdout:
        return HoldoutWindows(holdout_days, first_day)
    calibration = history.features(calibration_end)
    purchases, spend = history.purchases_between(
        calibration[CUSTOMER_ID], start=calibration_end, end=as_of
    )
    windows = HoldoutWindows(holdout_days, first_day, calibration, purchases, spend)
    learning_end = calibration_end - holdout
    if learning_end - first_day < holdout:
        return windows
    learning = history.features(learning_end)
    _, learning_spend = history.purchases_between(
        learning[CUSTOMER_ID], start=learning_end, end=calibration_end
    )
    return replace(windows, learning=learning, learning_spend=learning_spend)


def select_value_model(
    windows: HoldoutWindows,
    features: pd.DataFrame,
    *,
    config: CLVConfig,
    trend_window_days: int,
    random_state: int,
) -> ValueSelection:
    """Compare the candidates on the holdout, refit the best on the full history.

    Parameters
    ----------
    windows
        Features at the calibration cut-offs and what happened after them
        (:func:`holdout_windows`), computed with the same holdout length as ``config``'s.
    features
        Features at as-of (one row per customer) for the final fit.
    """
    candidates = _Candidates(config, trend_window_days=trend_window_days, random_state=random_state)
    purchase_kinds = [c for c in config.candidates if c != LEARNED]
    holdout = config.holdout_days
    if windows.holdout_days != holdout:
        raise ValueError(f"windows of {windows.holdout_days} days for a {holdout}-day holdout")
    notes: list[str] = []
    rows: dict[str, dict[str, float]] = {}
    forecasts: dict[str, np.ndarray] = {}
    actual_spend = None

    if windows.calibration is None:
        notes.append(
            f"history from {windows.first_day.date()} is too short for a {holdout}-day holdout "
            f"and as much calibration: no comparison, {purchase_kinds[0]} used"
        )
    else:
        calibration = windows.calibration
        actual_purchases, actual_spend = windows.holdout_purchases, windows.holdout_spend
        base_outputs = None
        # Purchases without dropout are also tried, and scored like the others, when no
        # configured purchase model can be fitted.
        fallback = [] if NO_DROPOUT in purchase_kinds else [NO_DROPOUT]
        for kind in [*purchase_kinds, *fallback]:
            if kind in fallback and rows:
                continue
            try:
                forecast = (
                    candidates.purchase_model(kind)
                    .fit(calibration)
                    .predict(calibration, horizon_days=holdout)
                )
            except (RuntimeError, ValueError) as error:
                notes.append(f"{kind} could not be fitted on the calibration period: {error}")
                continue
            rows[kind] = holdout_metrics(
                actual_purchases=actual_purchases,
                predicted_purchases=forecast["expected_purchases"].to_numpy(),
                actual_spend=actual_spend,
                predicted_spend=forecast["expected_spend"].to_numpy(),
            )
            forecasts[kind] = forecast["expected_spend"].to_numpy()
            base_outputs = base_outputs if base_outputs is not None else (kind, forecast)
        if LEARNED in config.candidates and base_outputs is not None:
            if windows.learning is None:
                notes.append(
                    "history too short to train the learned model before the holdout: skipped"
                )
            else:
                base_kind, base_forecast = base_outputs
                try:
                    model = candidates.learned_model(
                        windows.learning,
                        windows.learning_spend,
                        window_days=holdout,
                        base_kind=base_kind,
                    )
                except (RuntimeError, ValueError) as error:
                    notes.append(f"learned model could not be trained before the holdout: {error}")
                else:
                    inputs = pd.concat(
                        [
                            calibration,
                            base_forecast[["p_alive", "expected_purchases", "expected_spend"]],
                        ],
                        axis=1,
                    )
                    forecasts[LEARNED] = model.predict(inputs)
                    rows[LEARNED] = holdout_metrics(
                        actual_purchases=None,
                        predicted_purchases=None,
                        actual_spend=actual_spend,
                        predicted_spend=forecasts[LEARNED],
                    )
    comparison = pd.DataFrame.from_dict(rows, orient="index").rename_axis("candidate")
    metric = config.selection_metric
    chosen = _best(comparison, metric, list(comparison.index)) or purchase_kinds[0]
    scored_purchase_kinds = list(dict.fromkeys([*purchase_kinds, NO_DROPOUT]))
    purchase_kind = (
        chosen
        if chosen != LEARNED
        else (_best(comparison, metric, scored_purchase_kinds) or purchase_kinds[0])
    )

    # A model that fails on the full history gives way to the next best, never to a crash; when
    # every dropout model fails (a base in which nobody is seen to leave), purchases without
    # dropout are what the data supports.
    fallbacks = [purchase_kind] + [
        k
        for k in _ranked(comparison, metric, scored_purchase_kinds) + scored_purchase_kinds
        if k != purchase_kind
    ]
    purchase_model, failure = None, ""
    for kind in dict.fromkeys(fallbacks):
        try:
            purchase_model = candidates.purchase_model(kind).fit(features)
            break
        except (RuntimeError, ValueError) as error:
            failure = f"{kind}: {error}"
            notes.append(
                f"{kind} could not be fitted on the full history ({error}); trying the next model"
            )
    if purchase_model is None:
        repeaters = int((features["frequency"] > 0).sum())
        raise InsufficientHistoryError(
            f"too little purchase history to fit any customer-value model: {len(features)} "
            f"customers, {repeaters} with a repeat purchase (the last model tried, {failure}). "
            "The BTYD models need repeat buyers: train on more customers or a longer history"
        )
    purchase_kind = purchase_model.purchase_model
    if chosen != LEARNED:
        chosen = purchase_kind
    spend_model = None
    if chosen == LEARNED:
        try:
            # Refitted on the latest window: features at the holdout's start, spend in it.
            spend_model = candidates.learned_model(
                windows.calibration,
                windows.holdout_spend,
                window_days=holdout,
                base_kind=purchase_kind,
            )
        except (RuntimeError, ValueError) as error:
            notes.append(f"learned model could not be refitted ({error}); {purchase_kind} used")
            chosen = purchase_kind
    forecaster = ValueForecaster(
        purchase_model, spend_model, holdout if spend_model is not None else None
    )

    metrics = {f"{k}": float(v) for k, v in purchase_model.metrics_.items()}
    if chosen in comparison.index:
        metrics.update(
            {f"holdout_{k}": float(v) for k, v in comparison.loc[chosen].items() if pd.notna(v)}
        )
        if chosen == LEARNED and purchase_kind in comparison.index:
            # Purchase accuracy comes from the purchase model the learned spend builds on.
            metrics.update(
                {
                    f"holdout_{k}": float(v)
                    for k, v in comparison.loc[purchase_kind].items()
                    if k.startswith("purchases_") and pd.notna(v)
                }
            )
    for note in notes:
        log.warning(note)
    deciles = decile_table(actual_spend, forecasts[chosen]) if chosen in forecasts else None
    return ValueSelection(forecaster, chosen, comparison.reset_index(), deciles, metrics, notes)
