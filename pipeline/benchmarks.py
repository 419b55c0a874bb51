"""`make bench`: speed and memory measured against the plain alternatives.

Each case runs in a fresh subprocess so that its peak memory (max RSS) is its own. Data are
generated once with the planted generator and cached under ``data/bench/`` (git-ignored).
Figures are printed, never asserted: timings belong here, not in unit tests.

    python -m pipeline.benchmarks [--rows 1000000,10000000] [--customers 1000000]
                                  [--cases features,features_duckdb_rfm,clv]
    python -m pipeline.benchmarks --cases train,notebook [--sizes 100k,1m,10m]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from lifetimes.utils import summary_data_from_transaction_data  # imported before any clock

CACHE = Path("data/bench")
_LINES_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("timestamp", pa.timestamp("us")), ("amount", pa.float64())]
)
AS_OF = pd.Timestamp("2025-12-31")
# Customers are generated in chunks so that 50M rows never sit in memory at once.
CHUNK_CUSTOMERS = 250_000


def _lifetimes_summary(lines: pd.DataFrame) -> pd.DataFrame:
    """lifetimes' own RFM summary (daily), as a notebook would make it."""
    return summary_data_from_transaction_data(
        lines,
        "customer_id",
        "timestamp",
        monetary_value_col="amount",
        observation_period_end=AS_OF,
        freq="D",
    )


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


def transactions_file(n_rows: int) -> Path:
    """A Parquet file of exactly ``n_rows`` planted transactions, generated once and cached."""
    from pipeline.synthetic import generate_transactions

    # Named apart from the files of earlier versions, which were a prefix of lines in time
    # order: the 100k-row file ended on 2024-03-31 and the 1M-row one on 2024-11-10, so every
    # customer was silent for the last 13-21 months before the as-of date, a world no shop is.
    path = CACHE / f"customer_lines_{n_rows}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    written, chunk = 0, 0
    with pq.ParquetWriter(temporary, _LINES_SCHEMA) as writer:
        while written < n_rows:
            lines, _ = generate_transactions(CHUNK_CUSTOMERS, as_of=AS_OF, random_state=chunk)
            # Each chunk is its own customers: prefix the ids so that chunks never share one.
            lines["customer_id"] = f"K{chunk:03d}" + lines["customer_id"]
            # Whole customers (only the last one cut short), each over the full history; then in
            # time order again, as a shop's export is.
            lines = (
                lines.sort_values(["customer_id", "timestamp"], kind="mergesort")
                .iloc[: n_rows - written]
                .sort_values("timestamp", kind="mergesort")
            )
            table = pa.Table.from_pandas(lines, schema=_LINES_SCHEMA, preserve_index=False)
            writer.write_table(table, row_group_size=1_000_000)
            written += len(lines)
            chunk += 1
    temporary.replace(path)
    return path


def _history_and_features(n_customers: int, engine) -> tuple[object, pd.DataFrame]:
    from pipeline.config import FeatureConfig
    from pipeline.features import CustomerHistory

    history = CustomerHistory.from_frames(
        engine, _transactions(n_customers), settings=FeatureConfig()
    )
    return history, history.features(AS_OF)


def _features(n_customers: int) -> pd.DataFrame:
    from pipeline.config import EngineConfig
    from pipeline.engine import connect

    with connect(EngineConfig()) as engine:
        return _history_and_features(n_customers, engine)[1]


def case_features(n_rows: int) -> dict[str, object]:
    """Our whole feature stage (every feature) on DuckDB, straight from the Parquet file."""
    from pipeline.config import EngineConfig, FeatureConfig
    from pipeline.engine import connect
    from pipeline.features import CustomerHistory

    path = transactions_file(n_rows)
    started = time.perf_counter()
    with connect(EngineConfig()) as engine:
        lines = engine.read(path)
        # One cut-off: the purchase days are used once, nothing to keep (training keeps them
        # for the holdout cut-offs as well).
        history = CustomerHistory.from_table(
            engine, lines, settings=FeatureConfig(), materialize=False
        )
        features = history.features(AS_OF)
    return {
        "seconds": time.perf_counter() - started,
        "customers": len(features),
        "features": features.shape[1] - 1,
    }


