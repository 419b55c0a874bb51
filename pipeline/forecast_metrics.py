"""How forecasts made at a cut-off compare with what customers did next: pure metric functions.

Every function takes per-customer arrays (one element per customer, aligned) and returns a dict
or a DataFrame; nothing here reads files, logs or plots. :mod:`pipeline.backtest` composes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.evaluate import decile_table, normalized_gini

N_BINS = 10
# A forecast of exactly 0 or 1 that turns out wrong has an infinite log loss; clipping at 1e-6
# bounds one customer's contribution at -ln(1e-6) = 13.8 nats, so a hard 0/1 rule (the "last
# horizon again" baseline) gets a finite, comparable, and still heavily penalised figure.
LOG_LOSS_EPSILON = 1e-6


def _floats(values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    return np.asarray(values, dtype="float64")


def reliability_table(
    bought: np.ndarray | pd.Series, probability: np.ndarray | pd.Series, *, bins: int = N_BINS
) -> pd.DataFrame:
    """One row per equal-width probability bin: customers, mean forecast and share who bought.

    Bin ``i`` holds forecasts in ``[i/bins, (i+1)/bins)``; the last bin also holds 1.0. Every
    bin is listed, an empty one with 0 customers and blank means, so tables of several runs
    line up.
    """
    bought, probability = _floats(bought), _floats(probability)
    index = np.clip(np.floor(probability * bins).astype(int), 0, bins - 1)
    frame = pd.DataFrame({"bin": index, "probability": probability, "bought": bought})
    grouped = frame.groupby("bin").agg(
        customers=("bought", "size"),
        mean_probability=("probability", "mean"),
        share_bought=("bought", "mean"),
    )
    table = grouped.reindex(range(bins))
    table["customers"] = table["customers"].fillna(0).astype("int64")
    table.insert(0, "lower", np.arange(bins) / bins)
    table.insert(1, "upper", (np.arange(bins) + 1) / bins)
    return table.rename_axis("bin").reset_index()


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Customer-weighted mean gap between forecast and outcome over the bins of a reliability
    table (:func:`reliability_table`)."""
    filled = table[table["customers"] > 0]
    if filled.empty:
        return float("nan")
    weights = filled["customers"] / filled["customers"].sum()
    return float((weights * (filled["mean_probability"] - filled["share_bought"]).abs()).sum())


