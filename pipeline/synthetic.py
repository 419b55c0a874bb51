"""The embedded planted sample: a seeded transactions table with known loyalty statuses.

:func:`generate_transactions` plants each of the seven statuses by its *meaning* (see the
README's status table) and returns the planted truth beside the transactions. It is the data
``make train`` runs on when no file is given, and the known answer that model tests score
against, so every customer is built to be recognisable by the definition of their status,
with realistic noise (Gamma-distributed gaps, lognormal amounts, a time of day) on top.

Every constraint of a definition holds by construction, never by rejection sampling: a
customer's rhythm is laid out between a first and a last purchase day that are drawn inside
the status's bounds, so generation never loops and its run time does not depend on luck.

Day ranges below are stated for the default two-year history. A shorter history (down to a
year) scales the "how long ago" bounds in proportion; the rhythms themselves (gaps, the
90-day new-customer window, the 180-day recent window) are kept, because they describe
behaviour, not the length of the record.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd

# One source of truth for the status names and their order (the labeling rules, metrics and
# plots use the same tuple).
from pipeline.config import STATUSES

__all__ = ["DEFAULT_MIX", "STATUSES", "generate_transactions"]

DEFAULT_MIX: dict[str, float] = {
    "new": 0.10,
    "active": 0.18,
    "loyal": 0.12,
    "occasional": 0.18,
    "at_risk": 0.12,
    "declining": 0.10,
    "lost": 0.20,
}

# The embedded sample's observation end (immutable, so safe as a default argument).
DEFAULT_AS_OF = pd.Timestamp("2025-12-31")
REFERENCE_HISTORY_DAYS = 730  # the history the day ranges below are written for
MIN_HISTORY_DAYS = 365  # below a year, "lost 330+ days ago" and "tenure 420+ days" lose meaning
MIX_TOLERANCE = 1e-6

# The labeling default (`labeling.new_window_days`): a `new` customer's first purchase lies
# inside it; the other statuses start well before it.
NEW_WINDOW_DAYS = 90
# The feature default (`features.recent_window_days`): `declining` customers change
# behaviour inside it, so spend_change compares a low recent window with a high earlier one.
RECENT_WINDOW_DAYS = 180
# An at-risk customer is overdue, not gone: their silence stays below this many days (for
# the reference history).
AT_RISK_MAX_SILENCE_DAYS = 240
# `lost` customers are silent for at least this many of their own mean gaps.
LOST_MIN_OVERDUE = 8.0

# Amounts are lognormal around each customer's own mean with this coefficient of variation.
AMOUNT_CV = 0.30
_AMOUNT_SIGMA = math.sqrt(math.log1p(AMOUNT_CV**2))
# Purchases happen during opening hours (08:00 to 22:00), to the second.
OPENING_SECONDS = 8 * 3600
CLOSING_SECONDS = 22 * 3600

_Purchases = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(owner, days_ago, amount): owner indexes the status's customers, one entry per purchase."""


# -- validation -----------------------------------------------------------------------------------
def _validated_mix(mix: Mapping[str, float] | None) -> np.ndarray:
    """Shares in STATUSES order, after checking keys, signs and sum."""
    if mix is None:
        mix = DEFAULT_MIX
    if not isinstance(mix, Mapping):
        raise ValueError(f"mix must be a mapping of status to share, got {type(mix).__name__}")
    missing = [s for s in STATUSES if s not in mix]
    unknown = sorted(str(k) for k in mix if k not in STATUSES)
    if missing or unknown:
        raise ValueError(
            f"mix must have exactly the keys {list(STATUSES)}; missing {missing}, unknown {unknown}"
        )
    try:
        shares = np.array([float(mix[s]) for s in STATUSES])
    except (TypeError, ValueError) as error:
        raise ValueError(f"mix shares must be numbers: {error}") from None
    bad = [s for s, v in zip(STATUSES, shares, strict=True) if not (np.isfinite(v) and v >= 0)]
    if bad:
        raise ValueError(f"mix shares must be finite and >= 0; invalid for {bad}")
    if abs(shares.sum() - 1.0) > MIX_TOLERANCE:
        raise ValueError(
            f"mix shares must sum to 1 (within {MIX_TOLERANCE}), got {shares.sum():.9g}"
        )
    return shares


