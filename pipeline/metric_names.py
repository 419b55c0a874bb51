"""How metrics are named in MLflow: grouped by what they measure, ``group/name``.

The pipeline computes metrics under flat names (``rows_in``, ``holdout_spend_gini``); MLflow's UI
groups metrics into sections by the part before ``/``. :data:`METRIC_GROUPS` is the one place
that says which flat name goes into which section; :func:`grouped` applies it when metrics are
logged and :func:`flat` undoes it when runs are read back, so runs logged before the grouping
(flat names) and after it compare alike. A metric whose name matches no line stays flat: to
group a new metric, add a line here.
"""

from __future__ import annotations

from collections.abc import Mapping

# A backtest's models: its metrics are named ``<model>.<metric>`` (``project.spend_gini``), per
# cut-off and pooled. Named here, below both the backtest and the reports that read them.
PROJECT, LAST_PERIOD = "project", "last_period_again"
LIFETIMES_BGNBD, LIFETIMES_PARETO = "lifetimes_bgnbd", "lifetimes_pareto"
MODELS = (PROJECT, LAST_PERIOD, LIFETIMES_BGNBD, LIFETIMES_PARETO)
POOLED = "pooled"

# Flat-name prefix (or whole name) -> group. The longest matching prefix wins.
METRIC_GROUPS: dict[str, str] = {
    # data: what was read and kept
    "rows_": "data",
    "quarantined_": "data",
    "customers": "data",
    "prior_gap_days": "data",
    "loyalty_": "data",
    "campaign_": "data",
    # drift of the features against the champion's training data
    "drift_": "drift",
    # clustering: quality of the segments found
    "silhouette": "clustering",
    "inertia": "clustering",
    "bic": "clustering",
    "calinski_harabasz": "clustering",
    "n_clusters": "clustering",
    "seed_stability": "clustering",
    # value: the customer-value models on the holdout and their forecasts
    "holdout_": "value",
    "clv_": "value",
    "mean_p_alive": "value",
    "total_expected_spend": "value",
    "share_declining_value": "value",
    # statuses: their shares, KPIs, recovery of planted statuses, moves since the champion
    "share_": "status",
    "kpi_": "kpi",
    "planted_": "planted",
    "moved_": "transition",
    "transition_": "transition",
}
GROUPS = frozenset(METRIC_GROUPS.values())


def group_of(name: str) -> str | None:
    """The group of a flat metric name, or None when no line of :data:`METRIC_GROUPS` matches."""
    matches = [prefix for prefix in METRIC_GROUPS if name.startswith(prefix)]
    return METRIC_GROUPS[max(matches, key=len)] if matches else None


def grouped(metrics: Mapping[str, float]) -> dict[str, float]:
    """``{"rows_in": 5}`` -> ``{"data/rows_in": 5}``; names without a group are kept as they are."""
    out = {}
    for name, value in metrics.items():
        group = group_of(name)
        out[f"{group}/{name}" if group and "/" not in name else name] = value
    return out


def flat(metrics: Mapping[str, float]) -> dict[str, float]:
    """The inverse of :func:`grouped`, for runs logged with either naming."""
    out = {}
    for name, value in metrics.items():
        group, _, rest = name.partition("/")
        out[rest if rest and group in GROUPS else name] = value
    return out
