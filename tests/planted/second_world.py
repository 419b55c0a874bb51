"""A second planted world, written from the statuses' definitions alone.

The embedded sample (``pipeline/synthetic.py``) is the world the product was built on. This one
is written independently from the seeds' definitions (README's status table,
``pipeline/rules/statuses.yaml``), with different generative assumptions, so that a model tuned
to one world is caught by the other:

- **Renewal buyers.** A regular buyer's gaps between purchases are gamma distributed with shape
  k > 1 (a routine: CV = 1/sqrt(k) < 1), not memoryless; occasional buyers have k near 1 (CV near
  1: irregular) and long gaps.
- **Seasonality.** Purchases run on a seasonal clock: the intensity rises to about 1.6x the
  average month in December (see :data:`DECEMBER_BUMP`). Gaps are gamma in "seasonal time", so a
  routine survives the season while December holds more purchases.
- **Absolute-time truths.** ``at_risk`` and ``lost`` are planted by how long, in days and in the
  customer's own usual gaps, they have been silent, and by what they truly do next: the lost
  never buy again; a share of the at-risk come back (:data:`AT_RISK_RETURN_PROBABILITY`).
- **Value that changes without (or with) frequency.** Most planted decliners keep their rhythm
  while their spend per order drops; the rest keep their spend per order and buy less often.

:func:`plant` returns the transactions up to ``as_of``, the truth per customer and the
*future* transactions in ``(as_of, as_of + horizon_days]``, drawn from each customer's true
process, so that a backtest has a known answer.

Every constraint of a status holds by construction: a customer whose draw breaks it (e.g. an
occasional buyer whose current silence is already beyond what is normal for them) is drawn
again, so the truth is what the data shows, never a label the data cannot support.

This is test code, not product code: nothing in ``pipeline/`` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import DataConfig, TransactionColumns

STATUSES = ("new", "active", "loyal", "occasional", "at_risk", "declining", "lost")
STATIONARY = ("loyal", "active", "occasional")

# Shares of the statuses. Roughly even, each at least 10%: at 1,500 customers every status's
# F1 then rests on at least 150 customers (a recall's standard error near 0.03).
MIX = {
    "new": 0.10,
    "active": 0.18,
    "loyal": 0.16,
    "occasional": 0.18,
    "at_risk": 0.12,
    "declining": 0.10,
    "lost": 0.16,
}

# Two years of record (also the least :func:`plant` accepts): enough for a long-standing customer
# (a full year, see LOYAL_MIN_TENURE) to have a year before it, for the same season a year
# earlier to exist, and for a decliner's change (up to 450 days back) to have half a year of the
# old level before it.
HISTORY_DAYS = 730

# -- the seasonal clock ----------------------------------------------------------------------
# December bump: a Gaussian in day-of-year centred on mid-December. With a width of 9 days and a
# peak of 1 + 1.0 times the base rate, December holds about 1.6x the purchases of an average
# month, the order of the December peak of general-merchandise and online retail in the US
# Census monthly retail series (1.3x-1.8x an average month).
DECEMBER_PEAK_DAY_OF_YEAR = 350  # 16 December
DECEMBER_WIDTH_DAYS = 9.0
DECEMBER_BUMP = 1.0

# -- spend ----------------------------------------------------------------------------------
# Order values: a customer's own level is lognormal across customers around a median basket
# (sigma 0.5: the middle 80% of customers spend 0.5x-1.9x the median, the spread of basket
# sizes in grocery and general retail), and each order varies around it (sigma 0.3: the same
# shopper's baskets vary by about a third).
MEDIAN_ORDER_VALUE = 40.0
CUSTOMER_LEVEL_SIGMA = 0.5
ORDER_NOISE_SIGMA = 0.3

# -- rhythms (mean gap in days, gamma shape k; CV = 1 / sqrt(k)) -----------------------------
# Loyal: weekly to every three and a half weeks (15-50 purchases a year), steady routine with
# CV 0.33-0.5 (k 4-9), i.e. well under the CV of 1 of a memoryless buyer.
LOYAL_GAP_DAYS = (7.0, 24.0)
LOYAL_SHAPE = (4.0, 9.0)
# Long-standing: a full year since the first purchase, so the customer has lived through every
# season (one December included) and their loyalty is not a seasonal one-off.
LOYAL_MIN_TENURE = 365.0
# Active, less frequent: every five weeks to every three months (4-10 a year), regular (k 2.5-5:
# CV 0.45-0.63). The gap between 24 and 35 days is left empty so that no planted loyal and
# active customer differ by a day of rhythm.
ACTIVE_GAP_DAYS = (35.0, 90.0)
ACTIVE_SHAPE = (2.5, 5.0)
# Most active customers are the moderate-rate kind; the short-tenure kind (below) is a
# minority, as newcomers who already buy at a loyal rate are in a base that is not booming.
ACTIVE_LESS_FREQUENT_SHARE = 0.7
# Active, shorter tenure: a loyal rhythm but between 120 and 180 days since the first purchase:
# past the 90-day new-customer window (with a month's margin) and short of half a year, well
# short of the year loyalty asks. Frequent customers with 180-365 days of tenure are not
# planted at all: that band is where reasonable definitions disagree.
ACTIVE_SHORT_TENURE = (120.0, 180.0)
# Occasional: two to four purchases a year (gaps of 90-200 days) and irregular (k 0.7-1.2:
# CV 0.9-1.2, as bursty as a memoryless buyer or more).
OCCASIONAL_GAP_DAYS = (90.0, 200.0)
OCCASIONAL_SHAPE = (0.7, 1.2)
# An occasional buyer needs long enough a record to have shown a rhythm of rare purchases:
# at least 240 days, more than one of their usual gaps.
OCCASIONAL_MIN_TENURE = 240.0
# At risk: a regular rhythm (k >= 4, so 2 usual gaps is past the 95th percentile of one gap:
# P(gamma(4) gap > 2 means) = 0.042) of every 10 days to two months.
AT_RISK_GAP_DAYS = (10.0, 60.0)
AT_RISK_SHAPE = (4.0, 8.0)
# Declining: a regular rhythm of every 10 to 40 days (9-36 a year) before the change.
DECLINING_GAP_DAYS = (10.0, 40.0)
DECLINING_SHAPE = (3.0, 7.0)
# Lost: a former regular buyer (k 2-6) of every 10 days to two months.
LOST_GAP_DAYS = (10.0, 60.0)
LOST_SHAPE = (2.0, 6.0)
# New: any regular rhythm a new customer may turn out to have (loyal to active).
NEW_GAP_DAYS = (7.0, 90.0)
NEW_SHAPE = (2.5, 6.0)

# -- silences (days since the last purchase, in the customer's own usual gaps) ---------------
# "Recently": a loyal or active customer is planted only while their silence is at most 1.5
# usual gaps. For k = 4 a still-buying customer's silence exceeds that only about 4% of the time,
# so this removes the rare draw that looks overdue without being so.
RECENT_GAPS = 1.5
# Occasional: long gaps are normal for them, but a silence beyond two of their usual gaps is one
# an irregular buyer (CV ~1) shows only ~14% of the time (e^-2): the data could not tell them
# from the lost, so they are not planted as occasional.
OCCASIONAL_MAX_SILENCE_GAPS = 2.0
# At risk: silent for 2-4 usual gaps: past the 95th percentile of a gamma(k=4) gap (1.94 means),
# but before a seasoned marketer writes the customer off (commonly at 4-6 missed cycles).
AT_RISK_SILENCE_GAPS = (2.0, 4.0)
# At risk is still alive: between a third and a half of them come back (issue 12's definition);
# 0.4 is the middle of that range. A returning customer's first purchase is uniform over the
# horizon: nothing says when a lapsed customer decides to come back.
AT_RISK_RETURN_PROBABILITY = 0.4
# A rhythm to be late against: at least four gaps (five purchases) before the silence; the mean
# of four gaps with CV 0.5 is known to +-25%, so 2 usual gaps is clearly beyond it.
AT_RISK_MIN_PURCHASES = 5
# Lost: silent for 6-12 usual gaps, well beyond the at-risk band's 4 (a margin of two gaps
# so the truths never touch). For a regular buyer (k >= 2) a gap of 6 means has probability
# below 1e-4: a still-buying customer essentially never shows such a silence.
LOST_SILENCE_GAPS = (6.0, 12.0)
# A lost customer with a single purchase has no rhythm of their own: planted only when the
# silence is a year or more, long enough to have skipped every season including December.
LOST_ONE_TIMER_MIN_SILENCE = 365.0
# New: first purchase inside the documented 90-day new-customer window (README), with a 15-day
# margin so the truth is not decided by a day's rounding, and within two of their own usual gaps,
# so they have had at most a couple of chances to buy again. Every other customer's first
# purchase is older than the window by the same margin: by the definition, anyone inside it is
# new, whatever they did since.
NEW_WINDOW_DAYS = 90.0
NEW_MARGIN_DAYS = 15.0
NEW_MAX_TENURE = NEW_WINDOW_DAYS - NEW_MARGIN_DAYS
NOT_NEW_MIN_TENURE = NEW_WINDOW_DAYS + NEW_MARGIN_DAYS
NEW_MAX_TENURE_GAPS = 2.0

# -- decline -------------------------------------------------------------------------------
# Historically high value: an order level 2x-4x the median basket at a fortnightly-to-monthly
# rhythm puts a customer in the top fifth of spend before the decline (checked by the tests).
DECLINING_LEVEL_MULTIPLE = (2.0, 4.0)
# Spend decliners keep their rhythm while each order falls to 30%-55% of its former value: at
# least halving value. Over three orders (the fewest the post-change window expects) with noise
# sigma 0.3 the mean log order is known to +-0.17, so a drop of log(0.55) = -0.6 is at least 3.5
# standard errors: detectable by anyone who looks.
# Two thirds decline by spend per order (issue 12's case: value that changes without a change
# in frequency, which a purchase-count model cannot see), one third by frequency.
DECLINING_SPEND_KIND_SHARE = 2 / 3
SPEND_AFTER_DECLINE = (0.30, 0.55)
# Frequency decliners keep their order value while their gap grows 2x-3x: value rate halved or
# worse, the same size of loss as the spend decliners'.
GAP_GROWTH_AFTER_DECLINE = (2.0, 3.0)
# The change happens 120 days ago or earlier, and at least three post-change gaps ago, with up
# to 25% more: enough post-change purchases to see the new level (a quarter of a year at least,
# the shortest span a business reviews a customer's value over).
DECLINE_MIN_DAYS = 120.0
DECLINE_MIN_GAPS = 3.0
# At least half a year of the old level before the change: something to decline from.
DECLINE_MIN_BEFORE_DAYS = 180.0
# At least four orders at the old level and two at the new one: each level is an average of
# baskets, not a single basket.
DECLINING_MIN_PURCHASES_BEFORE = 4
DECLINING_MIN_PURCHASES_AFTER = 2

# Shops are open 08:00-21:00.
OPENING_SECONDS = 8 * 3600
CLOSING_SECONDS = 21 * 3600

# Drawing again a customer whose draw breaks their status's definition: acceptance is above 85%
# for every status (measured over 4,000 draws each), so 60 rounds never run out in practice.
MAX_ROUNDS = 60

# A quarter end, the date a quarterly run observes to; it puts the last December inside the
# recent half-year, so seasonality is part of what a value trend must see through.
DEFAULT_AS_OF = "2026-03-31"


@dataclass(frozen=True)
class PlantedWorld:
    """Transactions with a known answer.

    Attributes
    ----------
    transactions
        ``customer_id`` (str), ``timestamp`` (datetime64[ns]), ``amount`` (float > 0),
        ``invoice`` (str, never starting with the cancellation prefix ``C``); one row per
        purchase up to the end of ``as_of``, sorted by time. Read it with :func:`data_config`.
    future
        The same columns for purchases in ``(as_of, as_of + horizon_days]``, drawn from each
        customer's true process.
    truth
        One row per customer: ``customer_id``, planted ``status``, ``usual_gap_days`` (the mean
        gap of their current process), ``gap_shape`` (gamma k), ``order_level`` (mean order
        value now), ``silence_days`` (as_of minus the last purchase), ``decline_kind``
        (``spend`` / ``frequency`` for decliners), ``returns`` (at-risk customers who come back
        within the horizon).
    """

    transactions: pd.DataFrame
    future: pd.DataFrame
    truth: pd.DataFrame
    as_of: pd.Timestamp
    horizon_days: int
    seed: int


def data_config() -> DataConfig:
    """How the pipeline reads a planted world's transactions: the embedded sample's columns plus
    the invoice."""
    return DataConfig(columns=TransactionColumns(invoice="invoice"))


def stationary_customers(world: PlantedWorld) -> pd.Index:
    """Ids of customers whose true process is stationary (loyal, active, occasional)."""
    truth = world.truth
    return pd.Index(truth.loc[truth["status"].isin(STATIONARY), "customer_id"])


def planted_decliners(world: PlantedWorld) -> pd.Index:
    """Ids of customers planted as declining high-value (both kinds)."""
    truth = world.truth
    return pd.Index(truth.loc[truth["status"] == "declining", "customer_id"])


# -- the seasonal clock ----------------------------------------------------------------------
class _SeasonalClock:
    """Maps calendar time to seasonal ("operational") time and back.

    Time ``t`` is in days from the end of the as-of day (negative: the past). The intensity of a
    day is its seasonal multiplier, normalised so that a year's mean is 1: a gap of g seasonal
    days is g calendar days on average over a year.
    """

    def __init__(self, as_of: pd.Timestamp, *, start: int, end: int) -> None:
        self.origin = as_of + pd.Timedelta(days=1)
        self.edges = np.arange(start, end + 1, dtype=float)
        days = self.origin + pd.to_timedelta(self.edges[:-1], unit="D")
        intensity = seasonal_intensity(days)
        self.cumulative = np.concatenate([[0.0], np.cumsum(intensity)])

    def to_seasonal(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self.edges, self.cumulative)

    def to_calendar(self, tau: np.ndarray) -> np.ndarray:
        return np.interp(tau, self.cumulative, self.edges)


def seasonal_intensity(days: pd.DatetimeIndex) -> np.ndarray:
    """Purchase intensity of each day relative to the yearly mean (1 = an average day)."""

    def bump(day_of_year: np.ndarray) -> np.ndarray:
        distance = np.abs(day_of_year - DECEMBER_PEAK_DAY_OF_YEAR)
        distance = np.minimum(distance, 365 - distance)  # the year wraps around
        return 1.0 + DECEMBER_BUMP * np.exp(-0.5 * (distance / DECEMBER_WIDTH_DAYS) ** 2)

    year_mean = bump(np.arange(1, 366, dtype=float)).mean()
    return bump(np.asarray(days.dayofyear, dtype=float)) / year_mean


# -- renewal chains --------------------------------------------------------------------------
def _chain(
    rng: np.random.Generator,
    start: np.ndarray,
    bound: np.ndarray,
    shape: np.ndarray,
    mean_gap: np.ndarray,
    *,
    backwards: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Seasonal times of a gamma renewal process from ``start`` (not included) until it crosses
    ``bound``, one chain per customer. Returns (customer index, time) per purchase."""
    n = start.size
    current = start.astype(float).copy()
    running = np.ones(n, dtype=bool)
    owners, times = [], []
    step = -1.0 if backwards else 1.0
    while running.any():
        index = np.flatnonzero(running)
        gap = rng.gamma(shape[index], mean_gap[index] / shape[index])
        current[index] += step * gap
        inside = current[index] >= bound[index] if backwards else current[index] < bound[index]
        owners.append(index[inside])
        times.append(current[index[inside]])
        running[index[~inside]] = False
    if not owners:
        return np.empty(0, dtype=int), np.empty(0)
    return np.concatenate(owners), np.concatenate(times)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    # Rates spread evenly on a log scale: a weekly and a fortnightly buyer are as different
    # as a monthly and a two-monthly one.
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), n))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], n)


