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
import shutil
import subprocess
import tempfile
import threading
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
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_RUN_NOTE

from pipeline import layout
from pipeline.config import STATUSES, Config, TrackingConfig, config_as_flat_dict
from pipeline.errors import UserFacingError
from pipeline.io import source_location
from pipeline.metric_names import flat, grouped
from pipeline.noise import captured_warnings
from pipeline.promotion import GateResult, evaluate_gates, promotion_verdict
from pipeline.redact import redact, redact_values

# The pyfunc class lives with the scoring path it calls; the name stays importable from here
# because models registered before it moved were pickled as pipeline.tracking's.
from pipeline.score import LoyaltySegmentationModel  # noqa: F401

if TYPE_CHECKING:
    from pipeline.model import SegmentationModel, TrainingResult

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


def prepare_model_logging() -> None:
    """Start now, on a background thread, the one slow step of logging a model that does not
    depend on the model, so that it runs while the model is fitted.

    To check a model's requirements against the environment, MLflow first maps every installed
    distribution to its modules (``importlib.metadata.packages_distributions``: 0.7-1.2 s here,
    a quarter of the tracking stage) and keeps the map for the process. It reads files only,
    so it overlaps the fit's native work. The function is MLflow's own, private one: where a
    later MLflow has moved it, nothing is warmed and logging is only slower.
    """
    try:
        from mlflow.utils import requirements_utils

        warm = requirements_utils._init_modules_to_packages_map
    except (ImportError, AttributeError):
        return
    threading.Thread(target=warm, name="mlflow-requirements-map", daemon=True).start()


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
            # Named after the registered model: the run's Models tab says which model it is.
            name=config.tracking.registered_model,
            python_model=LoyaltySegmentationModel(),
            artifacts={"bundle": str(output_dir / layout.BUNDLE)},
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
    return flat(client.get_run(champion.run_id).data.metrics) if champion.run_id else None


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
    gates.append(_as_of_gate(client, config))
    promoted = promotion_verdict(gates)
    bundle_sha256 = client.get_run(run_id).data.tags.get(BUNDLE_SHA256_TAG)
    if bundle_sha256:
        client.set_model_version_tag(name, version, BUNDLE_SHA256_TAG, bundle_sha256)
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
        # The alias moves first, outputs and bundle follow (pipeline.train): until the training
        # marks the publication done, the next run can tell a kill and undo it.
        try:
            previous = str(client.get_model_version_by_alias(name, CHAMPION).version)
        except mlflow.exceptions.MlflowException:
            previous = "none"
        client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, previous)
        client.set_model_version_tag(name, version, PUBLISH_TAG, "pending")
        client.set_tag(run_id, PUBLISH_TAG, "pending")
        client.set_registered_model_alias(name, CHAMPION, version)
    return promoted, gates


def _bundle_sha256(output_dir: Path) -> str:
    from pipeline.io import file_sha256, recorded_sha256

    bundle = output_dir / layout.BUNDLE
    return recorded_sha256(bundle) or file_sha256(bundle) if bundle.exists() else ""


def _as_of_gate(client: MlflowClient, config: Config) -> GateResult:
    """A model of an older as-of date than the champion's (a backtest) is not the newest model."""
    name = config.tracking.registered_model
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
        champion_as_of = client.get_run(champion.run_id).data.tags.get("as_of")
    except mlflow.exceptions.MlflowException:
        return GateResult("as_of_order", None, "no champion yet")
    if not champion_as_of or config.as_of is None:
        return GateResult("as_of_order", None, "the champion's as-of date is unknown")
    mine = str(config.as_of)
    if mine >= champion_as_of:
        return GateResult("as_of_order", True, f"as-of {mine} vs champion's {champion_as_of}")
    if config.promotion.allow_older:
        return GateResult(
            "as_of_order", True, f"as-of {mine} older than champion's {champion_as_of}, allowed"
        )
    return GateResult(
        "as_of_order",
        False,
        f"as-of {mine} is older than the champion's {champion_as_of} (--allow-older to promote)",
    )


