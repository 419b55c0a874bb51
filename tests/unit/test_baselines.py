"""The baselines a user would pick instead: exact values on hand-made customers, and lifetimes
used as-is (its failures reported, never raised)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

from pipeline import baselines
from pipeline.baselines import last_period_again, lifetimes_as_is, rfm_segments


def test_the_last_horizon_again_forecasts_who_bought_and_what_they_spent():
    forecast = last_period_again(np.array([0, 2, 2]), np.array([0.0, 10.0, 50.0]))
    assert forecast["p_purchase"].tolist() == [0.0, 1.0, 1.0]
    assert forecast["expected_spend"].tolist() == [0.0, 10.0, 50.0]
    # spend breaks the tie between two purchases, never overtakes a purchase
    assert forecast["score"].tolist() == pytest.approx([0.0, 2 + 10 / 51, 2 + 50 / 51])
    assert forecast["score"].rank().tolist() == [1.0, 2.0, 3.0]


def test_rfm_segments_follow_the_classic_grid():
    features = pd.DataFrame(
        {
            "customer_id": list("abcde"),
            "days_since_last_purchase": [1, 2, 3, 4, 5],
            "orders": [5, 4, 3, 2, 1],
        }
    )
    table = rfm_segments(features)
    assert table["r_score"].tolist() == [5, 4, 3, 2, 1]
    assert table["f_score"].tolist() == [5, 4, 3, 2, 1]
    assert table["rfm_segment"].tolist() == [
        "Champions",
        "Loyal",
        "Need attention",
        "Hibernating",
        "Lost",
    ]


def test_every_cell_of_the_rfm_grid_has_a_segment():
    cells = pd.DataFrame([(r, f) for r in range(1, 6) for f in range(1, 6)], columns=["r", "f"])
    features = pd.DataFrame(
        {
            "customer_id": [str(i) for i in range(25)],
            # five customers per score: ranks map back onto the same scores
            "days_since_last_purchase": 6 - cells["r"],
            "orders": cells["f"],
        }
    )
    table = rfm_segments(features)
    assert table["rfm_segment"].notna().all()
    assert set(table["rfm_segment"]) == set(baselines.RFM_ORDER)


def test_one_time_buyers_share_one_frequency_score():
    features = pd.DataFrame(
        {
            "customer_id": list("abcdef"),
            "days_since_last_purchase": [1, 2, 3, 4, 5, 6],
            "orders": [1, 1, 1, 1, 2, 9],
        }
    )
    table = rfm_segments(features)
    # two thirds of the base bought once: they still take the lowest frequency score
    assert table["f_score"].iloc[:4].tolist() == [1, 1, 1, 1] and table["f_score"].iloc[5] == 5
    # the most recent one-time buyer (R 5, F 1) is New
    assert table["rfm_segment"].iloc[0] == "New"


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    # lifetimes' own CDNOW sample (weeks), shipped in its wheel
    return load_cdnow_summary_data_with_monetary_value().reset_index(drop=True)


def test_bgnbd_as_is_is_lifetimes_with_its_defaults(cdnow_summary):
    cdnow_summary = cdnow_summary.head(800)
    forecast = lifetimes_as_is(cdnow_summary, 39, baselines.BGNBD)
    assert forecast.failure == "" and forecast.nonfinite == 0
    direct = BetaGeoFitter().fit(
        cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
    )
    expected = direct.conditional_expected_number_of_purchases_up_to_time(
        39, cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
    )
    table = forecast.forecasts
    assert table["expected_purchases"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-6)
    # buying at least once needs being alive
    assert ((table["p_purchase"] >= 0) & (table["p_purchase"] <= table["p_alive"] + 1e-12)).all()
    assert (table["expected_spend"] >= 0).all()


def test_pareto_as_is_gives_a_purchase_probability(cdnow_summary):
    forecast = lifetimes_as_is(cdnow_summary.head(600), 39, baselines.PARETO)
    assert forecast.forecasts is not None, forecast.failure
    probability = forecast.forecasts["p_purchase"]
    assert probability.between(0, 1).all()
    # customers with many repeat purchases are likelier to buy again than one-time buyers
    frequent = cdnow_summary.head(600)["frequency"] >= 5
    assert probability[frequent].mean() > probability[~frequent].mean()


def test_a_fit_that_raises_is_reported_as_failed(cdnow_summary):
    broken = cdnow_summary.head(50).assign(recency=lambda f: f["T"] + 1)  # recency beyond T
    forecast = lifetimes_as_is(broken, 39, baselines.BGNBD)
    assert forecast.forecasts is None
    assert forecast.failure.startswith("failed: ValueError")


def _crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_worker_that_crashes_is_reported_as_failed_and_the_next_fit_runs(cdnow_summary):
    crashed = baselines.collect_lifetimes(
        baselines._executor().submit(_crash), kind=baselines.PARETO
    )
    assert crashed.forecasts is None and crashed.failure.startswith("failed:")
    after = lifetimes_as_is(cdnow_summary.head(200), 39, baselines.BGNBD)
    assert after.forecasts is not None
