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


def _column(segments: pd.DataFrame, name: str) -> pd.Series:
    if name in segments.columns:
        return segments[name]
    if name.startswith(RANK_PREFIX) and name.removeprefix(RANK_PREFIX) in segments.columns:
        return segments[name.removeprefix(RANK_PREFIX)].rank(pct=True)
    raise ValueError(f"sub-segment rule uses unknown column '{name}'")


def _matches(segments: pd.DataFrame, rule: SubSegmentRule) -> pd.Series:
    hit = pd.Series(True, index=segments.index)
    if rule.statuses:
        hit &= segments["status"].isin(rule.statuses)
    for name, condition in rule.when.items():
        values = _column(segments, name)
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


def assign_sub_segments(segments: pd.DataFrame, rules: Sequence[SubSegmentRule]) -> pd.Series:
    """The name of the first matching sub-segment rule per customer, NA where none matches."""
    names = pd.Series(pd.NA, index=segments.index, dtype="string")
    for rule in rules:
        hit = _matches(segments, rule) & names.isna()
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