def _open_experiment(settings: TrackingConfig) -> tuple[MlflowClient, str]:
    """The configured store and experiment, made current for MLflow's fluent API (child runs
    inherit the active experiment, not their parent's)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = resolve_tracking_uri(settings.tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = _experiment_id(client, settings.experiment, uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    return client, experiment_id


def log_training(
    result: TrainingResult,
    config: Config,
    *,
    output_dir: Path,
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
    client, experiment_id = _open_experiment(config.tracking)
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
        BUNDLE_SHA256_TAG: _bundle_sha256(output_dir),
        **process_tags(),
    }
    run_name = f"train {as_of} seed {config.seed}"
    created = client.create_run(
        experiment_id,
        start_time=started.get(STAGES[0]),
        tags=redact_values(_with_context_tags(tags)),
        run_name=run_name,
    )
    with mlflow.start_run(run_id=created.info.run_id) as parent:
        run_id = parent.info.run_id
        mlflow.log_params(redact_values(config_as_flat_dict(config)))
        mlflow.log_metrics(grouped(result.metrics))
        mlflow.log_input(_input_dataset(redact(source), data_fingerprint), context="training")
        for stage in STAGES:
            child = client.create_run(
                experiment_id,
                start_time=started.get(stage),
                tags=_with_context_tags({"mlflow.parentRunId": run_id, "stage": stage}),
                run_name=stage,
            )
            with mlflow.start_run(run_id=child.info.run_id, nested=True):
                mlflow.log_metrics(grouped(result.stage_metrics.get(stage, {})))
                for name, table in result.tables.items():
                    if name.startswith(STAGE_TABLE_PREFIXES[stage]):
                        mlflow.log_table(table, f"{name}.json")
                if stage == "labeling":
                    mlflow.log_table(result.cluster_profiles, layout.ARTIFACT_CLUSTER_PROFILES)
                    if result.confusion is not None:
                        mlflow.log_table(
                            result.confusion.reset_index(), layout.ARTIFACT_PLANTED_CONFUSION
                        )
            # A stage ends where the next begins (the last where the outputs are written).
            ended = started.get(STAGE_ENDS[stage])
            if ended is not None:
                client.set_terminated(child.info.run_id, end_time=ended)
        # The PNGs the outputs hold, not the figures drawn again.
        mlflow.log_artifacts(str(output_dir / layout.PLOTS), artifact_path=layout.PLOTS)
        for path in sorted(output_dir.iterdir()):
            if path.is_file() and path.name != layout.BUNDLE:
                mlflow.log_artifact(str(path), artifact_path=layout.ARTIFACT_OUTPUTS)
        if captured_warnings():
            # Counted once per kind by the command line (pipeline.noise), recorded here.
            mlflow.log_dict(captured_warnings(), layout.ARTIFACT_WARNINGS)
        version = _log_model(result, config, output_dir)
    promoted, gates = (False, [])
    if version is not None:
        promoted, gates = _apply_gates(client, config, run_id, version, result.metrics)
    client.set_tag(
        run_id,
        MLFLOW_RUN_NOTE,
        redact(run_description(result, config, source, version, promoted, gates)),
    )
    return TrackedRun(run_id, version, promoted, tuple(gates))


def log_report(run_id: str, html: str, *, tracking_uri: str | None) -> None:
    """Attach the run's HTML report (rendered once the run id is known)."""
    MlflowClient(resolve_tracking_uri(tracking_uri)).log_text(run_id, html, layout.ARTIFACT_REPORT)


def load_registered_bundle(reference: str, *, tracking_uri: str | None = None):
    """The fitted bundle behind a registry URI (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``),
    checked against its recorded SHA-256 (:func:`load_verified_bundle`)."""
    if reference.startswith("models:/"):
        return load_verified_bundle(reference, tracking_uri=tracking_uri)
    check_tracking_store(tracking_uri, create=False)
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
    store = _sqlite_path(uri)
    if store is not None and not store.exists():
        return pd.DataFrame()  # a mistyped path must not create an empty store
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
        metrics, tags = flat(run.data.metrics), run.data.tags
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


