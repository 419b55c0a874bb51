"""`make bench`: speed and memory measured against the plain alternatives.

Each case runs in a fresh subprocess so that its peak memory (max RSS) is its own. Data are
generated once with the planted generator and cached under ``data/bench/`` (git-ignored).
Figures are printed, never asserted: timings belong here, not in unit tests.

    python -m pipeline.benchmarks [--customers 1000000] [--cases clv,clv_lifetimes]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

CACHE = Path("data/bench")
AS_OF = pd.Timestamp("2025-12-31")


def _transactions(n_customers: int) -> pd.DataFrame:
    path = CACHE / f"transactions_{n_customers}.parquet"
    if not path.exists():
        from pipeline.synthetic import generate_transactions

        transactions, _ = generate_transactions(n_customers, as_of=AS_OF, random_state=1)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        transactions.to_parquet(temporary, index=False)
        temporary.replace(path)
    return pd.read_parquet(path).astype({"customer_id": "string"})


def _daily_and_features(n_customers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from pipeline.features import features_from_purchase_days, purchase_days

    daily = purchase_days(_transactions(n_customers))
    return daily, features_from_purchase_days(daily, as_of=AS_OF, recent_window_days=180)


def case_clv(n_customers: int) -> dict[str, object]:
    """The whole CLV stage: every candidate on the holdout, selection, refit on the full history."""
    from pipeline.config import CLVConfig
    from pipeline.customer_value import select_value_model

    daily, features = _daily_and_features(n_customers)
    started = time.perf_counter()
    selection = select_value_model(
        daily, features, as_of=AS_OF, config=CLVConfig(), trend_window_days=180, random_state=0
    )
    forecast = selection.forecaster.predict(features, horizon_days=180)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "customers": len(forecast), "chosen": selection.chosen}


def case_clv_lifetimes(n_customers: int) -> dict[str, object]:
    """The plain alternative: lifetimes' BG/NBD and Gamma-Gamma on one row per customer."""
    from pipeline.clv import plain_lifetimes_forecast

    _, features = _daily_and_features(n_customers)
    started = time.perf_counter()
    plain_lifetimes_forecast(features, horizon_days=180)
    return {"seconds": time.perf_counter() - started, "customers": len(features)}


def case_pareto_lifetimes(n_customers: int) -> dict[str, object]:
    """lifetimes' own Pareto/NBD fit on one row per customer (its slowest model)."""
    from pipeline.clv import plain_lifetimes_forecast

    _, features = _daily_and_features(n_customers)
    started = time.perf_counter()
    plain_lifetimes_forecast(features, horizon_days=180, kind="pareto_nbd")
    return {"seconds": time.perf_counter() - started, "customers": len(features)}


def case_pareto_ours(n_customers: int) -> dict[str, object]:
    """Our Pareto/NBD fit (weighted distinct rows, L-BFGS-B, convergence checked) on all customers."""
    from pipeline.clv import CustomerValueModel

    _, features = _daily_and_features(n_customers)
    started = time.perf_counter()
    CustomerValueModel(purchase_model="pareto_nbd", fit_sample_size=None, random_state=0).fit(
        features
    )
    return {"seconds": time.perf_counter() - started, "customers": len(features)}


def _discovery_features() -> tuple[str, ...]:
    from pipeline.features import FEATURE_COLUMNS

    return tuple(c for c in FEATURE_COLUMNS if c != "orders")  # 15 features


def case_discovery(n_customers: int) -> dict[str, object]:
    """Choosing k over the default range and fitting on everyone: 15 features."""
    from pipeline.clustering import fit_clusters
    from pipeline.config import ClusteringConfig

    _, features = _daily_and_features(n_customers)
    features_used = _discovery_features()
    skewed = tuple(f for f in features_used if f not in {"gap_cv", "spend_change"})
    config = ClusteringConfig(features=features_used, skewed_features=skewed)
    started = time.perf_counter()
    _, labels, choice = fit_clusters(features, config, random_state=0)
    return {
        "seconds": time.perf_counter() - started,
        "customers": len(labels),
        "chosen": f"k={choice.k}",
    }


CASES: dict[str, Callable[[int], dict[str, object]]] = {
    "discovery": case_discovery,
    "clv": case_clv,
    "clv_lifetimes": case_clv_lifetimes,
    "pareto_lifetimes": case_pareto_lifetimes,
    "pareto_ours": case_pareto_ours,
}
# (case, customers) pairs of the default run; Pareto/NBD in lifetimes is measured on a tenth
# of the customers because it takes about a minute per 100,000.
DEFAULT_PLAN = (
    ("discovery", 1_000_000),
    ("clv", 1_000_000),
    ("clv_lifetimes", 1_000_000),
    ("pareto_ours", 100_000),
    ("pareto_lifetimes", 100_000),
)


def _run_child(case: str, customers: int) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.benchmarks",
            "--child",
            case,
            "--customers",
            str(customers),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--cases", default=None, help="comma-separated subset of the cases")
    arguments = parser.parse_args(argv)
    if arguments.child:
        import logging

        logging.disable(logging.WARNING)
        result = CASES[arguments.child](arguments.customers)
        # ru_maxrss is in KiB on Linux: the child's own peak, data generation included.
        result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(json.dumps(result))
        return

    wanted = set(arguments.cases.split(",")) if arguments.cases else None
    plan = [
        (case, arguments.customers or n)
        for case, n in DEFAULT_PLAN
        if wanted is None or case in wanted
    ]
    for _, customers in plan:  # generate the cached data first, outside any timing
        _transactions(customers)
    results = {}
    for case, customers in plan:
        results[case] = _run_child(case, customers)
        figures = results[case]
        print(
            f"{case:18s} {customers:>10,} customers  {figures['seconds']:7.1f} s  "
            f"peak {figures['peak_rss_gib']:.2f} GiB"
            + (f"  (chose {figures['chosen']})" if "chosen" in figures else ""),
            flush=True,
        )
    print()
    if "discovery" in results:
        figures = results["discovery"]
        print(
            f"Discovery (k chosen over 10-18, then fitted) on {figures['customers']:,} customers x "
            f"{len(_discovery_features())} features: {figures['seconds']:.1f} s (target 60 s)"
        )
    if {"clv", "clv_lifetimes"} <= set(results):
        clv, plain = results["clv"], results["clv_lifetimes"]
        print(
            f"CLV stage, all candidates + selection + refit: {clv['seconds']:.1f} s for "
            f"{clv['customers']:,} customers (target 60 s); plain lifetimes BG/NBD + Gamma-Gamma "
            f"alone: {plain['seconds']:.1f} s -> ratio {clv['seconds'] / plain['seconds']:.2f}x"
        )
    if {"pareto_ours", "pareto_lifetimes"} <= set(results):
        ours, theirs = results["pareto_ours"], results["pareto_lifetimes"]
        print(
            f"Pareto/NBD fit on {ours['customers']:,} customers: ours {ours['seconds']:.1f} s, "
            f"lifetimes {theirs['seconds']:.1f} s -> {theirs['seconds'] / ours['seconds']:.1f}x faster"
        )


if __name__ == "__main__":
    main()
