"""Customer value stage: the adapter over `lifetimes` (the only module that imports it).

BG/NBD predicts how many purchases a customer makes over the horizon and the probability that
they are still a customer; Gamma-Gamma predicts the value of each purchase. Time is in days
throughout. lifetimes 0.11.3 is unmaintained, so every fit is checked (finite parameters,
retried with a stronger penalizer on failure) and no NaN or infinite prediction leaves here.
"""

from __future__ import annotations

import logging
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = (
    "frequency",
    "recency_days",
    "tenure_days",
    "monetary",
    "spend_recent",
    "total_spend",
)
MAX_PENALIZER_RETRIES = 3
VALUE_TRENDS = ("declining", "stable", "rising")


def lifetimes_dataset_path(name: str) -> Path:
    """Path of a data file shipped inside the lifetimes wheel.

    ``lifetimes.datasets`` needs ``pkg_resources``, which setuptools >= 82 no longer has, so the
    files are located with ``importlib.resources`` instead.
    """
    folder = resources.files("lifetimes") / "datasets"
    path = Path(str(folder / name))
    if not path.exists():
        available = sorted(p.name for p in folder.iterdir() if p.name.endswith((".csv", ".txt")))
        raise FileNotFoundError(f"lifetimes ships no data file '{name}'; available: {available}")
    return path


def _check_input(customers: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in customers.columns]
    if missing:
        raise ValueError(f"customer value model needs columns {missing}")
    for column in ("frequency", "recency_days", "tenure_days", "monetary"):
        negative = customers[column] < 0
        if negative.any():
            raise ValueError(
                f"column '{column}' is negative for customer {_first_id(customers, negative)}"
            )
    beyond = customers["recency_days"] > customers["tenure_days"]
    if beyond.any():
        raise ValueError(
            f"column 'recency_days' exceeds tenure_days for customer {_first_id(customers, beyond)}"
        )


def _first_id(customers: pd.DataFrame, mask: pd.Series) -> str:
    row = customers.loc[mask].iloc[0]
    return str(row["customer_id"]) if "customer_id" in customers.columns else str(row.name)


def _fit_with_retries(make, fit_args: tuple, penalizer: float, name: str):
    """Fit a lifetimes model; on failure or non-finite parameters retry with 10x the penalizer."""
    attempt_penalizer = penalizer
    last_problem = "no attempt"
    for attempt in range(MAX_PENALIZER_RETRIES + 1):
        model = make(attempt_penalizer)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                model.fit(*fit_args)
            params = np.asarray(model.params_, dtype="float64")
            if np.all(np.isfinite(params)) and np.all(params > 0):
                return model, attempt_penalizer
            last_problem = f"non-finite or non-positive parameters {dict(model.params_)}"
        except Exception as error:  # lifetimes raises ConvergenceError, LinAlgError, ValueError...
            last_problem = f"{error.__class__.__name__}: {error}"
        next_penalizer = max(attempt_penalizer * 10, 0.001)
        if attempt < MAX_PENALIZER_RETRIES:
            log.warning(
                "%s fit failed with penalizer %g (%s); retrying with %g",
                name,
                attempt_penalizer,
                last_problem,
                next_penalizer,
            )
        attempt_penalizer = next_penalizer
    raise RuntimeError(
        f"{name} could not be fitted after {MAX_PENALIZER_RETRIES} retries: {last_problem}"
    )