def kpi_runs(settings: TrackingConfig, *, source: str, max_runs: int = 200) -> pd.DataFrame:
    """The KPIs of earlier finished training runs on the same data source, newest first.

    Only runs that read the same ``source`` are comparable: KPIs of another business's customers
    are not a point on this one's line. Runs that failed or were killed are left out.

    Returns
    -------
    pd.DataFrame
        One row per run: ``run_id``, ``started``, ``as_of`` and its ``kpi_*`` metrics; empty
        when there are none.
    """
    client = MlflowClient(resolve_tracking_uri(settings.tracking_uri))
    experiment = client.get_experiment_by_name(settings.experiment)
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
            **{k: v for k, v in flat(run.data.metrics).items() if k.startswith("kpi_")},
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
            run_id=run_id, artifact_path=layout.ARTIFACT_SEGMENTS, dst_path=folder
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


def finished_run_with_key(settings: TrackingConfig, run_key: str) -> str | None:
    """The id of a finished training run with this idempotency key, if there is one."""
    uri = resolve_tracking_uri(settings.tracking_uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.run_key = '{run_key}' and attributes.status = 'FINISHED'",
        max_results=50,
    )
    # A run whose publication a kill interrupted (and the next run rolled back) did not happen.
    done = [run for run in runs if run.data.tags.get(PUBLISH_TAG) not in ("pending", "rolled_back")]
    return done[0].info.run_id if done else None


def champion_segments_or_none(settings: TrackingConfig) -> pd.DataFrame | None:
    """The champion's segment table, or None when there is no champion (or it cannot be read)."""
    uri = resolve_tracking_uri(settings.tracking_uri)
    try:
        return load_champion_segments(tracking_uri=uri, model_name=settings.registered_model)
    except (mlflow.exceptions.MlflowException, OSError):
        return None


def champion_bundle_or_none(settings: TrackingConfig) -> SegmentationModel | None:
    """The champion's fitted bundle, or None when there is no champion or it cannot be loaded.

    Used for monitoring only, so a champion that cannot be read (deleted artifacts, a bundle
    from code that has since moved) is logged and skipped rather than stopping the training.
    """
    from pipeline.errors import InputError

    uri = resolve_tracking_uri(settings.tracking_uri)
    client = MlflowClient(uri)
    name = settings.registered_model
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
) -> str:
    """Make a model version the champion by hand, recording who decided and why; return its run."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    found = client.get_model_version(model_name, version)  # raises if it does not exist
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, "promoted", "by hand")
    client.set_model_version_tag(model_name, version, "promotion_reason", reason)
    return found.run_id


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


def log_backtest(result: Any, config: Config, *, output_dir: Path) -> str:
    """Track one backtest: a parent run tagged ``kind=backtest`` with the pooled metrics, the
    tables, plots and dataset, and one child run per cut-off with that cut-off's metrics.

    Metric names are ``<model>.<metric>`` (``project.roc_auc``, ``lifetimes_bgnbd.spend_gini``),
    the same in every backtest. Returns the parent run's id.
    """
    client, experiment_id = _open_experiment(config.tracking)
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
        tags=redact_values(_with_context_tags(tags)),
        run_name=f"backtest {cutoffs[0]}..{cutoffs[-1]} H{result.horizon_days}",
    )
    with mlflow.start_run(run_id=created.info.run_id) as parent:
        run_id = parent.info.run_id
        mlflow.log_params(
            redact_values(
                {
                    **config_as_flat_dict(config),
                    "backtest.cutoffs": ",".join(cutoffs),
                    "backtest.horizon_days": result.horizon_days,
                }
            )
        )
        mlflow.log_metrics(result.tracked_metrics())
        mlflow.log_input(
            _input_dataset(redact(result.source), result.fingerprint), context=BACKTEST
        )
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
        mlflow.log_artifacts(str(output_dir / layout.PLOTS), artifact_path=layout.PLOTS)
        for path in sorted(output_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                mlflow.log_artifact(str(path), artifact_path=layout.ARTIFACT_OUTPUTS)
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


def latest_backtest(settings: TrackingConfig, *, source: str) -> dict[str, Any] | None:
    """The newest finished backtest on the same data source: its id, cut-offs, horizon and pooled
    metrics; None when there is none (or the store cannot be read)."""
    try:
        client = MlflowClient(resolve_tracking_uri(settings.tracking_uri))
        experiment = client.get_experiment_by_name(settings.experiment)
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


# -- reliability: a store that answers, runs that end, bundles that are what was logged ---------
# A server that has not answered in this long is down or unreachable: the probe gives up
# rather than retrying for minutes (MLflow's own default is 7 retries with backoff).
PROBE_TIMEOUT_S = 5.0
# After the probe succeeded, MLflow's own calls retry this often and wait this long each: a
# server that goes away mid-run costs about a minute, not nine.
HTTP_RETRIES, HTTP_TIMEOUT_S = 2, 20
BUNDLE_SHA256_TAG = "bundle_sha256"
PUBLISH_TAG = "publish"  # pending -> done, or rolled_back by the next run
PREVIOUS_CHAMPION_TAG = "previous_champion"
HOST_TAG, PID_TAG = "loyalty.host", "loyalty.pid"
# A RUNNING run from before runs carried their process id is stale after a day: no training
# logs for that long (logging starts after the fit and takes seconds to minutes).
STALE_AFTER_MS = 24 * 3600 * 1000


# What a tracking store that goes away raises (HTTP errors are OSErrors, via requests; a SQLite
# store's errors come wrapped as MlflowException). Anything else is a bug and keeps its traceback.
TRACKING_FAILURES = (mlflow.exceptions.MlflowException, OSError)


class TrackingUnavailable(UserFacingError):
    """The tracking store cannot be used; nothing has been done yet."""


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:"):
        return None
    path = uri.removeprefix("sqlite://")
    # sqlite:///relative.db and sqlite:////absolute.db
    return Path(path[1:]) if path.startswith("/") else Path(path)


def _writable_dir(directory: Path) -> Path | None:
    """The nearest existing ancestor of ``directory`` if it can be written, else None."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            ok = candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
            return candidate if ok else None
    return None


