"""Metrics are logged grouped (``data/rows_in``) and read back under their flat names."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.metric_names import METRIC_GROUPS, flat, group_of, grouped

METRICS = {
    "rows_in": 10.0,
    "quarantined_negative_amount": 1.0,
    "customers": 4.0,
    "silhouette": 0.4,
    "seed_stability_ari": 1.0,
    "holdout_spend_gini": 0.8,
    "share_declining_value": 0.1,
    "share_loyal": 0.25,
    "kpi_retention_loyal": 0.9,
    "planted_macro_f1": 0.99,
    "moved_loyal_to_at_risk": 3.0,
    "drift_psi_max": 0.02,
}


def test_each_metric_lands_in_the_section_of_what_it_measures():
    assert grouped(METRICS) == {
        "data/rows_in": 10.0,
        "data/quarantined_negative_amount": 1.0,
        "data/customers": 4.0,
        "clustering/silhouette": 0.4,
        "clustering/seed_stability_ari": 1.0,
        "value/holdout_spend_gini": 0.8,
        # the longest prefix wins: a value share, not a status share
        "value/share_declining_value": 0.1,
        "status/share_loyal": 0.25,
        "kpi/kpi_retention_loyal": 0.9,
        "planted/planted_macro_f1": 0.99,
        "transition/moved_loyal_to_at_risk": 3.0,
        "drift/drift_psi_max": 0.02,
    }


def test_a_metric_no_line_names_stays_flat_until_a_line_is_added(monkeypatch):
    assert grouped({"brand_new_metric": 1.0}) == {"brand_new_metric": 1.0}
    monkeypatch.setitem(METRIC_GROUPS, "brand_new", "value")
    assert group_of("brand_new_metric") == "value"


def test_flat_undoes_grouped_and_leaves_old_flat_names_alone():
    assert flat(grouped(METRICS)) == METRICS
    assert flat(METRICS) == METRICS
    # a name with a slash that is not one of our groups is not cut
    assert flat({"other/thing": 1.0}) == {"other/thing": 1.0}


def test_runs_logged_with_flat_and_grouped_names_compare_alike(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("loyalty-segmentation")
    for metrics in (METRICS, grouped(METRICS)):  # a run from before the grouping, one after
        run = client.create_run(experiment, tags={tracking.RUN_KIND_TAG: "training"})
        for name, value in metrics.items():
            client.log_metric(run.info.run_id, name, value)
        client.set_terminated(run.info.run_id)
    table = tracking.training_runs(tracking_uri=uri)
    assert len(table) == 2
    for column in ("customers", "silhouette", "planted_macro_f1", "share_loyal"):
        assert table[column].tolist() == [METRICS[column]] * 2, column
