"""Customer value stage: the adapter over `lifetimes` (the only module that imports it).

A purchase model (BG/NBD, Pareto/NBD or modified BG/NBD) predicts how many purchases a customer
makes over the horizon and the probability that they are still a customer; Gamma-Gamma predicts
the value of each purchase. Where a base shows no dropout at all (a history too short to see
anyone leave), every dropout model's dropout parameters collapse to zero; the NBD model, their
limit without dropout (Ehrenberg's Gamma-Poisson; ours, lifetimes has none), is the fallback. Time is in days throughout (horizon in days, discount rate per
year). lifetimes 0.11.3 is unmaintained, so every fit is checked (finite, plausible parameters;
Pareto/NBD's optimiser restarted to confirm convergence; retried with a stronger penalizer on
failure) and no NaN or infinite prediction leaves this module.

Fits run on the distinct (frequency, recency, T) rows weighted by their counts, which gives
the same likelihood as one row per customer at a fraction of the cost, and optionally on a
seeded sample of customers (``fit_sample_size``) for very large bases.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import functools
import io
import logging
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from scipy.optimize import OptimizeResult, minimize
from scipy.special import gammaln, hyp2f1
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from pipeline.config import MAX_HORIZON_DAYS
from pipeline.sampling import seeded_rows

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = (
    "frequency",
    "recency_days",
    "tenure_days",
    "monetary",
    "spend_recent",
    "total_spend",
)
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


PURCHASE_MODELS = ("bgnbd", "pareto_nbd", "mbgnbd", "nbd")
# Gamma-Poisson purchases without dropout: what the three above become when nobody leaves.
NO_DROPOUT = "nbd"
_FITTERS = {"bgnbd": BetaGeoFitter, "pareto_nbd": ParetoNBDFitter, "mbgnbd": ModifiedBetaGeoFitter}
PURCHASE_MODEL_LABELS = {
    "bgnbd": "BG/NBD",
    "pareto_nbd": "Pareto/NBD",
    "mbgnbd": "MBG/NBD",
    "nbd": "NBD (no dropout)",
}
# Parameters beyond these are not a customer base but a numerical accident: a dropout
# parameter collapsed to 1e-60 says "nobody ever leaves" only because the optimiser ran off.
ABSURD_PARAMETER = 1e6
DEGENERATE_PARAMETER = 1e-8
CLV_STEP_DAYS = 30


def _distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of the stacked columns (sorted), their counts, and the map back to every row.

    Hashing (a pandas group-by) rather than ``np.unique(axis=0)``, which sorts whole rows: for
    a million customers that sort alone took most of the CLV stage.
    """
    frame = pd.DataFrame({f"c{i}": np.asarray(c, dtype="float64") for i, c in enumerate(columns)})
    grouped = frame.groupby(list(frame.columns), sort=True)
    counts = grouped.size()
    unique = counts.index.to_frame(index=False)
    inverse = grouped.ngroup().to_numpy()
    return [unique[c].to_numpy() for c in frame.columns], counts.to_numpy(), inverse


def _check_parameters(params: dict[str, float], name: str) -> str | None:
    values = np.array(list(params.values()), dtype="float64")
    if not np.all(np.isfinite(values)):
        return f"non-finite parameters {params}"
    if np.any(values <= 0):
        return f"non-positive parameters {params}"
    if np.any(values > ABSURD_PARAMETER):
        return f"absurd parameters {params} (above {ABSURD_PARAMETER:g})"
    if np.any(values < DEGENERATE_PARAMETER):
        return f"degenerate parameters {params} (below {DEGENERATE_PARAMETER:g})"
    return None


def run_isolated(function, *args, **kwargs):
    """``function(*args, **kwargs)`` in a worker process, so that a native crash fails the call.

    lifetimes' likelihoods call scipy's hyp2f1, which has crashed a whole training with SIGSEGV
    (exit 139, nothing written). In a worker, that crash is this call's RuntimeError: the caller
    reports it as the candidate's failure and goes on with the others. The worker is reused
    between calls (loky), so the isolation costs one process start per run, not per fit.
    """
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    try:
        return isolated_executor().submit(function, *args, **kwargs).result()
    except TerminatedWorkerError as error:
        reason = " ".join(str(error).split())[:200]
        raise RuntimeError(
            f"crashed in a native routine, the run goes on without it ({reason})"
        ) from None