def case_features_lifetimes(n_rows: int) -> dict[str, object]:
    """lifetimes' summary_data_from_transaction_data: RFM only, from the same file."""
    path = transactions_file(n_rows)
    started = time.perf_counter()
    lines = pd.read_parquet(path)
    summary = _lifetimes_summary(lines)
    return {"seconds": time.perf_counter() - started, "customers": len(summary)}


# {amount} is the plain float column, or the same exact decimal the feature stage sums.
BARE_DUCKDB_RFM = """
WITH days AS (
    SELECT customer_id, CAST(timestamp AS DATE) AS day, SUM({amount}) AS amount
    FROM read_parquet('{path}') GROUP BY 1, 2
)
SELECT customer_id,
       COUNT(*) - 1 AS frequency,
       DATE_DIFF('day', MIN(day), MAX(day)) AS recency,
       DATE_DIFF('day', MIN(day), DATE '{as_of}') AS T,
       SUM(amount) AS total_spend
FROM days GROUP BY 1
"""


def _bare_rfm(n_rows: int, amount: str) -> dict[str, object]:
    import duckdb

    path = transactions_file(n_rows)
    query = BARE_DUCKDB_RFM.format(path=path, as_of=AS_OF.date(), amount=amount)
    started = time.perf_counter()
    # DuckDB's defaults, except that a spill goes to a scratch folder rather than the cwd.
    with (
        tempfile.TemporaryDirectory(prefix="bench-duckdb-") as spill,
        duckdb.connect(config={"temp_directory": spill}) as connection,
    ):
        rfm = connection.sql(query).df()
    return {"seconds": time.perf_counter() - started, "customers": len(rfm)}


def case_features_duckdb_rfm(n_rows: int) -> dict[str, object]:
    """A bare DuckDB RFM query over the same file, float sums: the floor any feature stage
    builds on."""
    return _bare_rfm(n_rows, "amount")


def case_features_duckdb_rfm_exact(n_rows: int) -> dict[str, object]:
    """The same bare query with the exact decimal sums the feature stage uses: like for like."""
    return _bare_rfm(n_rows, "CAST(amount AS DECIMAL(18, 4))")


def case_read_parquet(n_rows: int) -> dict[str, object]:
    """Reading the file into memory, and nothing else."""
    path = transactions_file(n_rows)
    started = time.perf_counter()
    table = pq.read_table(path)
    return {"seconds": time.perf_counter() - started, "rows": table.num_rows}


def case_clv(n_customers: int) -> dict[str, object]:
    """The whole CLV stage: every candidate on the holdout, selection, refit on the full history.

    Its inputs are made as ``train`` makes them (features with the activity windows, the holdout
    windows); their making is the feature stage's work, timed apart.
    """
    from pipeline.config import Config
    from pipeline.customer_value import select_value_model
    from pipeline.schema import clean_transactions
    from pipeline.tables import OptionalTables
    from pipeline.train import training_inputs

    config = Config()
    clean = clean_transactions(
        _transactions(n_customers), data=config.data, source="bench", as_of=AS_OF
    )
    started = time.perf_counter()
    inputs = training_inputs(clean, config, OptionalTables())
    window_seconds = time.perf_counter() - started
    started = time.perf_counter()
    selection = select_value_model(
        inputs.windows,
        inputs.features,
        config=config.clv,
        trend_window_days=config.features.recent_window_days,
        random_state=0,
        naive_days=inputs.naive_days,
    )
    forecast = selection.forecaster.predict(inputs.features, horizon_days=config.horizon_days)
    return {
        "seconds": time.perf_counter() - started,
        "customers": len(forecast),
        "chosen": selection.chosen,
        "window_seconds": window_seconds,
    }


def case_clv_lifetimes(n_customers: int) -> dict[str, object]:
    """The plain alternative: lifetimes' BG/NBD and Gamma-Gamma on one row per customer."""
    from pipeline.clv import plain_lifetimes_forecast

    features = _features(n_customers)
    started = time.perf_counter()
    plain_lifetimes_forecast(features, horizon_days=180)
    return {"seconds": time.perf_counter() - started, "customers": len(features)}


