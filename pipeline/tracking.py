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
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from pipeline.config import Config, DataConfig, config_as_flat_dict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pipeline.train import TrainingResult

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_ROOT = Path("mlartifacts")
CHAMPION, CHALLENGER = "champion", "challenger"
STAGES = ("data", "clustering", "clv", "labeling")
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
    if experiment is not None:
        return experiment.experiment_id
    # A local store keeps artifacts in the git-ignored mlartifacts/; a server chooses its own
    # (mlflow-artifacts:/ roots), which the client must not override.
    location = (
        (DEFAULT_ARTIFACT_ROOT / name).resolve().as_uri() if _is_local_store(tracking_uri) else None
    )
    return client.create_experiment(name, artifact_location=location)


def _git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
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
    """

    def load_context(self, context: Any) -> None:
        from pipeline.io import load_bundle

        self.bundle = load_bundle(Path(context.artifacts["bundle"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from pipeline.schema import clean_transactions

        as_of = (params or {}).get("as_of") or self.bundle.trained_as_of
        data = DataConfig(duplicates="keep", negative_amounts="quarantine")
        clean = clean_transactions(
            model_input, data=data, source="model input", as_of=pd.Timestamp(as_of)
        )
        return self.bundle.segment(clean.transactions, as_of=clean.as_of)


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


def _set_aliases(client: MlflowClient, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHALLENGER, version)
    try:
        client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        # The first model has nothing to beat; later issues gate promotion on quality.
        client.set_registered_model_alias(name, CHAMPION, version)


def log_training(
    result: TrainingResult,
    config: Config,
    *,
    output_dir: Path,
    figures: dict[str, Figure],
    data_fingerprint: str,
    source: str,
    trigger: str,
) -> tuple[str, str | None]:
    """Track one training; return (parent run id, registered model version)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = resolve_tracking_uri(config.tracking.tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = _experiment_id(client, config.tracking.experiment, uri)
    # Child runs inherit the active experiment, not the parent's: set it for both.
    mlflow.set_experiment(experiment_id=experiment_id)
    as_of = str(config.as_of)
    tags = {
        "trigger": trigger,
        "git_commit": _git_commit(),
        "data_fingerprint": data_fingerprint,
        "data_source": source,
        "as_of": as_of,
        "seed": str(config.seed),
    }
    run_name = f"train {as_of} seed {config.seed}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as parent:
        mlflow.log_params(config_as_flat_dict(config))
        mlflow.log_metrics(result.metrics)
        for stage in STAGES:
            with mlflow.start_run(run_name=stage, nested=True, tags={"stage": stage}):
                mlflow.log_metrics(result.stage_metrics.get(stage, {}))
                if stage == "labeling":
                    mlflow.log_table(result.cluster_profiles, "cluster_profiles.json")
                    if result.confusion is not None:
                        mlflow.log_table(result.confusion.reset_index(), "planted_confusion.json")
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        for path in sorted(output_dir.iterdir()):
            if path.is_file() and path.name != "model.joblib":
                mlflow.log_artifact(str(path), artifact_path="outputs")
        version = _log_model(result, config, output_dir)
        if version is not None:
            _set_aliases(client, config.tracking.registered_model, version)
        return parent.info.run_id, version
