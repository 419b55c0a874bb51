"""Labeler: from clusters to named loyalty statuses, by profile, never by cluster id.

Cluster ids permute on every fit, so a fixed ``{0: "Champions"}`` map breaks on the next run.
Instead each cluster is named by declarative rules over the signals of its members (features
and value outputs, and ``rank_<signal>``: a member's percentile in the whole population):

- ``members`` (default): every member meets the first rule that holds for them, and the
  cluster takes the status most of its members meet. A cluster near a rule's boundary keeps its
  name unless half its members cross it, so names hold when another seed or a slightly
  different k redraws the clusters.
- ``profile``: the cluster's profile (the median of each signal over its members) is held to
  the rules, and the first rule the profile meets names it.

Several clusters may share a status; a default status catches the rest.

Real customer bases rarely fall into clean groups: a cluster of real data can hold as many
customers who are active as customers who are overdue. Naming such a cluster for its plurality
would give hundreds of customers a status their own behaviour contradicts, and which status wins
the vote changes with the seed. So the members of a *mixed* cluster (fewer than
``min_cluster_purity`` of its members meet its status on their own) each take the status their
own signals meet (``status_source`` ``own_signals``); a clean cluster's name smooths over its
members' individual noise. Customer rules then override single customers (for example everyone
inside the new-customer window is ``new``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from pipeline.conditions import (
    OPERATORS,
    RANK_PREFIX,
    ExactReference,
    meets,
    percentile_ranks,
    ranked_columns,
)
from pipeline.config import StatusRule

CLUSTER = "cluster"


def _format(value: float) -> str:
    return f"{value:.3g}" if np.isfinite(value) else "n/a"


class StatusLabeler(BaseEstimator):
    """Learn a cluster -> status mapping from declarative rules over cluster profiles.

    Parameters
    ----------
    cluster_rules
        Tried in order against each cluster's profile; the first match names the cluster.
    customer_rules
        Tried in order against each customer's own values; a match overrides the cluster's
        status for that customer.
    default_status
        Status of a cluster that no rule matches.
    parameters
        Named numbers that rule bounds may refer to by name (e.g. ``new_window_days``), so a
        window is set in one place.
    naming
        ``members``: a cluster takes the status most of its members meet; ``profile``: the
        status its median profile meets (see the module's docstring).
    min_cluster_purity
        Share of a cluster's members that must meet its status on their own for the cluster's
        name to hold for all of them; in a cluster below it each member takes their own status.
        0 names every cluster's members by the cluster.
    """

    def __init__(
        self,
        cluster_rules: Sequence[StatusRule] = (),
        customer_rules: Sequence[StatusRule] = (),
        default_status: str = "occasional",
        parameters: Mapping[str, float] | None = None,
        naming: str = "members",
        min_cluster_purity: float = 0.8,
    ) -> None:
        self.cluster_rules = cluster_rules
        self.customer_rules = customer_rules
        self.default_status = default_status
        self.parameters = parameters
        self.naming = naming
        self.min_cluster_purity = min_cluster_purity

    def __setstate__(self, state: dict) -> None:
        # Bundles written before mixed clusters were recognised named every member by their
        # cluster: they keep scoring exactly as they were trained.
        state.setdefault("min_cluster_purity", 0.0)
        super().__setstate__(state)

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, customers: pd.DataFrame, y: None = None) -> StatusLabeler:
        """Learn the mapping from one row per customer with a ``cluster`` column and signals.

        Customers that a customer rule decides (e.g. the new) are left out of the profiles and
        the ranks: a cluster is named by the members whose status it actually decides.
        """
        if CLUSTER not in customers.columns:
            raise ValueError(f"the labeler needs a '{CLUSTER}' column")
        signals = customers.drop(columns=[CLUSTER]).select_dtypes("number")
        self._check_rule_signals(signals.columns)
        clusters = customers[CLUSTER].to_numpy()
        overridden, _ = self._customer_rule_status(signals, ranks_from=None)
        judged = overridden.isna().to_numpy()
        if not judged.any():
            judged[:] = True  # everyone matched a customer rule: profile them all
        population = signals.loc[judged]
        # Sorted reference values let customers scored later be ranked against this population;
        # one sort per signal gives both them and the population's own percentile ranks.
        ranked = {
            name: percentile_ranks(population[name].to_numpy(dtype="float64", na_value=np.nan))
            for name in signals.columns
        }
        # Only what rules rank by is kept: the bundle carries one sorted copy of the judged
        # population per ranked signal, not of every signal.
        ranked_by = set(
            ranked_columns(rule.when for rule in (*self.cluster_rules, *self.customer_rules))
        )
        self.reference_ = {
            name: ordered for name, (_, ordered) in ranked.items() if name in ranked_by
        }
        ranks = pd.DataFrame(
            {RANK_PREFIX + name: pct for name, (pct, _) in ranked.items()},
            index=population.index,
        )
        values = pd.concat([population, ranks], axis=1)
        grouped = values.groupby(clusters[judged])
        profiles = grouped.median().reindex(np.unique(clusters))
        profiles.insert(0, "customers", pd.Series(clusters).value_counts().sort_index())
        profiles.insert(1, "share", profiles["customers"] / len(customers))
        profiles.insert(
            2,
            "customers_profiled",
            grouped.size().reindex(profiles.index).fillna(0).astype("int64"),
        )
        profiles.index.name = CLUSTER

        if self.naming not in ("members", "profile"):
            raise ValueError(f"naming must be 'members' or 'profile', not '{self.naming}'")
        member_rules = self._member_rules(values)
        statuses, reasons, agreeing = {}, {}, {}
        for cluster, profile in profiles.iterrows():
            if profile["customers_profiled"] == 0:
                decided = overridden[clusters == cluster].mode().iloc[0]
                statuses[int(cluster)] = decided
                reasons[int(cluster)] = f"every member matched the customer rule for '{decided}'"
                continue
            members = member_rules[clusters[judged] == cluster]
            if self.naming == "members":
                status, reason = self._name_by_members(members, profile)
            else:
                status, reason = self._name_profile(profile)
            statuses[int(cluster)], reasons[int(cluster)] = status, reason
            agreeing[int(cluster)] = float(
                (self._statuses(members) == status).mean() if len(members) else np.nan
            )
        profiles["status"] = pd.Series(statuses)
        profiles["status_reason"] = pd.Series(reasons)
        # How many profiled members meet their cluster's status on their own: its purity.
        profiles["members_agreeing"] = pd.Series(agreeing)
        self.cluster_profiles_ = profiles
        self.mapping_ = statuses
        self.reasons_ = reasons
        return self

    def _check_rule_signals(self, available: pd.Index) -> None:
        known = set(available) | {RANK_PREFIX + name for name in available}
        for rule in (*self.cluster_rules, *self.customer_rules):
            unknown = sorted(set(rule.when) - known)
            if unknown:
                raise ValueError(
                    f"rule for '{rule.status}' uses unknown signal(s) {unknown}; "
                    f"known: {sorted(available)} and their rank_ forms"
                )

    def _bound(self, value: float | str) -> float:
        if isinstance(value, str):
            parameters = self.parameters or {}
            if value not in parameters:
                raise ValueError(
                    f"rule bound '{value}' is not a known parameter {sorted(parameters)}"
                )
            return float(parameters[value])
        return float(value)

    def _evaluate(self, values: pd.DataFrame, rule: StatusRule) -> pd.Series:
        """Which rows of ``values`` meet every condition of ``rule`` (NaN never does)."""
        return meets(
            lambda name: values[name].to_numpy(dtype="float64"),
            rule.when,
            rows=values.index,
            bound=self._bound,
        )

    def _explain(self, profile: pd.Series, rule: StatusRule) -> str:
        parts = []
        for signal, condition in rule.when.items():
            bounds = [
                f"{symbol} {_format(self._bound(getattr(condition, op)))}"
                for op, (_, symbol) in OPERATORS.items()
                if getattr(condition, op) is not None
            ]
            parts.append(f"{signal} {_format(float(profile[signal]))} {' and '.join(bounds)}")
        detail = "; ".join(parts) if parts else "no conditions"
        return f"{rule.reason} ({detail})" if rule.reason else detail

    def _member_rules(self, values: pd.DataFrame) -> pd.Series:
        """Index of the first cluster rule each customer meets on their own (-1: none)."""
        first = pd.Series(-1, index=values.index, dtype="int64")
        for position, rule in enumerate(self.cluster_rules):
            first[(first < 0) & self._evaluate(values, rule)] = position
        return first

    def _statuses(self, positions: pd.Series) -> pd.Series:
        """``positions.map(self._rule_status)`` by one array lookup (-1 is the default)."""
        table = np.array(
            [rule.status for rule in self.cluster_rules] + [self.default_status], dtype=object
        )
        return pd.Series(table[positions.to_numpy()], index=positions.index, dtype=object)

    def _rule_status(self, position: int) -> str:
        return self.cluster_rules[position].status if position >= 0 else self.default_status

    def _rule_reason(self, position: int) -> str:
        if position < 0:
            return "no rule holds: default status"
        rule = self.cluster_rules[position]
        return rule.reason or rule.status

    def _name_by_members(self, members: pd.Series, profile: pd.Series) -> tuple[str, str]:
        """The status most members meet; a tie goes to the profile's status, else the status
        of the earlier rule."""
        statuses = self._statuses(members)
        counts = statuses.value_counts()
        tied = list(counts.index[counts == counts.max()])
        # Each status's earliest rule: the rules' order is their priority.
        priority = {status: members[statuses == status].min() for status in tied}
        by_profile, _ = self._name_profile(profile)
        status = (
            by_profile
            if len(tied) > 1 and by_profile in tied
            else min(tied, key=lambda s: (priority[s] < 0, priority[s]))
        )
        share = f"{counts[status] / len(members):.0%} of its {len(members)} members"
        if priority[status] < 0:
            return status, f"no rule holds for {share}: default status"
        # The rule most of them meet (a status may have several) explains the name.
        rules = members[statuses == status].value_counts()
        position = int(rules.index[0])
        medians = ", ".join(
            f"{signal} {_format(float(profile[signal]))}"
            for signal in self.cluster_rules[position].when
        )
        return status, f"{self._rule_reason(position)}: {share} (medians: {medians})"

    def _name_profile(self, profile: pd.Series) -> tuple[str, str]:
        frame = profile.to_frame().T
        for rule in self.cluster_rules:
            if bool(self._evaluate(frame, rule).iloc[0]):
                return rule.status, self._explain(profile, rule)
        return self.default_status, "no rule matched: default status"

    # -- applying --------------------------------------------------------------------------
    def _with_ranks(self, signals: pd.DataFrame, ranks_from: dict | None) -> pd.DataFrame:
        """``signals`` with the ``rank_`` columns the rules use: percentiles within ``signals``
        themselves, or (``ranks_from``) against the training population's sorted values."""
        values = signals.copy()
        rules = (*self.cluster_rules, *self.customer_rules)
        needed = {s for rule in rules for s in rule.when if s.startswith(RANK_PREFIX)}
        for name in sorted(needed):
            raw = values[name.removeprefix(RANK_PREFIX)].to_numpy(dtype="float64")
            if ranks_from is None:
                values[name], _ = percentile_ranks(raw)
            else:
                values[name] = ExactReference(ranks_from[name.removeprefix(RANK_PREFIX)]).rank(raw)
        return values

    def _customer_rule_status(
        self, signals: pd.DataFrame, ranks_from: dict | None
    ) -> tuple[pd.Series, pd.Series]:
        """Status given by the first matching customer rule and that rule's reason, NA where
        none matches."""
        values = self._with_ranks(signals, ranks_from)
        decided = pd.Series(pd.NA, index=signals.index, dtype="object")
        reasons = pd.Series(pd.NA, index=signals.index, dtype="object")
        for rule in self.customer_rules:
            hit = self._evaluate(values, rule) & decided.isna()
            decided[hit] = rule.status
            reasons[hit] = rule.reason or rule.status
        return decided, reasons

    def predict(self, customers: pd.DataFrame) -> pd.DataFrame:
        """Status of each customer.

        Returns
        -------
        pd.DataFrame
            Same index as ``customers``: ``status``, ``status_reason`` and ``status_source``
            (``cluster``; ``own_signals`` for a member of a mixed cluster; ``customer_rule``).
        """
        check_is_fitted(self, "mapping_")
        clusters = customers[CLUSTER].astype("int64")
        unknown = sorted(set(clusters.unique()) - set(self.mapping_))
        if unknown:
            raise ValueError(f"clusters {unknown} were not seen when the labeler was fitted")
        result = pd.DataFrame(
            {
                "status": clusters.map(self.mapping_),
                "status_reason": clusters.map(
                    {c: f"cluster {c}: {reason}" for c, reason in self.reasons_.items()}
                ),
                "status_source": "cluster",
            },
            index=customers.index,
        )
        signals = customers.drop(columns=[CLUSTER]).select_dtypes("number")
        purity = clusters.map(self.cluster_profiles_["members_agreeing"]).to_numpy(float)
        mixed = pd.Series(purity < self.min_cluster_purity, index=customers.index)
        if mixed.any():
            own = self._member_rules(self._with_ranks(signals.loc[mixed], self.reference_))
            result.loc[mixed, "status"] = self._statuses(own)
            shares = pd.Series(purity[mixed.to_numpy()], index=own.index)
            result.loc[mixed, "status_reason"] = [
                f"cluster {cluster} is mixed ({share:.0%} of its members meet "
                f"'{self.mapping_[cluster]}'): own signals: {self._rule_reason(position)}"
                for cluster, share, position in zip(clusters[mixed], shares, own, strict=True)
            ]
            result.loc[mixed, "status_source"] = "own_signals"
        decided, reasons = self._customer_rule_status(signals, ranks_from=self.reference_)
        hit = decided.notna()
        if hit.any():
            result.loc[hit, "status"] = decided[hit]
            # Each customer's own rule: two rules may give one status for different reasons.
            result.loc[hit, "status_reason"] = "customer rule: " + reasons[hit].astype(str)
            result.loc[hit, "status_source"] = "customer_rule"
        return result
