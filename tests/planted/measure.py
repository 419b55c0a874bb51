"""Status recovery and value-trend figures on the two planted worlds.

    python -m tests.planted.measure [--world1-customers N] [--world2-customers N] [--seed S]

World 1 is the embedded planted sample (``pipeline/synthetic.py``, at the embedded defaults
unless told otherwise); world 2 is :mod:`tests.planted.second_world`. For each, the project's
training (``fit_segmentation`` with the shipped configuration) is run and the script prints the
per-status precision / recall / F1, the confusion matrix and its largest off-diagonal pairs, and
the value-trend shares that issue 12 sets targets for. On world 2, whose future is known, it
also prints the share of each found status that buys again within the horizon.

The functions are shared with ``tests/model/test_second_world.py``, so the figures printed are
computed as the tests compute them; the tests draw world 2 with another seed (2027, 2,000
customers), so that a change tuned on these figures is checked on another draw.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from pipeline.config import STATUSES, Config, EmbeddedDataConfig
from pipeline.evaluate import planted_recovery
from pipeline.model import TrainingResult
from pipeline.schema import clean_transactions
from pipeline.synthetic import generate_transactions
from pipeline.train import fit_segmentation
from tests.conftest import model_config
from tests.planted import second_world

STATIONARY = second_world.STATIONARY


@dataclass(frozen=True)
class World:
    """A planted world as the measures need it: data, config, truth and the two groups."""

    # Frames are left out of the repr: a failing test prints the world's name, not its rows.
    name: str
    transactions: pd.DataFrame = field(repr=False)
    as_of: pd.Timestamp
    config: Config = field(repr=False)
    truth: pd.DataFrame = field(repr=False)
    stationary: pd.Index = field(repr=False)
    decliners: pd.Index = field(repr=False)
    future: pd.DataFrame | None = field(default=None, repr=False)


def world_one(n_customers: int | None = None, seed: int | None = None) -> World:
    """The embedded planted sample (its defaults unless told otherwise)."""
    defaults = EmbeddedDataConfig()
    n = n_customers or defaults.n_customers
    as_of = pd.Timestamp(defaults.as_of)
    transactions, truth = generate_transactions(
        n, as_of=as_of, history_days=defaults.history_days, random_state=seed or defaults.seed
    )
    status = truth.set_index("customer_id")["status"]
    return World(
        name="world 1 (embedded planted sample)",
        transactions=transactions,
        as_of=as_of,
        config=model_config(),
        truth=truth,
        stationary=pd.Index(status.index[status.isin(STATIONARY)]),
        decliners=pd.Index(status.index[status == "declining"]),
    )


def world_two(n_customers: int = 3000, seed: int = 7) -> World:
    """The second planted world (tests/planted/second_world.py)."""
    planted = second_world.plant(n_customers, seed=seed)
    return World(
        name="world 2 (tests/planted/second_world.py)",
        transactions=planted.transactions,
        as_of=planted.as_of,
        config=model_config(data=second_world.data_config()),
        truth=planted.truth,
        stationary=second_world.stationary_customers(planted),
        decliners=second_world.planted_decliners(planted),
        future=planted.future,
    )


def fit(world: World) -> TrainingResult:
    """The project's training on the world's transactions, as ``loyalty train`` would run it."""
    clean = clean_transactions(
        world.transactions, data=world.config.data, source=world.name, as_of=world.as_of
    )
    return fit_segmentation(clean, world.config)


def recovery_table(segments: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and planted count per status, and a macro row."""
    joined = truth[["customer_id", "status"]].merge(
        segments[["customer_id", "status"]], on="customer_id", suffixes=("_planted", "")
    )
    labels = [s for s in STATUSES if s in set(joined["status_planted"]) | set(joined["status"])]
    precision, recall, f1, support = precision_recall_fscore_support(
        joined["status_planted"], joined["status"], labels=labels, zero_division=0
    )
    table = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "planted": support},
        index=pd.Index(labels, name="status"),
    )
    table.loc["macro"] = [precision.mean(), recall.mean(), f1.mean(), support.sum()]
    return table