def _validated_as_of(as_of: pd.Timestamp) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(as_of)
    except (TypeError, ValueError) as error:
        raise ValueError(f"as_of must be a date, got {as_of!r}: {error}") from None
    if pd.isna(stamp):
        raise ValueError("as_of must be a date, got NaT")
    if stamp.tz is not None:
        # The transactions contract is timezone-naive local time.
        raise ValueError(f"as_of must be timezone-naive, got {stamp}")
    return stamp.normalize()


def _status_counts(n_customers: int, shares: np.ndarray) -> np.ndarray:
    """Customers per status: round(share * n), the remainder to the largest share.

    Ties for the largest share go to the first in STATUSES order.
    """
    counts = np.rint(shares * n_customers).astype(np.int64)
    counts[int(np.argmax(shares))] += n_customers - int(counts.sum())
    return counts


# -- building blocks ------------------------------------------------------------------------------
def _gamma_shape(cv: np.ndarray) -> np.ndarray:
    """Gamma shape parameter giving the coefficient of variation ``cv``."""
    return 1.0 / np.square(cv)


def _gap_age(rng: np.random.Generator, cv: np.ndarray, cap: float) -> np.ndarray:
    """Days since the last purchase of a customer still buying, in units of their mean gap.

    At a random moment the customer is part way through their current gap (itself a Gamma
    draw); the cap keeps them no later than their definition allows.
    """
    shape = _gamma_shape(cv)
    current_gap = rng.gamma(shape, 1.0 / shape)
    return rng.uniform(0.0, 1.0, cv.size) * np.minimum(current_gap, cap)


