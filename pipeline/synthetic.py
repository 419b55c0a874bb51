"""The embedded sample: transactions in which the seven loyalty statuses are planted.

Each planted status is a behaviour over time that matches the status's meaning (see the
README), drawn with per-customer parameters and noise so that the margins overlap as they do
in real data. It is the default data of ``make train`` and the known answer of model tests.
Pure: the same arguments give identical frames; no I/O and no global random state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

STATUSES: tuple[str, ...] = ("new", "active", "loyal", "occasional", "at_risk", "declining", "lost")
DEFAULT_MIX: dict[str, float] = {
    "new": 0.10,
    "active": 0.18,
    "loyal": 0.12,
    "occasional": 0.18,
    "at_risk": 0.12,
    "declining": 0.10,
    "lost": 0.20,
}
DEFAULT_AS_OF = pd.Timestamp("2025-12-31")
RECENT_WINDOW_DAYS = 180  # where a declining customer's spend falls
AMOUNT_SPREAD = 0.3  # lognormal sigma of one purchase around the customer's own mean

# A planted customer: purchase ages (days before as-of, any order) and the mean amount of each.
Purchases = tuple[np.ndarray, np.ndarray]


def _gaps(rng: np.random.Generator, mean: float, cv: float, n: int) -> np.ndarray:
    shape = 1.0 / cv**2
    return rng.gamma(shape, mean / shape, size=n)


def _forward(
    rng: np.random.Generator, first_age: float, mean_gap: float, cv: float, until_age: float
) -> np.ndarray:
    """Purchase ages from ``first_age`` onwards at the given rhythm while age >= ``until_age``."""
    count = int(np.ceil((first_age - until_age) / mean_gap * 2)) + 4
    ages = first_age - np.concatenate([[0.0], np.cumsum(_gaps(rng, mean_gap, cv, count))])
    return ages[ages >= until_age]


def _backward(
    rng: np.random.Generator, last_age: float, mean_gap: float, cv: float, n: int, oldest: float
) -> np.ndarray:
    """``n`` purchase ages ending at ``last_age`` at the given rhythm, none older than ``oldest``."""
    ages = last_age + np.concatenate([[0.0], np.cumsum(_gaps(rng, mean_gap, cv, n - 1))])
    return ages[ages <= oldest]


def _ensure_recent(
    rng: np.random.Generator, ages: np.ndarray, mean_gap: float, limit: float
) -> np.ndarray:
    """Still buying: if the last purchase is more than ``limit`` gaps ago, add one within a gap."""
    if ages.min() > limit * mean_gap:
        ages = np.append(ages, rng.uniform(0.05, 0.9) * mean_gap)
    return ages


def _new(rng: np.random.Generator) -> Purchases:
    first = rng.uniform(3, 85)
    ages = np.append(first, rng.uniform(0, first, size=rng.integers(0, 3)))
    return ages, np.full(len(ages), rng.uniform(30, 60))


def _loyal(rng: np.random.Generator) -> Purchases:
    gap = rng.uniform(10, 25)
    ages = _forward(rng, rng.uniform(420, 730), gap, rng.uniform(0.25, 0.45), until_age=0)
    ages = _ensure_recent(rng, ages, gap, limit=1.2)
    return ages, np.full(len(ages), rng.uniform(50, 90))


def _active(rng: np.random.Generator) -> Purchases:
    gap = rng.uniform(25, 55)
    ages = _forward(rng, rng.uniform(150, 730), gap, rng.uniform(0.3, 0.5), until_age=0)
    ages = _ensure_recent(rng, ages, gap, limit=1.2)
    return ages, np.full(len(ages), rng.uniform(25, 50))


def _occasional(rng: np.random.Generator) -> Purchases:
    gap = rng.uniform(90, 180)
    ages = _forward(rng, rng.uniform(300, 730), gap, rng.uniform(0.6, 0.9), until_age=0)
    ages = _ensure_recent(rng, ages, gap, limit=1.0)
    return ages, np.full(len(ages), rng.uniform(20, 60))


def _at_risk(rng: np.random.Generator) -> Purchases:
    gap = rng.uniform(14, 40)
    last = min(gap * rng.uniform(3.5, 7.0), 239.0)
    first = min(max(rng.uniform(300, 730), last + 5.5 * gap), 730.0)
    n = int((first - last) / gap) + 8
    ages = _backward(rng, last, gap, rng.uniform(0.25, 0.45), n, oldest=first)
    return ages, np.full(len(ages), rng.uniform(30, 80))


def _declining(rng: np.random.Generator) -> Purchases:
    gap, cv, level = rng.uniform(12, 30), rng.uniform(0.3, 0.45), rng.uniform(120, 250)
    before = _forward(rng, rng.uniform(420, 730), gap, cv, until_age=RECENT_WINDOW_DAYS)
    slower = gap * rng.uniform(1.3, 1.8)
    start = before.min() - _gaps(rng, slower, cv, 1)[0]
    after = _forward(rng, start, slower, cv, until_age=0) if start >= 0 else np.empty(0)
    after = _ensure_recent(rng, after if len(after) else np.array([start]), slower, limit=1.2)
    after = after[after >= 0]
    drop = rng.uniform(0.25, 0.45)
    amounts = np.concatenate([np.full(len(before), level), np.full(len(after), level * drop)])
    return np.concatenate([before, after]), amounts


def _lost(rng: np.random.Generator) -> Purchases:
    gap, n = rng.uniform(15, 60), int(rng.integers(1, 9))
    last = max(rng.uniform(330, 650), 8 * gap)
    ages = _backward(rng, last, gap, rng.uniform(0.3, 0.6), n, oldest=730.0)
    return ages, np.full(len(ages), rng.uniform(20, 70))


_PLANTERS: dict[str, Callable[[np.random.Generator], Purchases]] = {
    "new": _new,
    "active": _active,
    "loyal": _loyal,
    "occasional": _occasional,
    "at_risk": _at_risk,
    "declining": _declining,
    "lost": _lost,
}


def _counts(n_customers: int, mix: Mapping[str, float]) -> dict[str, int]:
    counts = {status: int(round(mix[status] * n_customers)) for status in STATUSES}
    largest = max(STATUSES, key=lambda s: mix[s])
    counts[largest] += n_customers - sum(counts.values())
    return counts


def _validate(n_customers: int, mix: Mapping[str, float]) -> None:
    if set(mix) != set(STATUSES):
        raise ValueError(f"mix must give a share for exactly these statuses: {STATUSES}")
    if any(share < 0 for share in mix.values()) or abs(sum(mix.values()) - 1) > 1e-6:
        raise ValueError("mix shares must be non-negative and sum to 1")
    if n_customers < len(STATUSES):
        raise ValueError(f"n_customers must be at least {len(STATUSES)}")


def generate_transactions(
    n_customers: int = 6000,
    *,
    as_of: pd.Timestamp = DEFAULT_AS_OF,
    history_days: int = 730,
    mix: Mapping[str, float] | None = None,
    random_state: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate transactions with planted loyalty statuses.

    Parameters
    ----------
    n_customers
        Customers in total, split by ``mix``.
    as_of
        The observation end: no transaction falls after this day.
    history_days
        How far back the history reaches (the planted ranges assume 730).
    mix
        Share of each status; default :data:`DEFAULT_MIX`.
    random_state
        Seed of the only random generator used.

    Returns
    -------
    transactions
        ``customer_id`` (str), ``timestamp`` (with a time of day), ``amount`` (> 0, cents),
        sorted by timestamp and customer.
    truth
        ``customer_id`` and planted ``status``, one row per customer, sorted by customer.
    """
    mix = dict(DEFAULT_MIX if mix is None else mix)
    _validate(n_customers, mix)
    rng = np.random.default_rng(random_state)
    counts = _counts(n_customers, mix)
    statuses = np.repeat(np.array(STATUSES), [counts[s] for s in STATUSES])
    # Ids are shuffled so that no status owns a contiguous block of them.
    ids = np.array([f"C{i:05d}" for i in rng.permutation(n_customers) + 1])

    customer_col, age_col, mean_col = [], [], []
    for customer, status in zip(ids, statuses, strict=True):
        ages, means = _PLANTERS[status](rng)
        keep = (ages >= 0) & (ages <= history_days)
        customer_col.append(np.full(keep.sum(), customer))
        age_col.append(ages[keep])
        mean_col.append(means[keep])
    customers = np.concatenate(customer_col)
    ages = np.concatenate(age_col)
    means = np.concatenate(mean_col)

    end = pd.Timestamp(as_of).normalize()
    days = np.floor(ages).astype("int64")
    seconds = rng.integers(8 * 3600, 21 * 3600, size=len(days))
    timestamps = end - pd.to_timedelta(days, unit="D") + pd.to_timedelta(seconds, unit="s")
    noise = rng.lognormal(-(AMOUNT_SPREAD**2) / 2, AMOUNT_SPREAD, size=len(days))
    amounts = np.maximum(np.round(means * noise, 2), 0.5)

    transactions = (
        pd.DataFrame({"customer_id": customers, "timestamp": timestamps, "amount": amounts})
        .sort_values(["timestamp", "customer_id"], kind="mergesort")
        .reset_index(drop=True)
    )
    transactions["timestamp"] = transactions["timestamp"].astype("datetime64[ns]")
    truth = (
        pd.DataFrame({"customer_id": ids, "status": statuses})
        .sort_values("customer_id", kind="mergesort")
        .reset_index(drop=True)
    )
    return transactions, truth
