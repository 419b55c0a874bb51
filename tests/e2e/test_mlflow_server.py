"""A team's set-up: an MLflow tracking server over HTTP, checked through its REST API.

Experiments created through a server get `mlflow-artifacts:/` roots, which a client writing
to a local store directly would break; training must work through the server unchanged.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.e2e.conftest import small_config

MLFLOW = Path(sys.executable).with_name("mlflow")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(MLFLOW),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=folder,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(
                    f"MLflow server did not start: {(folder / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=20)
    log.close()


def test_training_through_a_tracking_server_is_visible_in_its_rest_api(
    server, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)  # the team set-up: only the variable changes
    result = CliRunner().invoke(
        main,
        ["train", "--config", str(small_config(tmp_path)), "--seed", "5"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    run_id = json.loads((tmp_path / "out" / "run.json").read_text())["run_id"]
    assert not (tmp_path / "mlartifacts").exists()  # artifacts went to the server

    api = f"{server}/api/2.0/mlflow"
    experiment = get(f"{api}/experiments/get-by-name?experiment_name=loyalty-segmentation")[
        "experiment"
    ]
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")
    run = get(f"{api}/runs/get?run_id={run_id}")["run"]
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert 0 < metrics["planted/planted_macro_f1"] <= 1
    assert "clustering/seed_stability_ari" in metrics
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert (
        tags["trigger"] == "manual"
        and tags["seed"] == "5"
        and tags["gate.seed_stability"].startswith("passed")
    )
    children = post(
        f"{api}/runs/search",
        {
            "experiment_ids": [experiment["experiment_id"]],
            "filter": f"tags.mlflow.parentRunId = '{run_id}'",
        },
    )["runs"]
    assert sorted(c["info"]["run_name"] for c in children) == [
        "clustering",
        "clv",
        "data",
        "labeling",
    ]
    artifacts = get(f"{api}/artifacts/list?run_id={run_id}&path=plots")["files"]
    assert any(a["path"] == "plots/status_sizes.png" for a in artifacts)
    champion = get(f"{api}/registered-models/alias?name=loyalty-segmentation&alias=champion")[
        "model_version"
    ]
    assert champion["run_id"] == run_id
    inputs = run["inputs"]["dataset_inputs"]
    assert inputs and inputs[0]["dataset"]["source"]

    # The analyst's commands read the same server.
    listing = CliRunner().invoke(main, ["runs"], catch_exceptions=False)
    assert run_id in listing.output and "champion" in listing.output


def test_the_ui_serves_its_page(server):
    with urllib.request.urlopen(server, timeout=10) as response:
        page = response.read().decode()
    assert response.status == 200 and "<html" in page.lower()