def check_tracking_store(tracking_uri: str | None, *, create: bool) -> str:
    """Probe the tracking store before any work; return its resolved URI.

    An HTTP server must answer within :data:`PROBE_TIMEOUT_S`; a local store (SQLite file,
    folder) must be writable with room on its disk when ``create`` (training), and must exist
    when not (scoring, listing: a mistyped path must not create an empty store).

    Raises
    ------
    TrackingUnavailable
        One line: which store, what is wrong, what to do.
    """
    from pipeline.io import MIN_FREE_BYTES

    uri = resolve_tracking_uri(tracking_uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(HTTP_RETRIES))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(HTTP_TIMEOUT_S))
    shown = _redacted(uri)
    hint = "Start it, fix --tracking-uri, or train with --no-tracking"
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        # An MLflow server answers its REST API: 200, or an error in its own JSON form (an
        # unknown experiment). Anything else (a proxy's bare 404, a login page) is not one.
        probe = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
        try:
            with urllib.request.urlopen(probe, timeout=PROBE_TIMEOUT_S):
                return uri
        except urllib.error.HTTPError as error:
            body = error.read(2000).decode("utf-8", "replace")
            if error.code in (401, 403):
                raise TrackingUnavailable(
                    f"tracking server {shown} refuses access (HTTP {error.code}); check the "
                    "credentials (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or "
                    "MLFLOW_TRACKING_TOKEN), or train with --no-tracking"
                ) from None
            if '"error_code"' in body:
                return uri
            raise TrackingUnavailable(
                f"{shown} answers, but not as an MLflow tracking server (HTTP {error.code} on "
                f"its REST API). {hint}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TrackingUnavailable(
                f"tracking server {shown} does not answer within {PROBE_TIMEOUT_S:.0f} s "
                f"({reason}). {hint}"
            ) from None
    path = _sqlite_path(uri)
    if path is None and "://" in uri and not uri.startswith("file:"):
        return uri  # another kind of store (databricks, postgresql...): MLflow's own errors
    if path is None:
        path = Path(uri.removeprefix("file://").removeprefix("file:"))
    if not create:
        if not path.exists():
            raise TrackingUnavailable(
                f"no tracking store at {shown} ({path} does not exist); check --tracking-uri "
                "($MLFLOW_TRACKING_URI): nothing was created"
            )
        return uri
    directory = path.parent if path.suffix else path
    where = _writable_dir(directory)
    if where is None or (path.is_file() and not os.access(path, os.R_OK | os.W_OK)):
        raise TrackingUnavailable(
            f"tracking store {shown} is read-only here; make it writable, choose another "
            "--tracking-uri, or train with --no-tracking"
        )
    artifacts = _writable_dir(DEFAULT_ARTIFACT_ROOT.resolve())
    if artifacts is None:
        raise TrackingUnavailable(
            f"cannot write MLflow artifacts in {DEFAULT_ARTIFACT_ROOT.resolve()}; run from a "
            "writable folder or train with --no-tracking"
        )
    free = min(shutil.disk_usage(where).free, shutil.disk_usage(artifacts).free)
    if free < MIN_FREE_BYTES:
        raise TrackingUnavailable(
            f"only {free / 2**20:.0f} MiB free for tracking store {shown}; a run needs at least "
            f"{MIN_FREE_BYTES // 2**20} MiB. Free some space or train with --no-tracking"
        )
    return uri


