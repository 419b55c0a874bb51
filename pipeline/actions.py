"""From statuses to what marketing does: sub-segments and the playbook.

Pure functions over the segment table: they add columns, never change the statuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.config import Condition, PlaybookEntry, SubSegmentRule

_BOUNDS = {"gt": np.greater, "ge": np.greater_equal, "lt": np.less, "le": np.less_equal}
RANK_PREFIX = "rank_"
# Quantiles kept per ranked column: ranks to within 0.1 percentage point.
RANK_POINTS = 1001

RankReference = Mapping[str, np.ndarray]


def ranked_columns(rules: Sequence[SubSegmentRule]) -> list[str]:
    """The columns that rules compare by rank (``rank_<column>``)."""
    names = [name for rule in rules for name in rule.when if name.startswith(RANK_PREFIX)]
    return sorted({name.removeprefix(RANK_PREFIX) for name in names})


def rank_reference(table: pd.DataFrame, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The training population's quantiles of each ranked column.

    A customer's rank is then their place in the *training* population, whoever else is scored
    with them (a batch, a Spark partition): the same customer always gets the same sub-segment.
    """
    levels = np.linspace(0.0, 1.0, RANK_POINTS)
    reference = {}
    for name in columns:
        if name in table.columns:
            values = pd.to_numeric(table[name], errors="coerce").dropna().to_numpy("float64")
            if len(values):
                reference[name] = np.quantile(values, levels)
    return reference


def _column(segments: pd.DataFrame, name: str, reference: RankReference | None = None) -> pd.Series:
    if name in segments.columns:
        return segments[name]
    base = name.removeprefix(RANK_PREFIX)
    if name.startswith(RANK_PREFIX) and base in segments.columns:
        values = pd.to_numeric(segments[base], errors="coerce")
        if reference is not None and base in reference:
            # Share of the training population at or below the value.
            quantiles = reference[base]
            below = np.searchsorted(quantiles, values.to_numpy("float64"), side="right")
            ranks = (below - 1).clip(0, None) / (len(quantiles) - 1)
            return pd.Series(ranks, index=segments.index).where(values.notna())
        return values.rank(pct=True)
    raise ValueError(f"sub-segment rule uses unknown column '{name}'")


def _matches(
    segments: pd.DataFrame, rule: SubSegmentRule, reference: RankReference | None
) -> pd.Series:
    hit = pd.Series(True, index=segments.index)
    if rule.statuses:
        hit &= segments["status"].isin(rule.statuses)
    for name, condition in rule.when.items():
        values = _column(segments, name, reference)
        if isinstance(condition, Condition):
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
            for bound, compare in _BOUNDS.items():
                limit = getattr(condition, bound)
                if limit is not None:
                    with np.errstate(invalid="ignore"):
                        hit &= compare(numbers, float(limit)) & ~np.isnan(numbers)
        else:
            hit &= values.astype("string").isin(condition).fillna(False).to_numpy()
    return hit


def assign_sub_segments(
    segments: pd.DataFrame,
    rules: Sequence[SubSegmentRule],
    *,
    reference: RankReference | None = None,
) -> pd.Series:
    """The name of the first matching sub-segment rule per customer, NA where none matches.

    ``rank_<column>`` is the customer's place in ``reference`` (:func:`rank_reference` of the
    training population); without one, their percentile among ``segments``.
    """
    names = pd.Series(pd.NA, index=segments.index, dtype="string")
    for rule in rules:
        hit = _matches(segments, rule, reference) & names.isna()
        names[hit] = rule.name
    return names


def apply_playbook(segments: pd.DataFrame, playbook: Mapping[str, PlaybookEntry]) -> pd.DataFrame:
    """Action, channel and contact cadence per customer.

    ``contact_every_days`` is the playbook's cadence, but never shorter than the customer's own
    typical gap between purchases: someone who buys every 60 days is not mailed weekly.
    """
    entries = segments["status"].map(lambda status: playbook.get(status))
    cadence = entries.map(lambda e: e.cadence_days if e is not None else np.nan).astype("float64")
    rhythm = segments["typical_gap_days"].round() if "typical_gap_days" in segments else cadence
    return pd.DataFrame(
        {
            "action": entries.map(lambda e: e.action if e is not None else pd.NA).astype("string"),
            "channel": entries.map(lambda e: e.channel if e is not None else pd.NA).astype(
                "string"
            ),
            "contact_every_days": np.fmax(cadence, rhythm).astype("float64"),
        },
        index=segments.index,
    )
