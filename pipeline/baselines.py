"""The forecasts a user would pick instead of the project's, judged by the same backtest.

- :func:`last_period_again`: "the last horizon again" (who bought in the last horizon buys again,
  as much as then);
- :func:`rfm_segments`: the classic RFM quintile segment map (Champions ... Lost), for the
  per-status table;
- :func:`lifetimes_as_is`: `lifetimes` BG/NBD or Pareto/NBD + Gamma-Gamma with default settings,
  as a user would call them. This module imports lifetimes directly on purpose: the point is to
  measure the library without the project's guards (:mod:`pipeline.clv`). Each fit runs in a
  worker process, so a crash inside scipy or a fit that does not converge becomes a
  ``failed: reason`` row instead of ending the backtest.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

BGNBD, PARETO = "bgnbd", "pareto"
FORECAST_COLUMNS = ("p_alive", "p_purchase", "expected_purchases", "expected_spend")
# The R/F grid of the common RFM segment map (recency score first, then frequency; 5 = best),
# tried in order. It covers all 25 cells.
RFM_SEGMENTS: tuple[tuple[str, str], ...] = (
    ("Champions", r"5[4-5]"),
    ("Loyal", r"[3-4][4-5]"),
    ("Potential loyalist", r"[4-5][2-3]"),
    ("New", r"51"),
    ("Promising", r"41"),
    ("Need attention", r"33"),
    ("About to sleep", r"3[1-2]"),
    ("Can't lose", r"[1-2]5"),
    ("At risk", r"[1-2][3-4]"),
    ("Lost", r"11"),
    ("Hibernating", r"[1-2][1-2]"),
)
RFM_ORDER = tuple(name for name, _ in RFM_SEGMENTS)
# Long enough for Pareto/NBD on CDNOW's 23,570 customers on a busy two-core machine (about a
# minute measured); a fit that takes ten times that is reported as failed, not waited for.
FIT_TIMEOUT_SECONDS = 600


def last_period_again(
    purchases_last: np.ndarray | pd.Series, spend_last: np.ndarray | pd.Series
) -> pd.DataFrame:
    """ "The last horizon again": the forecast for (cut-off, cut-off + H] is (cut-off - H, cut-off].

    Returns one row per customer: ``p_purchase`` (1 if they bought in the last horizon, else 0),
    ``score`` (purchases in the last horizon, ties broken by its spend: a ranking, for the AUCs),
    ``expected_purchases`` and ``expected_spend`` (the last horizon's).
    """
    purchases = np.asarray(purchases_last, dtype="float64")
    spend = np.asarray(spend_last, dtype="float64")
    # The spend term stays below 1, so it only orders customers with the same purchase count.
    tiebreak = spend / (1.0 + np.abs(spend).max()) if len(spend) else spend
    return pd.DataFrame(
        {
            "p_purchase": (purchases > 0).astype("float64"),
            "score": purchases + tiebreak,
            "expected_purchases": purchases,
            "expected_spend": spend,
        }
    )


def _quintile_score(values: pd.Series, *, higher_is_better: bool) -> pd.Series:
    # Tied customers share the lowest score of their range: the many one-time buyers all get
    # frequency score 1 (an average rank would lift them to 2 once they are over 40% of the base,
    # leaving score 1, and New and Lost, empty; splitting ties would be arbitrary).
    ranks = values.rank(method="min", pct=True, ascending=higher_is_better)
    return np.ceil(ranks * 5).clip(1, 5).astype("int64")


def rfm_segments(features: pd.DataFrame) -> pd.DataFrame:
    """The classic RFM segment map from one row per customer.

    Recency score: quintile of ``days_since_last_purchase`` (5 = most recent); frequency score:
    quintile of ``orders`` (purchase days; 5 = most). The (R, F) pair names the segment by
    :data:`RFM_SEGMENTS`. Returns ``customer_id``, ``r_score``, ``f_score`` and ``rfm_segment``.
    """
    r_score = _quintile_score(features["days_since_last_purchase"], higher_is_better=False)
    f_score = _quintile_score(features["orders"], higher_is_better=True)
    cells = r_score.astype(str) + f_score.astype(str)
    segment = pd.Series(pd.NA, index=features.index, dtype="string")
    for name, pattern in RFM_SEGMENTS:
        segment = segment.mask(segment.isna() & cells.str.fullmatch(pattern), name)
    return pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "r_score": r_score.to_numpy(),
            "f_score": f_score.to_numpy(),
            "rfm_segment": segment.to_numpy(),
        }
    )


def _fit_lifetimes(
    summary: pd.DataFrame, horizon_days: int, kind: str, seed: int = 0
) -> pd.DataFrame:
    """Runs in a worker process: fit with lifetimes' defaults and forecast the horizon."""
    import warnings

    from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter

    warnings.simplefilter("ignore")
    # lifetimes draws its starting point from the global np.random: seeded, a backtest repeats.
    np.random.seed(seed)  # noqa: NPY002 (lifetimes reads the legacy global state)
    x = summary["frequency"].to_numpy(dtype="float64")
    t_x = summary["recency"].to_numpy(dtype="float64")
    big_t = summary["T"].to_numpy(dtype="float64")
    t = float(horizon_days)
    if kind == BGNBD:
        fitter = BetaGeoFitter().fit(x, t_x, big_t)
        r, alpha = fitter.params_["r"], fitter.params_["alpha"]
        p_alive = fitter.conditional_probability_alive(x, t_x, big_t)
        # P(at least one purchase in (T, T + t]) = P(alive) x (1 - P(no purchase | alive)); given
        # alive, the purchase rate's posterior is Gamma(r + x, alpha + T).
        p_purchase = p_alive * (1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x))
    elif kind == PARETO:
        fitter = ParetoNBDFitter().fit(x, t_x, big_t)
        p_alive = fitter.conditional_probability_alive(x, t_x, big_t)
        p_none = fitter.conditional_probability_of_n_purchases_up_to_time(0, t, x, t_x, big_t)
        p_purchase = 1 - np.asarray(p_none, dtype="float64")
    else:
        raise ValueError(f"unknown lifetimes model {kind!r}")
    expected = fitter.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, big_t)
    repeat = (x > 0) & (summary["monetary_value"].to_numpy() > 0)
    spend_model = GammaGammaFitter().fit(x[repeat], summary["monetary_value"].to_numpy()[repeat])
    per_purchase = spend_model.conditional_expected_average_profit(
        pd.Series(x), summary["monetary_value"].reset_index(drop=True)
    )
    expected = np.asarray(expected, dtype="float64")
    return pd.DataFrame(
        {
            "p_alive": np.asarray(p_alive, dtype="float64"),
            "p_purchase": np.asarray(p_purchase, dtype="float64"),
            "expected_purchases": expected,
            "expected_spend": expected * np.asarray(per_purchase, dtype="float64"),
        }
    )