def case_pareto_lifetimes(n_customers: int) -> dict[str, object]:
    """lifetimes' own Pareto/NBD fit on one row per customer (its slowest model)."""
    from pipeline.clv import plain_lifetimes_forecast

    features = _features(n_customers)
    started = time.perf_counter()
    plain_lifetimes_forecast(features, horizon_days=180, kind="pareto_nbd")
    return {"seconds": time.perf_counter() - started, "customers": len(features)}


def case_pareto_ours(n_customers: int) -> dict[str, object]:
    """Our Pareto/NBD fit (weighted distinct rows, L-BFGS-B, convergence checked) on all customers."""
    from pipeline.clv import CustomerValueModel

    features = _features(n_customers)
    started = time.perf_counter()
    CustomerValueModel(purchase_model="pareto_nbd", fit_sample_size=None, random_state=0).fit(
        features
    )
    return {"seconds": time.perf_counter() - started, "customers": len(features)}


def case_fit_sample(n_customers: int) -> dict[str, object]:
    """Pareto/NBD + Gamma-Gamma on the default fit sample (three seeds) against every customer:
    what the sample costs in forecasts, what it saves in time."""
    import numpy as np
    from scipy.stats import spearmanr

    from pipeline.clv import CustomerValueModel
    from pipeline.config import CLVConfig

    features = _features(n_customers)
    size = CLVConfig().fit_sample_size

    def fitted(sample: int | None, seed: int) -> tuple[float, pd.DataFrame]:
        started = time.perf_counter()
        model = CustomerValueModel(
            purchase_model="pareto_nbd", fit_sample_size=sample, random_state=seed
        ).fit(features)
        return time.perf_counter() - started, model.predict(features, horizon_days=180)

    all_seconds, everyone = fitted(None, 0)
    seconds, total, median, rho = [], 0.0, 0.0, 1.0
    for seed in (0, 1, 2):
        took, sampled = fitted(size, seed)
        seconds.append(took)
        for column in ("expected_purchases", "expected_spend"):
            a, b = everyone[column].to_numpy(), sampled[column].to_numpy()
            total = max(total, abs(b.sum() / a.sum() - 1) * 100)
            median = max(median, float(np.median(np.abs(b / np.maximum(a, 1e-12) - 1))) * 100)
            rho = min(rho, float(spearmanr(a, b).statistic))
    return {
        "seconds": float(np.mean(seconds)),
        "customers": len(features),
        "chosen": f"{size:,}-customer sample vs all ({all_seconds:.1f} s): totals within "
        f"{total:.2f}%, median per customer {median:.2f}%, rank correlation >= {rho:.5f}",
    }


def _discovery_features() -> tuple[str, ...]:
    from pipeline.features import FEATURE_COLUMNS

    # The 15 behavioural features of the original catalogue (orders duplicates frequency).
    return tuple(c for c in FEATURE_COLUMNS[:16] if c != "orders")


def case_discovery(n_customers: int) -> dict[str, object]:
    """Choosing k over the default range and fitting on everyone: 15 features."""
    from pipeline.clustering import fit_clusters
    from pipeline.config import ClusteringConfig

    features = _features(n_customers)
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


# --threads of the end-to-end case (None: the default, every core available to the process).
TRAIN_THREADS: int | None = None
TRAIN_STAGES = ("data", "features", "clustering", "clv", "labeling", "outputs", "tracking")


def case_train(n_rows: int) -> dict[str, object]:
    """The whole `train` a user waits for, tracking included, on the default config: every
    stage's seconds (from the stage callbacks the command line shows), in a scratch folder."""
    import os

    from pipeline.config import load_config
    from pipeline.train import run_training

    path = transactions_file(n_rows).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as scratch:
        os.chdir(scratch)  # the MLflow artifacts land beside the scratch store
        config = load_config(
            None,
            {
                "data.transactions": str(path),
                "as_of": AS_OF.date().isoformat(),
                "output": f"{scratch}/out",
                "model_path": f"{scratch}/models/bundle.joblib",
                "history_path": f"{scratch}/history.parquet",
                "tracking.tracking_uri": f"sqlite:///{scratch}/mlflow.db",
                "threads": TRAIN_THREADS,
            },
        )
        marks: list[tuple[str, float]] = []
        started = time.perf_counter()
        outcome = run_training(
            config, on_stage=lambda name: marks.append((name, time.perf_counter()))
        )
        ended = time.perf_counter()
    stages: dict[str, float] = {}
    for (name, at), (_, until) in zip(marks, [*marks[1:], ("end", ended)], strict=True):
        stages[name] = stages.get(name, 0.0) + until - at
    return {
        "seconds": ended - started,
        "stages": stages,
        "customers": len(outcome.result.segments),
        "chosen": f"k={int(outcome.result.metrics['n_clusters'])}",
    }


