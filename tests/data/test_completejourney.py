"""The Complete Journey with configs/completejourney.yaml: a full training with its demographics
and campaign files, whose features are checked against the files themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import STATUSES, load_config
from pipeline.train import run_training
from tests.conftest import SHARED_DATA

PROJECT = Path(__file__).resolve().parents[2]
DATA = SHARED_DATA / "completejourney"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"the shared real data sets are not at {DATA}"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    """One training with the shipped config, its paths pointed at the shared data and every
    output inside a temporary directory (no tracking)."""
    tmp_path = tmp_path_factory.mktemp("completejourney")
    text = (PROJECT / "configs" / "completejourney.yaml").read_text()
    # The config names the data relative to the repository root: make those paths absolute.
    shipped = "../shared/data/completejourney"
    assert shipped in text
    config_path = tmp_path / "completejourney.yaml"
    config_path.write_text(text.replace(shipped, str(DATA)))
    config = load_config(
        config_path,
        {
            "output": str(tmp_path / "out"),
            "model_path": str(tmp_path / "models" / "bundle.joblib"),
            "history_path": str(tmp_path / "history.parquet"),
            "tracking.enabled": False,
        },
    )
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(tmp_path)
    request.addfinalizer(monkeypatch.undo)
    outcome = run_training(config)
    return outcome, tmp_path


@pytest.fixture(scope="module")
def segments(trained) -> pd.DataFrame:
    outcome, tmp_path = trained
    return pd.read_parquet(tmp_path / "out" / "segments.parquet").set_index("customer_id")


def test_training_succeeds_with_every_household_named_and_no_row_lost(trained, segments):
    outcome, tmp_path = trained
    lines = pd.read_parquet(DATA / "transactions_sample.parquet")
    assert len(segments) == lines["household_id"].nunique() == 2_377
    assert set(segments["status"]) <= set(STATUSES)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert metrics["rows_in"] == len(lines) == 75_000
    assert metrics["rows_in"] == metrics["rows_used"] + metrics["rows_quarantined"]
    # Households without cluster structure still keep their names under another seed.
    assert metrics["seed_stability_ari"] >= 0.95
    assert set(segments["status"]) == set(STATUSES)
    campaign_rows = len(pd.read_parquet(DATA / "campaigns.parquet")) + len(
        pd.read_parquet(DATA / "coupon_redemptions.parquet")
    )
    assert metrics["campaign_rows_in"] == campaign_rows
    assert (
        metrics["campaign_rows_in"]
        == metrics["campaign_rows_used"] + metrics["campaign_rows_set_aside"]
    )


def test_the_loyalty_card_and_coupon_discounts_give_a_share_in_0_1(segments):
    share = segments["discount_share"]
    assert share.notna().all() and share.between(0, 1).all()
    # half of the lines carry a loyalty-card discount: most households saved something
    assert (share > 0).mean() > 0.5


def test_campaign_counts_and_rates_match_the_campaign_files(segments):
    sends = pd.read_parquet(DATA / "campaigns.parquet")
    redemptions = pd.read_parquet(DATA / "coupon_redemptions.parquet")
    # every redemption is dated on or before the as-of date, and the send list has no dates
    sent = sends.groupby("household_id")["campaign_id"].nunique()
    converted = redemptions.groupby("household_id")["campaign_id"].nunique()
    expected_sent = sent.reindex(segments.index, fill_value=0)
    expected_converted = converted.reindex(segments.index, fill_value=0)
    assert (segments["campaigns_sent"] == expected_sent).all()
    assert (segments["campaigns_converted"] == expected_converted).all()
    assert (segments[["campaigns_opened", "campaigns_clicked"]] == 0).all().all()
    rate = segments["campaign_conversion_rate"]
    assert rate.isna().equals(segments["campaigns_sent"] == 0)
    assert rate.dropna().between(0, 1).all()
    assert rate.dropna().gt(0).any()
    # neither file has a channel: no preference can be shown
    assert segments["preferred_channel"].isna().all()
    # households sent campaigns who never bought in the sample are not added
    buyers = set(pd.read_parquet(DATA / "transactions_sample.parquet")["household_id"])
    never_bought = set(sent.index) - buyers
    assert never_bought and not never_bought & set(segments.index)


def test_the_top_product_is_each_households_biggest_spend(segments):
    lines = pd.read_parquet(DATA / "transactions_sample.parquet")
    spend = lines.groupby(["household_id", "product_id"], as_index=False)["sales_value"].sum()
    # cents: rounding makes equal sums compare equal, as the engine's exact decimals do
    spend["cents"] = (spend["sales_value"] * 100).round().astype("int64")
    top = (
        spend.sort_values(["household_id", "cents", "product_id"], ascending=[True, False, True])
        .drop_duplicates("household_id")
        .set_index("household_id")["product_id"]
    )
    assert (segments["top_product"] == top.reindex(segments.index)).all()


def test_demographics_join_as_given_for_the_households_that_have_them(segments):
    demographics = pd.read_parquet(DATA / "demographics.parquet").set_index("household_id")
    known = segments.index.intersection(demographics.index)
    assert len(known) == 801
    for ours, theirs in (("age_band", "age"), ("income", "income"), ("kids_count", "kids_count")):
        assert (
            segments.loc[known, ours].tolist()
            == demographics.loc[known, theirs].astype(str).tolist()
        )
    assert segments.loc[segments.index.difference(known), "age_band"].isna().all()
    assert set(segments["age_band"].dropna()) == {
        "19-24",
        "25-34",
        "35-44",
        "45-54",
        "55-64",
        "65+",
    }
    # the config's sub-segments use both tables: coupon redeemers among the loyal
    redeemers = segments["sub_segment"] == "loyal, coupon redeemers"
    assert redeemers.any()
    assert (segments.loc[redeemers, "campaigns_converted"] >= 1).all()