def _redacted(uri: str) -> str:
    """A URI without its ``user:password@`` part: credentials are never printed."""
    import re

    return re.sub(r"//[^/@]*@", "//***@", uri)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def process_tags() -> dict[str, str]:
    """Which process logs a run: lets the next run tell a killed one from a live one."""
    import socket

    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def mark_stale_runs(settings: TrackingConfig, *, now_ms: int | None = None) -> list[str]:
    """End the RUNNING runs whose process is gone (killed): status KILLED. Returns their ids.

    A run logged from this host whose process no longer exists is stale; a run without a
    process tag (older runs, other hosts' runs are left alone) is stale after a day.
    """
    import socket
    import time

    client = MlflowClient(resolve_tracking_uri(settings.tracking_uri))
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return []
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    host = socket.gethostname()
    stale = []
    for run in client.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        tags = run.data.tags
        if tags.get(HOST_TAG) == host and tags.get(PID_TAG, "").isdigit():
            dead = not _process_alive(int(tags[PID_TAG])) or int(tags[PID_TAG]) == os.getpid()
        elif HOST_TAG in tags:
            dead = False  # another machine's run: it may well be alive
        else:
            dead = now_ms - (run.info.start_time or now_ms) > STALE_AFTER_MS
        if dead:
            client.set_terminated(run.info.run_id, status="KILLED")
            stale.append(run.info.run_id)
    if stale:
        log.warning("marked %d runs of killed trainings as KILLED", len(stale))
    return stale


def _version_of(client: MlflowClient, reference: str):
    """The model version behind ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    body = reference.removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    name, _, version = body.rpartition("/")
    return client.get_model_version(name, version)


@contextlib.contextmanager
def _registry(uri: str):
    """MLflow resolves ``models:/`` through the process-wide registry URI, not the tracking URI
    it is given: pinned here, so that a bundle is never fetched from another store's registry
    (seen: an earlier store in the same process served its own version 1)."""
    from mlflow.tracking._model_registry import utils as registry

    # Restored exactly as found: unset stays unset (the registry then follows the tracking
    # URI), and MLflow's MLFLOW_REGISTRY_URI, which set_registry_uri also writes for
    # subprocesses, is put back too; restoring get_registry_uri()'s answer instead pinned every
    # later run of the process, and its children, to this store's registry.
    previous, previous_env = registry._registry_uri, os.environ.get("MLFLOW_REGISTRY_URI")
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        registry._registry_uri = previous
        if previous_env is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)
        else:
            os.environ["MLFLOW_REGISTRY_URI"] = previous_env


def load_verified_bundle(reference: str, *, tracking_uri: str | None = None):
    """The bundle of a registered model version, its bytes checked against the SHA-256 the
    training recorded on the version (``bundle_sha256``) before it is unpickled.

    Raises
    ------
    pipeline.errors.InputError
        No such model or version, the hash does not match, or the bundle cannot be loaded.
    """
    from pipeline.errors import InputError
    from pipeline.io import load_bundle

    uri = check_tracking_store(tracking_uri, create=False)
    client = MlflowClient(uri)
    try:
        version = _version_of(client, reference)
        with tempfile.TemporaryDirectory() as folder, _registry(uri):
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{version.name}/{version.version}",
                    dst_path=folder,
                    tracking_uri=uri,
                )
            )
            found = sorted(local.rglob(layout.BUNDLE))
            if not found:
                raise InputError(reference, "the model version holds no model.joblib bundle")
            expected = version.tags.get(BUNDLE_SHA256_TAG)
            if expected is None:
                log.warning(
                    "%s has no recorded %s (logged before hashes were): loaded unchecked",
                    reference,
                    BUNDLE_SHA256_TAG,
                )
            return load_bundle(found[0], expected_sha256=expected)
    except mlflow.exceptions.MlflowException as error:
        raise InputError(
            reference, f"cannot load the model ({' '.join(error.message.split())[:200]})"
        ) from None


# -- the publication sequence: registry alias, outputs, bundle ----------------------------------
def mark_publication(settings: TrackingConfig, version: str, state: str) -> None:
    """Record how far a version's publication got (``pending``, ``done``, ``rolled_back``)."""
    client = MlflowClient(resolve_tracking_uri(settings.tracking_uri))
    name = settings.registered_model
    client.set_model_version_tag(name, version, PUBLISH_TAG, state)
    run_id = client.get_model_version(name, version).run_id
    if run_id:
        client.set_tag(run_id, PUBLISH_TAG, state)


