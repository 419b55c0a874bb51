"""`score` applies a trained model without refitting and reproduces `train`'s table."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from pipeline.cli import main
from tests.e2e.test_train import small_config


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_scoring_the_training_data_with_the_champion_reproduces_the_training_statuses(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert (
        invoke("train", "--config", str(small_config(tmp_path)), "--tracking-uri", uri).exit_code
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


def test_scoring_a_later_date_moves_silent_customers_towards_lost(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("train", "--config", str(small_config(tmp_path)), "--no-tracking").exit_code == 0
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
