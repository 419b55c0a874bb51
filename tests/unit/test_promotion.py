from __future__ import annotations

from pipeline.config import PromotionConfig
from pipeline.promotion import evaluate_gates, promotion_verdict

GATES = PromotionConfig(
    min_planted_macro_f1=0.85, min_seed_stability=0.9, max_status_share_shift=0.1
)
GOOD = {
    "planted_macro_f1": 0.95,
    "seed_stability_ari": 0.99,
    "holdout_spend_gini": 0.6,
    "share_loyal": 0.2,
    "share_lost": 0.3,
}


def verdicts(results) -> dict[str, str]:
    return {r.name: r.verdict for r in results}


def test_a_first_model_that_meets_the_floors_is_promoted():
    results = evaluate_gates(GOOD, None, GATES)
    assert verdicts(results) == {
        "planted_recovery": "passed",
        "holdout_gini": "passed",
        "seed_stability": "passed",
        "status_share_shift": "skipped",
    }
    assert promotion_verdict(results)


def test_a_floor_not_met_keeps_the_model_a_challenger_and_says_why():
    results = evaluate_gates({**GOOD, "seed_stability_ari": 0.5}, None, GATES)
    failed = [r for r in results if r.passed is False]
    assert [r.name for r in failed] == ["seed_stability"]
    assert failed[0].detail == "status ARI between seeds 0.500 vs floor 0.900"
    assert not promotion_verdict(results)


def test_a_large_share_shift_against_the_champion_blocks_promotion_unless_flagged():
    champion = {**GOOD, "share_lost": 0.1}
    results = evaluate_gates(GOOD, champion, GATES)
    shift = next(r for r in results if r.name == "status_share_shift")
    assert shift.passed is False and "lost +20.0%" in shift.detail
    assert not promotion_verdict(results)
    flagged = evaluate_gates(GOOD, champion, GATES.model_copy(update={"allow_share_shift": True}))
    assert promotion_verdict(flagged)
    assert "allowed by flag" in next(r for r in flagged if r.name == "status_share_shift").detail


def test_gates_without_their_metric_are_skipped_not_failed():
    results = evaluate_gates({"share_loyal": 0.2}, {"share_loyal": 0.21}, GATES)
    assert verdicts(results) == {
        "planted_recovery": "skipped",
        "holdout_gini": "skipped",
        "seed_stability": "skipped",
        "status_share_shift": "passed",
    }
    assert promotion_verdict(results)


def test_a_value_model_that_ranks_customers_poorly_is_held_back():
    results = evaluate_gates({**GOOD, "holdout_spend_gini": 0.05}, None, GATES)
    gate = next(r for r in results if r.name == "holdout_gini")
    assert gate.passed is False and gate.detail == "holdout spend Gini 0.050 vs floor 0.200"
