"""Unattended retraining: idempotent, one at a time, and a kill leaves the last good model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipeline import io
from pipeline.cli import EXIT_LOCKED, EXIT_NOT_PROMOTED, EXIT_NOT_TRACKED, main
from pipeline.config import load_config
from pipeline.train import training_lock
from tests.e2e.conftest import quick_config, small_config


def test_a_retraining_on_the_same_data_config_and_date_does_not_run_twice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # This test is about idempotency, not the gates (a held-back model exits 4): let them pass
    # (the third run's as-of is older than the champion's, hence allow_older).
    config = quick_config(
        tmp_path,
        "promotion: {min_seed_stability: 0.0, max_status_share_shift: 1.0, allow_older: true}",
    )
    args = ["retrain", "--config", str(config), "--tracking-uri", uri]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    run_id = json.loads((tmp_path / "out" / "run.json").read_text())["run_id"]
    second = CliRunner().invoke(main, args, catch_exceptions=False)
    assert second.exit_code == 0
    assert f"already trained: run {run_id}" in second.output
    third = CliRunner().invoke(main, [*args, "--as-of", "2025-11-30"], catch_exceptions=False)
    assert third.exit_code == 0 and "already trained" not in third.output


def test_a_retraining_held_back_by_the_gates_exits_4_and_leaves_the_model_challenger(
    tmp_path, monkeypatch
):
    # (`train` keeps exiting 0 when its model is held back: see tests/e2e/test_runs.py.)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # A holdout Gini of 1 (every customer ranked exactly by what they went on to spend) is
    # out of reach: this gate fails.
    config = small_config(tmp_path, "promotion: {min_holdout_spend_gini: 1.0}")
    args = ["retrain", "--config", str(config), "--tracking-uri", uri]
    held_back = CliRunner().invoke(main, args, catch_exceptions=False)
    assert EXIT_NOT_PROMOTED == 4
    assert held_back.exit_code == EXIT_NOT_PROMOTED, held_back.output
    held_back_dir = tmp_path / "out-held-back"
    run = json.loads((held_back_dir / "run.json").read_text())
    assert run["promoted"] is False and run["gates"]["holdout_gini"].startswith("failed")
    assert "Rejected: held back by gate holdout_gini" in (held_back_dir / "report.html").read_text()
    assert f"not promoted: model version {run['model_version']} stays challenger" in (
        held_back.output
    )
    assert "holdout_gini" in held_back.output.split("gates failed:")[1]
    # trained, written and registered all the same, but it is not the champion: the champion's
    # bundle and outputs (here: none yet) are not replaced by it
    assert (held_back_dir / "model.joblib").exists()
    assert not (tmp_path / "models" / "bundle.joblib").exists()
    assert not (tmp_path / "out").exists()
    client = MlflowClient(uri)
    challenger = client.get_model_version_by_alias("loyalty-segmentation", "challenger")
    assert str(challenger.version) == run["model_version"]
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias("loyalty-segmentation", "champion")

    # the same data again is nothing to do, not a second alarm
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0 and "already trained" in again.output


def test_a_second_training_while_one_runs_exits_at_once_with_its_own_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = small_config(tmp_path)
    lock = training_lock(load_config(config))
    with io.exclusive_lock(lock):  # a training in progress holds this
        started = time.monotonic()
        result = CliRunner().invoke(main, ["train", "--config", str(config), "--no-tracking"])
        assert time.monotonic() - started < 10
    assert result.exit_code == EXIT_LOCKED
    assert "another training is running" in result.output and f"pid {os.getpid()}" in result.output
    assert not (tmp_path / "out").exists()


def test_a_training_killed_midway_leaves_the_last_good_outputs_and_model(tmp_path):
    config = quick_config(tmp_path)
    command = [sys.executable, "-m", "pipeline", "train", "--config", str(config), "--no-tracking"]
    assert subprocess.run(command, cwd=tmp_path, capture_output=True, check=False).returncode == 0
    bundle = tmp_path / "models" / "bundle.joblib"
    good_bundle = bundle.read_bytes()
    good_segments = (tmp_path / "out" / "segments.parquet").read_bytes()

    # kill -9 at several points of a second run (with another seed, so its outputs would differ)
    for delay in (1.5, 3.0, 4.5):
        process = subprocess.Popen(
            [*command, "--seed", "7"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        if process.returncode == 0:
            break  # it finished: nothing left to interrupt
        assert bundle.read_bytes() == good_bundle
        assert (tmp_path / "out" / "segments.parquet").read_bytes() == good_segments

    # and the next run starts clean: no lock left, no staging directories left behind
    assert subprocess.run(command, cwd=tmp_path, capture_output=True, check=False).returncode == 0
    assert not any(p.name.startswith(".out.") for p in Path(tmp_path).iterdir())


def test_a_tracking_failure_after_the_fit_keeps_the_model_and_exits_5(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def store_went_away(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("API request failed: connection refused")

    monkeypatch.setattr("pipeline.tracking.log_training", store_went_away)
    result = CliRunner().invoke(
        main, ["train", "--config", str(quick_config(tmp_path)), "--tracking-uri", uri]
    )
    assert result.exit_code == EXIT_NOT_TRACKED == 5, result.output
    line = " ".join(result.output.split())  # one message (the terminal may wrap it)
    assert "kept in" in line and "connection refused" in line and "run the same command" in line
    kept = tmp_path / "out-held-back"
    assert (kept / "model.joblib").exists() and (kept / "segments.parquet").exists()
    assert "Not tracked" in (kept / "report.html").read_text()
    # not the champion: the champion's places are untouched
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "models" / "bundle.joblib").exists()