def case_notebook(n_rows: int) -> dict[str, object]:
    """The plain notebook a data scientist would write: lifetimes' summary, BG/NBD and
    Gamma-Gamma, k-means on log-scaled RFM (k fixed, default settings), from the same file."""
    import numpy as np
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    path = transactions_file(n_rows)
    stages: dict[str, float] = {}
    started = mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        stages[name] = now - mark
        mark = now

    lines = pd.read_parquet(path)
    lap("read")
    rfm = _lifetimes_summary(lines)
    lap("summary")
    bgf = BetaGeoFitter(penalizer_coef=0.001).fit(rfm["frequency"], rfm["recency"], rfm["T"])
    rfm["expected_purchases"] = bgf.conditional_expected_number_of_purchases_up_to_time(
        180, rfm["frequency"], rfm["recency"], rfm["T"]
    )
    rfm["p_alive"] = bgf.conditional_probability_alive(rfm["frequency"], rfm["recency"], rfm["T"])
    lap("bgnbd")
    repeat = rfm[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.001).fit(repeat["frequency"], repeat["monetary_value"])
    rfm["expected_spend"] = ggf.conditional_expected_average_profit(
        rfm["frequency"], rfm["monetary_value"]
    )
    lap("gamma_gamma")
    scaled = StandardScaler().fit_transform(np.log1p(rfm[["frequency", "recency", "T"]].clip(0)))
    rfm["cluster"] = KMeans(n_clusters=8, n_init=4, random_state=0).fit_predict(scaled)
    lap("kmeans")
    return {"seconds": time.perf_counter() - started, "stages": stages, "customers": len(rfm)}


CASES: dict[str, Callable[[int], dict[str, object]]] = {
    "features": case_features,
    "features_duckdb_rfm": case_features_duckdb_rfm,
    "features_duckdb_rfm_exact": case_features_duckdb_rfm_exact,
    "features_lifetimes": case_features_lifetimes,
    "read_parquet": case_read_parquet,
    "discovery": case_discovery,
    "clv": case_clv,
    "clv_lifetimes": case_clv_lifetimes,
    "pareto_lifetimes": case_pareto_lifetimes,
    "pareto_ours": case_pareto_ours,
    "fit_sample": case_fit_sample,
    "train": case_train,
    "notebook": case_notebook,
}
# Cases sized in transaction rows; the others in customers.
ROW_CASES = (
    "features",
    "features_duckdb_rfm",
    "features_duckdb_rfm_exact",
    "features_lifetimes",
    "read_parquet",
    "train",
    "notebook",
)
# The end-to-end cases' default sizes: feasible on a 2-core machine in a few minutes
# (--sizes 100k,1m,10m adds the 10M-row run the targets are set at).
TRAIN_CASES = ("train", "notebook")
TRAIN_ROWS = (100_000, 1_000_000)
# Issue 16's targets for `train` end to end, in seconds, by rows.
TRAIN_TARGET_SECONDS = {1_000_000: 20.0, 10_000_000: 90.0}
TRAIN_TARGET_PEAK_GIB = {10_000_000: 6.0}
MAX_STAGE_SHARE = 0.4
FEATURE_ROWS = (1_000_000, 10_000_000, 50_000_000)
# (case, customers) pairs of the default run; Pareto/NBD in lifetimes is measured on a tenth
# of the customers because it takes about a minute per 100,000.
CUSTOMER_PLAN = (
    ("discovery", 1_000_000),
    ("clv", 1_000_000),
    ("clv_lifetimes", 1_000_000),
    ("pareto_ours", 100_000),
    ("pareto_lifetimes", 100_000),
    ("fit_sample", 100_000),
)


