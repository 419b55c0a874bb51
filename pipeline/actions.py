"""From statuses to what marketing does: sub-segments and the playbook.

Pure functions over the segment table: they add columns, never change the statuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.conditions import RANK_PREFIX, GridReference, meets
from pipeline.config import Condition, PlaybookEntry, SubSegmentRule

RankReference = Mapping[str, np.ndarray]


def rank_reference(table: pd.DataFrame, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The whole training base's quantiles of each ranked column (a
    :class:`pipeline.conditions.GridReference` each, kept as its array in the bundle).

    A customer's rank is then their place in the *training* population, whoever else is scored
    with them (a batch, a Spark partition): the same customer always gets the same sub-segment.
    """
    reference = {}
    for name in columns:
        if name in table.columns:
            values = pd.to_numeric(table[name], errors="coerce").dropna().to_numpy("float64")
            if len(values):
                reference[name] = GridReference.of(values).quantiles
    return reference


def _column(segments: pd.DataFrame, name: str, reference: RankReference | None = None) -> pd.Series:
    if name in segments.columns:
        return segments[name]
    base = name.removeprefix(RANK_PREFIX)
    if name.startswith(RANK_PREFIX) and base in segments.columns:
        values = pd.to_numeric(segments[base], errors="coerce")
        if reference is not None and base in reference:
            ranks = GridReference(reference[base]).rank(values.to_numpy("float64"))
            return pd.Series(ranks, index=segments.index)
        return values.rank(pct=True)
    raise ValueError(f"sub-segment rule uses unknown column '{name}'")


def _matches(
    segments: pd.DataFrame, rule: SubSegmentRule, reference: RankReference | None
) -> pd.Series:
    hit = pd.Series(True, index=segments.index)
    if rule.statuses:
        hit &= segments["status"].isin(rule.statuses)
    numeric = {n: c for n, c in rule.when.items() if isinstance(c, Condition)}
    hit &= meets(
        lambda name: pd.to_numeric(_column(segments, name, reference), errors="coerce").to_numpy(
            dtype="float64"
        ),
        numeric,
        rows=segments.index,
    )
    for name, accepted in rule.when.items():
        if name not in numeric:
            values = _column(segments, name, reference)
            hit &= values.astype("string").isin(accepted).fillna(False).to_numpy()
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
