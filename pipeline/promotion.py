"""Quality gates: does a newly trained model earn the champion alias?

Pure functions over metric dicts; :mod:`pipeline.tracking` applies the verdict in MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.config import STATUSES, PromotionConfig


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool | None  # None: not applicable to this run (skipped)
    detail: str

    @property
    def verdict(self) -> str:
        return {True: "passed", False: "failed", None: "skipped"}[self.passed]


def evaluate_gates(
    metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    gates: PromotionConfig,
) -> list[GateResult]:
    """Check a challenger's metrics against the floors and against the current champion."""
    results = []
    if "planted_macro_f1" in metrics:
        value = metrics["planted_macro_f1"]
        results.append(
            GateResult(
                "planted_recovery",
                value >= gates.min_planted_macro_f1,
                f"planted macro-F1 {value:.3f} vs floor {gates.min_planted_macro_f1:.3f}",
            )
        )
    else:
        results.append(GateResult("planted_recovery", None, "no planted truth in this data"))
    if "holdout_spend_gini" in metrics:
        value = metrics["holdout_spend_gini"]
        results.append(
            GateResult(
                "holdout_gini",
                value >= gates.min_holdout_spend_gini,
                f"holdout spend Gini {value:.3f} vs floor {gates.min_holdout_spend_gini:.3f}",
            )
        )
    else:
        results.append(
            GateResult("holdout_gini", None, "no holdout evaluation (history too short)")
        )
    if "seed_stability_ari" in metrics:
        value = metrics["seed_stability_ari"]
        results.append(
            GateResult(
                "seed_stability",
                value >= gates.min_seed_stability,
                f"status ARI between seeds {value:.3f} vs floor {gates.min_seed_stability:.3f}",
            )
        )
    else:
        results.append(GateResult("seed_stability", None, "stability check disabled"))
    if champion_metrics is None:
        results.append(GateResult("status_share_shift", None, "no champion to compare with"))
    else:
        shifts = {
            status: abs(
                metrics.get(f"share_{status}", 0.0) - champion_metrics.get(f"share_{status}", 0.0)
            )
            for status in STATUSES
        }
        status, shift = max(shifts.items(), key=lambda item: item[1])
        within = shift <= gates.max_status_share_shift
        detail = f"largest share shift vs champion: {status} {shift:+.1%} (limit {gates.max_status_share_shift:.0%})"
        if not within and gates.allow_share_shift:
            detail += ", allowed by flag"
        results.append(GateResult("status_share_shift", within or gates.allow_share_shift, detail))
    return results


def promotion_verdict(results: list[GateResult]) -> bool:
    """Promote when no applicable gate failed."""
    return all(result.passed is not False for result in results)