def confusion_pairs(confusion: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """The largest off-diagonal cells: planted status, found status, count, share of planted."""
    pairs = confusion.stack().rename("customers").reset_index()
    pairs = pairs[(pairs["planted"] != pairs["found"]) & (pairs["customers"] > 0)]
    planted_total = confusion.sum(axis=1)
    pairs["share_of_planted"] = pairs["customers"] / pairs["planted"].map(planted_total)
    return pairs.sort_values("customers", ascending=False).head(top).reset_index(drop=True)


def trend_shares(
    segments: pd.DataFrame, stationary: pd.Index, decliners: pd.Index
) -> dict[str, float]:
    """Issue 12's value-trend figures: how often ``value_trend`` says declining (and rising)."""
    trend = segments.set_index("customer_id")["value_trend"]
    status = segments.set_index("customer_id")["status"]
    return {
        "stationary_called_declining": float((trend.loc[stationary] == "declining").mean()),
        "decliners_called_declining": float((trend.loc[decliners] == "declining").mean()),
        "all_called_declining": float((trend == "declining").mean()),
        "stationary_called_rising": float((trend.loc[stationary] == "rising").mean()),
        "decliners_with_status_declining": float((status.loc[decliners] == "declining").mean()),
    }


def buys_again_by_status(segments: pd.DataFrame, future: pd.DataFrame) -> pd.Series:
    """Share of each found status with at least one purchase in the known future."""
    buyers = set(future["customer_id"])
    return (
        segments.assign(buys_again=segments["customer_id"].isin(buyers))
        .groupby("status")["buys_again"]
        .mean()
        .reindex([s for s in STATUSES if s in set(segments["status"])])
    )


def report(world: World) -> dict[str, float]:
    """Fit on one world, print its figures and return the headline numbers."""
    started = time.perf_counter()
    result = fit(world)
    seconds = time.perf_counter() - started
    metrics, confusion = planted_recovery(result.segments, world.truth)
    shares = trend_shares(result.segments, world.stationary, world.decliners)
    print(f"\n== {world.name}: {len(world.truth)} customers, as of {world.as_of.date()}")
    print(f"fit {seconds:.0f} s, value model {result.value_model_name}")
    print(recovery_table(result.segments, world.truth).round(3).to_string())
    print("\nconfusion (rows planted, columns found)")
    print(confusion.to_string())
    print("\nlargest confusions")
    print(confusion_pairs(confusion).round(3).to_string(index=False))
    print("\nvalue trend")
    for name, value in shares.items():
        print(f"  {name:34s} {value:.3f}")
    if "decline_kind" in world.truth:
        kinds = world.truth.set_index("customer_id").loc[world.decliners, "decline_kind"]
        for kind, ids in kinds.groupby(kinds).groups.items():
            share = trend_shares(result.segments, world.stationary, pd.Index(ids))
            print(
                f"  decliners by {kind:9s} called declining {share['decliners_called_declining']:.3f}"
            )
        stationary = world.truth.set_index("customer_id").loc[world.stationary, "status"]
        for status, ids in stationary.groupby(stationary).groups.items():
            share = trend_shares(result.segments, pd.Index(ids), world.decliners)
            print(
                f"  {status:10s} called declining        {share['stationary_called_declining']:.3f}"
            )
    if world.future is not None:
        print("\nshare buying again within the horizon, by found status")
        print(buys_again_by_status(result.segments, world.future).round(3).to_string())
    return {"macro_f1": metrics["planted_macro_f1"], **shares}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world1-customers", type=int, default=None)
    parser.add_argument("--world2-customers", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7, help="seed of world 2")
    args = parser.parse_args(argv)
    figures = {
        "world 1": report(world_one(args.world1_customers)),
        "world 2": report(world_two(args.world2_customers, seed=args.seed)),
    }
    print(
        "\n== targets (issue 12): macro-F1 >= 0.85, stationary declining <= 0.10, "
        "decliners declining >= 0.80"
    )
    print(pd.DataFrame(figures).round(3).to_string())


if __name__ == "__main__":
    main()
