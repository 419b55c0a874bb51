"""The rule language: operators, missing values, and what a rank means against each reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.conditions import (
    ExactReference,
    GridReference,
    meets,
    percentile_ranks,
    ranked_columns,
)
from pipeline.config import Condition


def test_every_bound_must_hold_and_a_missing_value_meets_none():
    values = {"x": np.array([1.0, 2.0, 3.0, np.nan]), "y": np.array([0.0, 5.0, 5.0, 5.0])}
    met = meets(
        values.__getitem__,
        {"x": Condition(gt=1, le=3), "y": Condition(ge=5)},
        rows=pd.RangeIndex(4),
    )
    assert met.tolist() == [False, True, True, False]


def test_a_named_bound_is_resolved_by_the_caller():
    met = meets(
        {"days": np.array([10.0, 40.0])}.__getitem__,
        {"days": Condition(le="window")},
        rows=pd.RangeIndex(2),
        bound=lambda b: 30.0 if b == "window" else float(b),
    )
    assert met.tolist() == [True, False]


def test_ranked_columns_are_the_rank_forms_only():
    assert ranked_columns([{"rank_spend": 1, "tenure": 2}, {"rank_gap": 1, "rank_spend": 3}]) == [
        "gap",
        "spend",
    ]


def test_an_exact_rank_is_the_share_at_or_below_and_nan_stays_nan():
    reference = ExactReference(np.array([1.0, 2.0, 2.0, 4.0]))
    ranks = reference.rank(np.array([0.5, 2.0, 3.0, 4.0, np.nan]))
    np.testing.assert_allclose(ranks, [0.0, 0.75, 0.75, 1.0, np.nan])


def test_a_grid_rank_is_within_one_step_of_the_exact_rank():
    values = np.random.default_rng(3).lognormal(3.0, 1.0, 20_000)
    exact = ExactReference(np.sort(values)).rank(values)
    grid = GridReference.of(values).rank(values)
    assert np.abs(grid - exact).max() <= 1 / 1000 + 1e-9


def test_percentile_ranks_equal_pandas_to_the_bit():
    values = np.array([3.0, 1.0, np.nan, 3.0, 2.0, 3.0])
    ranks, ordered = percentile_ranks(values)
    expected = pd.Series(values).rank(pct=True).to_numpy()
    assert np.array_equal(ranks, expected, equal_nan=True)
    assert ordered.tolist() == [1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize("excluded_share", [0.1, 0.2])
def test_the_two_populations_differ_by_the_share_decided_below(excluded_share):
    # Status rules rank among the customers no customer rule decides; sub-segment rules among
    # the whole base. With the decided customers (the new, say) all below everyone else, an
    # established customer's two ranks differ by exactly the decided share at the bottom and
    # not at all at the top.
    rng = np.random.default_rng(7)
    established = rng.lognormal(5.0, 0.5, 8_000)
    decided = rng.uniform(
        0.0, established.min() / 2, int(8_000 * excluded_share / (1 - excluded_share))
    )
    whole = np.concatenate([established, decided])
    among_judged = ExactReference(np.sort(established)).rank(established)
    among_all = ExactReference(np.sort(whole)).rank(established)
    share = len(decided) / len(whole)
    difference = among_all - among_judged
    # the lowest established customer ranks 1/n among the judged: share x (1 - 1/n) apart
    assert difference.max() == pytest.approx(share * (1 - 1 / len(established)), abs=1e-9)
    np.testing.assert_allclose(difference, share * (1 - among_judged), atol=1e-9)