ISOLATED_WORKERS = 2


def _ready() -> bool:
    """A task that does nothing but make its worker import this module (lifetimes, scipy)."""
    return True


def warm_isolated_workers() -> None:
    """Start the fit workers and their imports now, without waiting for them.

    A worker takes about 2 s to start and import lifetimes; a training calls this before its
    feature stage, so that time overlaps the features and the clustering instead of adding to
    the value stage (each worker takes one task: both are warm when the fits arrive).
    """
    executor = isolated_executor()
    for _ in range(ISOLATED_WORKERS):
        executor.submit(_ready)


def isolated_executor():
    """The process's pool of workers for native fits that may crash (loky's is one per process,
    so every caller must ask for it with the same settings, or each call rebuilds it).

    Two workers: the backtest's two as-is lifetimes fits run side by side. A worker idle for
    20 s exits: the fits of one run follow each other closely, and a worker orphaned by a
    killed run (it holds the run's stdout) must not outlive it by minutes.
    """
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=ISOLATED_WORKERS, timeout=20)


def stop_isolated_workers() -> None:
    """End the fit workers now (after what they are running). They hold the process's stdout
    and stderr: a caller that waits for them to close (a scheduler, a test capturing output)
    would otherwise wait for their idle timeout after the run has ended."""
    isolated_executor().shutdown(wait=True)


