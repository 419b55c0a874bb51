"""A tracking URI with credentials: trained with, but never logged, stored or printed."""

from __future__ import annotations

from pathlib import Path

import joblib
from mlflow.tracking import MlflowClient

from pipeline import tracking
from tests.e2e.test_train import run_cli, small_config

SECRET_URI = "https://bob:hunter2@mlflow.example.com/?access_token=t0ps3cret"
SECRETS = ("hunter2", "t0ps3cret")


def test_a_tracking_uri_with_credentials_is_never_logged_stored_or_printed(
    tmp_path: Path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # The credential URI is what the user gave; the run goes to a local store in its place.
    monkeypatch.setattr(tracking, "resolve_tracking_uri", lambda configured: store)
    config = small_config(tmp_path, "clustering: {n_init: 2, k_range: [4, 5]}")
    result = run_cli(
        ["train", "--config", str(config), "--tracking-uri", SECRET_URI, "--seed", "3", "-v"]
    )
    assert result.exit_code == 0, result.output
    assert not [s for s in SECRETS if s in result.output]

    bundle = joblib.load(tmp_path / "models" / "bundle.joblib")
    assert bundle.config.tracking.tracking_uri == (
        "https://***@mlflow.example.com/?access_token=***"
    )
    client = MlflowClient(store)
    (run,) = [
        r
        for r in client.search_runs(
            [client.get_experiment_by_name("loyalty-segmentation").experiment_id]
        )
        if "mlflow.parentRunId" not in r.data.tags
    ]
    recorded = " ".join([*run.data.params.values(), *run.data.tags.values()])
    assert run.data.params["tracking.tracking_uri"].startswith("https://***@")
    assert not [s for s in SECRETS if s in recorded]
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file() and path.suffix in {".json", ".csv", ".html", ".yaml", ".txt"}:
            assert not [s for s in SECRETS if s in path.read_text(errors="ignore")], path
