"""`train` end to end: the command line, the outputs, MLflow, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import joblib
import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipeline.cli import main
from pipeline.model import SEGMENT_COLUMNS
from tests.e2e.conftest import quick_config, run_cli, small_config

PROJECT = Path(__file__).resolve().parents[2]
SMALL = ["--seed", "3"]


def test_train_on_the_embedded_sample_writes_outputs_and_tracks_the_run(tmp_path, tracking_uri):
    config = small_config(tmp_path)
    before_ms = time.time() * 1000
    result = run_cli(["train", "--config", str(config), "--tracking-uri", tracking_uri, *SMALL])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert {"segments.parquet", "model.joblib", "metrics.json", "quarantine.csv"} <= {
        p.name for p in out.iterdir()
    }
    segments = pd.read_parquet(out / "segments.parquet")
    assert list(segments.columns[: len(SEGMENT_COLUMNS)]) == list(SEGMENT_COLUMNS)
    assert len(segments) == 1500 and segments["customer_id"].is_unique
    assert set(segments["value_trend"]) <= {"rising", "stable", "declining"}
    assert segments[["p_alive", "expected_purchases", "expected_spend"]].notna().all().all()
    assert (tmp_path / "models" / "bundle.joblib").exists()

    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["rows_in"] == metrics["rows_used"] + metrics["rows_quarantined"]
    # the planted statuses are recovered, and the summary says how well
    assert metrics["planted_macro_f1"] >= 0.9
    assert (
        f"planted statuses recovered: macro-F1 {metrics['planted_macro_f1']:.3f}" in result.output
    )

    run_id = json.loads((out / "run.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert run.data.tags["seed"] == "3" and run.data.tags["as_of"] == "2025-12-31"
    # The run is logged after the training succeeded, but dated from its start: its duration in
    # the UI is the training's (the bundle was written before any logging began).
    bundle_written_ms = (out / "model.joblib").stat().st_mtime * 1000
    assert before_ms - 1000 <= run.info.start_time <= bundle_written_ms <= run.info.end_time
    assert run.data.params["clustering.n_init"] == "3"
    assert run.data.metrics["planted/planted_macro_f1"] == pytest.approx(
        metrics["planted_macro_f1"]
    )
    # what was run, on what: the commit of this code and the data's fingerprint
    bundle_metadata = joblib.load(out / "model.joblib").metadata
    assert run.data.tags["data_fingerprint"] == bundle_metadata["data_fingerprint"]
    assert (
        run.data.tags["git_commit"]
        == subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    # every stage's evidence: k, the value models' holdout scores, the report
    # grouped into the UI's sections by stage (pipeline.metric_names)
    for name in (
        "value/holdout_spend_gini",
        "value/holdout_spend_spearman",
        "clustering/silhouette",
        "clustering/n_clusters",
        "data/rows_in",
    ):
        assert name in run.data.metrics, name
    k = int(run.data.metrics["clustering/n_clusters"])
    assert run.data.tags["k_reason"].startswith(f"k={k}")
    assert "report.html" in {a.path for a in client.list_artifacts(run_id)}
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    assert {c.data.tags["stage"] for c in children} == {"data", "clustering", "clv", "labeling"}
    by_stage = {c.data.tags["stage"]: c.info.run_id for c in children}
    # Each stage run spans its stage of the training, in order, inside the parent's span.
    spans = {c.data.tags["stage"]: (c.info.start_time, c.info.end_time) for c in children}
    order = [spans[name] for name in ("data", "clustering", "clv", "labeling")]
    assert order[0][0] == run.info.start_time
    assert all(start < end for start, end in order)
    assert all(order[i][1] == order[i + 1][0] for i in range(3))
    assert order[-1][1] <= bundle_written_ms
    assert "k_selection.json" in {a.path for a in client.list_artifacts(by_stage["clustering"])}
    assert {"clv_model_comparison.json", "clv_holdout_deciles.json"} <= {
        a.path for a in client.list_artifacts(by_stage["clv"])
    }
    artifacts = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/status_sizes.png", "plots/status_profiles.png"} <= artifacts
    assert "outputs/segments.parquet" in {a.path for a in client.list_artifacts(run_id, "outputs")}
    champion = client.get_model_version_by_alias("loyalty-segmentation", "champion")
    assert champion.run_id == run_id

    # The registered model works as a pyfunc on raw transactions.
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model("models:/loyalty-segmentation@champion")
    transactions = pd.read_csv(
        tmp_path / "embedded" / "transactions.csv", dtype={"customer_id": "string"}
    )
    scored = model.predict(transactions, params={"as_of": "2025-12-31"})
    pd.testing.assert_series_equal(
        scored["status"].reset_index(drop=True), segments["status"].reset_index(drop=True)
    )


def test_the_same_seed_gives_identical_segments(tmp_path):
    tables = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        result = run_cli(
            [
                "train",
                "--config",
                str(quick_config(tmp_path)),
                "--no-tracking",
                "--output",
                str(out),
                *SMALL,
            ]
        )
        assert result.exit_code == 0, result.output
        tables.append((out / "segments.parquet").read_bytes())
    assert tables[0] == tables[1]


def test_a_file_cleaned_from_disk_trains_to_the_same_segment_table(tmp_path):
    """Above data.stream_above_mb the file is cleaned partition by partition from disk."""
    tables = []
    for threshold in ("null", "0"):
        out = tmp_path / f"threshold-{threshold}"
        config = quick_config(tmp_path, f"data: {{stream_above_mb: {threshold}}}")
        result = run_cli(
            ["train", "--config", str(config), "--no-tracking", "--output", str(out), *SMALL]
        )
        assert result.exit_code == 0, result.output
        metrics = json.loads((out / "metrics.json").read_text())["metrics"]
        assert metrics["rows_in"] == metrics["rows_used"] + metrics["rows_quarantined"]
        tables.append((out / "segments.parquet").read_bytes())
    assert tables[0] == tables[1]


def test_any_csv_with_the_default_columns_trains(tmp_path):
    rows = []
    for customer in range(300):
        for purchase in range(1 + customer % 6):
            day = pd.Timestamp("2023-01-01") + pd.Timedelta(
                days=(customer * 7 + purchase * (20 + customer % 40)) % 700
            )
            rows.append((f"x{customer}", day, 5.0 + customer % 17 + purchase))
    path = tmp_path / "X.csv"
    pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).to_csv(path, index=False)
    result = run_cli(
        [
            "train",
            "--config",
            str(quick_config(tmp_path)),
            "--transactions",
            str(path),
            "--as-of",
            "2024-12-31",
            "--horizon-days",
            "180",
            "--output",
            str(tmp_path / "o"),
            "--no-tracking",
        ]
    )
    assert result.exit_code == 0, result.output
    segments = pd.read_parquet(tmp_path / "o" / "segments.parquet")
    assert len(segments) == 300
    assert (segments["as_of"] == pd.Timestamp("2024-12-31")).all()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "customer_id,when,amount\na,2024-01-01,1\n",
            "column 'timestamp': required column missing",
        ),
        (
            "customer_id,timestamp,amount\na,2024-01-01,1\nb,yesterday,2\n",
            "column 'timestamp', row 2: cannot read 'yesterday'",
        ),
        ("", "the file is empty"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = tmp_path / "o"
    # A real process: stderr, exit code and the absence of a traceback are what a user sees.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "train",
            "--transactions",
            str(path),
            "--output",
            str(out),
            "--no-tracking",
            "--config",
            str(small_config(tmp_path)),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {path}") and expected in lines[0]
    assert "Traceback" not in done.stderr
    assert not out.exists() and not (tmp_path / "models").exists()


def test_too_little_history_for_any_value_model_is_exit_2_naming_the_file(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text("customer_id,timestamp,amount\na,2024-01-05,12.5\nb,2024-02-01,10\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", "--transactions", str(path)]
        + ["--output", str(tmp_path / "o"), "--no-tracking"]
        + ["--config", str(small_config(tmp_path))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert done.returncode == 2
    # the fits' retries are logged as warnings above it; the error is the last line
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {path}: too little purchase history")
    assert "2 customers, 0 with a repeat purchase" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "models").exists()


def test_an_unknown_config_key_is_exit_2_naming_it(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("clusterin:\n  n_clusters: 4\n")
    result = CliRunner().invoke(main, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "unknown key 'clusterin'" in result.output


def test_a_customers_table_feeds_attribute_sub_segments(tmp_path):
    config = quick_config(tmp_path)
    # First run generates the embedded sample; then give every customer a tier and a birth date.
    assert run_cli(["train", "--config", str(config), "--no-tracking"]).exit_code == 0
    ids = pd.read_csv(tmp_path / "embedded" / "planted_truth.csv", dtype={"customer_id": "string"})[
        "customer_id"
    ]
    customers = pd.DataFrame(
        {
            "id": ids,
            "level": ["gold" if i % 3 == 0 else "silver" for i in range(len(ids))],
            "born": ["1980-05-01"] * len(ids),
        }
    )
    customers.to_csv(tmp_path / "customers.csv", index=False)
    extra = f"""