def releases_isolated_workers(function):
    """Decorate a stage that fits in the isolated workers: they end with it."""

    @functools.wraps(function)
    def stage(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            stop_isolated_workers()

    return stage


class DropoutCollapsed(RuntimeError):
    """The data shows no dropout: the model's dropout parameters went to their limit.

    Not a failure of the data or the optimiser: "nobody is seen to leave" is an answer, and the
    model for it is the NBD (:data:`NO_DROPOUT`). Raised so that callers handle it by name.
    """


# On a time axis scaled to the longest tenure, every parameter is optimised as a log inside
# [-LOG_BOUND, LOG_BOUND]: e^10 = 22,000. A shape or a rate beyond it would mean a customer who
# buys or leaves 22,000 times per observation period (or once in 22,000 periods), which no
# retail base shows; the box keeps the likelihood away from 1e-156 and inf, where scipy's
# hyp2f1 (Pareto/NBD) returns garbage or crashes the process.
LOG_BOUND = 10.0
# Starting points tried, unpenalised first; the best converged optimum wins. Three spread
# starts find the global optimum of these smooth 2-4 parameter likelihoods in practice (the
# likelihood surfaces are unimodal in their interior; the spread guards against flat edges).
START_SCALES = (1.0, 0.3, 3.0)
# Two starts whose optima agree to this relative tolerance found the same optimum.
AGREEMENT = 1e-7
# Dropout is "not seen" when the mean dropout probability per purchase (BG/MBG: a / (a + b)) or
# the mean dropout rate over the whole observation period (Pareto: s / beta on the scaled axis)
# is below 1 in 10,000: fewer than one leaver expected in any base this pipeline segments.
COLLAPSED_DROPOUT = 1e-4
# The lowest dropout shape the box allows (relative slack for the optimiser's last step).
DROPOUT_SHAPE_FLOOR = float(np.exp(-LOG_BOUND)) * (1 + 1e-6)
# A start whose optimiser has carried the dropout a decade below COLLAPSED_DROPOUT is on the
# slide to the model's no-dropout limit, the NBD: there it stops. The slide is monotone (the
# purchase parameters have settled on the NBD's and each step only lowers the dropout, while
# the likelihood gains less than 1e-5 per customer), and following it to the box's edge gave
# the same "collapsed" answer at four to eight times the cost: hyp2f1 is slowest there (on the
# embedded sample's learning window, 3.5 of a Pareto/NBD start's 4.0 s).
SLIDE_DROPOUT = COLLAPSED_DROPOUT / 10


def _negative_log_likelihood(kind: str):
    """lifetimes' likelihood of ``kind`` as a function of log-parameters (time scaled)."""
    if kind == "pareto_nbd":
        # lifetimes divides Pareto/NBD's weighted sum by the mean weight, the others by the sum:
        # rescaled here so that every model's objective (and penalizer) means the same.
        def pareto(log_params, f, r, t, counts, penalizer):
            rows = len(counts)
            return (
                ParetoNBDFitter._negative_log_likelihood(
                    np.exp(log_params), f, r, t, counts, penalizer * rows
                )
                / rows
            )

        return pareto
    return _FITTERS[kind]._negative_log_likelihood


def _nbd_negative_log_likelihood(log_params, x, recency, T, counts, penalizer) -> float:
    """The NBD: repeat purchases Poisson(lambda T), lambda ~ Gamma(r, alpha); no dropout.

    The per-customer likelihood is the negative binomial
    Gamma(r + x) / (Gamma(r) x!) (alpha / (alpha + T))^r (T / (alpha + T))^x; the penalizer is
    lifetimes' (its coefficient times the sum of squared parameters).
    """
    r, alpha = np.exp(log_params)
    loglik = (
        gammaln(r + x)
        - gammaln(r)
        - gammaln(x + 1)
        + r * np.log(alpha / (alpha + T))
        + x * np.log(T / (alpha + T))
    )
    return float(-(counts * loglik).sum() / counts.sum() + penalizer * (r**2 + alpha**2))


def _dropout_measure(kind: str, params) -> float | None:
    """The dropout :data:`COLLAPSED_DROPOUT` is compared with, from (r, alpha, a|s, b|beta) on
    the scaled axis; None for a model without dropout."""
    if kind in ("bgnbd", "mbgnbd"):
        return float(params[2] / (params[2] + params[3]))
    if kind == "pareto_nbd":
        return float(params[2] / params[3])
    return None


def _dropout_collapsed(kind: str, params: dict[str, float]) -> str | None:
    if kind not in _PARAMETER_NAMES:
        return None
    measure = _dropout_measure(kind, [params[name] for name in _PARAMETER_NAMES[kind]])
    if kind in ("bgnbd", "mbgnbd") and measure < COLLAPSED_DROPOUT:
        return f"dropout per purchase a / (a + b) = {measure:.2g}"
    if kind == "pareto_nbd":
        if measure < COLLAPSED_DROPOUT:
            return f"dropout rate s / beta = {measure:.2g} per observation period"
        # A dropout shape s at the box's floor is the same answer reached another way: as s
        # goes to 0, Gamma(s, beta) puts all but a vanishing share of customers at a dropout
        # rate of 0, while beta, which then barely moves the likelihood, can stop anywhere
        # (so s / beta alone depends on where the optimiser happened to leave it).
        if params["s"] <= DROPOUT_SHAPE_FLOOR:
            return f"dropout shape s = {params['s']:.2g}, at the optimiser's floor e^-{LOG_BOUND:g}"
    return None


class _OnTheSlide(Exception):  # noqa: N818 - a signal out of scipy's loop, not an error
    """A start's dropout went below :data:`SLIDE_DROPOUT`: it ends where it is (a collapse)."""

    def __init__(self, point: OptimizeResult) -> None:
        super().__init__("dropout on its slide to the no-dropout limit")
        self.point = point


class _NonFiniteLikelihood(ArithmeticError):
    """The likelihood was NaN or infinite at a point: that start cannot converge.

    L-BFGS-B cannot step back from such a point (its line search compares values, and NaN
    compares false), so the start would end "ABNORMAL" anyway, after hundreds more evaluations
    of lifetimes' hyp2f1 where it is slowest: on Online Retail three such Pareto/NBD starts took
    72 of the 85 s of the fit. Stopping at the first one gives the same answer at once.
    """

    def __init__(self, log_params: np.ndarray) -> None:
        point = ", ".join(f"{v:.3g}" for v in np.exp(log_params))
        super().__init__(f"non-finite likelihood at parameters ({point})")


def _optimise(kind: str, f, r, t, counts, penalizer: float, rng: np.random.Generator):
    """Bounded multi-start maximum likelihood on the scaled time axis.

    The first two starts, which every fit tries, run side by side on two threads (the
    likelihood's work is in numpy and scipy's hyp2f1, which release the GIL); a third only when
    they disagree. Each start's result does not depend on the other's, and the starts are drawn
    from ``rng`` in the same order as one after the other, so the outcome is the same.

    Returns (parameters on the scaled axis, negative log-likelihood per customer); raises
    RuntimeError when no start converges.
    """
    n_params = 2 if kind == NO_DROPOUT else 4
    objective = (
        _nbd_negative_log_likelihood if kind == NO_DROPOUT else _negative_log_likelihood(kind)
    )
    args = (f.astype(int) if kind == "pareto_nbd" else f, r, t, counts, penalizer)

    def finite_objective(log_params: np.ndarray) -> float:
        value = float(objective(log_params, *args))
        if not np.isfinite(value):
            raise _NonFiniteLikelihood(log_params)
        return value

    def stop_on_the_slide(intermediate_result: OptimizeResult) -> None:
        measure = _dropout_measure(kind, np.exp(intermediate_result.x))
        if measure is not None and measure < SLIDE_DROPOUT:
            raise _OnTheSlide(intermediate_result)

    def minimise(start: np.ndarray):
        """The optimum reached from ``start`` (or the point where its dropout was seen to
        vanish, flagged ``on_the_slide``), or why none was."""
        with np.errstate(all="ignore"):  # numpy's error state is per thread
            try:
                result = minimize(
                    finite_objective,
                    x0=start,
                    method="L-BFGS-B",
                    bounds=[(-LOG_BOUND, LOG_BOUND)] * n_params,
                    options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
                    callback=stop_on_the_slide,
                )
            except _NonFiniteLikelihood as stopped:
                return str(stopped)
            except _OnTheSlide as slide:
                return OptimizeResult(x=slide.point.x, fun=slide.point.fun, on_the_slide=True)
        if not (result.success and np.isfinite(result.fun)):
            return str(result.message)
        return result

    def draw(scale: float) -> np.ndarray:
        return np.log(scale * rng.normal(1.0, 0.05, size=n_params))

    best, problems = None, []
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool,
    ):
        warnings.simplefilter("ignore", RuntimeWarning)
        pending = [pool.submit(minimise, draw(scale)) for scale in START_SCALES[:2]]
        for scale in START_SCALES:
            result = pending.pop(0).result() if pending else minimise(draw(scale))
            if isinstance(result, str):
                problems.append(result)
                continue
            both_on_the_slide = best is not None and _on_the_slide(result) and _on_the_slide(best)
            if both_on_the_slide or (
                best is not None
                and abs(result.fun - best.fun) <= AGREEMENT * max(abs(best.fun), 1.0)
            ):
                # Two starts that reach the same optimum (or the same collapse) are the
                # evidence sought: stop there.
                best = result if result.fun < best.fun else best
                break
            if best is None or result.fun < best.fun:
                best = result
    if best is None:
        raise RuntimeError(f"optimiser did not converge from any start: {problems[-1]}")
    return np.exp(best.x), float(best.fun)


