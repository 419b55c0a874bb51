"""Reliability (issue 15, issue 14 point 2): the tracking store probed before the fit, killed
runs and half-done publications repaired by the next run, bundles checked against their hash.

Everything here runs against a temporary SQLite store without fitting a model.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipeline import io, tracking, train
from pipeline.cli import main
from pipeline.config import Config, load_config
from pipeline.errors import InputError, UserFacingError

MODEL = "loyalty-segmentation"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An SQLite store created once (its schema migrations take seconds), copied per test."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, empty_store) -> str:
    monkeypatch.chdir(tmp_path)  # mlartifacts/ lands in tmp_path
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def config_for(tmp_path: Path, uri: str, **overrides) -> Config:
    return load_config(
        None,
        {
            "tracking.tracking_uri": uri,
            "output": str(tmp_path / "out"),
            "model_path": str(tmp_path / "models" / "bundle.joblib"),
            **overrides,
        },
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the probe -----------------------------------------------------------------------------------
def test_a_tracking_server_that_refuses_connections_is_reported_in_seconds():
    started = time.monotonic()
    with pytest.raises(tracking.TrackingUnavailable, match="does not answer within 5 s"):
        tracking.check_tracking_store(f"http://127.0.0.1:{closed_port()}", create=True)
    assert time.monotonic() - started < 6  # the probe's bound, not MLflow's minutes of retries


def test_a_tracking_server_that_accepts_but_never_answers_is_reported_after_the_timeout(
    monkeypatch,
):
    monkeypatch.setattr(tracking, "PROBE_TIMEOUT_S", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts the connection (backlog), never replies
    try:
        started = time.monotonic()
        with pytest.raises(tracking.TrackingUnavailable, match="does not answer"):
            tracking.check_tracking_store(
                f"http://127.0.0.1:{silent.getsockname()[1]}", create=True
            )
        # 0.5 s timeout plus slack for a loaded machine
        assert time.monotonic() - started < 3
    finally:
        silent.close()


def _serve_once(status: int, body: bytes) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    return server


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"experiment": {}}'),
        (404, b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no Default"}'),
    ],
)
def test_an_mlflow_server_passes_the_probe(status, body):
    server = _serve_once(status, body)
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        assert tracking.check_tracking_store(uri, create=True) == uri
    finally:
        server.server_close()


@pytest.mark.parametrize(
    ("status", "message"),
    [(404, "not as an MLflow tracking server"), (502, "not as an MLflow"), (401, "refuses access")],
)
def test_something_else_answering_is_not_taken_for_a_tracking_server(status, message):
    # a proxy or a sandbox that answers every address with a bare 404 (seen in practice)
    server = _serve_once(status, b"")
    try:
        with pytest.raises(tracking.TrackingUnavailable, match=message):
            tracking.check_tracking_store(f"http://127.0.0.1:{server.server_port}", create=True)
    finally:
        server.server_close()


def test_a_mistyped_sqlite_store_is_refused_for_reading_and_nothing_is_created(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflw.db'}"
    with pytest.raises(tracking.TrackingUnavailable, match="no tracking store at"):
        tracking.check_tracking_store(uri, create=False)
    with pytest.raises(UserFacingError, match="no tracking store"):
        tracking.load_registered_bundle(f"models:/{MODEL}@champion", tracking_uri=uri)
    assert tracking.training_runs(tracking_uri=uri).empty
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_tracking_store_is_refused_before_any_work(store, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(
        tracking.os,
        "access",
        lambda path, mode: False if mode & os.W_OK else real_access(path, mode),
    )
    with pytest.raises(tracking.TrackingUnavailable, match="is read-only here"):
        tracking.check_tracking_store(store, create=True)


def test_a_full_disk_under_the_tracking_store_is_refused_before_any_work(store, monkeypatch):
    monkeypatch.setattr(
        tracking.shutil, "disk_usage", lambda path: type("U", (), {"free": 10 * 2**20})()
    )
    with pytest.raises(tracking.TrackingUnavailable, match="only 10 MiB free"):
        tracking.check_tracking_store(store, create=True)


def test_training_against_an_unreachable_server_fails_fast_and_writes_nothing(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--tracking-uri",
            f"http://user:secret@127.0.0.1:{closed_port()}",
            "--output",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert time.monotonic() - started < 30  # issue 15: fail or degrade within 30 s
    assert "does not answer" in result.output and "secret" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# -- killed runs ---------------------------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_whose_process_died_is_marked_killed_and_a_live_one_is_left(store, tmp_path):
    config = config_for(tmp_path, store)
    client = MlflowClient(store)
    experiment = client.create_experiment(config.tracking.experiment)
    host = socket.gethostname()
    killed = client.create_run(
        experiment, tags={tracking.HOST_TAG: host, tracking.PID_TAG: str(dead_pid())}
    )
    alive = client.create_run(
        experiment, tags={tracking.HOST_TAG: host, tracking.PID_TAG: str(os.getppid())}
    )
    elsewhere = client.create_run(
        experiment, tags={tracking.HOST_TAG: "another-host", tracking.PID_TAG: "1"}
    )
    assert tracking.mark_stale_runs(config.tracking) == [killed.info.run_id]
    status = {
        run: client.get_run(run).info.status
        for run in (killed.info.run_id, alive.info.run_id, elsewhere.info.run_id)
    }
    assert list(status.values()) == ["KILLED", "RUNNING", "RUNNING"]


def test_an_untagged_running_run_is_stale_only_after_a_day(store, tmp_path):
    config = config_for(tmp_path, store)
    client = MlflowClient(store)
    experiment = client.create_experiment(config.tracking.experiment)
    run = client.create_run(experiment, start_time=1_000)
    day = 24 * 3600 * 1000
    assert tracking.mark_stale_runs(config.tracking, now_ms=1_000 + day - 1) == []
    assert tracking.mark_stale_runs(config.tracking, now_ms=1_000 + day + 1) == [run.info.run_id]


# -- the publication sequence --------------------------------------------------------------------
def registered_version(
    client: MlflowClient, experiment: str, tmp_path: Path, *, as_of: str, bundle: object = None
) -> tuple[str, str]:
    """A run with a bundle artifact registered as a model version (no fit: a stand-in bundle)."""
    run = client.create_run(experiment, tags={"as_of": as_of})
    folder = tmp_path / f"bundle-{run.info.run_id}"
    digest = io.save_bundle(
        bundle if bundle is not None else {"as_of": as_of}, folder / "model.joblib"
    )
    client.log_artifact(run.info.run_id, str(folder / "model.joblib"), "model")
    client.set_terminated(run.info.run_id)
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        client.create_registered_model(MODEL)
    version = client.create_model_version(
        MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_model_version_tag(MODEL, version.version, tracking.BUNDLE_SHA256_TAG, digest)
    return str(version.version), run.info.run_id


def test_a_kill_after_the_alias_moved_but_before_publishing_is_rolled_back(store, tmp_path):
    config = config_for(tmp_path, store)
    client = MlflowClient(store)
    experiment = client.create_experiment(config.tracking.experiment)
    old, _ = registered_version(client, experiment, tmp_path, as_of="2025-10-31")
    client.set_registered_model_alias(MODEL, "champion", old)
    new, _ = registered_version(client, experiment, tmp_path, as_of="2025-12-31")
    # what _apply_gates leaves when the process dies before outputs and bundle are published
    client.set_model_version_tag(MODEL, new, tracking.PREVIOUS_CHAMPION_TAG, old)
    client.set_model_version_tag(MODEL, new, tracking.PUBLISH_TAG, "pending")
    client.set_registered_model_alias(MODEL, "champion", new)

    done = train.recover_publication(config)
    assert "rolled back model version 2" in done[0]
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == old
    assert client.get_model_version(MODEL, new).tags[tracking.PUBLISH_TAG] == "rolled_back"
    assert train.recover_publication(config) == []  # repaired once, then nothing to do


def test_a_first_champion_whose_publication_was_killed_loses_the_alias(store, tmp_path):
    config = config_for(tmp_path, store)
    client = MlflowClient(store)
    experiment = client.create_experiment(config.tracking.experiment)
    new, run_id = registered_version(client, experiment, tmp_path, as_of="2025-12-31")
    client.set_model_version_tag(MODEL, new, tracking.PREVIOUS_CHAMPION_TAG, "none")
    client.set_model_version_tag(MODEL, new, tracking.PUBLISH_TAG, "pending")
    client.set_tag(run_id, "run_key", "k1")
    client.set_tag(run_id, tracking.PUBLISH_TAG, "pending")
    client.set_registered_model_alias(MODEL, "champion", new)
    train.recover_publication(config)
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(MODEL, "champion")
    # and the retraining is not "already trained": the rolled-back run does not count
    assert tracking.finished_run_with_key(config.tracking, "k1") is None


def test_a_kill_after_the_outputs_were_published_is_completed(store, tmp_path):
    config = config_for(tmp_path, store)
    client = MlflowClient(store)
    experiment = client.create_experiment(config.tracking.experiment)
    new, run_id = registered_version(client, experiment, tmp_path, as_of="2025-12-31")
    client.set_model_version_tag(MODEL, new, tracking.PREVIOUS_CHAMPION_TAG, "none")
    client.set_model_version_tag(MODEL, new, tracking.PUBLISH_TAG, "pending")
    client.set_registered_model_alias(MODEL, "champion", new)
    out = tmp_path / "out"
    io.save_bundle({"as_of": "2025-12-31"}, out / "model.joblib")
    io.write_json({"run_id": run_id}, out / "run.json")

    assert "completed the publication" in train.recover_publication(config)[0]
    assert io.load_bundle(config.model_path) == {"as_of": "2025-12-31"}
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == new
    assert client.get_model_version(MODEL, new).tags[tracking.PUBLISH_TAG] == "done"


def test_an_older_as_of_does_not_replace_a_newer_champion_without_allow_older(store, tmp_path):
    client = MlflowClient(store)
    experiment = client.create_experiment("loyalty-segmentation")
    champion, _ = registered_version(client, experiment, tmp_path, as_of="2025-12-31")
    client.set_registered_model_alias(MODEL, "champion", champion)
    older = config_for(tmp_path, store, as_of="2025-10-31")
    gate = tracking._as_of_gate(client, older)
    assert gate.passed is False and "--allow-older" in gate.detail
    allowed = config_for(tmp_path, store, as_of="2025-10-31", **{"promotion.allow_older": True})
    assert tracking._as_of_gate(client, allowed).passed is True
    assert tracking._as_of_gate(client, config_for(tmp_path, store, as_of="2026-01-31")).passed


def test_a_registry_bundle_is_checked_against_its_hash_before_it_is_loaded(store, tmp_path):
    client = MlflowClient(store)
    experiment = client.create_experiment("loyalty-segmentation")
    version, _ = registered_version(
        client, experiment, tmp_path, as_of="2025-12-31", bundle={"ok": True}
    )
    reference = f"models:/{MODEL}/{version}"
    assert tracking.load_registered_bundle(reference, tracking_uri=store) == {"ok": True}
    stored = next((tmp_path / "mlartifacts").rglob("model.joblib"), None) or next(
        Path(tmp_path).rglob("mlruns/**/model/model.joblib")
    )
    io.save_bundle({"ok": False, "payload": "swapped"}, stored)  # replaced in the store
    with pytest.raises(InputError, match="does not match the recorded"):
        tracking.load_registered_bundle(reference, tracking_uri=store)


# -- locks and limits ----------------------------------------------------------------------------
def test_the_training_lock_is_per_model_path(tmp_path):
    a = load_config(None, {"model_path": str(tmp_path / "models" / "a.joblib")})
    b = load_config(None, {"model_path": str(tmp_path / "models" / "b.joblib")})
    assert train.training_lock(a) != train.training_lock(b)
    assert train.training_lock(a).parent == tmp_path / "models"


def test_bad_input_is_reported_even_while_another_training_holds_the_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    held = train.training_lock(load_config(None, {}))  # the default model path, as the CLI's
    with io.exclusive_lock(held):
        result = CliRunner().invoke(
            main, ["train", "--transactions", "missing.csv", "--no-tracking", "--output", "out"]
        )
    # the input is checked before the lock is taken: its own error, not "locked" (exit 3)
    assert result.exit_code == 2 and "file not found" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--horizon-days", "1000000000"], "1<=x<=3650"),
        (["--horizon-days", str(10**20)], "1<=x<=3650"),
        (["--as-of", "1500-01-01"], "outside 1677-09-23 to 2262-04-10"),
        (["--as-of", "2300-01-01"], "outside 1677-09-23 to 2262-04-10"),
    ],
)
def test_out_of_range_horizons_and_dates_are_one_line_errors_at_once(
    tmp_path, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["train", "--no-tracking", *args])
    assert result.exit_code == 2 and message in result.output
    assert time.monotonic() - started < 5  # refused before any work: no 12-minute hang


# -- scoring ---------------------------------------------------------------------------------------
class _SparkTrainedBundle:
    """A stand-in for a bundle trained on Spark: only its config is read before scoring."""

    def __init__(self):
        self.config = load_config(None, {"engine.name": "spark"})


@pytest.mark.parametrize(("flags", "expected"), [([], "duckdb"), (["--engine", "spark"], "spark")])
def test_score_uses_the_engine_it_is_told_not_the_one_that_trained(
    tmp_path, monkeypatch, flags, expected
):
    import pipeline.score

    used = {}

    def fake_scoring(model, **kwargs):
        used["engine"] = kwargs["engine"].name
        raise InputError("t.csv", "stop here")  # the engine choice is all this test is about

    monkeypatch.setattr(pipeline.tracking, "load_model", lambda *a, **k: _SparkTrainedBundle())
    monkeypatch.setattr(pipeline.score, "run_scoring", fake_scoring)
    result = CliRunner().invoke(
        main, ["score", "--model", "m.joblib", "--transactions", "t.csv", *flags]
    )
    assert result.exit_code == 2 and used == {"engine": expected}


def test_scoring_a_corrupt_bundle_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    io.save_bundle({"k": list(range(1000))}, tmp_path / "model.joblib")
    data = (tmp_path / "model.joblib").read_bytes()
    (tmp_path / "model.joblib").write_bytes(data[: len(data) // 2])  # truncated by a full disk
    result = CliRunner().invoke(
        main, ["score", "--model", "model.joblib", "--transactions", "t.csv", "--output", "s"]
    )
    assert result.exit_code == 2 and "does not match the recorded" in result.output
    assert "Traceback" not in result.output


def test_runs_hides_killed_runs_by_default_and_lists_them_with_their_status_on_request(
    store, tmp_path
):
    client = MlflowClient(store)
    experiment = client.create_experiment("loyalty-segmentation")
    finished = client.create_run(experiment, tags={tracking.RUN_KIND_TAG: "training"})
    client.set_terminated(finished.info.run_id)
    killed = client.create_run(experiment, tags={tracking.RUN_KIND_TAG: "training"})
    client.set_terminated(killed.info.run_id, status="KILLED")
    result = CliRunner().invoke(main, ["runs", "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    # Hidden by default (they produced nothing), counted, and listed with --all.
    assert killed.info.run_id not in result.output
    assert finished.info.run_id in result.output
    assert "1 killed or failed runs hidden" in result.output
    result = CliRunner().invoke(main, ["runs", "--all", "--tracking-uri", store])
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "KILLED" in rows[killed.info.run_id]
    assert "FINISHED" in rows[finished.info.run_id]


def test_a_promotion_by_hand_publishes_the_champions_bundle_and_outputs(store, tmp_path):
    client = MlflowClient(store)
    experiment = client.create_experiment("loyalty-segmentation")
    first, _ = registered_version(client, experiment, tmp_path, as_of="2025-10-31", bundle={"v": 1})
    second, run_id = registered_version(
        client, experiment, tmp_path, as_of="2025-12-31", bundle={"v": 2}
    )
    logged = tmp_path / "logged"
    logged.mkdir()
    (logged / "segments.parquet").write_text("segments of version 2")
    (logged / "report.html").write_text("<html><body>Rejected: held back</body></html>")
    for path in logged.iterdir():
        client.log_artifact(run_id, str(path), "outputs")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"output: {tmp_path / 'out'}\nmodel_path: {tmp_path / 'models' / 'm.joblib'}\n"
    )

    result = CliRunner().invoke(
        main,
        [
            "promote",
            second,
            "--reason",
            "reviewed",
            "--config",
            str(config),
            "--tracking-uri",
            store,
        ],
    )
    assert result.exit_code == 0, result.output
    assert io.load_bundle(tmp_path / "models" / "m.joblib", require_hash=True) == {"v": 2}
    out = tmp_path / "out"
    assert (out / "segments.parquet").read_text() == "segments of version 2"
    assert io.read_json(out / "run.json")["run_id"] == run_id
    assert "Champion by hand: model version 2 (reviewed)" in (out / "report.html").read_text()
    assert io.load_bundle(out / "model.joblib") == {"v": 2}