data:
  customers:
    path: {tmp_path / "customers.csv"}
    columns: {{customer_id: id, tier: level, birth_date: born}}
sub_segments:
  - {{name: "loyal, gold tier", statuses: [loyal], when: {{tier: [gold]}}}}
  - {{name: "45-54 at risk", statuses: [at_risk], when: {{age_band: ["45-54"]}}}}
"""
    result = run_cli(["train", "--config", str(quick_config(tmp_path, extra)), "--no-tracking"])
    assert result.exit_code == 0, result.output
    segments = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert {"tier", "age", "age_band"} <= set(segments.columns)
    gold_loyal = segments[(segments["status"] == "loyal") & (segments["tier"] == "gold")]
    assert len(gold_loyal) > 0 and (gold_loyal["sub_segment"] == "loyal, gold tier").all()
    assert (segments.loc[segments["status"] == "at_risk", "sub_segment"] == "45-54 at risk").all()
    assert set(segments.loc[segments["sub_segment"].notna(), "status"]) == {"loyal", "at_risk"}


def _train_subprocess(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "train", "--no-tracking"]
        + ["--config", str(quick_config(tmp_path)), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "300"},
    )


def test_output_naming_a_folder_of_other_files_is_refused_and_nothing_is_deleted(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("x")
    done = _train_subprocess(tmp_path, "--output", str(keep))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not write" in lines[0], done.stderr
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]
    assert (keep / "notes.txt").read_text() == "x"
    # refused before any work: no embedded sample generated, no model, no lock
    assert not (tmp_path / "embedded").exists() and not (tmp_path / "models").exists()


@pytest.mark.parametrize("where", ["cwd", "file", "embedded"])
def test_output_the_working_directory_a_file_or_a_foreign_embedded_folder_is_exit_2(
    tmp_path, where
):
    project_copy = tmp_path / "project"
    project_copy.mkdir()
    (project_copy / "pyproject.toml").write_text("[project]\n")
    config = small_config(tmp_path)
    if where == "embedded":
        config.write_text(
            config.read_text().replace(
                f"directory: {tmp_path / 'embedded'}", f"directory: {project_copy}"
            )
        )
    args = {
        "cwd": ["--output", str(tmp_path)],
        "file": ["--output", str(project_copy / "pyproject.toml")],
        "embedded": [],
    }[where]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", "--no-tracking", "--config", str(config)]
        + args,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert (project_copy / "pyproject.toml").read_text() == "[project]\n"
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_the_thread_count_changes_nothing_in_the_segment_table_or_the_metrics(tmp_path):
    config = (
        small_config(tmp_path)
        .read_text()
        .replace(
            "clustering: {n_init: 3}",
            "clustering: {n_init: 2, k_range: [10, 12]}\nclv: {candidates: [bgnbd]}",
        )
    )
    (tmp_path / "threads.yaml").write_text(config)
    tables, metrics = [], []
    for threads in ("1", "2"):
        out = tmp_path / f"threads-{threads}"
        result = run_cli(
            ["train", "--config", str(tmp_path / "threads.yaml"), "--no-tracking"]
            + ["--output", str(out), "--threads", threads, *SMALL]
        )
        assert result.exit_code == 0, result.output
        tables.append((out / "segments.parquet").read_bytes())
        metrics.append(json.loads((out / "metrics.json").read_text())["metrics"])
    assert tables[0] == tables[1]
    # Every metric to the last bit (inertia, silhouette, stability), not only the table.
    assert metrics[0] == metrics[1]
