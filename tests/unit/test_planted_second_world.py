"""The second planted world holds its own truths in the data it writes.

A test world is only as good as its answers: each status's definition is checked on the
transactions and the future the generator wrote, not on the parameters it drew.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import io
from pipeline.schema import clean_transactions
from tests.planted import second_world as w2
from tests.planted.second_world import data_config, plant, planted_decliners, stationary_customers


@pytest.fixture(scope="module")
def world() -> w2.PlantedWorld:
    return plant(1500, seed=11)


@pytest.fixture(scope="module")
def summary(world) -> pd.DataFrame:
    """One row per customer: the truth beside what the written data shows."""
    end = world.as_of + pd.Timedelta(days=1)
    days = world.transactions.assign(day=world.transactions["timestamp"].dt.normalize())
    days = days.drop_duplicates(["customer_id", "day"]).groupby("customer_id")["day"]
    seen = pd.DataFrame(
        {
            "purchase_days": days.count(),
            "tenure_days": (end - days.min()).dt.total_seconds() / 86400,
            "observed_gap_days": (days.max() - days.min()).dt.days / (days.count() - 1),
            "future_purchases": world.future.groupby("customer_id").size(),
        }
    ).fillna({"future_purchases": 0})
    return world.truth.join(seen, on="customer_id")


def of(summary: pd.DataFrame, status: str) -> pd.DataFrame:
    return summary[summary["status"] == status]


def test_the_same_seed_plants_the_same_world_and_another_seed_another():
    first, again, other = plant(100, seed=3), plant(100, seed=3), plant(100, seed=4)
    pd.testing.assert_frame_equal(first.transactions, again.transactions)
    pd.testing.assert_frame_equal(first.future, again.future)
    pd.testing.assert_frame_equal(first.truth, again.truth)
    assert not first.transactions["amount"].equals(other.transactions["amount"])


def test_every_status_is_planted_in_its_share(world):
    counts = world.truth["status"].value_counts()
    for status, share in w2.MIX.items():
        assert counts[status] == round(share * 1500), status
    assert world.truth["customer_id"].is_unique


def test_the_pipeline_reads_the_world_with_its_config_and_sets_nothing_aside(world):
    clean = clean_transactions(
        world.transactions, data=data_config(), source="world 2", as_of=world.as_of
    )
    assert clean.rows_quarantined == 0
    assert clean.rows_used == len(world.transactions)
    assert set(clean.transactions["customer_id"]) == set(world.truth["customer_id"])


def test_the_world_written_as_csv_reads_back_as_the_embedded_sample_does(tmp_path):
    # As `loyalty train --transactions world.csv` with the invoice mapped would read it.
    world = plant(50, seed=5)
    path = tmp_path / "world.csv"
    io.write_frame(world.transactions, path)
    raw = io.read_table(str(path), string_columns=("customer_id",))
    clean = clean_transactions(raw, data=data_config(), source=str(path), as_of=world.as_of)
    assert clean.rows_quarantined == 0
    assert clean.rows_used == len(world.transactions)


def test_past_and_future_are_split_at_the_as_of_date_and_invoices_are_purchases(world):
    end = world.as_of + pd.Timedelta(days=1)
    assert world.transactions["timestamp"].max() < end
    assert world.future["timestamp"].min() >= end
    assert world.future["timestamp"].max() < end + pd.Timedelta(days=world.horizon_days)
    invoices = pd.concat([world.transactions["invoice"], world.future["invoice"]])
    assert invoices.is_unique
    # An invoice starting with C is a cancellation to the pipeline: a planted world has none.
    assert not invoices.str.startswith("C").any()
    assert (world.transactions["amount"] > 0).all()


def test_lost_customers_never_buy_again_after_a_silence_of_six_or_more_usual_gaps(summary):
    lost = of(summary, "lost")
    assert (lost["future_purchases"] == 0).all()
    assert (lost["silence_days"] >= 6 * lost["usual_gap_days"] - 1).all()
    # Against the rhythm the data shows (one-timers have none), the silence is as long: the
    # median is past the at-risk band's upper edge of 4 gaps.
    repeat = lost[lost["purchase_days"] >= 2]
    assert (repeat["silence_days"] / repeat["observed_gap_days"]).median() > 4
    one_timers = lost[lost["purchase_days"] == 1]
    assert (one_timers["silence_days"] >= w2.LOST_ONE_TIMER_MIN_SILENCE).all()


def test_at_risk_customers_are_silent_two_to_four_usual_gaps_and_some_come_back(summary):
    at_risk = of(summary, "at_risk")
    # A day's rounding either side: timestamps fall on whole days with a time of day.
    in_gaps = at_risk["silence_days"] / at_risk["usual_gap_days"]
    assert in_gaps.between(2 - 1 / 7, 4 + 1 / 7).all(), in_gaps.describe()
    # The same holds against the rhythm the data shows (what the pipeline can see).
    assert 2 <= (at_risk["silence_days"] / at_risk["observed_gap_days"]).median() <= 4
    assert (at_risk["purchase_days"] >= w2.AT_RISK_MIN_PURCHASES).all()
    # Still alive: between a third and a half of them buy again within the horizon, and only those.
    comes_back = at_risk["future_purchases"] > 0
    assert 1 / 3 <= comes_back.mean() <= 1 / 2
    assert (comes_back == at_risk["returns"]).all()


def test_stationary_customers_are_recent_and_keep_buying(summary):
    for status, max_silence in (
        ("loyal", w2.RECENT_GAPS),
        ("active", w2.RECENT_GAPS),
        ("occasional", w2.OCCASIONAL_MAX_SILENCE_GAPS),
    ):
        members = of(summary, status)
        assert (members["silence_days"] <= max_silence * members["usual_gap_days"] + 1).all()
    # A loyal buyer (a gap of 24 days at most) misses a 180-day horizon with probability ~0, an
    # active one (gaps of 90 days at most, k >= 2.5) rarely; an occasional one (gaps of 90-200
    # days, CV ~1) misses it often, but far from always.
    assert (of(summary, "loyal")["future_purchases"] > 0).mean() >= 0.99
    assert (of(summary, "active")["future_purchases"] > 0).mean() >= 0.9
    assert 0.4 <= (of(summary, "occasional")["future_purchases"] > 0).mean() <= 0.9


def test_loyal_customers_are_long_standing_frequent_and_steadier_than_occasional(summary):
    loyal, active, occasional = (of(summary, s) for s in ("loyal", "active", "occasional"))
    assert (loyal["tenure_days"] >= w2.LOYAL_MIN_TENURE).all()
    assert loyal["observed_gap_days"].median() < active["observed_gap_days"].median()
    assert active["observed_gap_days"].median() < occasional["observed_gap_days"].median()
    assert (occasional["purchase_days"] >= 2).all()


def test_new_customers_and_only_they_first_bought_inside_the_new_window(summary):
    new = of(summary, "new")
    assert (new["tenure_days"] <= w2.NEW_MAX_TENURE + 1).all()
    # Every other status is older than the documented 90-day window (with a margin).
    assert (summary.loc[summary["status"] != "new", "tenure_days"] > 90 + 15).all()


def test_december_holds_more_purchases_than_the_months_around_it(world):
    # Stationary buyers only: their rate is constant but for the season, so the ratio of daily
    # purchases in December to October-November and January-February shows the planted bump
    # (about 1.6x); without it the ratio would be 1, with 1.3 leaving room for sampling noise.
    stationary = world.transactions[
        world.transactions["customer_id"].isin(stationary_customers(world))
    ]
    per_day = stationary.groupby(stationary["timestamp"].dt.normalize()).size()
    per_day = per_day.reindex(pd.date_range(per_day.index.min(), world.as_of), fill_value=0)
    month = per_day.index.month
    december = per_day[month == 12].mean()
    around = per_day[np.isin(month, [10, 11, 1, 2])].mean()
    assert december / around >= 1.3, december / around


def test_planted_decliners_were_high_spenders_whose_value_fell_by_half(world):
    truth = world.truth.set_index("customer_id")
    decliners = truth.loc[planted_decliners(world)]
    end = world.as_of + pd.Timedelta(days=1)
    tx = world.transactions[world.transactions["customer_id"].isin(decliners.index)].copy()
    tx["days_ago"] = (end - tx["timestamp"]).dt.total_seconds() / 86400
    tx["after"] = tx["days_ago"] < tx["customer_id"].map(decliners["change_days_ago"])
    per = tx.groupby(["customer_id", "after"]).agg(
        orders=("amount", "size"), order_value=("amount", "mean"), first=("days_ago", "max")
    )
    before, after = per.xs(False, level="after"), per.xs(True, level="after")
    change = decliners["change_days_ago"]
    rate_ratio = (after["orders"] / change) / (before["orders"] / (before["first"] - change))
    value_ratio = after["order_value"] / before["order_value"]
    kind = decliners["decline_kind"]
    spend, frequency = kind.index[kind == "spend"], kind.index[kind == "frequency"]
    # Spend decliners: each order is worth half or less (planted 0.30-0.55), the rhythm the same
    # (planted 1.0; +-30% for the few orders after the change).
    assert value_ratio[spend].median() <= 0.6
    assert 0.7 <= rate_ratio[spend].median() <= 1.3
    # Frequency decliners: half as many orders or fewer (planted 1/2-1/3), the same order value.
    assert rate_ratio[frequency].median() <= 0.6
    assert 0.8 <= value_ratio[frequency].median() <= 1.25
    # Historically high value: in the top fifth of spend over the record.
    spend_rank = world.transactions.groupby("customer_id")["amount"].sum().rank(pct=True)
    assert spend_rank[decliners.index].median() >= 0.8
    # Still buying: they buy within the horizon, as the decline is of value, not of presence.
    assert decliners.index.isin(world.future["customer_id"]).mean() >= 0.9


def test_stationary_and_decliners_are_disjoint_and_cover_their_statuses(world):
    stationary, decliners = stationary_customers(world), planted_decliners(world)
    assert stationary.intersection(decliners).empty
    statuses = world.truth.set_index("customer_id")["status"]
    assert set(statuses[stationary]) == set(w2.STATIONARY)
    assert (statuses[decliners] == "declining").all()
