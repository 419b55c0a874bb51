"""Metric functions: each returns plain numbers (and tables) for the orchestrator to log."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import confusion_matrix, f1_score

from pipeline.config import STATUSES
from pipeline.schema import CUSTOMER_ID

log = logging.getLogger(__name__)


def status_shares(segments: pd.DataFrame) -> dict[str, float]:
    """Share of customers in every status (0 for a status nobody has), keyed ``share_<status>``."""
    shares = segments["status"].value_counts(normalize=True)
    return {f"share_{status}": float(shares.get(status, 0.0)) for status in STATUSES}


def refinements(segments: pd.DataFrame) -> pd.DataFrame:
    """How many customers have a status other than their cluster's name, and why: ``source``
    (``customer_rule``, or ``own_signals`` in a mixed cluster), ``reason``, ``customers``."""
    refined = segments.loc[segments["status_source"] != "cluster"]
    reason = refined["status_reason"].where(
        refined["status_source"] == "customer_rule",
        "member of a mixed cluster, own signals say " + refined["status"].astype(str),
    )
    counts = (
        pd.DataFrame({"source": refined["status_source"], "reason": reason})
        .value_counts()
        .rename("customers")
        .reset_index()
    )
    return counts.sort_values(
        ["source", "customers", "reason"], ascending=[True, False, True], ignore_index=True
    )


def status_totals(segments: pd.DataFrame) -> pd.DataFrame:
    """Per status: ``customers``, ``expected_spend`` and ``p_alive`` summed (indexed by status)."""
    grouped = segments.groupby("status", sort=False)
    return pd.DataFrame(
        {
            "customers": grouped.size(),
            "expected_spend": grouped["expected_spend"].sum(),
            "p_alive": grouped["p_alive"].sum(),
        }
    )


def summary_from_totals(totals: pd.DataFrame) -> pd.DataFrame:
    """The status summary from :func:`status_totals` (or the same sums made elsewhere, e.g. Spark).

    One row per status present, in the statuses' order: customers, share, mean expected spend,
    mean p_alive, share of value.
    """
    customers = totals["customers"]
    total_value = totals["expected_spend"].sum()
    summary = pd.DataFrame(
        {
            "customers": customers.astype("int64"),
            "share": customers / customers.sum(),
            "mean_expected_spend": totals["expected_spend"] / customers,
            "mean_p_alive": totals["p_alive"] / customers,
            "value_share": totals["expected_spend"] / total_value if total_value > 0 else 0.0,
        }
    )
    order = [s for s in STATUSES if s in summary.index]
    return summary.loc[order].rename_axis("status").reset_index()


def status_summary(segments: pd.DataFrame) -> pd.DataFrame:
    """One row per status present: customers, share, mean expected spend, share of value."""
    return summary_from_totals(status_totals(segments))


def shares_from_summary(summary: pd.DataFrame) -> dict[str, float]:
    """``share_<status>`` for every status (0 for one nobody has), from a status summary."""
    shares = summary.set_index("status")["share"]
    return {f"share_{status}": float(shares.get(status, 0.0)) for status in STATUSES}


def planted_recovery(
    segments: pd.DataFrame, truth: pd.DataFrame
) -> tuple[dict[str, float], pd.DataFrame]:
    """How well the found statuses recover planted ones.

    Returns
    -------
    metrics
        ``planted_macro_f1``, ``planted_accuracy`` and ``planted_f1_<status>``.
    confusion
        Counts with planted statuses as rows and found statuses as columns.
    """
    joined = truth.merge(
        segments[[CUSTOMER_ID, "status"]], on=CUSTOMER_ID, how="inner", suffixes=("_planted", "")
    )
    planted, found = joined["status_planted"], joined["status"]
    labels = [s for s in STATUSES if s in set(planted) | set(found)]
    per_status = f1_score(planted, found, labels=labels, average=None, zero_division=0)
    metrics = {
        "planted_macro_f1": float(
            f1_score(planted, found, labels=labels, average="macro", zero_division=0)
        ),
        "planted_accuracy": float((planted == found).mean()),
        "planted_customers_matched": float(len(joined)),
    }
    metrics.update({f"planted_f1_{s}": float(v) for s, v in zip(labels, per_status, strict=True)})
    matrix = pd.DataFrame(
        confusion_matrix(planted, found, labels=labels),
        index=pd.Index(labels, name="planted"),
        columns=pd.Index(labels, name="found"),
    )
    return metrics, matrix


def normalized_gini(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Gini of ``actual`` ordered by ``predicted``, divided by the Gini of the perfect order.

    1 means the prediction ranks customers exactly as their realised value does, 0 no better than
    chance. Ties in the prediction are broken against the prediction (pessimistically).
    """
    actual = np.asarray(actual, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    if len(actual) == 0 or actual.sum() <= 0:
        return float("nan")

    def gini(order_by: np.ndarray) -> float:
        # Stable sort on (-score, actual ascending) so that ties do not flatter the prediction.
        order = np.lexsort((actual, -order_by))
        cumulative = np.cumsum(actual[order]) / actual.sum()
        return float(cumulative.sum() / len(actual) - (len(actual) + 1) / (2 * len(actual)))

    return gini(predicted) / gini(actual)


def holdout_metrics(
    *,
    actual_purchases: np.ndarray | None,
    predicted_purchases: np.ndarray | None,
    actual_spend: np.ndarray,
    predicted_spend: np.ndarray,
) -> dict[str, float]:
    """How well forecasts made at the calibration end match what happened in the holdout.

    Purchase metrics need purchase forecasts (the BTYD models make them; a spend-only model
    does not): aggregate error in percent, customer-level MAE and RMSE. Spend metrics apply to
    every candidate: Spearman rank correlation, normalized Gini, aggregate error and MAE.
    """
    actual_spend = np.asarray(actual_spend, dtype="float64")
    predicted_spend = np.asarray(predicted_spend, dtype="float64")
    metrics = {
        "spend_spearman": float(spearmanr(predicted_spend, actual_spend).statistic),
        "spend_gini": normalized_gini(actual_spend, predicted_spend),
        "spend_aggregate_error_pct": float(
            100 * (predicted_spend.sum() - actual_spend.sum()) / max(actual_spend.sum(), 1e-9)
        ),
        "spend_mae": float(np.abs(predicted_spend - actual_spend).mean()),
    }
    if actual_purchases is not None and predicted_purchases is not None:
        actual_purchases = np.asarray(actual_purchases, dtype="float64")
        predicted_purchases = np.asarray(predicted_purchases, dtype="float64")
        error = predicted_purchases - actual_purchases
        metrics.update(
            {
                "purchases_aggregate_error_pct": float(
                    100 * error.sum() / max(actual_purchases.sum(), 1e-9)
                ),
                "purchases_mae": float(np.abs(error).mean()),
                "purchases_rmse": float(np.sqrt((error**2).mean())),
            }
        )
    return metrics


def decile_table(actual: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Mean predicted and mean actual per decile of the prediction (1 = lowest)."""
    frame = pd.DataFrame({"predicted": predicted, "actual": actual})
    ranks = frame["predicted"].rank(method="first")
    frame["decile"] = np.ceil(ranks / len(frame) * 10).clip(1, 10).astype(int)
    table = frame.groupby("decile").agg(
        customers=("actual", "size"),
        mean_predicted=("predicted", "mean"),
        mean_actual=("actual", "mean"),
    )
    return table.reset_index()


# Movements marketing acts on: someone valuable slipping, or someone at risk coming back.
KEY_MOVES = (
    ("loyal", "at_risk"),
    ("loyal", "declining"),
    ("loyal", "lost"),
    ("active", "at_risk"),
    ("declining", "lost"),
    ("at_risk", "active"),
    ("at_risk", "loyal"),
)


def status_transitions(
    before: pd.DataFrame, after: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Who moved between two segment tables of the same customers.

    Returns
    -------
    counts
        Customers by status before (rows) and after (columns), for customers in both tables.
    metrics
        ``transition_customers_compared``, ``transition_changed_share`` and
        ``moved_<from>_to_<to>`` for the movements that matter (:data:`KEY_MOVES`).
    """
    joined = before[[CUSTOMER_ID, "status"]].merge(
        after[[CUSTOMER_ID, "status"]], on=CUSTOMER_ID, suffixes=("_before", "_after")
    )
    present = [
        s for s in STATUSES if s in set(joined["status_before"]) | set(joined["status_after"])
    ]
    counts = (
        pd.crosstab(joined["status_before"], joined["status_after"])
        .reindex(index=present, columns=present, fill_value=0)
        .rename_axis(index="before", columns="after")
    )
    metrics = {
        "transition_customers_compared": float(len(joined)),
        "transition_changed_share": float(
            (joined["status_before"] != joined["status_after"]).mean()
        )
        if len(joined)
        else 0.0,
    }
    for origin, destination in KEY_MOVES:
        moved = (joined["status_before"] == origin) & (joined["status_after"] == destination)
        metrics[f"moved_{origin}_to_{destination}"] = float(moved.sum())
    return counts, metrics


# -- KPIs per status: how success is measured, run after run ------------------------------------
KPI_NAMES = ("retention", "repeat_rate", "avg_spend")
_KPI_INPUTS = ("status", "frequency", "tenure_days", "days_since_last_purchase", "spend_recent")


def status_kpis(
    segments: pd.DataFrame, *, recent_window_days: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Retention rate, repeat-purchase rate and average recent spend of each status.

    The recent window is the last ``recent_window_days`` days up to as-of, the same window as
    the ``spend_recent`` feature: a purchase day counts as recent when it is fewer than
    ``recent_window_days`` days before as-of. For the customers of one status:

    - retention rate: of those who were already customers when the window began (first
      purchase at least ``recent_window_days`` days before as-of, ``tenure_days >=
      recent_window_days``), the share who bought again inside it (``days_since_last_purchase
      < recent_window_days``). Customers who first bought inside the window are not in the
      base: they could not have been retained.
    - repeat-purchase rate: the share with at least one repeat purchase day over their whole
      history (``frequency >= 1``).
    - average spend: mean ``spend_recent`` per customer, customers who spent nothing in the
      window included.

    Parameters
    ----------
    segments
        One row per customer with ``status``, ``frequency``, ``tenure_days``,
        ``days_since_last_purchase`` and ``spend_recent`` (the segment table).
    recent_window_days
        Length of the recent window (``features.recent_window_days``).

    Returns
    -------
    table
        One row per status that has customers (in :data:`STATUSES` order): ``status``,
        ``customers``, ``retention_base`` (customers before the window), ``retention``,
        ``repeat_rate``, ``avg_spend``; ``retention`` is NaN when its base is empty.
    metrics
        ``kpi_retention_<status>``, ``kpi_repeat_rate_<status>`` and ``kpi_avg_spend_<status>``.
        A KPI that is undefined (a status nobody has, a retention base of nobody) is left out
        rather than logged as NaN or a made-up 0, so a chart across runs shows a gap.
    """
    missing = [c for c in _KPI_INPUTS if c not in segments.columns]
    if missing:
        raise ValueError(f"status_kpis needs the columns {missing}")
    before_window = segments["tenure_days"] >= recent_window_days
    bought_recently = segments["days_since_last_purchase"] < recent_window_days
    per_customer = pd.DataFrame(
        {
            "status": segments["status"],
            "before_window": before_window,
            # retained: a customer before the window who bought inside it (NaN outside the base)
            "retained": bought_recently.where(before_window).astype("float64"),
            "repeater": (segments["frequency"] >= 1).astype("float64"),
            "spend_recent": segments["spend_recent"].astype("float64"),
        }
    )
    grouped = per_customer.groupby("status", sort=False)
    table = pd.DataFrame(
        {
            "customers": grouped.size(),
            "retention_base": grouped["before_window"].sum().astype("int64"),
            "retention": grouped["retained"].mean(),  # mean skips NaN: the base only
            "repeat_rate": grouped["repeater"].mean(),
            "avg_spend": grouped["spend_recent"].mean(),
        }
    )
    order = [s for s in STATUSES if s in table.index]
    table = table.loc[order].rename_axis("status").reset_index()
    metrics = {
        f"kpi_{kpi}_{row['status']}": float(row[kpi])
        for row in table.to_dict("records")
        for kpi in KPI_NAMES
        if pd.notna(row[kpi])
    }
    return table, metrics


def kpis_across_runs(
    earlier: pd.DataFrame, current: Mapping[str, float], *, as_of: pd.Timestamp
) -> pd.DataFrame:
    """This run's KPIs beside earlier runs' ones, one row per as-of date.

    Parameters
    ----------
    earlier
        One row per earlier run, newest first, with ``run_id``, ``as_of`` and ``kpi_*`` columns
        (:func:`pipeline.tracking.kpi_runs`); may be empty.
    current
        This run's metrics; only the ``kpi_*`` ones are used.
    as_of
        This run's as-of date.

    Returns
    -------
    pd.DataFrame
        ``as_of``, ``run_id`` (empty for this run) and every ``kpi_*`` column, oldest date
        first; NaN where a run has no value for a KPI. When several runs share an as-of date
        the newest stands for it (this run for its own date): a rerun replaces what it reran.
    """
    kpis = {name: value for name, value in current.items() if name.startswith("kpi_")}
    this_run = pd.DataFrame([{"as_of": pd.Timestamp(as_of), "run_id": "", **kpis}])
    runs = this_run
    if not earlier.empty:
        previous = earlier.assign(as_of=pd.to_datetime(earlier["as_of"]))
        runs = pd.concat([this_run, previous], ignore_index=True)
    kpi_columns = sorted(c for c in runs.columns if c.startswith("kpi_"))
    return (
        runs.drop_duplicates("as_of", keep="first")
        .sort_values("as_of", kind="mergesort")
        .reset_index(drop=True)[["as_of", "run_id", *kpi_columns]]
    )


# -- Drift: this data's feature distributions against the training data's ------------------------
REFERENCE_BINS = 10
# Shares below this count as this: an empty bin would make ln(a / e) infinite.
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class BinnedDistribution:
    """One feature's distribution at training, as shares of bins.

    Bin ``i`` holds the values in ``(cuts[i - 1], cuts[i]]``; the first bin is open below and
    the one after the last cut open above, so values outside the training range still fall in
    a bin. A last extra bin holds missing (NaN or infinite) values: a change in how many
    customers lack a value (``mean_gap_days`` before a repeat purchase) is drift too.
    """

    cuts: tuple[float, ...]
    shares: tuple[float, ...]  # len(cuts) + 1 value bins, then the missing bin


def bin_shares(values: pd.Series | np.ndarray, cuts: tuple[float, ...]) -> np.ndarray:
    """Share of ``values`` in each bin of :class:`BinnedDistribution` with these cuts."""
    values = np.asarray(values, dtype="float64")
    finite = np.isfinite(values)
    counts = np.bincount(
        np.searchsorted(np.asarray(cuts, dtype="float64"), values[finite], side="left"),
        minlength=len(cuts) + 1,
    )
    counts = np.append(counts, np.count_nonzero(~finite))
    return counts / max(len(values), 1)


def distribution_reference(
    features: pd.DataFrame, *, bins: int = REFERENCE_BINS
) -> dict[str, BinnedDistribution]:
    """The distribution of every numeric column, for :func:`population_stability` later.

    Cuts are the training quantiles at 1/bins, ..., (bins - 1)/bins of the finite values, taken
    at observed values (``inverted_cdf``) so that each bin holds about 1/bins of the customers;
    equal cuts are merged, so a feature where many customers share a value (no repeat purchase:
    ``frequency`` 0) gets fewer, wider bins instead of empty ones.
    """
    reference = {}
    for column in features.select_dtypes("number").columns:
        values = features[column].to_numpy(dtype="float64")
        finite = values[np.isfinite(values)]
        cuts = (
            np.unique(np.quantile(finite, np.arange(1, bins) / bins, method="inverted_cdf"))
            if len(finite)
            else np.array([])
        )
        reference[str(column)] = BinnedDistribution(
            cuts=tuple(float(c) for c in cuts),
            shares=tuple(float(s) for s in bin_shares(values, tuple(cuts))),
        )
    return reference


def psi(actual: np.ndarray, expected: np.ndarray, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of bin shares ``actual`` against ``expected``.

    PSI = sum over bins of (a - e) * ln(a / e), with a share below ``epsilon`` raised to it
    (not renormalised). 0 for identical shares; every bin adds a non-negative amount.
    """
    a = np.maximum(np.asarray(actual, dtype="float64"), epsilon)
    e = np.maximum(np.asarray(expected, dtype="float64"), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def population_stability(
    features: pd.DataFrame,
    reference: Mapping[str, BinnedDistribution],
    *,
    epsilon: float = PSI_EPSILON,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """PSI of each reference feature: ``features`` binned as the training data was.

    Features of the reference that ``features`` does not have are skipped (a bundle trained
    before a feature was added or renamed), as are columns the reference does not know.

    Returns
    -------
    table
        ``feature``, ``psi``, largest first.
    metrics
        ``drift_psi_<feature>`` for each, and ``drift_psi_max`` (when any was compared).
    """
    if len(features) == 0:
        raise ValueError("population_stability needs at least one customer")
    rows = [
        {
            "feature": name,
            "psi": psi(bin_shares(features[name], binned.cuts), binned.shares, epsilon=epsilon),
        }
        for name, binned in reference.items()
        if name in features.columns
    ]
    table = (
        pd.DataFrame(rows, columns=["feature", "psi"])
        .sort_values(["psi", "feature"], ascending=[False, True], kind="mergesort")
        .reset_index(drop=True)
    )
    metrics = {f"drift_psi_{row.feature}": float(row.psi) for row in table.itertuples()}
    if rows:
        metrics["drift_psi_max"] = float(table["psi"].max())
    return table, metrics


def drifted_features(metrics: Mapping[str, float], *, threshold: float) -> dict[str, float]:
    """The features whose ``drift_psi_<feature>`` exceeds ``threshold``, largest first."""
    above = {
        name.removeprefix("drift_psi_"): value
        for name, value in metrics.items()
        if name.startswith("drift_psi_") and name != "drift_psi_max" and value > threshold
    }
    return dict(sorted(above.items(), key=lambda item: (-item[1], item[0])))


def drift_check(
    customers: pd.DataFrame,
    reference: Mapping[str, object],
    *,
    threshold: float,
    against: str,
) -> tuple[pd.DataFrame, dict[str, float], dict[str, float]]:
    """PSI of every feature against ``reference`` (:func:`population_stability`), and the
    features above ``threshold`` (largest first), with a warning naming them and ``against``.

    Returns the per-feature table, the ``drift_psi_*`` metrics and the drifted features.
    """
    table, metrics = population_stability(customers, reference)
    drifted = drifted_features(metrics, threshold=threshold)
    if drifted:
        log.warning(
            "data drift against %s: PSI above %.2f for %s",
            against,
            threshold,
            ", ".join(f"{name} ({value:.2f})" for name, value in drifted.items()),
        )
    return table, metrics, drifted
