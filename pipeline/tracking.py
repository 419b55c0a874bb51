"""The only module that talks to MLflow.

One parent run per training with a child run per stage; the resolved config, seed, as-of date,
data fingerprint and git commit on the parent; plots, tables and the segment table as
artifacts; the fitted bundle logged as a pyfunc model and registered (MLflow 3 API: ``name=``,
aliases, no stages).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.data
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from pipeline.config import STATUSES, Config, DataConfig, config_as_flat_dict
from pipeline.errors import UserFacingError
from pipeline.io import source_location
from pipeline.promotion import GateResult, evaluate_gates, promotion_verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pipeline.model import SegmentationModel
    from pipeline.train import TrainingResult

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_ROOT = Path("mlartifacts")
CHAMPION, CHALLENGER = "champion", "challenger"
RUN_KIND_TAG = "run_kind"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
STAGES = ("data", "clustering", "clv", "labeling")
# The training step that follows each stage run (the data run spans reading and features).
STAGE_ENDS = {"data": "clustering", "clustering": "clv", "clv": "labeling", "labeling": "outputs"}
# Which of a result's tables each stage's child run carries.
STAGE_TABLE_PREFIXES = {"data": "data_", "clustering": "k_", "clv": "clv_", "labeling": "labeling_"}
_REQUIREMENTS = (
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "joblib",
    "lifetimes",
    "autograd",
    "pydantic",
    "pyyaml",
    "pyarrow",
)


def resolve_tracking_uri(configured: str | None) -> str:
    """--tracking-uri / config, then $MLFLOW_TRACKING_URI, then the project's SQLite file."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def _experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        # A local store keeps artifacts in the git-ignored mlartifacts/; a server chooses its own
        # (mlflow-artifacts:/ roots), which the client must not override.
        location = (
            (DEFAULT_ARTIFACT_ROOT / name).resolve().as_uri()
            if _is_local_store(tracking_uri)
            else None
        )
        experiment_id = client.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    if experiment is None or EXPERIMENT_KIND_TAG not in experiment.tags:
        # Without it, MLflow 3's UI opens the experiment on its GenAI trace view, not the runs.
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")
    return experiment_id