def _peak_rss_gib() -> float:
    """This process's own peak resident memory, data loading included.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec, so
    a child of a parent that generated 50M rows would report the parent's peak as its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _run_child(case: str, size: int) -> dict[str, object]:
    threads = ["--threads", str(TRAIN_THREADS)] if TRAIN_THREADS else []
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.benchmarks", "--child", case, "--size", str(size)]
        + threads,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _line(case: str, size: int, figures: dict[str, object]) -> str:
    unit = "rows" if case in ROW_CASES else "customers"
    chosen = f"  (chose {figures['chosen']})" if "chosen" in figures else ""
    return (
        f"{case:26s} {size:>12,} {unit:9s}  {figures['seconds']:7.1f} s  "
        f"peak {figures['peak_rss_gib']:5.2f} GiB{chosen}"
    )


def _feature_summary(results: dict[tuple[str, int], dict[str, object]]) -> list[str]:
    lines = ["Feature stage (every feature, DuckDB) against the plain alternatives, same file:"]
    for rows in sorted({size for case, size in results if case == "features"}):
        ours = results[("features", rows)]
        lines.append(
            f"  {rows:,} rows -> {ours['customers']:,} customers x {ours['features']} features: "
            f"{ours['seconds']:.1f} s, peak {ours['peak_rss_gib']:.2f} GiB"
        )
        for case, label in (
            ("features_duckdb_rfm", "bare DuckDB RFM query, float sums"),
            ("features_duckdb_rfm_exact", "bare DuckDB RFM query, exact sums"),
        ):
            bare = results.get((case, rows))
            if bare:
                lines.append(
                    f"    {label}: {bare['seconds']:.1f} s, peak {bare['peak_rss_gib']:.2f} GiB"
                    f" -> ours takes {ours['seconds'] / bare['seconds']:.2f}x its time"
                )
        plain = results.get(("features_lifetimes", rows))
        if plain:
            lines.append(
                f"    lifetimes summary_data_from_transaction_data (RFM only): "
                f"{plain['seconds']:.1f} s, peak {plain['peak_rss_gib']:.2f} GiB -> ours is "
                f"{plain['seconds'] / ours['seconds']:.1f}x faster in "
                f"{ours['peak_rss_gib'] / plain['peak_rss_gib']:.2f}x its memory"
            )
        read = results.get(("read_parquet", rows))
        if read:
            lines.append(f"    reading the file alone: {read['seconds']:.1f} s")
    return lines


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"100k,1m,10M"`` -> ``(100000, 1000000, 10000000)``; plain numbers as they are."""
    scale = {"k": 1_000, "m": 1_000_000}
    sizes = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        factor = scale.get(part[-1:], 1)
        number = part[:-1] if part[-1:] in scale else part
        try:
            sizes.append(int(float(number) * factor))
        except ValueError:
            raise SystemExit(f"--sizes: '{part}' is not a row count such as 100k or 1m") from None
    return tuple(sizes)


def _load() -> str:
    """The machine's load average against its cores: timings on a shared host need both."""
    import os

    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


