"""`loyalty runs` and `loyalty compare`: full run ids, 80 columns by default, --wide for all."""

from __future__ import annotations

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.cli import main
from pipeline.metric_names import grouped

METRICS = {
    "customers": 6000.0,
    "n_clusters": 12.0,
    "silhouette": 0.31,
    "seed_stability_ari": 1.0,
    "planted_macro_f1": 0.992,
    "holdout_spend_gini": 0.87,
    "share_loyal": 0.12,
    "share_at_risk": 0.122,
    "share_lost": 0.197,
}
TERMINAL = 80  # the width of a default terminal: the narrow views must fit it


def store(tmp_path, monkeypatch) -> tuple[str, list[str]]:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("loyalty-segmentation")
    ids = []
    for as_of in ("2025-10-31", "2025-12-31"):
        run = client.create_run(
            experiment,
            tags={tracking.RUN_KIND_TAG: "training", "as_of": as_of, "trigger": "manual"},
        )
        for name, value in grouped(METRICS).items():
            client.log_metric(run.info.run_id, name, value)
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return uri, ids


def invoke(*args: str) -> str:
    done = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def test_runs_shows_whole_run_ids_within_80_columns(tmp_path, monkeypatch):
    uri, ids = store(tmp_path, monkeypatch)
    listed = invoke("runs", "--tracking-uri", uri)
    assert all(run_id in listed for run_id in ids)
    assert max(len(line) for line in listed.splitlines()) <= TERMINAL, listed
    assert "6,000" in listed  # read back from its grouped name, data/customers


def test_runs_wide_shows_every_key_figure_uncut(tmp_path, monkeypatch):
    uri, ids = store(tmp_path, monkeypatch)
    listed = invoke("runs", "--wide", "--tracking-uri", uri)
    assert all(run_id in listed for run_id in ids)
    for header in ("planted F1", "seed ARI", "silhouette", "holdout_spend_gini", "% lost"):
        assert header in listed, header
    assert "…" not in listed  # nothing is cut


def test_compare_lists_whole_ids_and_fits_80_columns(tmp_path, monkeypatch):
    uri, ids = store(tmp_path, monkeypatch)
    compared = invoke("compare", "--tracking-uri", uri)
    assert f"A  {ids[1]}" in compared and f"B  {ids[0]}" in compared  # newest first
    assert max(len(line) for line in compared.splitlines()) <= TERMINAL, compared
    wide = invoke("compare", "--wide", "--tracking-uri", uri)
    assert all(run_id in wide for run_id in ids) and "…" not in wide
