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


def _floor_gate(
    metrics: Mapping[str, float], *, name: str, metric: str, floor: float, label: str, absent: str
) -> GateResult:
    if metric not in metrics:
        return GateResult(name, None, absent)
    value = metrics[metric]
    return GateResult(name, value >= floor, f"{label} {value:.3f} vs floor {floor:.3f}")


def evaluate_gates(
    metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    gates: PromotionConfig,
) -> list[GateResult]:
    """Check a challenger's metrics against the floors and against the current champion."""
    results = [
        _floor_gate(
            metrics,
            name="planted_recovery",
            metric="planted_macro_f1",
            floor=gates.min_planted_macro_f1,
            label="planted macro-F1",
            absent="no planted truth in this data",
        ),
        _floor_gate(
            metrics,
            name="holdout_gini",
            metric="holdout_spend_gini",
            floor=gates.min_holdout_spend_gini,
            label="holdout spend Gini",
            absent="no holdout evaluation (history too short)",
        ),
        _floor_gate(
            metrics,
            name="seed_stability",
            metric="seed_stability_ari",
            floor=gates.min_seed_stability,
            label="status ARI between seeds",
            absent="stability check disabled",
        ),
    ]
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
