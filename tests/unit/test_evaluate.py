from __future__ import annotations

import pandas as pd
import pytest

from pipeline.evaluate import planted_recovery, status_shares, status_summary


def segments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "status": ["loyal", "loyal", "lost", "new"],
            "expected_spend": [30.0, 10.0, 0.0, 10.0],
            "p_alive": [0.9, 0.8, 0.1, 1.0],
        }
    )


def test_shares_cover_every_status_including_absent_ones():
    shares = status_shares(segments())
    assert shares["share_loyal"] == 0.5 and shares["share_at_risk"] == 0.0
    assert sum(shares.values()) == pytest.approx(1.0)
    assert len(shares) == 7


def test_summary_orders_statuses_and_splits_value():
    summary = status_summary(segments()).set_index("status")
    assert list(summary.index) == ["new", "loyal", "lost"]
    assert summary.loc["loyal", "customers"] == 2
    assert summary.loc["loyal", "mean_expected_spend"] == 20.0
    assert summary.loc["loyal", "value_share"] == pytest.approx(0.8)


def test_planted_recovery_scores_and_counts_exactly():
    truth = pd.DataFrame(
        {"customer_id": ["a", "b", "c", "d"], "status": ["loyal", "active", "lost", "new"]}
    )
    metrics, confusion = planted_recovery(segments(), truth)
    assert metrics["planted_accuracy"] == 0.75
    assert metrics["planted_f1_loyal"] == pytest.approx(2 / 3)
    assert metrics["planted_f1_active"] == 0.0
    # macro over the four statuses present: (1 + 2/3 + 0 + 1) / 4
    assert metrics["planted_macro_f1"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert confusion.loc["active", "loyal"] == 1
    assert confusion.to_numpy().sum() == 4
