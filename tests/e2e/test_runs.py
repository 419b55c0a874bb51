"""Champion and challenger across two trainings, and the commands that compare runs."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipeline import io
from pipeline.cli import main
from tests.e2e.conftest import quick_config


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
    config = quick_config(tmp_path, "promotion: {max_status_share_shift: 0.01}")
    train(config, uri)
    first = json.loads((tmp_path / "out" / "run.json").read_text())
    second_output = train(config, uri, "--as-of", "2025-10-31", "--trigger", "scheduled").output
    # a held-back model is written beside the champion's outputs, never over them
    second = json.loads((tmp_path / "out-held-back" / "run.json").read_text())
    assert json.loads((tmp_path / "out" / "run.json").read_text()) == first

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
    assert first["run_id"] in compared and second["run_id"] in compared  # whole ids
    assert "2025-10-31" in compared and "2025-12-31" in compared and "share_at_risk" in compared
    # counts read as counts, shares with their decimals
    assert re.search(r"│ n_clusters +│ +\d+ │ +\d+ │", compared)
    assert re.search(r"│ share_lost +│ +0\.\d{3} │", compared)
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
            "--config",
            str(config),
        ],
        catch_exceptions=False,
    )
    assert promoted.exit_code == 0
    # the champion's places now hold the promoted version: bundle and outputs
    bundle = tmp_path / "models" / "bundle.joblib"
    version_tags = client.get_model_version(name, second["model_version"]).tags
    assert io.file_sha256(bundle) == version_tags["bundle_sha256"]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["run_id"] == second["run_id"]
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


def test_a_second_training_reports_who_moved_and_extends_the_history_and_kpis(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # this test is about who moved, not about the gates: let the first model be champion
    config = quick_config(tmp_path, "promotion: {min_seed_stability: 0.5}")
    train(config, uri, "--as-of", "2025-10-31")
    output = train(config, uri).output
    assert "since the champion:" in output and "customers changed status" in output
    segments = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    transitions = pd.read_csv(tmp_path / "out" / "labeling_transitions.csv").set_index("before")
    # every customer of the earlier run that is still there is counted once
    earlier = pd.read_parquet(tmp_path / "history.parquet")
    assert earlier["as_of"].nunique() == 2
    first = earlier[earlier["as_of"] == pd.Timestamp("2025-10-31")]
    assert transitions.to_numpy().sum() == len(
        set(first["customer_id"]) & set(segments["customer_id"])
    )
    assert earlier["run_id"].notna().all() and earlier["run_id"].nunique() == 2
    assert (tmp_path / "out" / "plots" / "status_transitions.png").exists()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert "moved_loyal_to_at_risk" in metrics and 0 < metrics["transition_changed_share"] < 1

    # KPIs per status on both runs, on the parent and on the labeling stage
    client = MlflowClient(uri)
    run_ids = earlier.drop_duplicates("as_of").set_index("as_of")["run_id"]
    first_id, second_id = run_ids[pd.Timestamp("2025-10-31")], run_ids[pd.Timestamp("2025-12-31")]
    for run_id in (first_id, second_id):
        run = client.get_run(run_id)
        statuses = set(earlier.loc[earlier["run_id"] == run_id, "status"])
        kpis = {k: v for k, v in run.data.metrics.items() if k.startswith("kpi/kpi_")}
        assert {
            k.removeprefix("kpi/kpi_repeat_rate_") for k in kpis if "repeat_rate" in k
        } == statuses
        assert {f"kpi/kpi_avg_spend_{s}" for s in statuses} <= set(kpis)
        (labeling,) = client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.stage = 'labeling'",
        )
        assert {k: v for k, v in labeling.data.metrics.items() if k.startswith("kpi/kpi_")} == kpis
    table = pd.read_csv(tmp_path / "out" / "labeling_kpis.csv").set_index("status")
    assert metrics["kpi_retention_loyal"] == pytest.approx(table.loc["loyal", "retention"])

    # and across runs: a chart once there are two, on the run and in its report
    across = pd.read_csv(tmp_path / "out" / "labeling_kpis_across_runs.csv")
    assert across["as_of"].tolist() == ["2025-10-31", "2025-12-31"]
    assert across["run_id"].iloc[0] == first_id
    assert across["kpi_avg_spend_loyal"].iloc[-1] == pytest.approx(metrics["kpi_avg_spend_loyal"])

    def plots_of(run_id):
        return {a.path for a in client.list_artifacts(run_id, "plots")}

    assert "plots/kpis_across_runs.png" in plots_of(second_id)
    assert "plots/kpis_across_runs.png" not in plots_of(first_id)
    assert 'alt="KPIs across runs"' in (tmp_path / "out" / "report.html").read_text()

    # drift: the second run's features against the champion's (the first run's) training data
    assert "drift/drift_psi_max" not in client.get_run(first_id).data.metrics  # no champion yet
    drift = pd.read_csv(tmp_path / "out" / "data_drift.csv")
    assert {"frequency", "days_since_last_purchase", "spend_recent"} <= set(drift["feature"])
    assert metrics["drift_psi_max"] == pytest.approx(drift["psi"].max())
    # two months more history changes how long everyone has been a customer
    assert metrics["drift_psi_tenure_days"] > 0
    (data_stage,) = client.search_runs(
        [client.get_run(second_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{second_id}' and tags.stage = 'data'",
    )
    assert data_stage.data.metrics["drift/drift_psi_max"] == pytest.approx(metrics["drift_psi_max"])
    assert "drift against the champion's training data: largest PSI" in output
    # a warning (in the log and the summary) exactly when a feature is above the threshold
    drifted = drift.loc[drift["psi"] > 0.2, "feature"].tolist()
    warned = [r.getMessage() for r in caplog.records if "data drift" in r.getMessage()]
    assert len(warned) == (1 if drifted else 0)
    assert all(f"{feature} (" in warned[0] for feature in drifted)
    assert ("WARNING, above 0.20" in output) == bool(drifted)
