"""Every output's file name and MLflow artifact path, named once for writers and readers alike.

A run's output folder (``outputs/latest`` by default) holds the files below; MLflow holds the
same files under ``outputs/``. Whatever reads one back (champion transitions, KPI history,
promotion, the backtest report) uses these names, so renaming a file here renames it everywhere.
"""

from __future__ import annotations

# -- a training or scoring run's output folder ---------------------------------------------------
SEGMENTS = "segments.parquet"  # the segment table: the contract with notebooks and schedulers
QUARANTINE = "quarantine.csv"  # every row set aside, with its place in the file and its reason
STATUS_SUMMARY = "status_summary.csv"
CLUSTER_PROFILES = "cluster_profiles.csv"
PLANTED_CONFUSION = "planted_confusion.csv"  # only for data with a planted truth
DATA_DRIFT = "data_drift.csv"
METRICS = "metrics.json"
RUN = "run.json"  # the MLflow run, model version and gate verdict of a training
REPORT = "report.html"
PLOTS = "plots"  # a folder of PNG files
BUNDLE = "model.joblib"

# -- a backtest's output folder ---------------------------------------------------------------
BACKTEST_REPORT = "backtest.html"
BACKTEST_SUMMARY = "backtest.json"
BACKTEST_METRICS = "backtest_metrics"  # tables are written as <name>.csv
BACKTEST_BY_STATUS = "backtest_by_status"
BACKTEST_VALUE_TREND = "backtest_value_trend"

# -- in MLflow -------------------------------------------------------------------------------
ARTIFACT_OUTPUTS = "outputs"  # the run's output files, as in the folder
ARTIFACT_SEGMENTS = f"{ARTIFACT_OUTPUTS}/{SEGMENTS}"
ARTIFACT_REPORT = REPORT
ARTIFACT_WARNINGS = "warnings.json"
ARTIFACT_CLUSTER_PROFILES = "cluster_profiles.json"
ARTIFACT_PLANTED_CONFUSION = "planted_confusion.json"


def table_file(name: str) -> str:
    """A table's file name from its name (``backtest_metrics`` -> ``backtest_metrics.csv``)."""
    return f"{name}.csv"
