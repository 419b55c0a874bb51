"""The planted sample: its contract, and every status recognisable by its definition.

Each status is checked from the generated transactions alone (the way the model sees them),
never from the generator's internal parameters, so a test fails if a planted customer stops
meaning what its status says.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import STATUSES as CONFIG_STATUSES
from pipeline.synthetic import DEFAULT_MIX, STATUSES, generate_transactions

AS_OF = pd.Timestamp("2025-12-31")
HISTORY_DAYS = 730
N = 1400  # 140+ customers in the smallest status, yet generation takes milliseconds
# Days are whole and the layout rounds to them: ratios may drift by half a day of rounding.
ROUNDING_DAYS = 1.0


@pytest.fixture(scope="module")
def sample() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_transactions(N, as_of=AS_OF, history_days=HISTORY_DAYS, random_state=7)


@pytest.fixture(scope="module")
def stats(sample) -> pd.DataFrame:
    """Per-customer measures from the transactions, with the planted status beside them."""
    transactions, truth = sample
    return customer_stats(transactions, AS_OF).join(truth.set_index("customer_id"))


def customer_stats(transactions: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Purchases, first / last purchase (days ago), gap mean and CV, amounts before and in the
    last 180 days, and mean gaps between purchases inside and before that window.

    Parameters
    ----------
    transactions
        Output of :func:`generate_transactions`.
    as_of
        The observation end the sample was generated for.

    Returns
    -------
    pd.DataFrame
        One row per customer, indexed by ``customer_id``.
    """
    frame = pd.DataFrame(
        {
            "customer_id": transactions["customer_id"],
            "ago": (as_of.normalize() - transactions["timestamp"].dt.normalize()).dt.days,
            "amount": transactions["amount"],
        }
    ).sort_values(["customer_id", "ago"], ascending=[True, False], kind="mergesort")
    same = frame["customer_id"].eq(frame["customer_id"].shift())
    # Gap ending at each purchase: days since the customer's previous purchase.
    frame["gap"] = (frame["ago"].shift() - frame["ago"]).where(same)
    frame["recent"] = frame["ago"] < 180
    previous_recent = frame["recent"].shift(fill_value=False) & same
    grouped = frame.groupby("customer_id")
    gaps = grouped["gap"]
    result = pd.DataFrame(
        {
            "purchases": grouped.size(),
            "first_ago": grouped["ago"].max(),
            "last_ago": grouped["ago"].min(),
            "mean_gap": gaps.mean(),
            "gap_cv": gaps.std(ddof=0) / gaps.mean(),
            "mean_amount": grouped["amount"].mean(),
            "recent_amount": frame[frame["recent"]].groupby("customer_id")["amount"].mean(),
            "earlier_amount": frame[~frame["recent"]].groupby("customer_id")["amount"].mean(),
            # Both ends inside the window versus both ends before it.
            "recent_gap": frame[previous_recent].groupby("customer_id")["gap"].mean(),
            "earlier_gap": frame[~frame["recent"] & same].groupby("customer_id")["gap"].mean(),
        }
    )
    result["overdue"] = result["last_ago"] / result["mean_gap"]
    result["purchases_per_year"] = (result["purchases"] - 1) / result["first_ago"] * 365.25
    return result


def of(stats: pd.DataFrame, status: str) -> pd.DataFrame:
    group = stats[stats["status"] == status]
    assert len(group) > 0, f"no {status} customers planted"
    return group


# -- the contract -------------------------------------------------------------------------------
def test_the_same_seed_gives_identical_frames():
    first = generate_transactions(700, random_state=3)
    second = generate_transactions(700, random_state=3)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])


def test_another_seed_gives_different_frames():
    transactions, truth = generate_transactions(700, random_state=3)
    other_transactions, other_truth = generate_transactions(700, random_state=4)
    assert not transactions.equals(other_transactions)
    assert not truth.equals(other_truth)


def test_generation_leaves_the_global_random_state_alone():
    # The legacy global generator is what this test guards, so it has to be read here.
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    generate_transactions(100)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_the_default_mix_plants_every_status_in_the_pipelines_order():
    # A status added to the pipeline but never planted would go unmeasured by every model test.
    assert tuple(DEFAULT_MIX) == CONFIG_STATUSES
    assert all(share > 0 for share in DEFAULT_MIX.values())
    assert sum(DEFAULT_MIX.values()) == pytest.approx(1.0)


def test_customers_per_status_follow_the_mix(sample):
    _, truth = sample
    counts = truth["status"].value_counts()
    assert {s: int(counts.get(s, 0)) for s in STATUSES} == {
        s: round(share * N) for s, share in DEFAULT_MIX.items()
    }