def _order_level(rng: np.random.Generator, n: int) -> np.ndarray:
    return MEDIAN_ORDER_VALUE * np.exp(rng.normal(0.0, CUSTOMER_LEVEL_SIGMA, n))


@dataclass
class _Draw:
    """Customers drawn for one status: their parameters, their purchases (past and future) and
    whether each meets the status's definition."""

    params: pd.DataFrame
    owner: np.ndarray
    t: np.ndarray
    level: np.ndarray  # mean order value of each purchase
    accepted: np.ndarray


def _past_summary(owner: np.ndarray, t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Purchases before as_of and days since the last of them (inf without one)."""
    past = t < 0
    count = np.bincount(owner[past], minlength=n)
    last = np.full(n, -np.inf)
    np.maximum.at(last, owner[past], t[past])
    return count, -last


def _forward_buyers(
    rng: np.random.Generator,
    clock: _SeasonalClock,
    *,
    birth: np.ndarray,
    mean_gap: np.ndarray,
    shape: np.ndarray,
    horizon: float,
) -> tuple[np.ndarray, np.ndarray]:
    """A first purchase at ``birth``, then the renewal process up to the end of the horizon."""
    n = birth.size
    tau_birth = clock.to_seasonal(birth)
    bound = np.full(n, clock.to_seasonal(np.array([horizon]))[0])
    owner, tau = _chain(rng, tau_birth, bound, shape, mean_gap)
    owner = np.concatenate([np.arange(n), owner])
    t = np.concatenate([birth, clock.to_calendar(tau)])
    return owner, t


def _draw_loyal(rng, clock, n, *, history, horizon) -> _Draw:
    gap = _log_uniform(rng, LOYAL_GAP_DAYS, n)
    shape = _uniform(rng, LOYAL_SHAPE, n)
    birth = rng.uniform(-history, -LOYAL_MIN_TENURE, n)
    level = _order_level(rng, n)
    owner, t = _forward_buyers(rng, clock, birth=birth, mean_gap=gap, shape=shape, horizon=horizon)
    _, silence = _past_summary(owner, t, n)
    params = pd.DataFrame({"usual_gap_days": gap, "gap_shape": shape, "order_level": level})
    return _Draw(params, owner, t, level[owner], silence <= RECENT_GAPS * gap)


def _draw_active(rng, clock, n, *, history, horizon) -> _Draw:
    less_frequent = rng.random(n) < ACTIVE_LESS_FREQUENT_SHARE
    gap = np.where(
        less_frequent,
        _log_uniform(rng, ACTIVE_GAP_DAYS, n),
        _log_uniform(rng, LOYAL_GAP_DAYS, n),
    )
    shape = np.where(less_frequent, _uniform(rng, ACTIVE_SHAPE, n), _uniform(rng, LOYAL_SHAPE, n))
    # Less frequent: any tenure past the short-tenure band; shorter tenure: inside it.
    birth = np.where(
        less_frequent,
        rng.uniform(-history, -ACTIVE_SHORT_TENURE[0], n),
        -_uniform(rng, ACTIVE_SHORT_TENURE, n),
    )
    level = _order_level(rng, n)
    owner, t = _forward_buyers(rng, clock, birth=birth, mean_gap=gap, shape=shape, horizon=horizon)
    count, silence = _past_summary(owner, t, n)
    # Regular means a rhythm can be seen: at least three purchases (two gaps).
    accepted = (silence <= RECENT_GAPS * gap) & (count >= 3)
    params = pd.DataFrame({"usual_gap_days": gap, "gap_shape": shape, "order_level": level})
    return _Draw(params, owner, t, level[owner], accepted)


def _draw_occasional(rng, clock, n, *, history, horizon) -> _Draw:
    gap = _log_uniform(rng, OCCASIONAL_GAP_DAYS, n)
    shape = _uniform(rng, OCCASIONAL_SHAPE, n)
    birth = rng.uniform(-history, -OCCASIONAL_MIN_TENURE, n)
    level = _order_level(rng, n)
    owner, t = _forward_buyers(rng, clock, birth=birth, mean_gap=gap, shape=shape, horizon=horizon)
    count, silence = _past_summary(owner, t, n)
    # "Buys rarely" still means buys again: two purchases at least, so they are not one-timers.
    accepted = (silence <= OCCASIONAL_MAX_SILENCE_GAPS * gap) & (count >= 2)
    params = pd.DataFrame({"usual_gap_days": gap, "gap_shape": shape, "order_level": level})
    return _Draw(params, owner, t, level[owner], accepted)


def _draw_new(rng, clock, n, *, history, horizon) -> _Draw:
    gap = _log_uniform(rng, NEW_GAP_DAYS, n)
    shape = _uniform(rng, NEW_SHAPE, n)
    # At least one hour before the end of the as-of day, so the first purchase is in the past.
    tenure = rng.uniform(1 / 24, np.minimum(NEW_MAX_TENURE, NEW_MAX_TENURE_GAPS * gap))
    level = _order_level(rng, n)
    owner, t = _forward_buyers(
        rng, clock, birth=-tenure, mean_gap=gap, shape=shape, horizon=horizon
    )
    params = pd.DataFrame({"usual_gap_days": gap, "gap_shape": shape, "order_level": level})
    return _Draw(params, owner, t, level[owner], np.ones(n, dtype=bool))


def _backwards_from_last(
    rng: np.random.Generator,
    clock: _SeasonalClock,
    *,
    last: np.ndarray,
    birth: np.ndarray,
    mean_gap: np.ndarray,
    shape: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """A last purchase at ``last`` and the renewal process run backwards from it to ``birth``.

    Gaps of a renewal process are independent and identically distributed, so the sequence
    read backwards from a fixed last purchase has the same law as read forwards.
    """
    n = last.size
    owner, tau = _chain(
        rng, clock.to_seasonal(last), clock.to_seasonal(birth), shape, mean_gap, backwards=True
    )
    return np.concatenate([np.arange(n), owner]), np.concatenate([last, clock.to_calendar(tau)])


def _draw_at_risk(rng, clock, n, *, history, horizon) -> _Draw:
    gap = _log_uniform(rng, AT_RISK_GAP_DAYS, n)
    shape = _uniform(rng, AT_RISK_SHAPE, n)
    silence = _uniform(rng, AT_RISK_SILENCE_GAPS, n) * gap
    # The rhythm starts early enough for the minimum number of purchases to fit before the
    # silence (one gap's slack on top).
    earliest_start = -silence - AT_RISK_MIN_PURCHASES * gap
    latest_birth = np.minimum(earliest_start, -NOT_NEW_MIN_TENURE)
    birth = rng.uniform(-history, np.maximum(latest_birth, -history + 1.0))
    level = _order_level(rng, n)
    owner, t = _backwards_from_last(
        rng, clock, last=-silence, birth=birth, mean_gap=gap, shape=shape
    )
    count, _ = _past_summary(owner, t, n)
    params = pd.DataFrame({"usual_gap_days": gap, "gap_shape": shape, "order_level": level})
    # Their future is drawn once the customers are accepted (_comebacks), so that the share
    # who come back is exact.
    return _Draw(params, owner, t, level[owner], count >= AT_RISK_MIN_PURCHASES)


def _comebacks(
    rng: np.random.Generator, clock: _SeasonalClock, params: pd.DataFrame, *, horizon: float
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """The future of at-risk customers: exactly AT_RISK_RETURN_PROBABILITY of them (rounded)
    come back, at a moment uniform over the horizon, and then keep their old rhythm."""
    n = len(params)
    back = np.sort(rng.permutation(n)[: int(round(AT_RISK_RETURN_PROBABILITY * n))])
    gap = params["usual_gap_days"].to_numpy()[back]
    shape = params["gap_shape"].to_numpy()[back]
    comeback = rng.uniform(0.0, horizon, back.size)
    owner, t = _forward_buyers(
        rng, clock, birth=comeback, mean_gap=gap, shape=shape, horizon=horizon
    )
    returns = np.zeros(n, dtype=bool)
    returns[back] = True
    level = params["order_level"].to_numpy()[back[owner]]
    return params.assign(returns=returns), back[owner], t, level


def _draw_lost(rng, clock, n, *, history, horizon) -> _Draw:
    gap = _log_uniform(rng, LOST_GAP_DAYS, n)
    shape = _uniform(rng, LOST_SHAPE, n)
    # Room for at least a first purchase a gap before the last one within the record.
    most_gaps = np.minimum(LOST_SILENCE_GAPS[1], (history - gap) / gap)
    silence = rng.uniform(LOST_SILENCE_GAPS[0], most_gaps) * gap
    # Any length of relationship before they stopped, from a single purchase to the whole record.
    birth = rng.uniform(-history, np.minimum(-silence, -NOT_NEW_MIN_TENURE))
    level = _order_level(rng, n)
    owner, t = _backwards_from_last(
        rng, clock, last=-silence, birth=birth, mean_gap=gap, shape=shape
    )
    count, _ = _past_summary(owner, t, n)
    accepted = (count >= 2) | (silence >= LOST_ONE_TIMER_MIN_SILENCE)
    params = pd.DataFrame({"usual_gap_days": gap, "gap_shape": shape, "order_level": level})
    # Truly stopped: no purchase after the last one, in the record or in the future.
    return _Draw(params, owner, t, level[owner], accepted)


def _draw_declining(rng, clock, n, *, history, horizon) -> _Draw:
    gap_before = _log_uniform(rng, DECLINING_GAP_DAYS, n)
    shape = _uniform(rng, DECLINING_SHAPE, n)
    by_spend = rng.random(n) < DECLINING_SPEND_KIND_SHARE
    gap_after = np.where(
        by_spend, gap_before, gap_before * _uniform(rng, GAP_GROWTH_AFTER_DECLINE, n)
    )
    spend_after = np.where(by_spend, _uniform(rng, SPEND_AFTER_DECLINE, n), 1.0)
    since_change = np.maximum(DECLINE_MIN_DAYS, DECLINE_MIN_GAPS * gap_after) * rng.uniform(
        1.0, 1.25, n
    )
    change = -since_change
    latest_birth = np.minimum(change - DECLINE_MIN_BEFORE_DAYS, -LOYAL_MIN_TENURE)
    birth = rng.uniform(-history, np.maximum(latest_birth, -history + 1.0))
    level_before = MEDIAN_ORDER_VALUE * _uniform(rng, DECLINING_LEVEL_MULTIPLE, n)
    # Before the change: the old rhythm from the first purchase up to the change.
    tau_change = clock.to_seasonal(change)
    owner_b, tau_b = _chain(rng, clock.to_seasonal(birth), tau_change, shape, gap_before)
    owner_b = np.concatenate([np.arange(n), owner_b])
    tau_b = np.concatenate([clock.to_seasonal(birth), tau_b])
    # After it: the new rhythm, its first gap counted from the last purchase before the change.
    last_before = np.full(n, -np.inf)
    np.maximum.at(last_before, owner_b, tau_b)
    end = np.full(n, clock.to_seasonal(np.array([float(horizon)]))[0])
    owner_a, tau_a = _chain(rng, last_before, end, shape, gap_after)
    # Purchases drawn at the old rate can only fall before the change; the first new-rate
    # purchase may too (its gap started before), and it is still at the new level: the level
    # changes with the purchase, not the calendar.
    owner = np.concatenate([owner_b, owner_a])
    t = clock.to_calendar(np.concatenate([tau_b, tau_a]))
    after = np.concatenate([np.zeros(owner_b.size, bool), np.ones(owner_a.size, bool)])
    level = level_before[owner] * np.where(after, spend_after[owner], 1.0)
    past = t < 0
    before_count = np.bincount(owner[past & ~after], minlength=n)
    after_count = np.bincount(owner[past & after], minlength=n)
    _, silence = _past_summary(owner, t, n)
    accepted = (
        (silence <= RECENT_GAPS * gap_after)
        & (before_count >= DECLINING_MIN_PURCHASES_BEFORE)
        & (after_count >= DECLINING_MIN_PURCHASES_AFTER)
    )
    params = pd.DataFrame(
        {
            "usual_gap_days": gap_after,
            "gap_shape": shape,
            "order_level": level_before * spend_after,
            "decline_kind": np.where(by_spend, "spend", "frequency"),
            "gap_before_days": gap_before,
            "order_level_before": level_before,
            "change_days_ago": since_change,
        }
    )
    return _Draw(params, owner, t, level, accepted)


_DRAWS: dict[str, Callable[..., _Draw]] = {
    "new": _draw_new,
    "active": _draw_active,
    "loyal": _draw_loyal,
    "occasional": _draw_occasional,
    "at_risk": _draw_at_risk,
    "declining": _draw_declining,
    "lost": _draw_lost,
}


def _accepted_customers(
    rng: np.random.Generator, draw: Callable[..., _Draw], n: int, **kwargs
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Draw until ``n`` customers meet the definition; their params and purchases."""
    params, owners, times, levels = [], [], [], []
    found = 0
    for _ in range(MAX_ROUNDS):
        if found >= n:
            break
        batch = int((n - found) * 1.5) + 8
        drawn = draw(rng, n=batch, **kwargs)
        accepted = drawn.accepted
        if draw is not _draw_new:
            first = np.full(batch, np.inf)
            np.minimum.at(first, drawn.owner, drawn.t)
            accepted = accepted & (-first >= NOT_NEW_MIN_TENURE)
        keep = np.flatnonzero(accepted)[: n - found]
        new_index = np.full(batch, -1)
        new_index[keep] = np.arange(found, found + keep.size)
        on = new_index[drawn.owner] >= 0
        params.append(drawn.params.iloc[keep])
        owners.append(new_index[drawn.owner[on]])
        times.append(drawn.t[on])
        levels.append(drawn.level[on])
        found += keep.size
    if found < n:
        raise RuntimeError(f"could not plant {n} customers with {draw.__name__}")
    return (
        pd.concat(params, ignore_index=True),
        np.concatenate(owners),
        np.concatenate(times),
        np.concatenate(levels),
    )


def plant(
    n_customers: int = 2000,
    seed: int = 7,
    as_of: pd.Timestamp | str = DEFAULT_AS_OF,
    horizon_days: int = 180,
    *,
    history_days: int = HISTORY_DAYS,
) -> PlantedWorld:
    """Plant a world of ``n_customers`` with the seven statuses.

    Parameters
    ----------
    n_customers
        Number of customers (at least one per status).
    seed
        Seed of the only random generator used: the same arguments give identical frames.
    as_of
        Observation end (a day, inclusive).
    horizon_days
        Length of the future drawn after ``as_of``.
    history_days
        Length of the record before ``as_of``, at least :data:`HISTORY_DAYS`: a decliner's change
        can lie 450 days back with half a year of the old level before it.
    """
    if n_customers < len(STATUSES):
        raise ValueError(f"n_customers must be at least {len(STATUSES)}, got {n_customers}")
    if history_days < HISTORY_DAYS:
        raise ValueError(f"history_days must be at least {HISTORY_DAYS}, got {history_days}")
    as_of = pd.Timestamp(as_of).normalize()
    rng = np.random.default_rng(seed)
    clock = _SeasonalClock(as_of, start=-history_days - 1, end=horizon_days + 1)

    counts = {s: int(round(MIX[s] * n_customers)) for s in STATUSES}
    counts[max(MIX, key=MIX.get)] += n_customers - sum(counts.values())
    counts = {s: max(c, 1) for s, c in counts.items()}
    while sum(counts.values()) > n_customers:
        counts[max(counts, key=counts.get)] -= 1

    frames, owners, times, levels = [], [], [], []
    offset = 0
    for status in STATUSES:
        params, owner, t, level = _accepted_customers(
            rng,
            _DRAWS[status],
            counts[status],
            clock=clock,
            history=float(history_days),
            horizon=float(horizon_days),
        )
        if status == "at_risk":
            params, back_owner, back_t, back_level = _comebacks(
                rng, clock, params, horizon=float(horizon_days)
            )
            owner = np.concatenate([owner, back_owner])
            t = np.concatenate([t, back_t])
            level = np.concatenate([level, back_level])
        frames.append(params.assign(status=status))
        owners.append(owner + offset)
        times.append(t)
        levels.append(level)
        offset += counts[status]
    truth = pd.concat(frames, ignore_index=True)
    owner = np.concatenate(owners)
    t = np.concatenate(times)
    level = np.concatenate(levels)

    # Ids shuffled across statuses, so that nothing can be learnt from an id.
    width = max(5, len(str(n_customers)))
    ids = np.array([f"B{i:0{width}d}" for i in range(1, n_customers + 1)], dtype=object)
    id_of = rng.permutation(ids)
    truth.insert(0, "customer_id", id_of)

    # Order values: the customer's current level with per-order noise of mean 1.
    noise = np.exp(rng.normal(-0.5 * ORDER_NOISE_SIGMA**2, ORDER_NOISE_SIGMA, owner.size))
    amount = np.maximum(np.round(level * noise, 2), 0.01)
    # A purchase's day is its calendar day; its time, within opening hours.
    day = np.floor(t).astype(np.int64)
    seconds = rng.integers(OPENING_SECONDS, CLOSING_SECONDS, owner.size)
    origin = (as_of + pd.Timedelta(days=1)).to_datetime64().astype("datetime64[s]")
    timestamp = (origin + day.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")).astype(
        "datetime64[ns]"
    )
    keep = day < horizon_days
    order = np.lexsort((owner[keep], timestamp[keep]))
    purchases = pd.DataFrame(
        {
            "customer_id": id_of[owner[keep][order]],
            "timestamp": timestamp[keep][order],
            "amount": amount[keep][order],
        }
    )
    purchases["invoice"] = [f"W2-{i:08d}" for i in range(1, len(purchases) + 1)]
    end_of_as_of = as_of + pd.Timedelta(days=1)
    is_past = purchases["timestamp"] < end_of_as_of
    transactions = purchases[is_past].reset_index(drop=True)
    future = purchases[~is_past].reset_index(drop=True)

    last = transactions.groupby("customer_id")["timestamp"].max()
    truth["silence_days"] = (
        end_of_as_of - truth["customer_id"].map(last)
    ).dt.total_seconds() / 86400.0
    for column, default in (("decline_kind", None), ("returns", False)):
        if column not in truth:
            truth[column] = default
    truth["returns"] = truth["returns"].eq(True)
    columns = [
        "customer_id",
        "status",
        "usual_gap_days",
        "gap_shape",
        "order_level",
        "silence_days",
        "decline_kind",
        "returns",
        "gap_before_days",
        "order_level_before",
        "change_days_ago",
    ]
    truth = truth[columns].sort_values("customer_id", ignore_index=True)
    return PlantedWorld(
        transactions=transactions,
        future=future,
        truth=truth,
        as_of=as_of,
        horizon_days=int(horizon_days),
        seed=int(seed),
    )
