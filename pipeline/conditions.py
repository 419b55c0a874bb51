"""The rule language of status rules (``rules/statuses.yaml``) and sub-segment rules
(``rules/sub_segments.yaml``): one set of operators, one meaning of ``rank_``.

A rule's ``when`` maps a column to a :class:`pipeline.config.Condition` (``gt``, ``ge``, ``lt``,
``le``; every bound given must hold, and a missing value never meets one). ``rank_<column>`` is
a customer's percentile of ``<column>`` in a *reference population*: the share of that
population at or below the customer's value (0 = lowest, 1 = highest). Which population is an
explicit argument wherever ranks are made, because the two kinds of rule rank differently:

- status rules rank among the customers the cluster names are judged on (those no customer
  rule decides: a cluster of regulars is not called high-spending because the new customers,
  all low spenders by construction, sit below it). The reference keeps their sorted values,
  so the rank is exact;
- sub-segment rules rank among every customer of the training base ("the top 20% of spenders"
  as marketing reads it), kept as 1,001 quantiles: a rank to within 0.1 percentage point,
  whatever the size of the base.

The two ranks of one customer therefore differ by the share of the base that customer rules
decide below them (a tenth of the embedded sample is new; the issue that unified the language
measured up to 0.2 on a real base): ``tests/unit/test_conditions.py`` pins that relation.
A reference from the training population is kept with the
model, so a customer scored later (alone, in a batch, in a Spark partition) gets the rank the
training would have given them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import Condition

RANK_PREFIX = "rank_"
# operator -> (comparison, symbol for explanations)
OPERATORS: dict[str, tuple[Callable[[np.ndarray, float], np.ndarray], str]] = {
    "gt": (np.greater, ">"),
    "ge": (np.greater_equal, ">="),
    "lt": (np.less, "<"),
    "le": (np.less_equal, "<="),
}
# Quantiles kept per ranked column of a whole-base reference: ranks to within 0.1 point.
GRID_POINTS = 1001


def ranked_columns(conditions: Iterable[Mapping[str, object]]) -> list[str]:
    """The columns that rules compare by rank (``rank_<column>`` -> ``<column>``)."""
    names = {name for when in conditions for name in when if name.startswith(RANK_PREFIX)}
    return sorted(name.removeprefix(RANK_PREFIX) for name in names)


def percentile_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's percentile rank among the others, ties at their average rank, NaN kept
    (``Series.rank(pct=True)`` to the bit), and the sorted values without NaN, from one sort.

    A run of ties at sorted positions i..j-1 takes rank (i + 1 + j) / 2: a half-integer, exact
    in floating point, divided by the same count as pandas divides by.
    """
    order = np.argsort(values, kind="stable")  # NaN sorts last
    ordered = values[order]
    count = int((~np.isnan(values)).sum())
    ordered = ordered[:count]
    pct = np.full(len(values), np.nan)
    if count:
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], count]
        average = (starts + 1 + ends) / 2
        pct[order[:count]] = np.repeat(average, ends - starts) / count
    return pct, ordered


@dataclass(frozen=True)
class ExactReference:
    """A population's sorted values: a rank is the exact share at or below a value."""

    ordered: np.ndarray

    def rank(self, values: np.ndarray) -> np.ndarray:
        ranked = np.searchsorted(self.ordered, values, side="right") / max(len(self.ordered), 1)
        return np.where(np.isnan(values), np.nan, ranked)


@dataclass(frozen=True)
class GridReference:
    """A population's quantiles at evenly spaced levels: a rank is the highest level whose
    quantile is at or below a value (to within one grid step)."""

    quantiles: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, points: int = GRID_POINTS) -> GridReference:
        return cls(np.quantile(values, np.linspace(0.0, 1.0, points)))

    def rank(self, values: np.ndarray) -> np.ndarray:
        below = np.searchsorted(self.quantiles, values, side="right")
        ranked = (below - 1).clip(0, None) / (len(self.quantiles) - 1)
        return np.where(np.isnan(values), np.nan, ranked)


def meets(
    columns: Callable[[str], np.ndarray],
    when: Mapping[str, Condition],
    *,
    rows: pd.Index,
    bound: Callable[[float | str], float] = float,
) -> pd.Series:
    """Which rows meet every condition of ``when`` (a missing value never meets a bound).

    ``columns(name)`` gives a column's values as floats (``rank_`` columns already ranked);
    ``bound`` turns a bound into a number (status rules may name a parameter instead).
    """
    met = np.ones(len(rows), dtype=bool)
    for name, condition in when.items():
        values = columns(name)
        for operator, (compare, _) in OPERATORS.items():
            limit = getattr(condition, operator)
            if limit is not None:
                with np.errstate(invalid="ignore"):
                    met &= compare(values, bound(limit)) & ~np.isnan(values)
    return pd.Series(met, index=rows)