@dataclass(frozen=True)
class PendingPublication:
    version: str
    run_id: str
    previous_champion: str | None
    is_champion: bool
    bundle_sha256: str | None


def pending_publications(settings: TrackingConfig) -> list[PendingPublication]:
    """Versions whose publication a killed run left half-done (tag ``publish = pending``)."""
    client = MlflowClient(resolve_tracking_uri(settings.tracking_uri))
    name = settings.registered_model
    try:
        versions = client.search_model_versions(f"name = '{name}'")
        champion = client.get_registered_model(name).aliases.get(CHAMPION)
    except mlflow.exceptions.MlflowException:
        return []
    pending = []
    for version in versions:
        tags = version.tags or {}
        if tags.get(PUBLISH_TAG) != "pending":
            continue
        previous = tags.get(PREVIOUS_CHAMPION_TAG) or None
        pending.append(
            PendingPublication(
                str(version.version),
                version.run_id or "",
                previous if previous != "none" else None,
                str(champion) == str(version.version),
                tags.get(BUNDLE_SHA256_TAG),
            )
        )
    return pending


def roll_back_publication(settings: TrackingConfig, pending: PendingPublication) -> None:
    """Give the champion alias back to the version that held it before the killed run."""
    client = MlflowClient(resolve_tracking_uri(settings.tracking_uri))
    name = settings.registered_model
    if pending.is_champion:
        if pending.previous_champion is not None:
            client.set_registered_model_alias(name, CHAMPION, pending.previous_champion)
        else:
            client.delete_registered_model_alias(name, CHAMPION)
    mark_publication(settings, pending.version, "rolled_back")


def download_champion_files(
    settings: TrackingConfig, version: str, folder: Path
) -> tuple[Path, Path | None]:
    """A version's bundle (checked against its recorded SHA-256) and its run's logged outputs.

    Returns
    -------
    tuple
        The bundle's path and the folder of the run's ``outputs`` (None when it logged none).
    """
    from pipeline.io import file_sha256, hash_path

    uri = resolve_tracking_uri(settings.tracking_uri)
    client = MlflowClient(uri)
    name = settings.registered_model
    found = client.get_model_version(name, version)
    model = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}",
            dst_path=str(folder / "model"),
            tracking_uri=uri,
        )
    )
    bundle = next(iter(sorted(model.rglob(layout.BUNDLE))))
    expected = (found.tags or {}).get(BUNDLE_SHA256_TAG)
    actual = file_sha256(bundle)
    if expected and actual != expected:
        from pipeline.errors import InputError

        raise InputError(
            f"models:/{name}/{version}", "the bundle's SHA-256 does not match the recorded one"
        )
    # Only model.joblib is logged, not its .sha256: record the checked hash beside the download
    # so the published copy carries it and later loads can check it. A version registered before
    # hashes were tagged is trusted as the registry's own (it was our training that logged it).
    hash_path(bundle).write_text(f"{actual}  {bundle.name}\n", encoding="utf-8")
    try:
        outputs = Path(
            mlflow.artifacts.download_artifacts(
                run_id=found.run_id,
                artifact_path=layout.ARTIFACT_OUTPUTS,
                dst_path=str(folder / "run"),
                tracking_uri=uri,
            )
        )
    except (mlflow.exceptions.MlflowException, OSError):
        outputs = None
    return bundle, outputs


