"""One tracked training, read as the UI shows it: no credential anywhere, MLflow's own context
tags, a model named after the registered model, a description, grouped metrics, warnings."""

from __future__ import annotations

from pathlib import Path

import joblib
import pytest
from mlflow.tracking import MlflowClient

from pipeline import tracking
from tests.e2e.conftest import run_cli, small_config

SECRET_URI = "https://bob:hunter2@mlflow.example.com/?access_token=t0ps3cret"
SECRETS = ("hunter2", "t0ps3cret")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A training given a credential URI; the run goes to a local store in its place."""
    folder = tmp_path_factory.mktemp("tracked")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr(tracking, "resolve_tracking_uri", lambda configured: store)
        config = small_config(folder, "clustering: {n_init: 2, k_range: [4, 5]}")
        result = run_cli(
            ["train", "--config", str(config), "--tracking-uri", SECRET_URI, "--seed", "3", "-v"]
        )
    assert result.exit_code == 0, result.output
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("loyalty-segmentation").experiment_id
    runs = client.search_runs([experiment])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return folder, result.output, client, parent, children


def test_a_tracking_uri_with_credentials_is_never_logged_stored_or_printed(trained):
    folder, output, _, run, children = trained
    assert not [s for s in SECRETS if s in output]
    bundle = joblib.load(folder / "models" / "bundle.joblib")
    assert bundle.config.tracking.tracking_uri == "https://***@mlflow.example.com/?access_token=***"
    recorded = " ".join(
        [*run.data.params.values(), *run.data.tags.values()]
        + [value for child in children for value in child.data.tags.values()]
    )
    assert run.data.params["tracking.tracking_uri"].startswith("https://***@")
    assert not [s for s in SECRETS if s in recorded]
    for path in (folder / "out").rglob("*"):
        if path.is_file() and path.suffix in {".json", ".csv", ".html", ".yaml", ".txt"}:
            assert not [s for s in SECRETS if s in Path(path).read_text(errors="ignore")], path


def test_the_run_carries_what_the_mlflow_ui_shows(trained):
    _, output, client, run, children = trained
    tags = run.data.tags
    # MLflow's own context tags, on the parent and on every stage run
    for name in ("mlflow.user", "mlflow.source.name", "mlflow.source.type"):
        assert tags.get(name), name
        assert all(child.data.tags.get(name) for child in children), name
    assert tags["mlflow.source.git.commit"] == tags["git_commit"]
    # the description says what the run is
    note = tags["mlflow.note.content"]
    assert note.startswith("**Loyalty segmentation training**") and "as of 2025-12-31" in note
    # this cheap fit is held back by the seed-stability gate (ARI 0.89 < 0.90), and says so
    failed = [
        g
        for g in ("planted_recovery", "holdout_gini", "seed_stability")
        if f"gate {g}: failed" in note
    ]
    expected = (
        f"**challenger**, held back by gate {', '.join(failed)}" if failed else "**champion**"
    )
    assert f"model `loyalty-segmentation` version 1: {expected}" in note
    # the logged model is named after the registered model, not "model"
    logged = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    )
    assert [model.name for model in logged] == ["loyalty-segmentation"]
    # metrics are grouped into the UI's sections
    assert {"data/rows_in", "clustering/silhouette", "status/share_lost"} <= set(run.data.metrics)
    assert not [name for name in run.data.metrics if name in {"rows_in", "silhouette"}]
    # warnings are counted once per kind: at most one summary line, never one per occurrence
    assert output.count("ConvergenceWarning") <= 1 and output.count("RuntimeWarning") <= 1