def probability_metrics(
    bought: np.ndarray | pd.Series,
    probability: np.ndarray | pd.Series,
    *,
    score: np.ndarray | pd.Series | None = None,
) -> dict[str, float]:
    """How well P(buys again within the horizon) separates and matches who did buy again.

    Parameters
    ----------
    bought
        1 if the customer bought in the period after the cut-off, else 0.
    probability
        The forecast probability (Brier score, log loss and calibration are computed on it).
    score
        A ranking to judge separation by (ROC and PR AUC), when it differs from the
        probability: a 0/1 rule ranks customers by a finer score. Default: ``probability``.

    Returns
    -------
    dict
        ``roc_auc``, ``pr_auc`` (average precision), ``brier``, ``log_loss``, ``ece``,
        ``base_rate`` and ``mean_probability``. The AUCs are NaN when everyone (or no one)
        bought: there is nothing to separate.
    """
    bought, probability = _floats(bought), _floats(probability)
    ranking = probability if score is None else _floats(score)
    both_classes = 0 < bought.sum() < len(bought)
    clipped = np.clip(probability, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    return {
        "roc_auc": float(roc_auc_score(bought, ranking)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(bought, ranking)) if both_classes else float("nan"),
        "brier": float(np.mean((probability - bought) ** 2)),
        "log_loss": float(-np.mean(bought * np.log(clipped) + (1 - bought) * np.log(1 - clipped))),
        "ece": expected_calibration_error(reliability_table(bought, probability)),
        "base_rate": float(bought.mean()),
        "mean_probability": float(probability.mean()),
    }


def value_metrics(
    actual: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series
) -> dict[str, float]:
    """Ranking and error of a value forecast (spend or purchases) against the realised value.

    ``gini`` is the normalized Gini (:func:`pipeline.evaluate.normalized_gini`: the Gini of
    the realised value ordered by the forecast over that of the perfect order);
    ``aggregate_error_pct`` is the total forecast against the total realised, in percent.
    """
    actual, predicted = _floats(actual), _floats(predicted)
    constant = np.ptp(actual) == 0 or np.ptp(predicted) == 0
    error = predicted - actual
    return {
        "spearman": float("nan") if constant else float(spearmanr(predicted, actual).statistic),
        "gini": normalized_gini(actual, predicted),
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "aggregate_error_pct": float(100 * error.sum() / actual.sum())
        if actual.sum() > 0
        else float("nan"),
    }


def value_deciles(
    actual: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series
) -> pd.DataFrame:
    """Deciles of the forecast (1 = lowest): customers, mean forecast, mean realised, and the
    decile's share of the realised total."""
    actual = _floats(actual)
    table = decile_table(actual, _floats(predicted))
    total = actual.sum()
    sums = table["mean_actual"] * table["customers"]
    table["share_of_actual"] = sums / total if total > 0 else np.nan
    return table


def group_outcomes(
    groups: pd.Series | np.ndarray,
    purchases: np.ndarray | pd.Series,
    spend: np.ndarray | pd.Series,
    forecast_spend: np.ndarray | pd.Series | None = None,
    *,
    forecast_purchases: np.ndarray | pd.Series | None = None,
    order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """What each group (a status, an RFM segment) did in the period after the cut-off.

    One row per group: ``customers``, ``share_of_customers``, ``share_buying_again``,
    ``mean_purchases``, ``median_purchases``, ``mean_spend``, ``median_spend``,
    ``mean_forecast_spend`` and ``forecast_vs_actual`` (forecast total / realised total; blank
    without a forecast), ``mean_forecast_purchases``, ``share_of_revenue`` (of the next period's
    total) and ``lift`` (share buying again / the whole base's). Rows follow ``order`` (groups not
    in it after, by name), then the groups as found.
    """
    frame = pd.DataFrame(
        {
            "group": pd.Series(groups).astype("string").to_numpy(),
            "purchases": _floats(purchases),
            "spend": _floats(spend),
            "forecast_spend": np.nan if forecast_spend is None else _floats(forecast_spend),
            "forecast_purchases": np.nan
            if forecast_purchases is None
            else _floats(forecast_purchases),
        }
    )
    frame["bought"] = (frame["purchases"] > 0).astype("float64")
    base_rate = frame["bought"].mean()
    revenue = frame["spend"].sum()
    grouped = frame.groupby("group", sort=False)
    table = grouped.agg(
        customers=("bought", "size"),
        share_buying_again=("bought", "mean"),
        mean_purchases=("purchases", "mean"),
        median_purchases=("purchases", "median"),
        mean_spend=("spend", "mean"),
        median_spend=("spend", "median"),
        forecast_total=("forecast_spend", lambda v: v.sum(min_count=1)),
        spend_total=("spend", "sum"),
        mean_forecast_spend=("forecast_spend", "mean"),
        mean_forecast_purchases=("forecast_purchases", "mean"),
    )
    table.insert(1, "share_of_customers", table["customers"] / len(frame))
    table["forecast_vs_actual"] = table["forecast_total"] / table["spend_total"].where(
        table["spend_total"] > 0
    )
    table["share_of_revenue"] = table["spend_total"] / revenue if revenue > 0 else np.nan
    table["lift"] = table["share_buying_again"] / base_rate if base_rate > 0 else np.nan
    table = table.drop(columns=["forecast_total", "spend_total"])
    known = [g for g in (order or []) if g in table.index]
    rest = sorted(g for g in table.index if g not in set(known))
    return table.reindex(known + rest).rename_axis("group").reset_index()


def trend_outcomes(
    value_trend: pd.Series | np.ndarray,
    past_daily_spend: np.ndarray | pd.Series,
    next_spend: np.ndarray | pd.Series,
    horizon_days: int,
) -> pd.DataFrame:
    """Whether ``declining`` / ``stable`` / ``rising`` customers then spent below, at or above
    their own past rate.

    One row per trend: ``customers``, ``spend_at_own_rate`` (their past spend per day x the
    horizon, summed), ``actual_spend`` (summed), ``actual_vs_own_rate`` (the two totals' ratio:
    below 1 the group spent less than its past rate), ``median_ratio`` (per customer, among
    customers with a past rate) and ``share_below_own_rate``.
    """
    expected = _floats(past_daily_spend) * horizon_days
    actual = _floats(next_spend)
    frame = pd.DataFrame(
        {
            "value_trend": pd.Series(value_trend).astype("string").to_numpy(),
            "expected": expected,
            "actual": actual,
            "ratio": np.where(expected > 0, actual / np.where(expected > 0, expected, 1), np.nan),
            "below": (actual < expected).astype("float64"),
        }
    )
    table = frame.groupby("value_trend", sort=False).agg(
        customers=("actual", "size"),
        spend_at_own_rate=("expected", "sum"),
        actual_spend=("actual", "sum"),
        median_ratio=("ratio", "median"),
        share_below_own_rate=("below", "mean"),
    )
    table.insert(
        3,
        "actual_vs_own_rate",
        table["actual_spend"] / table["spend_at_own_rate"].where(table["spend_at_own_rate"] > 0),
    )
    order = [t for t in ("declining", "stable", "rising") if t in table.index]
    order += sorted(t for t in table.index if t not in set(order))
    return table.reindex(order).rename_axis("value_trend").reset_index()
