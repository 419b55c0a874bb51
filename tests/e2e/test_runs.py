"""Champion and challenger across two trainings, and the commands that compare runs."""

from __future__ import annotations

import json

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipeline.cli import main
from tests.e2e.test_train import small_config


def train(config, uri, *extra):
    result = CliRunner().invoke(
        main,
        ["train", "--config", str(config), "--tracking-uri", uri, *extra],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result


def test_gates_decide_the_champion_and_runs_compare_side_by_side(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # A strict share gate, so that a second as-of date (statuses do move) is held back.
    config = small_config(tmp_path, "promotion: {max_status_share_shift: 0.01}")
    train(config, uri)
    first = json.loads((tmp_path / "out" / "run.json").read_text())
    second_output = train(config, uri, "--as-of", "2025-10-31", "--trigger", "scheduled").output
    second = json.loads((tmp_path / "out" / "run.json").read_text())

    assert first["promoted"] is True
    assert second["promoted"] is False
    assert second["gates"]["status_share_shift"].startswith(
        "failed: largest share shift vs champion"
    )
    assert "is challenger, not promoted" in second_output

    client = MlflowClient(uri)
    name = "loyalty-segmentation"
    assert (
        str(client.get_model_version_by_alias(name, "champion").version) == first["model_version"]
    )
    assert (
        str(client.get_model_version_by_alias(name, "challenger").version)
        == second["model_version"]
    )
    held_back = client.get_model_version(name, second["model_version"])
    assert held_back.tags["promoted"] == "gates failed"
    assert client.get_run(second["run_id"]).data.tags["trigger"] == "scheduled"

    compared = (
        CliRunner().invoke(main, ["compare", "--tracking-uri", uri], catch_exceptions=False).output
    )
    assert first["run_id"][:12] in compared and second["run_id"][:12] in compared
    assert "2025-10-31" in compared and "2025-12-31" in compared and "share_at_risk" in compared
    listed = (
        CliRunner().invoke(main, ["runs", "--tracking-uri", uri], catch_exceptions=False).output
    )
    assert listed.count("\n│ ") == 2  # two table rows

    promoted = CliRunner().invoke(
        main,
        [
            "promote",
            second["model_version"],
            "--reason",
            "share shift expected after a price change",
            "--tracking-uri",
            uri,
        ],
        catch_exceptions=False,
    )
    assert promoted.exit_code == 0
    assert (
        str(client.get_model_version_by_alias(name, "champion").version) == second["model_version"]
    )
    assert (
        client.get_model_version(name, second["model_version"])
        .tags["promotion_reason"]
        .startswith("share shift")
    )

    missing = CliRunner().invoke(main, ["promote", "99", "--reason", "x", "--tracking-uri", uri])
    assert missing.exit_code == 2 and "version 99" in missing.output
