"""Online Retail (UCI) with configs/online_retail.yaml: the quirks its README in ../shared/data
states are each handled as the input rules say, no row vanishes, and a full fit names every
customer with a valid status."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline import io
from pipeline.config import STATUSES, Config, load_config
from pipeline.schema import CleanTransactions, clean_transactions
from pipeline.train import fit_segmentation
from tests.conftest import SHARED_DATA

PROJECT = Path(__file__).resolve().parents[2]
DATA = SHARED_DATA / "online_retail" / "online_retail.parquet"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not DATA.parent.is_dir(), reason=f"the shared real data sets are not at {DATA.parent}"
    ),
]


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(
        PROJECT / "configs" / "online_retail.yaml",
        {"data.transactions": str(DATA), "tracking.enabled": False},
    )


@pytest.fixture(scope="module")
def raw(config) -> pd.DataFrame:
    return io.read_table(str(DATA), string_columns=(config.data.columns.customer_id,))


@pytest.fixture(scope="module")
def clean(raw, config) -> CleanTransactions:
    return clean_transactions(
        raw, data=config.data, source=str(DATA), as_of=pd.Timestamp(config.as_of)
    )


def reasons_of(clean: CleanTransactions, rows: pd.Series) -> pd.Series:
    """The quarantine reason of each raw row selected by the mask ``rows`` (NA: used)."""
    by_row = pd.Series(
        clean.quarantine["reason"].to_numpy(), index=clean.quarantine["source_row"] - 1
    )
    return by_row.reindex(rows[rows].index)


def test_every_row_is_used_or_set_aside_with_a_reason(raw, clean):
    assert clean.rows_in == len(raw) == 541_909  # invoice lines, as the README counts them
    assert clean.rows_in == len(clean.transactions) + len(clean.quarantine)
    assert clean.quarantine["source_row"].is_unique
    assert clean.quarantine["source_row"].between(1, len(raw)).all()
    assert sum(clean.counts_by_reason().values()) == len(clean.quarantine)


def test_lines_without_a_customer_are_the_quarter_the_readme_states(raw, clean):
    missing = raw["CustomerID"].isna()
    assert round(missing.mean() * 100, 1) == 24.9
    assert (reasons_of(clean, missing) == "missing_customer_id").all()
    assert clean.counts_by_reason()["missing_customer_id"] == missing.sum()


def test_exact_duplicates_are_set_aside_once_each(raw, clean):
    duplicated = raw.duplicated(keep="first")
    assert duplicated.sum() == 5_268
    # Those without a customer are already set aside for that; every other one as a duplicate.
    with_customer = duplicated & raw["CustomerID"].notna()
    assert (reasons_of(clean, with_customer) == "duplicate").all()
    assert clean.counts_by_reason()["duplicate"] == with_customer.sum()


def test_cancellations_never_count_as_purchases_and_are_netted_where_they_match(raw, clean, config):
    invoices = raw["InvoiceNo"].astype("string")
    cancellations = invoices.str.startswith("C")
    assert cancellations.sum() == 9_288
    assert (raw.loc[cancellations, "Quantity"] < 0).all()
    assert not clean.transactions["invoice"].str.startswith("C").any()
    reasons = reasons_of(clean, cancellations)
    assert reasons.notna().all()  # every one of them set aside
    # Those with a customer, not a repeat of an earlier line and not a fee or postage line are
    # netted against a purchase, or counted as unmatched when there is none to cancel.
    plain = (
        cancellations
        & raw["CustomerID"].notna()
        & ~raw.duplicated(keep="first")
        & ~raw["StockCode"].isin(config.data.non_product_codes)
    )
    netting = reasons.isin(["cancellation_netted", "cancellation_unmatched"])
    assert set(reasons[netting].index) == set(plain[plain].index)
    counts = clean.counts_by_reason()
    assert counts["cancellation_netted"] + counts["cancellation_unmatched"] == plain.sum()
    # The other negative lines: stock write-offs, none with a customer.
    write_offs = (raw["Quantity"] < 0) & ~cancellations
    assert write_offs.sum() == 1_336 and raw.loc[write_offs, "CustomerID"].isna().all()
    assert (reasons_of(clean, write_offs) == "missing_customer_id").all()


def test_the_mirror_pairs_cancel_out(raw, clean):
    # 16446 bought 80,995 units and cancelled them 12 minutes later: neither line is a purchase.
    big = raw["Quantity"].abs() == 80_995
    assert raw.loc[big, "CustomerID"].astype("string").tolist() == ["16446", "16446"]
    assert sorted(reasons_of(clean, big)) == ["cancellation_netted", "cancelled"]
    assert (
        clean.transactions.loc[clean.transactions["customer_id"] == "16446", "quantity"].max() < 10
    )
    # 12346 did the same with 74,215 units and bought nothing else: not a customer at all.
    assert (raw["CustomerID"] == 12346).sum() == 2
    assert "12346" not in set(clean.transactions["customer_id"])


def test_no_free_negative_priced_or_non_product_line_is_used(raw, clean, config):
    assert (raw["UnitPrice"] == 0).sum() == 2_515 and (raw["UnitPrice"] < 0).sum() == 2
    assert (clean.transactions["amount"] > 0).all()
    assert not clean.transactions["product"].isin(config.data.non_product_codes).any()
    priced = (raw["UnitPrice"] <= 0) & raw["CustomerID"].notna()
    assert reasons_of(clean, priced).isin(["non_positive_price", "non_product", "duplicate"]).all()


def test_a_full_fit_names_every_customer_with_a_valid_status(clean, config):
    result = fit_segmentation(clean, config)
    segments = result.segments
    assert len(segments) == clean.transactions["customer_id"].nunique()
    assert segments["customer_id"].is_unique
    assert set(segments["status"]) <= set(STATUSES) and segments["status"].notna().all()
    shares = {
        k: v for k, v in result.metrics.items() if k.startswith("share_") and k[6:] in STATUSES
    }
    assert sum(shares.values()) == pytest.approx(1.0)
    data = result.stage_metrics["data"]
    assert data["rows_in"] == data["rows_used"] + data["rows_quarantined"]
    assert data["customers"] == len(segments)
    # The product column feeds the basket features, the top product among them.
    assert segments["top_product"].notna().all()
    assert segments["return_rate"].between(0, 1).all()
    # Names hold under another seed on real data too, where clusters are far from clean.
    stability = {k: v for stage in result.stage_metrics.values() for k, v in stage.items()}
    assert stability["seed_stability_ari"] >= 0.95
    # A year of a wholesaler's customers holds every status, overdue and declining ones too;
    # lost only where a customer's chance of buying is at or below the floor: here silence is not
    # enough (the backtest at 2011-06-09: 51% of the customers once called lost for their silence
    # bought again within 180 days), so the year may have none.
    assert set(segments["status"]) >= set(STATUSES) - {"lost"}
    lost = segments[segments["status"] == "lost"]
    floor = config.labeling.lost_p_purchase
    assert ((lost["p_purchase"] <= floor) | (lost["p_alive"] <= floor)).all()


def test_the_product_code_pattern_alone_finds_every_listed_service_line(raw, clean, config):
    # The list was written from this year's lines; the pattern must find the same ones without it
    # (and so the next year's new fee or adjustment code).
    unlisted = config.data.model_copy(update={"non_product_codes": ()})
    by_pattern = clean_transactions(
        raw, data=unlisted, source=str(DATA), as_of=pd.Timestamp(config.as_of)
    )
    assert by_pattern.counts_by_reason() == clean.counts_by_reason()
    assert by_pattern.counts_by_reason()["non_product"] > 0
