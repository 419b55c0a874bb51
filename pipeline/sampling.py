"""Seeded samples of rows: the one way every stage bounds its cost on a large base.

A sample is the sorted positions of rows drawn without replacement from a seeded generator, so
the same data and seed give the same rows, kept in their original order.
"""

from __future__ import annotations

import numpy as np


def seeded_rows(
    total: int, limit: int | None, *, random_state: int | np.random.Generator | None
) -> np.ndarray | None:
    """Sorted positions of at most ``limit`` of ``total`` rows; None when all are kept.

    ``random_state`` is a seed, or a generator the draw advances (as any other draw from it).
    """
    if limit is None or total <= limit:
        return None
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(total, size=limit, replace=False))