def train_summary(
    results: dict[tuple[str, int], dict[str, object]], *, load: tuple[str, str]
) -> list[str]:
    """`train` end to end beside the plain notebook: stage shares, peaks and ratios."""
    threads = f"--threads {TRAIN_THREADS}" if TRAIN_THREADS else "default threads"
    lines = [
        f"`train` end to end (default config, tracking on, {threads}) against the plain notebook, "
        f"same file ({load[0]} at the start, {load[1]} at the end):"
    ]
    for rows in sorted({size for case, size in results if case == "train"}):
        ours = results[("train", rows)]
        stages: dict[str, float] = ours["stages"]  # type: ignore[assignment]
        total = float(ours["seconds"])
        lines.append(
            f"  {rows:,} rows -> {ours['customers']:,} customers: {total:.1f} s, "
            f"peak {ours['peak_rss_gib']:.2f} GiB ({ours['chosen']})"
        )
        lines.append(
            "    shares: "
            + ", ".join(
                f"{name} {stages[name] / total:.0%} ({stages[name]:.1f} s)"
                for name in TRAIN_STAGES
                if name in stages
            )
        )
        largest = max(stages, key=stages.get)
        share = stages[largest] / total
        verdict = "within" if share <= MAX_STAGE_SHARE else "over"
        lines.append(
            f"    largest stage {largest}: {share:.0%} of the total, "
            f"{share / MAX_STAGE_SHARE:.2f}x the {MAX_STAGE_SHARE:.0%} ceiling ({verdict})"
        )
        target = TRAIN_TARGET_SECONDS.get(rows)
        if target:
            lines.append(
                f"    time target {target:.0f} s: {total / target:.2f}x the target "
                f"({'met' if total <= target else 'not met'})"
            )
        peak_target = TRAIN_TARGET_PEAK_GIB.get(rows)
        if peak_target:
            peak = float(ours["peak_rss_gib"])
            lines.append(
                f"    peak target {peak_target:.0f} GiB: {peak / peak_target:.2f}x the target "
                f"({'met' if peak <= peak_target else 'not met'})"
            )
        plain = results.get(("notebook", rows))
        if plain:
            plain_stages: dict[str, float] = plain["stages"]  # type: ignore[assignment]
            lines.append(
                f"    plain notebook: {plain['seconds']:.1f} s, peak {plain['peak_rss_gib']:.2f} "
                "GiB ("
                + ", ".join(f"{name} {sec:.1f} s" for name, sec in plain_stages.items())
                + f") -> train takes {total / float(plain['seconds']):.2f}x its time and "
                f"{float(ours['peak_rss_gib']) / float(plain['peak_rss_gib']):.2f}x its memory"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=None, help="customers of the model cases")
    parser.add_argument(
        "--rows", default=None, help="comma-separated row counts of the feature cases"
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated row counts of every row case, with k/m suffixes: 100k,1m,10m "
        "(default: 100k,1m for train and notebook, 1m,10m,50m for the feature cases)",
    )
    parser.add_argument("--cases", default=None, help="comma-separated subset of the cases")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="--threads of the train case (default: the cores available), to compare caps",
    )
    arguments = parser.parse_args(argv)
    global TRAIN_THREADS
    TRAIN_THREADS = arguments.threads
    if arguments.child:
        import logging

        logging.disable(logging.WARNING)
        result = CASES[arguments.child](arguments.size)
        result["peak_rss_gib"] = _peak_rss_gib()
        print(json.dumps(result))
        return

    wanted = set(arguments.cases.split(",")) if arguments.cases else set(CASES)
    given = arguments.sizes or arguments.rows
    rows = parse_sizes(given) if given else FEATURE_ROWS
    train_rows = parse_sizes(given) if given else TRAIN_ROWS
    plan = [
        (case, n) for n in rows for case in ROW_CASES if case in wanted and case not in TRAIN_CASES
    ]
    plan += [(case, n) for n in train_rows for case in TRAIN_CASES if case in wanted]
    plan += [(case, arguments.customers or n) for case, n in CUSTOMER_PLAN if case in wanted]
    # Generate the cached data first, outside any timing.
    for case, size in plan:
        if case in ROW_CASES:
            transactions_file(size)
        else:
            _transactions(size)
    results: dict[tuple[str, int], dict[str, object]] = {}
    load_before = _load()
    for case, size in plan:
        results[(case, size)] = _run_child(case, size)
        print(_line(case, size, results[(case, size)]), flush=True)
    print()
    if any(case == "features" for case, _ in results):
        print("\n".join(_feature_summary(results)))
    if any(case == "train" for case, _ in results):
        print("\n".join(train_summary(results, load=(load_before, _load()))))
    by_case = {case: figures for (case, _), figures in results.items()}
    if "discovery" in by_case:
        figures = by_case["discovery"]
        print(
            f"Discovery (k chosen over 10-18, then fitted) on {figures['customers']:,} customers x "
            f"{len(_discovery_features())} features: {figures['seconds']:.1f} s (target 60 s)"
        )
    if {"clv", "clv_lifetimes"} <= set(by_case):
        clv, plain = by_case["clv"], by_case["clv_lifetimes"]
        print(
            f"CLV stage, all candidates + selection + refit: {clv['seconds']:.1f} s for "
            f"{clv['customers']:,} customers (target 60 s); plain lifetimes BG/NBD + Gamma-Gamma "
            f"alone: {plain['seconds']:.1f} s -> ratio {clv['seconds'] / plain['seconds']:.2f}x. "
            f"(Features at the two holdout cut-offs, part of the feature stage: "
            f"{clv['window_seconds']:.1f} s.)"
        )
    if {"pareto_ours", "pareto_lifetimes"} <= set(by_case):
        ours, theirs = by_case["pareto_ours"], by_case["pareto_lifetimes"]
        print(
            f"Pareto/NBD fit on {ours['customers']:,} customers: ours {ours['seconds']:.1f} s, "
            f"lifetimes {theirs['seconds']:.1f} s -> {theirs['seconds'] / ours['seconds']:.1f}x faster"
        )
    if {"train_at_cutoff", "backtest_one_cutoff"} <= set(by_case):
        print(backtest_line(by_case["train_at_cutoff"], by_case["backtest_one_cutoff"]))