def _place_purchases(
    rng: np.random.Generator,
    first: np.ndarray,
    last: np.ndarray,
    n_gaps: np.ndarray,
    cv: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Lay out ``n_gaps + 1`` purchase days from ``first`` down to ``last`` (days ago).

    Gaps are Gamma draws with coefficient of variation ``cv``, rescaled to fill the span
    exactly, so first and last purchase days are exactly the drawn ones (the constraints of a
    status hold by construction) while the rhythm inside keeps its irregularity. Days are
    whole and distinct: one purchase per customer per day, as the features count them.

    Returns
    -------
    owner, days
        Flat arrays, one entry per purchase; ``owner`` indexes the input rows.
    """
    first = np.asarray(first, dtype=np.int64)
    last = np.asarray(last, dtype=np.int64)
    n_gaps = np.asarray(n_gaps, dtype=np.int64)
    span = first - last  # callers guarantee span >= n_gaps, so distinct days always fit
    size, width = first.size, int(n_gaps.max(initial=0))
    shape = np.broadcast_to(_gamma_shape(np.asarray(cv, dtype=float)), (size,))
    gaps = rng.gamma(shape[:, None], 1.0, size=(size, width))
    gaps = np.where(np.arange(1, width + 1) <= n_gaps[:, None], gaps, 0.0)
    total = gaps.sum(axis=1, keepdims=True)
    share = np.cumsum(gaps, axis=1) / np.where(total > 0, total, 1.0)
    offset = np.rint(share * span[:, None]).astype(np.int64)
    offset = np.concatenate([np.zeros((size, 1), dtype=np.int64), offset], axis=1)
    # Rounding can put two purchases on one day. Make offsets strictly increasing from 0 to
    # span: u = offset - position must be non-decreasing and end at span - n_gaps.
    position = np.arange(width + 1)
    lifted = np.maximum.accumulate(offset - position, axis=1)
    offset = np.minimum(lifted, (span - n_gaps)[:, None]) + position
    valid = position <= n_gaps[:, None]
    owner = np.broadcast_to(np.arange(size)[:, None], valid.shape)[valid]
    return owner, (first[:, None] - offset)[valid]


def _rhythm_between(
    rng: np.random.Generator,
    gap: np.ndarray,
    overdue: np.ndarray,
    *,
    first_bounds: tuple[int, int],
    min_gaps: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First day, last day and number of gaps of a customer with a steady rhythm.

    The layout is first = gap * (n_gaps + overdue) and last = gap * overdue days ago, so the
    realised mean gap is ``gap`` and days since the last purchase is ``overdue`` of them.
    The first day lands inside ``first_bounds`` because a target is drawn in
    [max(lo, gap * (min_gaps + overdue)) + gap, hi] and n_gaps rounded down from it, which
    moves the first day back by less than one gap. Callers cap ``gap`` so the interval exists:
    gap <= hi - lo and gap * (min_gaps + overdue + 1) <= hi.
    """
    lo, hi = first_bounds
    start = np.maximum(lo, gap * (min_gaps + overdue)) + gap
    target = rng.uniform(np.minimum(start, hi), hi)
    n_gaps = np.maximum(np.floor(target / gap - overdue), min_gaps).astype(np.int64)
    first = np.rint(gap * (n_gaps + overdue)).astype(np.int64)
    last = np.rint(gap * overdue).astype(np.int64)
    return first, last, n_gaps


def _feasible_gap_cap(
    first_bounds: tuple[int, int], min_gaps: int, overdue: np.ndarray | float
) -> np.ndarray:
    """The largest mean gap for which :func:`_rhythm_between` can honour its bounds."""
    lo, hi = first_bounds
    return np.minimum(hi / (min_gaps + np.asarray(overdue) + 1.0), float(hi - lo))


def _gap_in(
    rng: np.random.Generator, low: float, high: np.ndarray | float, size: int
) -> np.ndarray:
    """Uniform mean gaps in [low, high], with low lowered if a short history caps high."""
    high = np.broadcast_to(np.asarray(high, dtype=float), (size,))
    return rng.uniform(np.minimum(low, high), high)


def _amounts(
    rng: np.random.Generator, mean: np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """Lognormal amounts with the given means and a 30% spread, rounded to cents.

    With ``groups``, the noise is rescaled to average exactly 1 inside each group, so the
    group's realised mean is its planted mean (used where a definition is about the realised
    level, such as a declining customer's fall in spend).
    """
    noise = rng.lognormal(-0.5 * _AMOUNT_SIGMA**2, _AMOUNT_SIGMA, mean.size)
    if groups is not None:
        _, inverse = np.unique(groups, return_inverse=True)
        noise /= (np.bincount(inverse, noise) / np.bincount(inverse))[inverse]
    # A cent is the smallest amount a till records; amounts must stay strictly positive.
    return np.maximum(np.round(mean * noise, 2), 0.01)


# -- the statuses ---------------------------------------------------------------------------------
class _Plan:
    """Day bounds of one generation, scaled to the history length."""

    def __init__(self, history_days: int) -> None:
        self.history_days = history_days
        self.scale = min(1.0, history_days / REFERENCE_HISTORY_DAYS)

    def ago(self, days: float) -> int:
        """A "this many days ago" bound of the reference history, scaled to this one."""
        return int(math.ceil(days * self.scale))

    def since(self, days: float) -> tuple[int, int]:
        """First purchase between ``days`` ago (scaled) and the start of the history."""
        return self.ago(days), self.history_days


def _new(rng: np.random.Generator, count: int, plan: _Plan) -> _Purchases:
    # Inside the new-customer window, with room for the buying that follows the first day.
    first = rng.integers(3, NEW_WINDOW_DAYS - 5, count, endpoint=True)
    n_gaps = rng.choice(3, count, p=[0.55, 0.30, 0.15])
    last = np.where(n_gaps > 0, rng.integers(0, first - n_gaps, endpoint=True), first)
    owner, days = _place_purchases(rng, first, last, n_gaps, 0.6)
    mean = rng.uniform(30, 60, count)
    return owner, days, _amounts(rng, mean[owner])


def _steady(
    rng: np.random.Generator,
    count: int,
    plan: _Plan,
    *,
    since: float,
    gap: tuple[float, float],
    cv: tuple[float, float],
    overdue_cap: float,
    min_gaps: int,
    amount: tuple[float, float],
) -> _Purchases:
    """A customer still buying to their own rhythm (loyal, active, occasional)."""
    bounds = plan.since(since)
    cvs = rng.uniform(*cv, count)
    overdue = _gap_age(rng, cvs, overdue_cap)
    gaps = _gap_in(
        rng, gap[0], np.minimum(gap[1], _feasible_gap_cap(bounds, min_gaps, overdue)), count
    )
    first, last, n_gaps = _rhythm_between(
        rng, gaps, overdue, first_bounds=bounds, min_gaps=min_gaps
    )
    owner, days = _place_purchases(rng, first, last, n_gaps, cvs)
    mean = rng.uniform(*amount, count)
    return owner, days, _amounts(rng, mean[owner])


def _loyal(rng: np.random.Generator, count: int, plan: _Plan) -> _Purchases:
    # Long-standing, frequent, regular and recent; spends more than most.
    return _steady(
        rng,
        count,
        plan,
        since=420,
        gap=(10, 25),
        cv=(0.25, 0.45),
        overdue_cap=1.2,
        min_gaps=2,
        amount=(50, 90),
    )


def _active(rng: np.random.Generator, count: int, plan: _Plan) -> _Purchases:
    # Regular and recent at a moderate rate; may have joined any time after the new window.
    return _steady(
        rng,
        count,
        plan,
        since=150,
        gap=(25, 55),
        cv=(0.3, 0.5),
        overdue_cap=1.2,
        min_gaps=2,
        amount=(25, 50),
    )


def _occasional(rng: np.random.Generator, count: int, plan: _Plan) -> _Purchases:
    # Rare, irregular purchases; their current silence is normal for them.
    return _steady(
        rng,
        count,
        plan,
        since=300,
        gap=(90, 180),
        cv=(0.6, 0.9),
        overdue_cap=1.3,
        min_gaps=1,
        amount=(20, 60),
    )


def _at_risk(rng: np.random.Generator, count: int, plan: _Plan) -> _Purchases:
    # A regular rhythm, then a silence of 3.5-7 of their own gaps, but under 240 days (scaled
    # like every "days ago" bound, so their silence stays shorter than the lost's): overdue,
    # not yet gone. The overdue ratio is drawn first and the gap capped so the silence fits.
    bounds, min_gaps = plan.since(300), 4
    overdue = rng.uniform(3.5, 7.0, count)
    silence_cap = (plan.ago(AT_RISK_MAX_SILENCE_DAYS) - 1) / overdue
    cap = np.minimum(np.minimum(40.0, silence_cap), _feasible_gap_cap(bounds, min_gaps, overdue))
    gaps = _gap_in(rng, 14, cap, count)
    cvs = rng.uniform(0.25, 0.45, count)
    first, last, n_gaps = _rhythm_between(
        rng, gaps, overdue, first_bounds=bounds, min_gaps=min_gaps
    )
    owner, days = _place_purchases(rng, first, last, n_gaps, cvs)
    mean = rng.uniform(25, 70, count)
    return owner, days, _amounts(rng, mean[owner])


def _declining(rng: np.random.Generator, count: int, plan: _Plan) -> _Purchases:
    # High value for most of their history; inside the recent window each purchase is worth
    # 25-45% of before and gaps are 1.3-1.8x longer, yet they are still buying.
    cvs = rng.uniform(0.25, 0.45, count)
    early_gap = rng.uniform(12, 30, count)
    late_gap = early_gap * rng.uniform(1.3, 1.8, count)
    early_mean = rng.uniform(120, 250, count)
    late_mean = early_mean * rng.uniform(0.25, 0.45, count)
    last = np.rint(late_gap * _gap_age(rng, cvs, 1.2)).astype(np.int64)

    # Recent purchases, walking back from the last one with the longer gaps (mean >= 12 * 1.3
    # days). Three times the steps the window holds on average leaves the walk short of the
    # window's start with negligible chance; even then every constraint holds, the earlier
    # rhythm just reaches a little into the window.
    width = 3 * int(math.ceil(RECENT_WINDOW_DAYS / (12 * 1.3)))
    shape = _gamma_shape(cvs)[:, None]
    steps = np.maximum(np.rint(rng.gamma(shape, late_gap[:, None] / shape, (count, width))), 1)
    recent = last[:, None] + np.concatenate(
        [np.zeros((count, 1)), np.cumsum(steps, axis=1)], axis=1
    ).astype(np.int64)
    in_window = recent < RECENT_WINDOW_DAYS
    # The earliest recent purchase ends the earlier rhythm, laid out from the first purchase.
    pivot = np.where(in_window, recent, -1).max(axis=1)
    first = rng.integers(*plan.since(420), count, endpoint=True)
    n_early = np.maximum(np.rint((first - pivot) / early_gap), 1).astype(np.int64)
    early_owner, early_days = _place_purchases(rng, first, pivot, n_early, cvs)
    later = in_window & (recent < pivot[:, None])  # the pivot is already the early run's last
    late_owner = np.broadcast_to(np.arange(count)[:, None], later.shape)[later]
    owner = np.concatenate([early_owner, late_owner])
    days = np.concatenate([early_days, recent[later]])

    is_recent = days < RECENT_WINDOW_DAYS
    mean = np.where(is_recent, late_mean[owner], early_mean[owner])
    # Exact phase means: the fall must show in every customer's realised spend, not only in
    # expectation (a customer with two recent purchases could otherwise look barely changed).
    return owner, days, _amounts(rng, mean, groups=owner * 2 + is_recent)


def _lost(rng: np.random.Generator, count: int, plan: _Plan) -> _Purchases:
    # A short spell of 1-8 purchases that ended 330-650 days ago, at least eight of their own
    # gaps ago: very likely gone.
    first_lo, first_hi = plan.since(450)
    last_lo, last_hi = plan.ago(330), int(650 * plan.scale)
    purchases = rng.choice(np.arange(1, 9), count, p=[0.24, 0.2, 0.16, 0.12, 0.1, 0.08, 0.06, 0.04])
    n_gaps = purchases - 1
    # The largest mean gap that still lets the spell end >= 8 gaps and >= last_lo days ago
    # inside the history.
    per_gap = np.maximum(n_gaps, 1)
    cap = np.minimum.reduce(
        [
            np.full(count, 60.0),
            (first_hi - last_lo) / per_gap,
            first_hi / (per_gap + LOST_MIN_OVERDUE),
            np.full(count, last_hi / LOST_MIN_OVERDUE),
        ]
    )
    gaps = _gap_in(rng, 15, cap, count)
    # Rounded down, so the realised mean gap never exceeds the capped one.
    span = np.floor(n_gaps * gaps).astype(np.int64)
    realised_gap = span / per_gap
    last_low = np.maximum.reduce(
        [
            np.full(count, last_lo),
            np.ceil(LOST_MIN_OVERDUE * realised_gap).astype(np.int64),
            first_lo - span,
        ]
    )
    last_high = np.minimum(last_hi, first_hi - span)
    last = rng.integers(last_low, last_high, endpoint=True)
    owner, days = _place_purchases(rng, last + span, last, n_gaps, rng.uniform(0.3, 0.6, count))
    mean = rng.uniform(20, 60, count)
    return owner, days, _amounts(rng, mean[owner])


_GENERATORS = {
    "new": _new,
    "active": _active,
    "loyal": _loyal,
    "occasional": _occasional,
    "at_risk": _at_risk,
    "declining": _declining,
    "lost": _lost,
}


# -- the public function --------------------------------------------------------------------------
def generate_transactions(
    n_customers: int = 6000,
    *,
    as_of: pd.Timestamp = DEFAULT_AS_OF,
    history_days: int = 730,
    mix: Mapping[str, float] | None = None,
    random_state: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a transactions table with planted loyalty statuses.

    Parameters
    ----------
    n_customers
        Number of customers, at least one per status.
    as_of
        Observation end (a day): every transaction falls on or before its end.
    history_days
        Length of the record before ``as_of``: no transaction is earlier than
        ``as_of - history_days``. At least 365.
    mix
        Share of customers per status, keyed by every name in :data:`STATUSES` and summing to
        1; ``None`` uses :data:`DEFAULT_MIX`. Counts are ``round(share * n_customers)``, the
        remainder going to the largest share.
    random_state
        Seed of the only random generator used; the same arguments give identical frames.

    Returns
    -------
    transactions : pd.DataFrame
        ``customer_id`` (str such as ``"C00042"``), ``timestamp`` (datetime64[ns], with a time
        of day), ``amount`` (float, > 0, in cents); one row per purchase, at most one per
        customer and day, sorted by ``(timestamp, customer_id)``.
    truth : pd.DataFrame
        ``customer_id`` and planted ``status``; one row per customer, sorted by
        ``customer_id``. Every customer has at least one transaction.

    Raises
    ------
    ValueError
        If ``mix``, ``n_customers``, ``history_days`` or ``as_of`` is invalid.
    """
    if isinstance(n_customers, bool) or not isinstance(n_customers, numbers.Integral):
        raise ValueError(f"n_customers must be an integer, got {n_customers!r}")
    if n_customers < len(STATUSES):
        raise ValueError(
            f"n_customers must be at least {len(STATUSES)} (one per status), got {n_customers}"
        )
    if isinstance(history_days, bool) or not isinstance(history_days, numbers.Integral):
        raise ValueError(f"history_days must be an integer, got {history_days!r}")
    if history_days < MIN_HISTORY_DAYS:
        raise ValueError(
            f"history_days must be at least {MIN_HISTORY_DAYS} so that long-standing and lost "
            f"customers can be planted, got {history_days}"
        )
    shares = _validated_mix(mix)
    as_of = _validated_as_of(as_of)
    n_customers, history_days = int(n_customers), int(history_days)

    rng = np.random.default_rng(random_state)
    counts = _status_counts(n_customers, shares)
    # Shuffled, so that no status owns a block of ids (nothing can be learnt from the id).
    status_of = rng.permutation(np.repeat(np.arange(len(STATUSES)), counts))
    plan = _Plan(history_days)

    owners, days, amounts = [], [], []
    for code, status in enumerate(STATUSES):
        members = np.flatnonzero(status_of == code)
        if members.size == 0:
            continue
        owner, days_ago, amount = _GENERATORS[status](rng, members.size, plan)
        owners.append(members[owner])
        days.append(days_ago)
        amounts.append(amount)
    owner = np.concatenate(owners)
    days_ago = np.concatenate(days).astype(np.int64)
    amount = np.concatenate(amounts)

    seconds = rng.integers(OPENING_SECONDS, CLOSING_SECONDS, owner.size)
    timestamp = (
        as_of.to_datetime64().astype("datetime64[s]")
        - days_ago.astype("timedelta64[D]")
        + seconds.astype("timedelta64[s]")
    ).astype("datetime64[ns]")
    # Zero-padded ids sort as their numbers do, so ordering by owner is ordering by id.
    order = np.lexsort((owner, timestamp))
    width = max(5, len(str(n_customers)))
    ids = np.array([f"C{i:0{width}d}" for i in range(1, n_customers + 1)], dtype=object)

    transactions = pd.DataFrame(
        {
            "customer_id": ids[owner[order]],
            "timestamp": timestamp[order],
            "amount": amount[order],
        }
    )
    truth = pd.DataFrame(
        {"customer_id": ids, "status": np.array(STATUSES, dtype=object)[status_of]}
    )
    return transactions, truth