class CustomerValueModel(BaseEstimator):
    """BG/NBD purchases and Gamma-Gamma spend, with a per-customer value trend.

    Parameters
    ----------
    penalizer, monetary_penalizer
        L2 penalizers of the BG/NBD and Gamma-Gamma fits (raised automatically on failure).
    trend_window_days
        The recent window whose realised spend rate is compared with the customer's past.
    declining_below, rising_above
        ``trend_ratio`` thresholds of the ``value_trend`` classes.
    random_state
        Kept for the scikit-learn contract and logged; the lifetimes fits used here start from
        fixed points and draw no random numbers.
    """

    def __init__(
        self,
        *,
        penalizer: float = 0.001,
        monetary_penalizer: float = 0.001,
        trend_window_days: int = 180,
        declining_below: float = 0.7,
        rising_above: float = 1.3,
        random_state: int | None = None,
    ) -> None:
        self.penalizer = penalizer
        self.monetary_penalizer = monetary_penalizer
        self.trend_window_days = trend_window_days
        self.declining_below = declining_below
        self.rising_above = rising_above
        self.random_state = random_state

    def fit(self, customers: pd.DataFrame, y: None = None) -> CustomerValueModel:
        """Fit on one row per customer (``frequency``, ``recency_days``, ``tenure_days``, ``monetary``)."""
        _check_input(customers)
        frequency = customers["frequency"].to_numpy(dtype="float64")
        recency = customers["recency_days"].to_numpy(dtype="float64")
        tenure = customers["tenure_days"].to_numpy(dtype="float64")
        # A customer observed for zero days breaks the likelihood; half a day is the same
        # information without the singularity.
        tenure = np.maximum(tenure, 0.5)
        purchase_model, self.purchase_penalizer_ = _fit_with_retries(
            lambda p: BetaGeoFitter(penalizer_coef=p),
            (frequency, recency, tenure),
            self.penalizer,
            "BG/NBD",
        )
        repeat = (customers["frequency"] > 0) & (customers["monetary"] > 0)
        if repeat.sum() < 2:
            raise ValueError("Gamma-Gamma needs at least two customers with a repeat purchase")
        spend_model, self.spend_penalizer_ = _fit_with_retries(
            lambda p: GammaGammaFitter(penalizer_coef=p),
            (customers.loc[repeat, "frequency"], customers.loc[repeat, "monetary"]),
            self.monetary_penalizer,
            "Gamma-Gamma",
        )
        # Only the parameters are kept: lifetimes' fitters hold lambdas that cannot be pickled
        # into a bundle, and the parameters are all the predictions need.
        self.purchase_params_ = {k: float(v) for k, v in purchase_model.params_.items()}
        self.spend_params_ = {k: float(v) for k, v in spend_model.params_.items()}
        p, q, v = (self.spend_params_[k] for k in ("p", "q", "v"))
        # The population mean spend per purchase implied by Gamma-Gamma: E[M] = p v / (q - 1).
        self.population_mean_spend_ = (
            p * v / (q - 1) if q > 1 else float(customers.loc[repeat, "monetary"].mean())
        )
        correlation = float(
            np.corrcoef(customers.loc[repeat, "frequency"], customers.loc[repeat, "monetary"])[0, 1]
        )
        if abs(correlation) > 0.3:
            log.warning(
                "frequency and spend per purchase correlate (%.2f): Gamma-Gamma assumes they do not",
                correlation,
            )
        self.metrics_ = {
            "n_customers": float(len(customers)),
            "n_repeat_customers": float(repeat.sum()),
            "bgnbd_log_likelihood": float(-purchase_model._negative_log_likelihood_),
            "bgnbd_penalizer": float(self.purchase_penalizer_),
            "gamma_gamma_penalizer": float(self.spend_penalizer_),
            "frequency_monetary_correlation": correlation,
            "population_mean_spend": float(self.population_mean_spend_),
            **{f"bgnbd_{k}": v for k, v in self.purchase_params_.items()},
            **{f"gamma_gamma_{k}": v for k, v in self.spend_params_.items()},
        }
        return self

    def predict(self, customers: pd.DataFrame, *, horizon_days: int) -> pd.DataFrame:
        """Per-customer forecasts over ``horizon_days`` and the value trend.

        Returns
        -------
        pd.DataFrame
            Same index as ``customers``: ``p_alive``, ``expected_purchases``,
            ``expected_spend``, ``trend_ratio`` and ``value_trend``. Never NaN or infinite.
        """
        check_is_fitted(self, "purchase_params_")
        _check_input(customers)
        frequency = customers["frequency"].to_numpy(dtype="float64")
        recency = customers["recency_days"].to_numpy(dtype="float64")
        tenure = np.maximum(customers["tenure_days"].to_numpy(dtype="float64"), 0.5)
        monetary = customers["monetary"].to_numpy(dtype="float64")

        purchase_model = BetaGeoFitter()
        purchase_model.params_ = pd.Series(self.purchase_params_)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p_alive = np.asarray(
                purchase_model.conditional_probability_alive(frequency, recency, tenure),
                dtype="float64",
            )
            purchases = np.asarray(
                purchase_model.conditional_expected_number_of_purchases_up_to_time(
                    horizon_days, frequency, recency, tenure
                ),
                dtype="float64",
            )
        repaired = int((~np.isfinite(p_alive)).sum() + (~np.isfinite(purchases)).sum())
        if repaired:
            log.warning(
                "BG/NBD gave %d non-finite predictions; repaired from the customer's own rate",
                repaired,
            )
        # Where the closed form overflows (extreme frequency), the customer's own observed rate
        # over the horizon is the sensible forecast and they are evidently alive.
        own_rate = frequency / tenure * horizon_days
        p_alive = np.clip(np.where(np.isfinite(p_alive), p_alive, 1.0), 0.0, 1.0)
        purchases = np.where(np.isfinite(purchases), purchases, own_rate).clip(min=0.0)

        spend_per_purchase = self._spend_per_purchase(frequency, monetary)
        expected_spend = purchases * spend_per_purchase
        trend_ratio = self._trend_ratio(customers, expected_spend, horizon_days)
        value_trend = np.select(
            [trend_ratio < self.declining_below, trend_ratio > self.rising_above],
            ["declining", "rising"],
            default="stable",
        )
        self.last_repaired_ = repaired
        return pd.DataFrame(
            {
                "p_alive": p_alive,
                "expected_purchases": purchases,
                "expected_spend": expected_spend,
                "trend_ratio": trend_ratio,
                "value_trend": value_trend,
            },
            index=customers.index,
        )

    def _spend_per_purchase(self, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
        p, q, v = (self.spend_params_[k] for k in ("p", "q", "v"))
        # Gamma-Gamma conditional expectation, written out so that customers without a repeat
        # purchase (or with non-positive spend) get the population mean instead of NaN.
        known = (frequency > 0) & (monetary > 0)
        weight = (q - 1) / (p * frequency + q - 1)
        with np.errstate(all="ignore"):
            conditional = weight * self.population_mean_spend_ + (1 - weight) * monetary
        spend = np.where(known & np.isfinite(conditional), conditional, self.population_mean_spend_)
        return np.clip(spend, 0.0, None)

    def _trend_ratio(
        self, customers: pd.DataFrame, expected_spend: np.ndarray, horizon_days: int
    ) -> np.ndarray:
        """Forward-looking and recent value rate against the customer's own past rate.

        trend_ratio = mean(recent realised rate, forecast rate) / past realised rate, where the
        past is everything before the recent window. A customer whose history is shorter than
        two windows has no past of their own to compare with: their forecast rate is compared
        with their lifetime realised rate instead.
        """
        window = float(self.trend_window_days)
        tenure = customers["tenure_days"].to_numpy(dtype="float64")
        total = customers["total_spend"].to_numpy(dtype="float64")
        recent = customers["spend_recent"].to_numpy(dtype="float64")
        past_rate = (total - recent) / np.maximum(tenure - window, 1.0)
        recent_rate = recent / window
        forecast_rate = expected_spend / float(horizon_days)
        lifetime_rate = total / np.maximum(tenure, 1.0)
        has_past = (tenure >= 2 * window) & (past_rate > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            against_past = 0.5 * (recent_rate + forecast_rate) / past_rate
            against_lifetime = forecast_rate / lifetime_rate
        ratio = np.where(has_past, against_past, against_lifetime)
        # No spend at all to compare against: nothing suggests a change.
        ratio = np.where(np.isfinite(ratio), ratio, 1.0)
        return np.clip(ratio, 0.0, 100.0)