def _on_the_slide(result: OptimizeResult) -> bool:
    return bool(result.get("on_the_slide", False))


def fit_purchase_model(
    kind: str,
    frequency: np.ndarray,
    recency: np.ndarray,
    tenure: np.ndarray,
    *,
    penalizer: float,
    rng: np.random.Generator,
) -> tuple[dict[str, float], float, float]:
    """Fit one purchase model on weighted distinct rows; return (params, penalizer, -loglik).

    Unpenalised first, from several starts inside a finite box; the configured penalizer only
    when no unpenalised start converges, and never more: lifetimes' penalty
    ``coef * sum(params**2)`` pulls the dropout parameters towards 0, i.e. towards the very
    collapse a retry is meant to escape. A collapsed dropout raises :class:`DropoutCollapsed`.
    """
    (f, r, t), counts, _ = _distinct_rows(frequency, recency, tenure)
    label = PURCHASE_MODEL_LABELS[kind]
    scale = 1.0 / t.max()
    problem = ""
    for attempt_penalizer in dict.fromkeys((0.0, penalizer)):
        try:
            fitted, per_customer = _optimise(
                kind, f, r * scale, t * scale, counts, attempt_penalizer, rng
            )
        except (RuntimeError, ValueError, FloatingPointError) as error:
            problem = f"{error.__class__.__name__}: {' '.join(str(error).split())[:160]}"
            continue
        names = ("r", "alpha") if kind == NO_DROPOUT else _PARAMETER_NAMES[kind]
        params = dict(zip(names, (float(v) for v in fitted), strict=True))
        collapsed = _dropout_collapsed(kind, params)
        if collapsed is not None:
            raise DropoutCollapsed(f"{label}: no dropout in the data ({collapsed})")
        problem = _check_parameters(params, label) or ""
        if not problem:
            # Rates are per unit of the scaled axis: back to days.
            params["alpha"] /= scale
            if kind == "pareto_nbd":
                params["beta"] /= scale
            return params, attempt_penalizer, float(per_customer * counts.sum())
    raise RuntimeError(f"{label} could not be fitted: {problem}")