def project_tracking_uri(configured: str | None = None) -> str:
    """:func:`resolve_tracking_uri`, with the default store anchored at the project's root.

    For notebooks and other callers whose working directory is not the project's (Jupyter runs
    a notebook in ``notebooks/``, where ``sqlite:///mlflow.db`` would create an empty store):
    an explicit URI or ``$MLFLOW_TRACKING_URI`` is used as given; otherwise the project's own
    ``mlflow.db`` (the folder holding ``pyproject.toml`` above this package, for a checkout),
    else the working directory's.
    """
    uri = resolve_tracking_uri(configured)
    if uri != DEFAULT_TRACKING_URI:
        return uri
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").exists():
        return uri
    return f"sqlite:///{root / 'mlflow.db'}"


def _with_context_tags(tags: dict[str, str]) -> dict[str, str]:
    """``tags`` plus MLflow's own context tags (``mlflow.user``, ``mlflow.source.name`` and
    ``.type``, ``mlflow.source.git.commit``), which ``mlflow.start_run`` sets and
    ``MlflowClient.create_run`` (used here to date runs from their stages) does not."""
    resolved = resolve_tags(tags)
    commit = tags.get("git_commit") or _git_commit()
    if MLFLOW_GIT_COMMIT not in resolved and commit != "unknown":
        resolved[MLFLOW_GIT_COMMIT] = commit
    return resolved


def run_description(
    result: TrainingResult,
    config: Config,
    source: str,
    version: str | None,
    promoted: bool,
    gates: list[GateResult] | tuple[GateResult, ...],
) -> str:
    """The run's description in the UI (``mlflow.note.content``, Markdown): what was trained, on
    what, what came out, and whether it became the champion."""
    metrics = result.metrics
    shares = ", ".join(
        f"{row.status} {row.share:.0%}"
        for row in result.summary.itertuples()
        if hasattr(row, "share") and hasattr(row, "status")
    )
    lines = [
        f"**Loyalty segmentation training** on `{source_location(source)}` as of {config.as_of}, "
        f"seed {config.seed}.",
        "",
        f"- {int(metrics.get('customers', 0)):,} customers in "
        f"{int(metrics.get('n_clusters', 0))} clusters ({result.k_reason or 'k fixed'})",
        f"- customer value: {result.value_model_name or 'n/a'}"
        + (
            f", holdout spend Gini {metrics['holdout_spend_gini']:.3f}"
            if "holdout_spend_gini" in metrics
            else ""
        ),
    ]
    if shares:
        lines.append(f"- statuses: {shares}")
    if "planted_macro_f1" in metrics:
        lines.append(f"- planted statuses recovered: macro-F1 {metrics['planted_macro_f1']:.3f}")
    if version is None:
        lines.append("- no model registered")
    else:
        failed = ", ".join(g.name for g in gates if g.passed is False)
        role = (
            "**champion**"
            if promoted
            else f"**challenger**, held back by gate {failed}"
            if failed
            else "**challenger**"
        )
        lines.append(f"- model `{config.tracking.registered_model}` version {version}: {role}")
        lines.extend(f"  - gate {g.name}: {g.verdict}, {g.detail}" for g in gates)
    lines.append("")
    lines.append(
        "Stage runs (data, clustering, clv, labeling) hold each stage's metrics and tables."
    )
    return "\n".join(lines)


def load_model(reference: str, *, tracking_uri: str | None = None) -> SegmentationModel:
    """A bundle from a local ``.joblib`` path or a registry URI such as
    ``models:/loyalty-segmentation@champion``."""
    if reference.startswith(("models:/", "runs:/")):
        return load_registered_bundle(reference, tracking_uri=tracking_uri)
    from pipeline.io import load_bundle

    path = Path(reference)
    if not path.exists():
        from pipeline.errors import InputError

        raise InputError(
            reference, "model bundle not found", "Give a .joblib path or models:/NAME@ALIAS"
        )
    # A bundle runs code when loaded: one without a recorded SHA-256 is refused, saying how to
    # vouch for it.
    return load_bundle(path, require_hash=True)
