from __future__ import annotations

import numpy as np

from pipeline.sampling import seeded_rows


def test_a_sample_is_sorted_distinct_positions_the_seed_fixes():
    rows = seeded_rows(10_000, 300, random_state=4)
    assert len(rows) == len(np.unique(rows)) == 300 and rows.max() < 10_000
    assert (np.diff(rows) > 0).all()  # the rows keep their original order
    np.testing.assert_array_equal(rows, seeded_rows(10_000, 300, random_state=4))
    assert not np.array_equal(rows, seeded_rows(10_000, 300, random_state=5))


def test_no_sample_when_every_row_fits():
    assert seeded_rows(300, 300, random_state=0) is None
    assert seeded_rows(10, None, random_state=0) is None


def test_a_generator_is_advanced_as_by_its_own_draw():
    # Callers that draw more from the same generator afterwards (a fit's starting points) see
    # the state they would have seen drawing the sample themselves.
    mine, theirs = np.random.default_rng(9), np.random.default_rng(9)
    rows = seeded_rows(1000, 50, random_state=mine)
    np.testing.assert_array_equal(rows, np.sort(theirs.choice(1000, size=50, replace=False)))
    assert mine.random() == theirs.random()