def fit_value_parameters(
    kind: str,
    frequency: np.ndarray,
    recency: np.ndarray,
    tenure: np.ndarray,
    repeat_frequency: np.ndarray,
    repeat_monetary: np.ndarray,
    *,
    penalizer: float,
    monetary_penalizer: float,
    rng: np.random.Generator,
):
    """Both fits of a :class:`CustomerValueModel` in one call (one worker round trip): the
    purchase model on every sampled customer, then Gamma-Gamma on the repeat buyers' spend.

    Returns (:func:`fit_purchase_model`'s result, :func:`fit_gamma_gamma`'s result).
    """
    # Both fits draw their starts from the same seeded state: neither depends on how many
    # starts the other tried.
    spend_rng = copy.deepcopy(rng)
    purchase = fit_purchase_model(kind, frequency, recency, tenure, penalizer=penalizer, rng=rng)
    if len(repeat_frequency) < 2:
        raise ValueError("Gamma-Gamma needs at least two customers with a repeat purchase")
    spend = fit_gamma_gamma(
        repeat_frequency, repeat_monetary, penalizer=monetary_penalizer, rng=spend_rng
    )
    return purchase, spend


def _purchase_fitter(kind: str, params: dict[str, float] | None = None, penalizer: float = 0.0):
    fitter = _FITTERS[kind](penalizer_coef=penalizer)
    if params is not None:
        fitter.params_ = pd.Series(params)
    return fitter


_PARAMETER_NAMES = {
    "bgnbd": ("r", "alpha", "a", "b"),
    "mbgnbd": ("r", "alpha", "a", "b"),
    "pareto_nbd": ("r", "alpha", "s", "beta"),
}


def fit_gamma_gamma(
    frequency: np.ndarray, monetary: np.ndarray, *, penalizer: float, rng: np.random.Generator
) -> tuple[dict[str, float], float]:
    """Gamma-Gamma spend per purchase, bounded and multi-start like the purchase models.

    Spend is scaled to its mean for the optimiser (v is a spend scale), then scaled back.
    """
    (x, m), counts, _ = _distinct_rows(frequency, monetary)
    unit = float(np.average(m, weights=counts))
    objective = GammaGammaFitter._negative_log_likelihood
    problem = ""
    for attempt_penalizer in dict.fromkeys((0.0, penalizer)):
        best = None
        for scale in START_SCALES:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                result = minimize(
                    objective,
                    args=(x, m / unit, counts, attempt_penalizer),
                    x0=np.log(scale * rng.normal(1.0, 0.05, size=3)),
                    method="L-BFGS-B",
                    bounds=[(-LOG_BOUND, LOG_BOUND)] * 3,
                )
            if (
                result.success
                and np.isfinite(result.fun)
                and (best is None or result.fun < best.fun)
            ):
                best = result
        if best is None:
            problem = "optimiser did not converge from any start"
            continue
        p, q, v = (float(value) for value in np.exp(best.x))
        problem = _check_parameters({"p": p, "q": q, "v": v}, "Gamma-Gamma") or ""
        if not problem:
            return {"p": p, "q": q, "v": v * unit}, attempt_penalizer
    raise RuntimeError(f"Gamma-Gamma could not be fitted: {problem}")


