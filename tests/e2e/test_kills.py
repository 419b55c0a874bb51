"""A retraining killed at each step of publishing its model: the next run completes or rolls
back what it left, and champion, outputs and bundle are then one model's.

(Apart from tests/e2e/test_retrain.py so that the two files run on different test workers.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from pipeline import io
from pipeline.train import FAULT_ENV, FAULT_POINTS
from tests.e2e.conftest import quick_config


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_a_kill_at_any_step_of_publication_is_completed_or_rolled_back_by_the_next_run(
    tmp_path, point
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # about the publication sequence, not the model: the first model must become champion
    config = quick_config(
        tmp_path, "promotion: {min_seed_stability: 0.0, max_status_share_shift: 1.0}"
    )
    command = [sys.executable, "-m", "pipeline", "retrain", "--config", str(config)]
    command += ["--tracking-uri", uri]
    killed = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        check=False,
        env={**os.environ, FAULT_ENV: point},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    client = MlflowClient(uri)
    name = "loyalty-segmentation"
    # killed with the champion alias moved but the publication unfinished
    assert client.get_model_version(name, "1").tags["publish"] == "pending"

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    if point == "after_registry":
        # nothing was published: the alias goes back and the model is trained again
        assert "rolled back model version 1" in again.stderr
        assert "already trained" not in again.stdout
        assert client.get_model_version(name, "1").tags["publish"] == "rolled_back"
    else:
        # the outputs were published: the publication is completed, nothing is trained twice
        assert "completed the publication of model version 1" in again.stderr
        assert "already trained" in again.stdout
    # whatever the step, champion, outputs and bundle are one model's
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["publish"] == "done"
    published = json.loads((tmp_path / "out" / "run.json").read_text())
    assert published["run_id"] == champion.run_id
    bundle = tmp_path / "models" / "bundle.joblib"
    assert io.file_sha256(bundle) == champion.tags["bundle_sha256"] == io.recorded_sha256(bundle)