# -- backtest against train --------------------------------------------------------------------
# A backtest at one cut-off is a training at that cut-off plus the outcomes and the baselines:
# the budget for the extra is 30% of the training (both without MLflow, which logs a
# model for a training and tables for a backtest).
BACKTEST_CUTOFF = AS_OF - pd.Timedelta(days=180)
BACKTEST_TARGET_RATIO = 1.3


def _bench_config(n_customers: int, folder: Path):
    from pipeline.config import load_config

    config = load_config(
        None,
        {
            "data.transactions": str(CACHE / f"transactions_{n_customers}.parquet"),
            "as_of": str(BACKTEST_CUTOFF.date()),
            "output": str(folder / "out"),
            "model_path": str(folder / "model.joblib"),
            "tracking.enabled": False,
        },
    )
    return config.model_copy(update={"history_path": None})


def _import_both() -> None:
    # Both cases import the same modules before their clock starts (run_backtest imports the
    # training's modules lazily: timed, they would cost it some 15 s that train does not pay).
    import pipeline.backtest
    import pipeline.plots
    import pipeline.report
    import pipeline.train  # noqa: F401


def case_train_at_cutoff(n_customers: int) -> dict[str, object]:
    """`loyalty train --as-of <cut-off>` on the planted sample, without MLflow."""
    _import_both()
    from pipeline.train import run_training

    with tempfile.TemporaryDirectory() as folder:
        config = _bench_config(n_customers, Path(folder))
        started = time.perf_counter()
        run_training(config)
        return {"seconds": time.perf_counter() - started}


def case_backtest_one_cutoff(n_customers: int) -> dict[str, object]:
    """`loyalty backtest --cutoff <cut-off>` on the same file, without MLflow."""
    _import_both()
    from pipeline.backtest import run_backtest

    with tempfile.TemporaryDirectory() as folder:
        config = _bench_config(n_customers, Path(folder)).model_copy(update={"as_of": None})
        started = time.perf_counter()
        run_backtest(config, cutoffs=[BACKTEST_CUTOFF], horizon_days=180)
        return {"seconds": time.perf_counter() - started}


def backtest_line(train: dict[str, object], backtest: dict[str, object]) -> str:
    ratio = float(backtest["seconds"]) / float(train["seconds"])
    return (
        f"Backtest at one cut-off ({BACKTEST_CUTOFF.date()}, 180 days): {backtest['seconds']:.1f} s "
        f"against train at the same cut-off {train['seconds']:.1f} s -> {ratio:.2f}x "
        f"(target <= {BACKTEST_TARGET_RATIO}x)"
    )


CASES.update(train_at_cutoff=case_train_at_cutoff, backtest_one_cutoff=case_backtest_one_cutoff)
CUSTOMER_PLAN = (*CUSTOMER_PLAN, ("train_at_cutoff", 20_000), ("backtest_one_cutoff", 20_000))


if __name__ == "__main__":
    main()