def predict_purchases(
    kind: str,
    params: dict[str, float],
    frequency: np.ndarray,
    recency: np.ndarray,
    tenure: np.ndarray,
    horizons: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray, int]:
    """P(alive) and expected purchases up to each horizon, evaluated on distinct rows.

    Returns
    -------
    p_alive
        Shape (n,).
    purchases
        Shape (n, len(horizons)): expected purchases from as-of up to each horizon.
    repaired
        How many non-finite values were replaced (lifetimes overflows for extreme customers).
    """
    (f, r, t), _, inverse = _distinct_rows(frequency, recency, tenure)
    if kind == NO_DROPOUT:
        # Nobody leaves: everyone is alive and buys at the posterior mean of their rate.
        rate = (params["r"] + f) / (params["alpha"] + t)
        purchases = rate[:, None] * np.asarray(horizons)[None, :]
        return np.ones(len(frequency)), purchases[inverse], 0
    fitter = _purchase_fitter(kind, params)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        alive = np.asarray(fitter.conditional_probability_alive(f, r, t), dtype="float64")
        purchases = np.column_stack(
            [
                np.asarray(
                    fitter.conditional_expected_number_of_purchases_up_to_time(h, f, r, t),
                    dtype="float64",
                )
                for h in horizons
            ]
        )
    if kind == "bgnbd":
        # lifetimes takes the log of the hypergeometric term, which is negative when
        # a + b + x < 1: NaN for every one-time buyer of such a base. The closed form itself
        # needs no log.
        for column, horizon in enumerate(horizons):
            broken = ~np.isfinite(purchases[:, column])
            if broken.any():
                purchases[broken, column] = _bgnbd_expected_purchases(
                    params, horizon, f[broken], r[broken], t[broken]
                )
    repaired = int((~np.isfinite(alive)).sum() + (~np.isfinite(purchases)).sum())
    alive = np.clip(np.where(np.isfinite(alive), alive, 1.0), 0.0, 1.0)
    # Where a closed form still overflows (the heaviest buyers), an alive customer buys at the
    # posterior mean of their rate, (r + x) / (alpha + T) in every model here.
    rate = (params["r"] + f) / (params["alpha"] + t)
    fallback = (alive * rate)[:, None] * np.asarray(horizons)[None, :]
    purchases = np.where(np.isfinite(purchases), purchases, fallback).clip(min=0.0)
    # Cumulative forecasts must not decrease with the horizon.
    purchases = np.maximum.accumulate(purchases, axis=1)
    return alive[inverse], purchases[inverse], repaired


def purchase_probability(
    kind: str,
    params: dict[str, float],
    frequency: np.ndarray,
    recency: np.ndarray,
    tenure: np.ndarray,
    horizon: float,
) -> np.ndarray:
    """P(at least one purchase in the next ``horizon`` days), evaluated on distinct rows.

    An alive customer's rate has the Gamma posterior (r + x, alpha + T), so with no dropout
    P(none in t) = ((alpha + T) / (alpha + T + t))^(r + x). BG/NBD and MBG/NBD customers can
    only drop out right after a purchase, so an alive one stays alive until their next purchase:
    P = P(alive) (1 - that). Pareto/NBD customers can leave at any moment: lifetimes' exact
    P(0 purchases in t) (Fader, Hardie & Lee 2006, eq. 18).
    """
    (f, r, t), _, inverse = _distinct_rows(frequency, recency, tenure)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if kind == "pareto_nbd":
            fitter = _purchase_fitter(kind, params)
            none = np.asarray(
                fitter.conditional_probability_of_n_purchases_up_to_time(0, horizon, f, r, t),
                dtype="float64",
            )
            probability = 1.0 - none
        else:
            quiet = ((params["alpha"] + t) / (params["alpha"] + t + horizon)) ** (params["r"] + f)
            alive = (
                np.ones_like(f)
                if kind == NO_DROPOUT
                else np.asarray(
                    _purchase_fitter(kind, params).conditional_probability_alive(f, r, t),
                    dtype="float64",
                )
            )
            probability = alive * (1.0 - quiet)
    # A closed form that overflows says nothing: the chance of an alive Poisson buyer is the fallback.
    fallback = 1.0 - np.exp(-(params["r"] + f) / (params["alpha"] + t) * horizon)
    probability = np.where(np.isfinite(probability), probability, fallback)
    return np.clip(probability, 0.0, 1.0)[inverse]