def _git_commit() -> str:
    """The commit of the code that ran (the package's repository, not the working directory's)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _pip_requirements() -> list[str]:
    pinned = []
    for name in _REQUIREMENTS:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned


class LoyaltySegmentationModel(mlflow.pyfunc.PythonModel):
    """The fitted bundle as an MLflow pyfunc: transactions in, segment table out.

    ``params={"as_of": "YYYY-MM-DD"}`` sets the observation end (default: the training as-of).
    Optional tables the bundle was trained with (customers, loyalty events, campaigns) are read
    from the paths its config names, as ``loyalty score`` reads them.
    """

    def load_context(self, context: Any) -> None:
        from pipeline.io import load_bundle

        self.bundle = load_bundle(Path(context.artifacts["bundle"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from pipeline.schema import clean_transactions
        from pipeline.tables import read_optional_tables

        as_of = (params or {}).get("as_of") or self.bundle.trained_as_of
        data = DataConfig(duplicates="keep", negative_amounts="quarantine")
        clean = clean_transactions(
            model_input, data=data, source="model input", as_of=pd.Timestamp(as_of)
        )
        optional = read_optional_tables(self.bundle.config.data, as_of=clean.as_of)
        return self.bundle.segment(
            clean.transactions,
            as_of=clean.as_of,
            attributes=optional.attributes,
            **optional.events(),
        )


def _log_model(result: TrainingResult, config: Config, output_dir: Path) -> str | None:
    example = pd.DataFrame(
        {
            "customer_id": ["C1", "C1"],
            "timestamp": pd.to_datetime(["2025-01-01", "2025-02-01"]),
            "amount": [10.0, 12.0],
        }
    )
    signature = infer_signature(
        example, result.segments.head(2), params={"as_of": str(config.as_of)}
    )
    # MLflow prints registry progress straight to stderr; keep it in the log instead.
    chatter = io.StringIO()
    with contextlib.redirect_stderr(chatter):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=LoyaltySegmentationModel(),
            artifacts={"bundle": str(output_dir / "model.joblib")},
            code_paths=[str(Path(__file__).parent)],
            pip_requirements=_pip_requirements(),
            signature=signature,
            registered_model_name=config.tracking.registered_model,
        )
    log.info(chatter.getvalue().strip())
    return str(info.registered_model_version) if info.registered_model_version is not None else None


def _champion_metrics(client: MlflowClient, name: str) -> dict[str, float] | None:
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    return dict(client.get_run(champion.run_id).data.metrics) if champion.run_id else None


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    model_version: str | None
    promoted: bool
    gates: tuple[GateResult, ...]


def _apply_gates(
    client: MlflowClient, config: Config, run_id: str, version: str, metrics: dict[str, float]
) -> tuple[bool, list[GateResult]]:
    """Every new version is the challenger; the gates decide whether it is also the champion."""
    name = config.tracking.registered_model
    gates = evaluate_gates(metrics, _champion_metrics(client, name), config.promotion)
    promoted = promotion_verdict(gates)
    client.set_registered_model_alias(name, CHALLENGER, version)
    for gate in gates:
        text = f"{gate.verdict}: {gate.detail}"
        client.set_tag(run_id, f"gate.{gate.name}", text)
        client.set_model_version_tag(name, version, f"gate.{gate.name}", text)
    client.set_tag(run_id, "promoted", str(promoted).lower())
    client.set_model_version_tag(
        name, version, "promoted", "gates passed" if promoted else "gates failed"
    )
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    return promoted, gates


def log_training(
    result: TrainingResult,
    config: Config,
    *,
    output_dir: Path,
    figures: dict[str, Figure],
    data: Any,
    data_fingerprint: str,
    source: str,
    trigger: str,
    stage_started_ms: Mapping[str, int] | None = None,
) -> TrackedRun:
    """Track one training: parent run, a child run per stage, artifacts, model, gates.

    Everything is logged once the training has succeeded (a failed training leaves no run);
    ``stage_started_ms`` (when each stage began, epoch milliseconds) dates the parent and the
    stage runs, so the UI's durations are the training's, not the logging's.
    """
    started = dict(stage_started_ms or {})
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = resolve_tracking_uri(config.tracking.tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = _experiment_id(client, config.tracking.experiment, uri)
    # Child runs inherit the active experiment, not the parent's: set it for both.
    mlflow.set_experiment(experiment_id=experiment_id)
    as_of = str(config.as_of)
    tags = {
        RUN_KIND_TAG: "training",
        "trigger": trigger,
        "git_commit": _git_commit(),
        "data_fingerprint": data_fingerprint,
        "data_source": source,
        "as_of": as_of,
        "seed": str(config.seed),
        "clv_model": result.value_model_name,
        "k_reason": result.k_reason,
        "run_key": result.model.metadata.get("run_key", ""),
    }
    run_name = f"train {as_of} seed {config.seed}"
    created = client.create_run(
        experiment_id, start_time=started.get(STAGES[0]), tags=tags, run_name=run_name
    )
    with mlflow.start_run(run_id=created.info.run_id) as parent:
        run_id = parent.info.run_id
        mlflow.log_params(config_as_flat_dict(config))
        mlflow.log_metrics(result.metrics)
        mlflow.log_input(_input_dataset(source, data_fingerprint), context="training")
        for stage in STAGES:
            child = client.create_run(
                experiment_id,
                start_time=started.get(stage),
                tags={"mlflow.parentRunId": run_id, "stage": stage},
                run_name=stage,
            )
            with mlflow.start_run(run_id=child.info.run_id, nested=True):
                mlflow.log_metrics(result.stage_metrics.get(stage, {}))
                for name, table in result.tables.items():
                    if name.startswith(STAGE_TABLE_PREFIXES[stage]):
                        mlflow.log_table(table, f"{name}.json")
                if stage == "labeling":
                    mlflow.log_table(result.cluster_profiles, "cluster_profiles.json")
                    if result.confusion is not None:
                        mlflow.log_table(result.confusion.reset_index(), "planted_confusion.json")
            # A stage ends where the next begins (the last where the outputs are written).
            ended = started.get(STAGE_ENDS[stage])
            if ended is not None:
                client.set_terminated(child.info.run_id, end_time=ended)
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        for path in sorted(output_dir.iterdir()):
            if path.is_file() and path.name != "model.joblib":
                mlflow.log_artifact(str(path), artifact_path="outputs")
        version = _log_model(result, config, output_dir)
    promoted, gates = (False, [])
    if version is not None:
        promoted, gates = _apply_gates(client, config, run_id, version, result.metrics)
    return TrackedRun(run_id, version, promoted, tuple(gates))


def log_report(run_id: str, html: str, *, tracking_uri: str | None) -> None:
    """Attach the run's HTML report (rendered once the run id is known)."""
    MlflowClient(resolve_tracking_uri(tracking_uri)).log_text(run_id, html, "report.html")


