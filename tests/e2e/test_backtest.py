"""`loyalty backtest` end to end: a two-fold backtest on the embedded sample, its outputs and
MLflow runs, `runs` / `compare` showing it, and bad cut-offs refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipeline.backtest import MODELS
from pipeline.cli import main
from tests.e2e.conftest import run_cli


def cheap_config(tmp_path: Path) -> Path:
    """A small embedded sample (two years, 600 customers) and a cheap fit: a result, not a good one."""
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
output: {tmp_path / "unused"}
model_path: {tmp_path / "models" / "bundle.joblib"}
history_path: null
embedded: {{n_customers: 600, directory: {tmp_path / "embedded"}}}
clustering: {{k_range: [10, 11], n_init: 2, check_seed_stability: false}}
clv: {{candidates: [bgnbd]}}
"""
    )
    return path


def test_a_two_fold_backtest_writes_its_tables_and_a_parent_run_with_a_child_per_cutoff(
    tmp_path, tracking_uri
):
    out = tmp_path / "bt"
    args = ["backtest", "--config", str(cheap_config(tmp_path)), "--folds", "2"]
    result = run_cli([*args, "--output", str(out), "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    # the embedded sample ends on 2025-12-31: cut-offs two and one horizon (180 days) before
    cutoffs = ["2025-01-05", "2025-07-04"]
    for cutoff in cutoffs:
        assert f"cut-off {cutoffs.index(cutoff) + 1}/2 ({cutoff}): clustering" in result.output
    assert {
        "backtest_metrics.csv",
        "backtest_by_status.csv",
        "calibration.csv",
        "backtest.html",
        "plots",
    } <= {p.name for p in out.iterdir()}
    metrics = pd.read_csv(out / "backtest_metrics.csv", keep_default_na=False, na_values=[""])
    assert set(metrics["cutoff"]) == {*cutoffs, "pooled"}
    assert set(metrics["model"]) == set(MODELS)
    pooled = metrics[metrics["cutoff"] == "pooled"].set_index(["model", "metric"])["value"]
    per_cutoff = metrics[metrics["cutoff"] != "pooled"].set_index(["model", "metric", "cutoff"])
    # pooled = every customer of both cut-offs
    customers = per_cutoff.sort_index().loc[("project", "customers"), "value"]
    assert pooled[("project", "customers")] == customers.sum() > 600
    for model in ("project", "last_period_again"):
        assert 0.5 < pooled[(model, "roc_auc")] <= 1  # better than chance on planted behaviour
    calibration = pd.read_csv(out / "calibration.csv")
    assert (calibration.groupby(["cutoff", "model"]).size() == 10).all()
    by_status = pd.read_csv(out / "backtest_by_status.csv")
    status = by_status[
        (by_status["cutoff"] == "pooled") & (by_status["grouping"] == "project status")
    ]
    assert status["customers"].sum() == pooled[("project", "customers")]
    html = (out / "backtest.html").read_text()
    assert "Where the project wins and where it loses" in html and "data:image/png;base64" in html

    client = MlflowClient(tracking_uri)
    run_id = json.loads((out / "backtest.json").read_text())["run_id"]
    parent = client.get_run(run_id)
    assert parent.data.tags["kind"] == "backtest" and parent.data.tags["cutoffs"] == ",".join(
        cutoffs
    )
    assert parent.data.metrics["project.roc_auc"] == pytest.approx(pooled[("project", "roc_auc")])
    assert parent.inputs.dataset_inputs, "the dataset is logged with log_input"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    assert sorted(c.data.tags["cutoff"] for c in children) == cutoffs
    for child in children:
        # the same metric names in every child
        assert set(child.data.metrics) >= {"project.roc_auc", "last_period_again.spend_gini"}
    artifacts = {a.path for a in client.list_artifacts(run_id, "outputs")}
    assert "outputs/backtest_metrics.csv" in artifacts

    listed = run_cli(["runs", "--tracking-uri", tracking_uri])
    assert "Backtest runs" in listed.output and run_id[:12] in listed.output
    compared = run_cli(["compare", run_id[:12], "--tracking-uri", tracking_uri])
    assert compared.exit_code == 0 and "Backtest runs side by side" in compared.output

    # a training on the same data finds it, for its report
    from pipeline.config import load_config
    from pipeline.tracking import latest_backtest

    config = load_config(cheap_config(tmp_path), {"tracking.tracking_uri": tracking_uri})
    embedded = str(tmp_path / "embedded" / "transactions.csv")
    assert latest_backtest(config.tracking, source=embedded)["run_id"] == run_id
    assert latest_backtest(config.tracking, source="another.csv") is None

    # the training's report puts its holdout beside this backtest
    trained = run_cli(
        ["train", "--config", str(cheap_config(tmp_path)), "--output", str(tmp_path / "train")]
        + ["--tracking-uri", tracking_uri]
    )
    assert trained.exit_code == 0, trained.output
    beside = pd.read_csv(tmp_path / "train" / "clv_backtest_vs_holdout.csv")
    assert f"backtest {','.join(cutoffs)} (180 days)" in beside.columns
    assert (
        "The holdout beside the latest backtest" in (tmp_path / "train" / "report.html").read_text()
    )

    table = run_cli(["backtest-table", str(out)])
    assert table.exit_code == 0 and "| metric | project | last_period_again |" in table.output


@pytest.mark.parametrize(
    ("cutoff", "expected"),
    [
        ("2025-09-01", "ends on 2026-02-28, after the data's last date 2025-12-31"),
        ("2024-03-01", "at least one horizon (180 days) before a cut-off"),
    ],
)
def test_a_bad_cutoff_exits_2_naming_the_dates_and_writes_nothing(
    tmp_path, tracking_uri, cutoff, expected
):
    out = tmp_path / "bt"
    config = cheap_config(tmp_path)
    result = CliRunner().invoke(
        main,
        ["backtest", "--config", str(config), "--cutoff", cutoff, "--output", str(out)]
        + ["--tracking-uri", tracking_uri],
    )
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert expected in message and cutoff in message and "Traceback" not in message
    assert not out.exists()
    assert not (tmp_path / "mlflow.db").exists() or not MlflowClient(tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri).search_experiments()]
    )


def test_an_output_folder_of_other_files_is_refused_before_any_work(tmp_path, tracking_uri):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(
        main,
        [
            "backtest",
            "--config",
            str(cheap_config(tmp_path)),
            "--output",
            str(out),
            "--no-tracking",
        ],
    )
    assert result.exit_code == 2 and "did not write" in " ".join(result.output.split())
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "embedded").exists()