def _bgnbd_expected_purchases(
    params: dict[str, float], horizon: float, x: np.ndarray, recency: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """BG/NBD expected purchases in ``horizon`` (Fader, Hardie & Lee 2005, eq. 10), without logs."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    with np.errstate(all="ignore"):
        hypergeometric = hyp2f1(r + x, b + x, a + b + x - 1, horizon / (alpha + T + horizon))
        numerator = (
            (a + b + x - 1)
            / (a - 1)
            * (1 - hypergeometric * ((alpha + T) / (alpha + T + horizon)) ** (r + x))
        )
        # Only repeat buyers may have dropped out (b + x - 1 > 0 for them).
        dropout = np.where(
            x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + recency)) ** (r + x), 0.0
        )
    return numerator / (1 + dropout)


class CustomerValueModel(BaseEstimator):
    """Purchases (BG/NBD, Pareto/NBD or MBG/NBD) and Gamma-Gamma spend, with a value trend.

    Parameters
    ----------
    purchase_model
        ``bgnbd``, ``pareto_nbd``, ``mbgnbd`` or ``nbd`` (no dropout: everyone stays alive).
    penalizer, monetary_penalizer
        L2 penalizers of the purchase and Gamma-Gamma fits (raised automatically on failure).
    trend_window_days
        The recent window whose realised spend rate is compared with the customer's past.
    declining_below, rising_above
        ``trend_ratio`` thresholds of the ``value_trend`` classes.
    annual_discount_rate
        Discount rate per year of the ``clv`` column.
    fit_sample_size
        Fit on a seeded sample of at most this many customers (None: all). Predictions are
        always for every customer.
    random_state
        Seeds the sample and Pareto/NBD's starting point.
    """

    def __init__(
        self,
        *,
        purchase_model: str = "bgnbd",
        penalizer: float = 0.001,
        monetary_penalizer: float = 0.001,
        trend_window_days: int = 180,
        declining_below: float = 0.7,
        rising_above: float = 1.3,
        annual_discount_rate: float = 0.1,
        fit_sample_size: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.purchase_model = purchase_model
        self.penalizer = penalizer
        self.monetary_penalizer = monetary_penalizer
        self.trend_window_days = trend_window_days
        self.declining_below = declining_below
        self.rising_above = rising_above
        self.annual_discount_rate = annual_discount_rate
        self.fit_sample_size = fit_sample_size
        self.random_state = random_state

    def fit(self, customers: pd.DataFrame, y: None = None) -> CustomerValueModel:
        """Fit on one row per customer (``frequency``, ``recency_days``, ``tenure_days``, ``monetary``)."""
        if self.purchase_model not in PURCHASE_MODELS:
            raise ValueError(
                f"purchase_model must be one of {PURCHASE_MODELS}, not '{self.purchase_model}'"
            )
        _check_input(customers)
        rng = np.random.default_rng(self.random_state)
        sample = customers
        chosen = seeded_rows(len(customers), self.fit_sample_size, random_state=rng)
        if chosen is not None:
            sample = customers.iloc[chosen]
        frequency = sample["frequency"].to_numpy(dtype="float64")
        recency = sample["recency_days"].to_numpy(dtype="float64")
        # A customer observed for zero days breaks the likelihood; half a day is the same
        # information without the singularity.
        tenure = np.maximum(sample["tenure_days"].to_numpy(dtype="float64"), 0.5)
        repeat = (sample["frequency"] > 0) & (sample["monetary"] > 0)
        (self.purchase_params_, self.purchase_penalizer_, negative_ll), spend_fit = run_isolated(
            fit_value_parameters,
            self.purchase_model,
            frequency,
            recency,
            tenure,
            sample.loc[repeat, "frequency"].to_numpy(dtype="float64"),
            sample.loc[repeat, "monetary"].to_numpy(dtype="float64"),
            penalizer=self.penalizer,
            monetary_penalizer=self.monetary_penalizer,
            rng=rng,
        )
        spend_params, self.spend_penalizer_ = spend_fit
        self.spend_params_ = {k: float(v) for k, v in spend_params.items()}
        p, q, v = (self.spend_params_[k] for k in ("p", "q", "v"))
        # The population mean spend per purchase implied by Gamma-Gamma: E[M] = p v / (q - 1).
        self.population_mean_spend_ = (
            p * v / (q - 1) if q > 1 else float(sample.loc[repeat, "monetary"].mean())
        )
        correlation = float(
            np.corrcoef(sample.loc[repeat, "frequency"], sample.loc[repeat, "monetary"])[0, 1]
        )
        if abs(correlation) > 0.3:
            log.warning(
                "frequency and spend per purchase correlate (%.2f): Gamma-Gamma assumes they do not",
                correlation,
            )
        self.metrics_ = {
            "n_customers": float(len(customers)),
            "n_customers_fitted": float(len(sample)),
            "n_repeat_customers": float(repeat.sum()),
            "purchase_log_likelihood": -negative_ll,
            "purchase_penalizer": float(self.purchase_penalizer_),
            "gamma_gamma_penalizer": float(self.spend_penalizer_),
            "frequency_monetary_correlation": correlation,
            "population_mean_spend": float(self.population_mean_spend_),
            **{f"{self.purchase_model}_{k}": v for k, v in self.purchase_params_.items()},
            **{f"gamma_gamma_{k}": v for k, v in self.spend_params_.items()},
        }
        return self

    def predict(self, customers: pd.DataFrame, *, horizon_days: int) -> pd.DataFrame:
        """Per-customer forecasts over ``horizon_days`` and the value trend.

        Returns
        -------
        pd.DataFrame
            Same index as ``customers``: ``p_alive``, ``expected_purchases``,
            ``expected_spend``, ``clv`` (expected spend discounted to the as-of date),
            ``days_to_next_purchase`` (expected wait if the forecast rate holds; NaN when
            fewer than 0.01 purchases are expected), ``trend_ratio`` and ``value_trend``.
            Never NaN or infinite apart from the documented NaN.
        """
        check_is_fitted(self, "purchase_params_")
        _check_input(customers)
        frequency = customers["frequency"].to_numpy(dtype="float64")
        recency = customers["recency_days"].to_numpy(dtype="float64")
        tenure = np.maximum(customers["tenure_days"].to_numpy(dtype="float64"), 0.5)
        monetary = customers["monetary"].to_numpy(dtype="float64")

        if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
            raise ValueError(f"horizon_days must be 1 to {MAX_HORIZON_DAYS}, got {horizon_days}")
        steps = (*np.arange(CLV_STEP_DAYS, horizon_days, CLV_STEP_DAYS, dtype="float64"),)
        steps = (*(float(d) for d in steps), float(horizon_days))
        p_alive, cumulative, repaired = predict_purchases(
            self.purchase_model, self.purchase_params_, frequency, recency, tenure, steps
        )
        if repaired:
            log.warning(
                "%s gave %d non-finite predictions; repaired", self.purchase_model, repaired
            )
        purchases = cumulative[:, -1]
        spend_per_purchase = self._spend_per_purchase(frequency, monetary)
        expected_spend = purchases * spend_per_purchase
        # Discount each step's purchases at its midpoint.
        increments = np.diff(np.column_stack([np.zeros(len(purchases)), cumulative]), axis=1)
        ends = np.asarray(steps)
        midpoints = (np.concatenate([[0.0], ends[:-1]]) + ends) / 2
        discount = (1.0 + self.annual_discount_rate) ** (-midpoints / 365.0)
        clv = (increments * discount[None, :]).sum(axis=1) * spend_per_purchase
        with np.errstate(divide="ignore"):
            days_to_next = np.where(
                purchases >= 0.01, horizon_days / np.maximum(purchases, 0.01), np.nan
            )
        trend_ratio = self._trend_ratio(customers, expected_spend, horizon_days)
        self.last_repaired_ = repaired
        return pd.DataFrame(
            {
                "p_alive": p_alive,
                "p_purchase": purchase_probability(
                    self.purchase_model,
                    self.purchase_params_,
                    frequency,
                    recency,
                    tenure,
                    float(horizon_days),
                ),
                "expected_purchases": purchases,
                "expected_spend": expected_spend,
                "clv": clv,
                "days_to_next_purchase": days_to_next,
                "trend_ratio": trend_ratio,
                "value_trend": self.classify_trend(trend_ratio),
            },
            index=customers.index,
        )

    def classify_trend(self, trend_ratio: np.ndarray) -> np.ndarray:
        return np.select(
            [trend_ratio < self.declining_below, trend_ratio > self.rising_above],
            ["declining", "rising"],
            default="stable",
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


# -- lifetimes as it is: the baseline that benchmarks compare with -----------------------------
def plain_lifetimes_forecast(
    customers: pd.DataFrame, *, horizon_days: int, kind: str = "bgnbd"
) -> np.ndarray:
    """lifetimes' own fit on one row per customer and its forecast, with no adapter around it.

    Only for measuring the adapter against (``make bench``); the pipeline never uses it.
    """
    tenure = customers["tenure_days"].clip(lower=0.5)
    fitter = _FITTERS[kind](penalizer_coef=0.001)
    fitter.fit(customers["frequency"], customers["recency_days"], tenure)
    if kind != "bgnbd":
        return np.asarray(fitter.params_)
    repeat = customers[(customers["frequency"] > 0) & (customers["monetary"] > 0)]
    GammaGammaFitter(penalizer_coef=0.001).fit(repeat["frequency"], repeat["monetary"])
    return np.asarray(
        fitter.conditional_expected_number_of_purchases_up_to_time(
            horizon_days, customers["frequency"], customers["recency_days"], tenure
        )
    )