def load_registered_bundle(reference: str, *, tracking_uri: str | None = None):
    """The fitted bundle behind a registry URI (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``)."""
    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    try:
        model = mlflow.pyfunc.load_model(reference)
    except mlflow.exceptions.MlflowException as error:
        from pipeline.errors import InputError

        raise InputError(
            reference, f"cannot load the model ({' '.join(error.message.split())[:200]})"
        ) from None
    return model.unwrap_python_model().bundle


# -- reading runs back: the analyst's view -------------------------------------------------------
KEY_METRICS = (
    "customers",
    "n_clusters",
    "silhouette",
    "seed_stability_ari",
    "planted_macro_f1",
    "holdout_spend_gini",
    "holdout_spend_spearman",
    "holdout_spend_aggregate_error_pct",
    "mean_p_alive",
    "total_expected_spend",
)


def _training_run(client: MlflowClient, experiment_id: str, run_id: str):
    """A training run by its id or a unique prefix of it (``loyalty runs`` shows 12 characters)."""
    matches = [
        run
        for run in client.search_runs(
            [experiment_id], filter_string=f"tags.{RUN_KIND_TAG} = 'training'", max_results=5000
        )
        if run.info.run_id.startswith(run_id)
    ]
    if len(matches) != 1:
        problem = "matches no training run" if not matches else "matches several training runs"
        raise UserFacingError(f"run id '{run_id}' {problem}: see `loyalty runs`")
    return matches[0]


def training_runs(
    *,
    tracking_uri: str | None = None,
    experiment: str = "loyalty-segmentation",
    model_name: str = "loyalty-segmentation",
    max_runs: int = 20,
    run_ids: list[str] | None = None,
) -> pd.DataFrame:
    """One row per training run, newest first: when, on what, key metrics, status shares, aliases."""
    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame()
    if run_ids:
        runs = [_training_run(client, found.experiment_id, run_id) for run_id in run_ids]
    else:
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.{RUN_KIND_TAG} = 'training'",
            order_by=["attributes.start_time DESC"],
            max_results=max_runs,
        )
    aliases = _aliases_by_run(client, model_name)
    rows = []
    for run in runs:
        metrics, tags = run.data.metrics, run.data.tags
        row = {
            "run_id": run.info.run_id,
            "started": pd.Timestamp(run.info.start_time, unit="ms").floor("s"),
            "status": run.info.status,
            "as_of": tags.get("as_of"),
            "seed": tags.get("seed"),
            "trigger": tags.get("trigger"),
            "data": tags.get("data_fingerprint"),
            "model_version": aliases.get(run.info.run_id, ("", ""))[0],
            "aliases": aliases.get(run.info.run_id, ("", ""))[1],
        }
        row.update({name: metrics.get(name) for name in KEY_METRICS})
        row.update({f"share_{s}": metrics.get(f"share_{s}") for s in STATUSES})
        rows.append(row)
    return pd.DataFrame(rows)


def kpi_runs(config: Config, *, source: str, max_runs: int = 200) -> pd.DataFrame:
    """The KPIs of earlier finished training runs on the same data source, newest first.

    Only runs that read the same ``source`` are comparable: KPIs of another business's customers
    are not a point on this one's line. Runs that failed or were killed are left out.

    Returns
    -------
    pd.DataFrame
        One row per run: ``run_id``, ``started``, ``as_of`` and its ``kpi_*`` metrics; empty
        when there are none.
    """
    client = MlflowClient(resolve_tracking_uri(config.tracking.tracking_uri))
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is None:
        return pd.DataFrame()
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.{RUN_KIND_TAG} = 'training' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=max_runs,
    )
    # Compared in Python, not in the filter string: a path may hold a quote.
    rows = [
        {
            "run_id": run.info.run_id,
            "started": pd.Timestamp(run.info.start_time, unit="ms").floor("s"),
            "as_of": run.data.tags.get("as_of"),
            **{k: v for k, v in run.data.metrics.items() if k.startswith("kpi_")},
        }
        for run in runs
        if run.data.tags.get("data_source") == source
    ]
    return pd.DataFrame(rows)


def _aliases_by_run(client: MlflowClient, model_name: str) -> dict[str, tuple[str, str]]:
    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
        # search_model_versions leaves aliases empty on some stores; the registered model has them.
        aliases = client.get_registered_model(model_name).aliases
    except mlflow.exceptions.MlflowException:
        return {}
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    return {
        v.run_id: (str(v.version), ",".join(sorted(by_version.get(str(v.version), []))))
        for v in versions
        if v.run_id
    }