def test_the_rounding_remainder_goes_to_the_largest_share():
    mix = dict(DEFAULT_MIX, lost=0.25, new=0.05)  # lost is the largest share
    _, truth = generate_transactions(703, mix=mix, random_state=1)
    counts = truth["status"].value_counts()
    rounded = {s: round(share * 703) for s, share in mix.items()}
    assert counts.sum() == 703
    assert counts["lost"] == rounded["lost"] + 703 - sum(rounded.values())
    assert all(counts[s] == rounded[s] for s in STATUSES if s != "lost")


def test_equal_shares_give_the_remainder_to_the_first_status():
    _, truth = generate_transactions(703, mix=dict.fromkeys(STATUSES, 1 / 7), random_state=1)
    counts = truth["status"].value_counts()
    assert counts[STATUSES[0]] == 103
    assert all(counts[s] == 100 for s in STATUSES[1:])


def test_a_zero_share_plants_no_customer_of_that_status():
    mix = dict(DEFAULT_MIX, declining=0.0, lost=0.30)
    transactions, truth = generate_transactions(200, mix=mix, random_state=2)
    assert "declining" not in set(truth["status"])
    assert set(transactions["customer_id"]) == set(truth["customer_id"])


def test_the_smallest_sample_has_one_customer_of_each_status():
    transactions, truth = generate_transactions(len(STATUSES), random_state=5)
    assert sorted(truth["status"]) == sorted(STATUSES)
    assert set(transactions["customer_id"]) == set(truth["customer_id"])


def test_transactions_have_the_contract_columns_types_and_order(sample):
    transactions, truth = sample
    assert list(transactions.columns) == ["customer_id", "timestamp", "amount"]
    assert transactions["timestamp"].dtype == "datetime64[ns]"
    assert transactions["amount"].dtype == "float64"
    assert transactions["customer_id"].map(type).eq(str).all()
    assert transactions["customer_id"].str.fullmatch(r"C\d{5}").all()
    assert isinstance(transactions.index, pd.RangeIndex)
    ordered = transactions.sort_values(["timestamp", "customer_id"], kind="mergesort")
    assert ordered.index.equals(transactions.index)

    assert list(truth.columns) == ["customer_id", "status"]
    assert truth["customer_id"].is_monotonic_increasing
    assert set(truth["status"]) <= set(STATUSES)


def test_every_transaction_falls_inside_the_history_at_opening_hours(sample):
    timestamp = sample[0]["timestamp"]
    assert timestamp.min() >= AS_OF - pd.Timedelta(days=HISTORY_DAYS)
    assert timestamp.max() < AS_OF + pd.Timedelta(days=1)
    hours = timestamp.dt.hour
    # A time of day, not midnight stamps: purchases happen while the shop is open.
    assert hours.between(8, 21).all()
    assert timestamp.dt.second.nunique() > 1


def test_a_shorter_history_and_a_timed_as_of_keep_every_purchase_inside(tmp_path):
    as_of = pd.Timestamp("2024-06-30 15:45")
    transactions, truth = generate_transactions(700, as_of=as_of, history_days=365)
    assert transactions["timestamp"].min() >= pd.Timestamp("2023-07-01")
    assert transactions["timestamp"].max() < pd.Timestamp("2024-07-01")
    assert set(truth["status"]) == set(STATUSES)


def test_amounts_are_positive_and_in_cents(sample):
    amount = sample[0]["amount"]
    assert (amount > 0).all()
    np.testing.assert_allclose(amount * 100, np.round(amount * 100), atol=1e-6)


def test_truth_has_every_customer_once_and_each_has_a_purchase(sample):
    transactions, truth = sample
    assert truth["customer_id"].is_unique and len(truth) == N
    assert set(transactions["customer_id"]) == set(truth["customer_id"])


def test_a_customer_buys_at_most_once_a_day(sample):
    # The features count purchase days; two rows on one day would merge into one purchase.
    transactions = sample[0]
    days = transactions["timestamp"].dt.normalize()
    assert not pd.DataFrame({"c": transactions["customer_id"], "d": days}).duplicated().any()


