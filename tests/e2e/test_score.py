"""`score` applies a trained model without refitting and reproduces `train`'s table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.e2e.conftest import quick_config


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_scoring_the_training_data_with_the_champion_reproduces_the_training_statuses(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert (
        invoke("train", "--config", str(quick_config(tmp_path)), "--tracking-uri", uri).exit_code
        == 0
    )
    trained = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    transactions = str(tmp_path / "embedded" / "transactions.csv")

    for model in (
        "models:/loyalty-segmentation@champion",
        str(tmp_path / "models" / "bundle.joblib"),
    ):
        output = tmp_path / "scored"
        result = invoke(
            "score",
            "--model",
            model,
            "--transactions",
            transactions,
            "--as-of",
            "2025-12-31",
            "--output",
            str(output),
            "--tracking-uri",
            uri,
        )
        assert result.exit_code == 0, result.output
        scored = pd.read_parquet(output / "segments.parquet")
        pd.testing.assert_frame_equal(scored, trained)
        # the very data the bundle was trained on has not drifted at all
        metrics = json.loads((output / "metrics.json").read_text())
        assert metrics["metrics"]["drift_psi_max"] == 0.0 and metrics["drifted_features"] == []
        assert "largest PSI 0.000, none above 0.20" in result.output


def test_scoring_a_later_date_moves_silent_customers_towards_lost(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("train", "--config", str(quick_config(tmp_path)), "--no-tracking").exit_code == 0
    bundle = str(tmp_path / "models" / "bundle.joblib")
    transactions = str(tmp_path / "embedded" / "transactions.csv")
    result = invoke(
        "score",
        "--model",
        bundle,
        "--transactions",
        transactions,
        "--as-of",
        "2026-12-31",
        "--output",
        str(tmp_path / "later"),
    )
    assert result.exit_code == 0, result.output
    later = pd.read_parquet(tmp_path / "later" / "segments.parquet")
    assert (later["as_of"] == pd.Timestamp("2026-12-31")).all()
    # a year with no purchase at all: nobody is new, active or loyal any more
    assert set(later["status"]) <= {"lost", "at_risk", "occasional", "declining"}
    assert (later["status"] == "lost").mean() > 0.5


def test_a_missing_model_is_exit_2_with_one_line(tmp_path):
    result = CliRunner().invoke(
        main, ["score", "--model", str(tmp_path / "none.joblib"), "--transactions", "x.csv"]
    )
    assert result.exit_code == 2
    assert "model bundle not found" in result.output


def test_scoring_data_that_has_drifted_from_the_training_data_warns_on_stderr(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert invoke("train", "--config", str(quick_config(tmp_path)), "--no-tracking").exit_code == 0
    # the same purchases at four times the price: spend features move, timing features do not
    transactions = pd.read_csv(tmp_path / "embedded" / "transactions.csv")
    shifted = tmp_path / "pricier.csv"
    transactions.assign(amount=transactions["amount"] * 4).to_csv(shifted, index=False)
    output = tmp_path / "scored"
    # A real process: what a scheduler's log gets on stderr.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "score",
            "--model",
            str(tmp_path / "models" / "bundle.joblib"),
            "--transactions",
            str(shifted),
            "--as-of",
            "2025-12-31",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stderr
    assert "data drift against the model's training data: PSI above 0.20" in done.stderr
    assert "avg_order_value" in done.stderr
    scored = json.loads((output / "metrics.json").read_text())
    psi = scored["metrics"]
    assert psi["drift_psi_avg_order_value"] > 0.2 and psi["drift_psi_total_spend"] > 0.2
    assert psi["drift_psi_tenure_days"] == 0.0 and psi["drift_psi_frequency"] == 0.0
    assert scored["drift_warn_psi"] == 0.2
    assert "avg_order_value" in scored["drifted_features"]
    assert "tenure_days" not in scored["drifted_features"]
    drift = pd.read_csv(output / "data_drift.csv")
    assert drift["psi"].max() == pytest.approx(psi["drift_psi_max"])
    assert "WARNING, above 0.20" in done.stdout