def load_run_segments(run_id: str, *, tracking_uri: str | None = None) -> pd.DataFrame:
    """The segment table a training run logged."""
    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="outputs/segments.parquet", dst_path=folder
        )
        return pd.read_parquet(path)


def champion_run_id(
    *, tracking_uri: str | None = None, model_name: str = "loyalty-segmentation"
) -> str:
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    return client.get_model_version_by_alias(model_name, CHAMPION).run_id


def load_champion_segments(
    *, tracking_uri: str | None = None, model_name: str = "loyalty-segmentation"
) -> pd.DataFrame:
    """The segment table of the model version that holds the champion alias."""
    return load_run_segments(
        champion_run_id(tracking_uri=tracking_uri, model_name=model_name), tracking_uri=tracking_uri
    )


def finished_run_with_key(config: Config, run_key: str) -> str | None:
    """The id of a finished training run with this idempotency key, if there is one."""
    uri = resolve_tracking_uri(config.tracking.tracking_uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.run_key = '{run_key}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def champion_segments_or_none(config: Config) -> pd.DataFrame | None:
    """The champion's segment table, or None when there is no champion (or it cannot be read)."""
    uri = resolve_tracking_uri(config.tracking.tracking_uri)
    try:
        return load_champion_segments(tracking_uri=uri, model_name=config.tracking.registered_model)
    except (mlflow.exceptions.MlflowException, OSError):
        return None


def champion_bundle_or_none(config: Config) -> SegmentationModel | None:
    """The champion's fitted bundle, or None when there is no champion or it cannot be loaded.

    Used for monitoring only, so a champion that cannot be read (deleted artifacts, a bundle
    from code that has since moved) is logged and skipped rather than stopping the training.
    """
    from pipeline.errors import InputError

    uri = resolve_tracking_uri(config.tracking.tracking_uri)
    client = MlflowClient(uri)
    name = config.tracking.registered_model
    try:
        client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None  # no registered model or no champion yet: nothing to compare with
    try:
        return load_registered_bundle(f"models:/{name}@{CHAMPION}", tracking_uri=uri)
    except (InputError, OSError, ImportError, AttributeError, EOFError) as error:
        log.warning("cannot load the champion's bundle (%s); no drift check", error)
        return None


def promote(
    version: str,
    *,
    reason: str,
    tracking_uri: str | None = None,
    model_name: str = "loyalty-segmentation",
) -> None:
    """Make a model version the champion by hand, recording who decided and why."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    client.get_model_version(model_name, version)  # raises if it does not exist
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, "promoted", "by hand")
    client.set_model_version_tag(model_name, version, "promotion_reason", reason)


def _input_dataset(source: str, fingerprint: str):
    """The training input as MLflow records it: where it lives and the fingerprint the run
    already computed, never its rows.

    ``mlflow.data.from_pandas`` profiles and infers a schema over the whole frame (55-82 s at
    10M rows, measured); the fingerprint already identifies the content, so the input is
    described by its place and that digest alone, whatever the engine that read it.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    location = source_location(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "interpreted in several ways"
        where = resolve_dataset_source(location)
    return MetaDataset(where, name=Path(location).name, digest=fingerprint)


# -- backtests -----------------------------------------------------------------------------------
BACKTEST = "backtest"
# The pooled figures `loyalty runs` and `loyalty compare` show for a backtest run.
BACKTEST_KEY_METRICS = (
    "project.customers",
    "project.roc_auc",
    "last_period_again.roc_auc",
    "lifetimes_bgnbd.roc_auc",
    "lifetimes_pareto.roc_auc",
    "project.brier",
    "project.ece",
    "project.spend_gini",
    "last_period_again.spend_gini",
    "lifetimes_bgnbd.spend_gini",
    "lifetimes_pareto.spend_gini",
    "project.spend_spearman",
    "last_period_again.spend_spearman",
    "project.spend_aggregate_error_pct",
)


def _dataset(data: Any, source: str, fingerprint: str):
    location = source_location(source)
    if isinstance(data, pd.DataFrame):
        return mlflow.data.from_pandas(
            data, source=location, name=Path(location).name, digest=fingerprint
        )
    return None


def log_backtest(
    result: Any, config: Config, *, figures: dict[str, Figure], data: Any, output_dir: Path
) -> str:
    """Track one backtest: a parent run tagged ``kind=backtest`` with the pooled metrics, the
    tables, plots and dataset, and one child run per cut-off with that cut-off's metrics.

    Metric names are ``<model>.<metric>`` (``project.roc_auc``, ``lifetimes_bgnbd.spend_gini``),
    the same in every backtest. Returns the parent run's id.
    """
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = resolve_tracking_uri(config.tracking.tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = _experiment_id(client, config.tracking.experiment, uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    cutoffs = [str(c.date()) for c in result.cutoffs]
    value_models = {str(j.cutoff.date()): j.value_model for j in result.judgements}
    tags = {
        RUN_KIND_TAG: BACKTEST,
        "kind": BACKTEST,
        "git_commit": _git_commit(),
        "data_fingerprint": result.fingerprint,
        "data_source": result.source,
        "cutoffs": ",".join(cutoffs),
        "horizon_days": str(result.horizon_days),
        "seed": str(config.seed),
    }
    failures = result.metrics[result.metrics["metric"] == "fit_failed"]
    for model, note in zip(failures["model"], failures["note"], strict=True):
        tags[f"failed.{model}"] = str(note)[:500]
    created = client.create_run(
        experiment_id,
        tags=tags,
        run_name=f"backtest {cutoffs[0]}..{cutoffs[-1]} H{result.horizon_days}",
    )
    with mlflow.start_run(run_id=created.info.run_id) as parent:
        run_id = parent.info.run_id
        mlflow.log_params(
            {
                **config_as_flat_dict(config),
                "backtest.cutoffs": ",".join(cutoffs),
                "backtest.horizon_days": result.horizon_days,
            }
        )
        mlflow.log_metrics(result.tracked_metrics())
        dataset = _dataset(data, result.source, result.fingerprint)
        if dataset is not None:
            mlflow.log_input(dataset, context=BACKTEST)
        for cutoff in cutoffs:
            child = client.create_run(
                experiment_id,
                tags={
                    "mlflow.parentRunId": run_id,
                    "cutoff": cutoff,
                    "kind": "backtest_cutoff",
                    "value_model": value_models.get(cutoff, ""),
                },
                run_name=f"cut-off {cutoff}",
            )
            with mlflow.start_run(run_id=child.info.run_id, nested=True):
                mlflow.log_metrics(result.tracked_metrics(cutoff))
                for name, table in result.tables.items():
                    if "cutoff" in table.columns:
                        mlflow.log_table(table[table["cutoff"] == cutoff], f"{name}.json")
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        for path in sorted(output_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                mlflow.log_artifact(str(path), artifact_path="outputs")
    return run_id


def backtest_runs(
    *,
    tracking_uri: str | None = None,
    experiment: str = "loyalty-segmentation",
    max_runs: int = 20,
    run_ids: list[str] | None = None,
) -> pd.DataFrame:
    """One row per backtest run, newest first: cut-offs, horizon, data and the pooled key figures.

    With ``run_ids`` (or unique prefixes), only those backtest runs; ids that name no backtest are
    left out (they may name training runs).
    """
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame()
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.{RUN_KIND_TAG} = '{BACKTEST}'",
        order_by=["attributes.start_time DESC"],
        max_results=5000 if run_ids else max_runs,
    )
    if run_ids:
        runs = [r for r in runs if any(r.info.run_id.startswith(i) for i in run_ids)]
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        rows.append(
            {
                "run_id": run.info.run_id,
                "started": pd.Timestamp(run.info.start_time, unit="ms").floor("s"),
                "cutoffs": tags.get("cutoffs"),
                "horizon_days": tags.get("horizon_days"),
                "data": tags.get("data_fingerprint"),
                **{name: metrics.get(name) for name in BACKTEST_KEY_METRICS},
            }
        )
    return pd.DataFrame(rows)


def latest_backtest(config: Config, *, source: str) -> dict[str, Any] | None:
    """The newest finished backtest on the same data source: its id, cut-offs, horizon and pooled
    metrics; None when there is none (or the store cannot be read)."""
    try:
        client = MlflowClient(resolve_tracking_uri(config.tracking.tracking_uri))
        experiment = client.get_experiment_by_name(config.tracking.experiment)
        if experiment is None:
            return None
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.{RUN_KIND_TAG} = '{BACKTEST}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=200,
        )
    except mlflow.exceptions.MlflowException:
        return None
    for run in runs:
        if run.data.tags.get("data_source") == source:
            return {
                "run_id": run.info.run_id,
                "cutoffs": run.data.tags.get("cutoffs", ""),
                "horizon_days": run.data.tags.get("horizon_days", ""),
                "metrics": dict(run.data.metrics),
            }
    return None