def test_customer_ids_are_shuffled_across_statuses(sample):
    _, truth = sample
    # Every block of 100 consecutive ids mixes most statuses; blocks by status would not.
    blocks = truth["status"].groupby(np.arange(len(truth)) // 100).nunique()
    assert blocks.min() >= 5


# -- every status by its definition ----------------------------------------------------------
def test_new_customers_first_bought_inside_the_new_window_and_at_most_three_times(stats):
    new = of(stats, "new")
    assert new["first_ago"].between(3, 89).all()
    assert new["purchases"].between(1, 3).all()
    assert new["mean_amount"].between(15, 120).all()
    # Nobody else is that young: the window alone tells new customers apart.
    assert (stats.loc[stats["status"] != "new", "first_ago"] >= 150).all()


def test_loyal_customers_are_long_standing_frequent_regular_and_recent(stats):
    loyal = of(stats, "loyal")
    assert (loyal["first_ago"] >= 420).all()
    assert loyal["mean_gap"].between(9, 26).all()
    assert loyal["gap_cv"].median() < 0.5
    assert (loyal["last_ago"] <= 1.2 * loyal["mean_gap"] + ROUNDING_DAYS).all()
    assert loyal["mean_amount"].median() > of(stats, "active")["mean_amount"].median()


def test_loyal_customers_buy_more_often_than_active_and_occasional_ones(stats):
    loyal_rate = of(stats, "loyal")["purchases_per_year"]
    assert loyal_rate.min() > of(stats, "occasional")["purchases_per_year"].max()
    assert loyal_rate.median() > of(stats, "active")["purchases_per_year"].median()


def test_active_customers_buy_regularly_at_a_moderate_rate_and_recently(stats):
    active = of(stats, "active")
    assert (active["first_ago"] >= 150).all()
    assert active["mean_gap"].between(24, 56).all()
    assert (active["last_ago"] <= 1.2 * active["mean_gap"] + ROUNDING_DAYS).all()


def test_occasional_customers_buy_rarely_and_irregularly_but_are_still_around(stats):
    occasional = of(stats, "occasional")
    assert (occasional["first_ago"] >= 300).all()
    assert (occasional["purchases"] >= 2).all()
    assert (occasional["mean_gap"] >= 85).all()
    assert (occasional["last_ago"] <= 1.3 * occasional["mean_gap"] + ROUNDING_DAYS).all()
    assert occasional["gap_cv"].median() > of(stats, "loyal")["gap_cv"].median()


def test_at_risk_customers_had_a_rhythm_and_are_now_clearly_overdue(stats):
    at_risk = of(stats, "at_risk")
    assert (at_risk["first_ago"] >= 300).all()
    assert (at_risk["purchases"] >= 5).all()
    assert at_risk["gap_cv"].median() < 0.5
    assert (at_risk["overdue"] >= 3).all()
    assert (at_risk["overdue"] <= 7.5).all()
    assert (at_risk["last_ago"] < 240).all()


def test_declining_customers_were_high_value_and_now_spend_less_yet_still_buy(stats):
    declining = of(stats, "declining")
    assert (declining["first_ago"] >= 420).all()
    assert declining["earlier_amount"].between(100, 300).all()
    assert (declining["recent_amount"] < 0.5 * declining["earlier_amount"]).all()
    assert (declining["last_ago"] <= 90).all()
    # Their gaps lengthen too (measured where at least two purchases fall in the window).
    stretch = (declining["recent_gap"] / declining["earlier_gap"]).dropna()
    assert len(stretch) > 0.8 * len(declining)
    assert stretch.median() > 1.2
    others = stats.loc[~stats["status"].isin(["declining"]), "mean_amount"]
    assert declining["earlier_amount"].median() > others.quantile(0.95)


def test_lost_customers_stopped_long_ago_against_their_own_rhythm(stats):
    lost = of(stats, "lost")
    assert (lost["first_ago"] >= 450).all()
    assert lost["purchases"].between(1, 8).all()
    assert lost["last_ago"].between(330, 650).all()
    repeaters = lost[lost["purchases"] > 1]
    assert len(repeaters) > 0
    assert (repeaters["overdue"] >= 8).all()
    assert repeaters["mean_gap"].between(14, 61).all()


def test_only_lost_customers_have_been_silent_for_330_days(stats):
    silent = stats["last_ago"] >= 330
    assert (stats.loc[silent, "status"] == "lost").all()


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mix": {s: v for s, v in DEFAULT_MIX.items() if s != "lost"}}, "missing"),
        ({"mix": dict(DEFAULT_MIX, vip=0.0)}, "unknown"),
        ({"mix": dict(DEFAULT_MIX, new=0.3, active=-0.02)}, ">= 0"),
        ({"mix": dict(DEFAULT_MIX, new=float("nan"))}, ">= 0"),
        ({"mix": dict(DEFAULT_MIX, new=0.2)}, "sum to 1"),
        ({"mix": dict(DEFAULT_MIX, new="a lot")}, "numbers"),
        ({"n_customers": 6}, "at least 7"),
        ({"n_customers": 100.5}, "integer"),
        ({"history_days": 200}, "at least 365"),
        ({"as_of": "not a date"}, "as_of"),
        ({"as_of": pd.Timestamp("2025-12-31", tz="UTC")}, "timezone"),
    ],
    ids=[
        "mix missing a status",
        "mix with an unknown status",
        "negative share",
        "NaN share",
        "shares not summing to 1",
        "non-numeric share",
        "fewer customers than statuses",
        "fractional customers",
        "history shorter than a year",
        "unparseable as_of",
        "timezone-aware as_of",
    ],
)
def test_invalid_arguments_raise_a_clear_value_error(kwargs, message):
    arguments = {"n_customers": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_transactions(**arguments)