@dataclass(frozen=True)
class BaselineForecast:
    """One baseline's forecasts (None when its fit failed, with the reason)."""

    name: str
    forecasts: pd.DataFrame | None
    failure: str = ""
    nonfinite: int = 0  # forecasts lifetimes returned as NaN or inf, set to 0 (as-is, counted)


def lifetimes_summary(features: pd.DataFrame) -> pd.DataFrame:
    """lifetimes' RFM summary columns from the project's features (same definitions, days)."""
    return pd.DataFrame(
        {
            "frequency": features["frequency"].to_numpy(dtype="float64"),
            "recency": features["recency_days"].to_numpy(dtype="float64"),
            "T": features["tenure_days"].to_numpy(dtype="float64"),
            "monetary_value": features["monetary"].fillna(0).to_numpy(dtype="float64"),
        }
    )


def _executor():
    # The same pool as the project's own isolated fits (one per process): asked for with other
    # settings, loky would rebuild it under the other's running fits.
    from pipeline.clv import isolated_executor

    return isolated_executor()


def submit_lifetimes(
    summary: pd.DataFrame, horizon_days: int, kind: str, *, seed: int = 0
) -> Future:
    """Start one as-is fit in a worker process; collect it with :func:`collect_lifetimes`."""
    return _executor().submit(_fit_lifetimes, summary, horizon_days, kind, seed)


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    text = re.sub(r"\s+", " ", text)
    return f"{type(error).__name__}: {text[:160]}"


def collect_lifetimes(
    future: Future, *, kind: str, timeout: float = FIT_TIMEOUT_SECONDS
) -> BaselineForecast:
    """The worker's forecasts, or why there are none (a crash, an exception, a timeout)."""
    name = f"lifetimes_{kind}"
    try:
        forecasts = future.result(timeout=timeout)
    except FutureTimeout:
        _executor().shutdown(wait=False, kill_workers=True)
        return BaselineForecast(name, None, f"failed: no result within {timeout:.0f} s")
    except Exception as error:  # a crashed worker (SIGSEGV) or the fit's own exception
        log.warning("%s failed: %s", name, _reason(error))
        return BaselineForecast(name, None, f"failed: {_reason(error)}")
    values = forecasts[list(FORECAST_COLUMNS)].to_numpy()
    nonfinite = int((~np.isfinite(values)).any(axis=1).sum())
    if nonfinite == len(forecasts):
        return BaselineForecast(name, None, "failed: every forecast is NaN or infinite")
    cleaned = forecasts.where(np.isfinite(forecasts), 0.0)
    return BaselineForecast(name, cleaned, "", nonfinite)


def lifetimes_as_is(
    summary: pd.DataFrame, horizon_days: int, kind: str, *, seed: int = 0
) -> BaselineForecast:
    """Fit one lifetimes model with its defaults (+ Gamma-Gamma) in a worker process.

    Parameters
    ----------
    summary
        One row per customer: ``frequency``, ``recency``, ``T``, ``monetary_value`` (days).
    kind
        ``bgnbd`` or ``pareto``.

    Returns
    -------
    BaselineForecast
        ``p_alive``, ``p_purchase`` (P(at least one purchase within the horizon)),
        ``expected_purchases`` and ``expected_spend`` per customer, or the failure's reason.
    """
    return collect_lifetimes(submit_lifetimes(summary, horizon_days, kind, seed=seed), kind=kind)
