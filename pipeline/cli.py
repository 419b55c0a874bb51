"""The command line: ``loyalty train`` (also ``python -m pipeline train``).

Exit codes: 0 success (also: an idempotent retraining that found the same run already done);
1 an unexpected failure (a bug: the traceback is kept); 2 bad input or configuration (one line
on stderr, nothing written); 3 another training holds the lock (nothing done); 4, from
``retrain`` only, the new model was trained and registered but did not pass the promotion gates
(it stays challenger; ``train`` exits 0 then); 5 the model was fitted and its outputs and bundle
kept in the held-back folder, but MLflow could not record it (one line says how to finish).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from pipeline.config import DEFAULT_CONFIG_PATH, MAX_HORIZON_DAYS, check_as_of, load_config
from pipeline.errors import LockedError, TrackingError, UserFacingError
from pipeline.noise import capture_warnings, release_log_filter, warnings_summary
from pipeline.redact import RedactingConsole, install_excepthook, install_log_redaction

if TYPE_CHECKING:
    from pipeline.train import TrainingOutcome

EXIT_BAD_INPUT = 2
EXIT_LOCKED = 3
# A scheduled retraining whose model was held back needs a person (``loyalty promote``).
EXIT_NOT_PROMOTED = 4
# Fitted, kept on disk, but not recorded in MLflow (the store went away after the probe).
EXIT_NOT_TRACKED = 5
STAGE_LABELS = {
    "data": "Reading and validating transactions",
    "features": "Building customer features",
    "clustering": "Clustering customers",
    "clv": "Comparing customer-value models on the holdout",
    "labeling": "Naming statuses",
    "outputs": "Writing outputs and plots",
    "tracking": "Logging to MLflow",
}

console = RedactingConsole(stderr=True)


def _stdout() -> Console:
    # Tables are wide; when piped (a scheduler's log) do not squeeze them to 80 columns.
    return RedactingConsole() if sys.stdout.isatty() else RedactingConsole(width=220)


def _configure_logging(verbose: bool) -> None:
    # Figures are only ever written to files here: no display on servers and schedulers.
    # (Set by the command line, not at import, so that notebooks keep their inline plots.)
    import matplotlib

    matplotlib.use("Agg")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Credentials in URIs never reach a log line or a traceback.
    install_log_redaction()
    install_excepthook()
    # Third-party warnings are counted and logged once per kind, never printed one by one,
    # for as long as the command runs.
    capture_warnings()
    click.get_current_context().call_on_close(release_log_filter)
    if not verbose:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", module="mlflow")


def _drift_line(metrics: dict[str, float], *, threshold: float, against: str) -> str:
    from pipeline.evaluate import drifted_features

    line = f"drift against {against}: largest PSI {metrics['drift_psi_max']:.3f}"
    drifted = drifted_features(metrics, threshold=threshold)
    if not drifted:
        return f"{line}, none above {threshold:.2f}"
    listed = ", ".join(f"{name} {value:.2f}" for name, value in drifted.items())
    return f"{line}; WARNING, above {threshold:.2f}: {listed}"


def _summary_table(summary, metrics: dict[str, float]) -> Table:
    table = Table(title="Loyalty statuses", title_justify="left")
    for column, justify in (
        ("status", "left"),
        ("customers", "right"),
        ("share", "right"),
        ("mean expected spend", "right"),
        ("value share", "right"),
    ):
        table.add_column(column, justify=justify)
    for row in summary.itertuples(index=False):
        table.add_row(
            row.status,
            f"{row.customers:,}",
            f"{row.share:.1%}",
            f"{row.mean_expected_spend:,.2f}",
            f"{row.value_share:.1%}",
        )
    return table


# Options several commands share, defined once so that they read and check the same everywhere.
CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="YAML configuration; the flags below override it.",
)
TRANSACTIONS_OPTION = click.option(
    "--transactions",
    type=str,
    default=None,
    help="CSV or Parquet file of transactions. Default: the embedded planted sample.",
)
TRACKING_URI_OPTION = click.option(
    "--tracking-uri",
    type=str,
    default=None,
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).",
)
NO_TRACKING_OPTION = click.option("--no-tracking", is_flag=True, help="Do not log to MLflow.")
VERBOSE_OPTION = click.option("-v", "--verbose", is_flag=True, help="Log progress details.")


def horizon_option(help_text: str):
    """``--horizon-days``, bounded as the models can represent (1 to MAX_HORIZON_DAYS)."""
    return click.option(
        "--horizon-days",
        type=click.IntRange(min=1, max=MAX_HORIZON_DAYS),
        default=None,
        help=f"{help_text} (1 to {MAX_HORIZON_DAYS}).",
    )


def threads_option(help_text: str):
    """``--threads``: caps the numeric libraries and side-by-side fits; never changes results."""
    return click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="Threads of the numeric libraries (BLAS, OpenMP) and of side-by-side fits "
        f"({help_text}). Results do not depend on it.",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyalty-segmentation")
def main() -> None:
    """Segment customers by loyalty status from their transactions."""


@main.command()
@CONFIG_OPTION
@TRANSACTIONS_OPTION
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Observation end YYYY-MM-DD; later transactions are set aside and counted.",
)
@horizon_option("Forecast horizon in days")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Output directory.")
@click.option("--seed", type=int, default=None, help="Random seed of every fitted stage.")
@TRACKING_URI_OPTION
@NO_TRACKING_OPTION
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(["duckdb", "spark"]),
    default=None,
    help="Where the data stage and features run (config: engine.name; default duckdb).",
)
@click.option(
    "--trigger",
    type=click.Choice(["manual", "scheduled"]),
    default="manual",
    show_default=True,
    help="Recorded on the run, so scheduled retrainings can be told apart.",
)
@click.option(
    "--allow-share-shift",
    is_flag=True,
    help="Let the new model become champion although status shares moved beyond the gate.",
)
@click.option(
    "--allow-older",
    is_flag=True,
    help="Let a model whose as-of date is older than the champion's become champion.",
)
@click.option(
    "--idempotent",
    is_flag=True,
    help="Do nothing (exit 0) if a finished run has the same data, config and as-of date.",
)
@threads_option("config: threads; default: the cores available to this process")
@VERBOSE_OPTION
def train(
    config_path: Path,
    transactions: str | None,
    as_of,
    horizon_days: int | None,
    output: Path | None,
    seed: int | None,
    tracking_uri: str | None,
    no_tracking: bool,
    engine_name: str | None,
    trigger: str,
    allow_share_shift: bool,
    idempotent: bool,
    threads: int | None,
    verbose: bool,
    allow_older: bool = False,
) -> TrainingOutcome:
    """Fit features, clusters, customer value and statuses; write the segment table."""
    _configure_logging(verbose)
    started = time.perf_counter()
    try:
        # A missing default config is fine (built-in defaults); a missing named one is not.
        path = config_path if (config_path != DEFAULT_CONFIG_PATH or config_path.exists()) else None
        config = load_config(
            path,
            {
                "data.transactions": transactions,
                "as_of": as_of.date().isoformat() if as_of else None,
                "horizon_days": horizon_days,
                "output": str(output) if output else None,
                "seed": seed,
                "tracking.tracking_uri": tracking_uri,
                "tracking.enabled": False if no_tracking else None,
                "engine.name": engine_name,
                "promotion.allow_share_shift": True if allow_share_shift else None,
                "promotion.allow_older": True if allow_older else None,
                "threads": threads,
            },
        )
        from pipeline.train import run_training  # heavy imports only once the config is known good

        # Third-party chatter that says nothing about the user's run (set after the import:
        # mlflow configures its own loggers when imported).
        for noisy in ("alembic", "mlflow", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)

        with console.status("Starting") as status:
            outcome = run_training(
                config,
                trigger=trigger,
                idempotent=idempotent,
                on_stage=lambda name: status.update(STAGE_LABELS.get(name, name)),
            )
    except UserFacingError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)
    except LockedError as error:
        console.print(f"[bold yellow]locked:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_LOCKED)
    except TrackingError as error:
        console.print(f"[bold red]not tracked:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_NOT_TRACKED)

    if outcome.skipped_for is not None:
        _stdout().print(
            f"already trained: run {outcome.skipped_for} used the same data, config and as-of "
            "date; nothing to do",
            highlight=False,
        )
        return outcome
    result = outcome.result
    out = _stdout()
    out.print(_summary_table(result.summary, result.metrics))
    metrics = result.metrics
    lines = [
        f"customers: {int(metrics['customers']):,}   rows used: {int(metrics['rows_used']):,}   "
        f"rows set aside: {int(metrics['rows_quarantined']):,} (see quarantine.csv)",
        f"as of {config.as_of or result.segments['as_of'].iloc[0].date()}, horizon {config.horizon_days} days, "
        f"seed {config.seed}",
    ]
    for table, prefix in (("loyalty events", "loyalty"), ("campaign interactions", "campaign")):
        if f"{prefix}_rows_in" in metrics:
            lines.append(
                f"{table}: rows used {int(metrics[f'{prefix}_rows_used']):,}, "
                f"set aside {int(metrics[f'{prefix}_rows_set_aside']):,}"
            )
    if "planted_macro_f1" in metrics:
        lines.append(f"planted statuses recovered: macro-F1 {metrics['planted_macro_f1']:.3f}")
    if "transition_customers_compared" in metrics:
        moves = ", ".join(
            f"{name.removeprefix('moved_').replace('_to_', ' -> ')} {int(value):,}"
            for name, value in metrics.items()
            if name.startswith("moved_") and value > 0
        )
        lines.append(
            f"since the champion: {metrics['transition_changed_share']:.1%} of "
            f"{int(metrics['transition_customers_compared']):,} customers changed status"
            + (f"; {moves}" if moves else "")
        )
    if "drift_psi_max" in metrics:
        lines.append(
            _drift_line(
                metrics,
                threshold=config.monitoring.drift_warn_psi,
                against="the champion's training data",
            )
        )
    lines.append(f"outputs: {outcome.output}/   model: {config.model_path}")
    tracked = outcome.tracked
    if tracked:
        role = "champion" if tracked.promoted else "challenger, not promoted"
        lines.append(
            f"MLflow run {tracked.run_id}: model version {tracked.model_version} is {role}"
        )
        lines.extend(f"  gate {g.name}: {g.verdict}, {g.detail}" for g in tracked.gates)
        lines.append("  browse it with: make ui")
    if warnings_summary():
        lines.append(warnings_summary())
    lines.append(f"done in {time.perf_counter() - started:.1f} s")
    for line in lines:
        out.print(line, highlight=False)
    return outcome


@main.command()
@click.option(
    "--model",
    "model_reference",
    default="models:/loyalty-segmentation@champion",
    show_default=True,
    help="A bundle (.joblib) or a registry URI models:/NAME@ALIAS.",
)
@click.option("--transactions", required=True, help="CSV or Parquet file of transactions.")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Observation end YYYY-MM-DD (default: the last transaction day).",
)
@horizon_option("Forecast horizon in days; default: the one trained with")
@click.option(
    "--output", type=click.Path(path_type=Path), default=Path("outputs/scored"), show_default=True
)
@click.option(
    "--tracking-uri", type=str, default=None, help="MLflow tracking URI for models:/ references."
)
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(["duckdb", "spark"]),
    default=None,
    help="Where to score (default: duckdb, whatever engine trained the model). On spark, "
    "--transactions may also be a folder, a glob or spark:db.table.",
)
@click.option(
    "--spark-master", default=None, help="Spark master URL, e.g. local[4] (with --engine spark)."
)
@threads_option("default: the cores available to this process")
@VERBOSE_OPTION
def score(
    model_reference: str,
    transactions: str,
    as_of,
    horizon_days: int | None,
    output: Path,
    tracking_uri: str | None,
    engine_name: str | None,
    spark_master: str | None,
    threads: int | None,
    verbose: bool,
) -> None:
    """Apply a fitted model to new transactions, without refitting; same table as train."""
    _configure_logging(verbose)
    try:
        from pipeline.score import run_scoring
        from pipeline.tracking import load_model

        for noisy in ("alembic", "mlflow", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)
        with console.status("Loading the model"):
            model = load_model(model_reference, tracking_uri=tracking_uri)
        # The engine asked for, else the default: never silently the one that trained.
        engine = model.config.engine.model_copy(
            update={
                "name": engine_name or "duckdb",
                "spark_master": spark_master or model.config.engine.spark_master,
            }
        )
        from pipeline.threads import limit_threads

        with console.status("Scoring"), limit_threads(threads):
            outcome = run_scoring(
                model,
                transactions=transactions,
                as_of=pd_timestamp(as_of),
                output=output,
                horizon_days=horizon_days,
                engine=engine,
            )
    except UserFacingError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)
    out = _stdout()
    out.print(_summary_table(outcome.summary, {}))
    out.print(
        f"{outcome.customers:,} customers scored with {model_reference}; "
        f"rows set aside: {outcome.rows_quarantined:,}; outputs: {outcome.output}/",
        highlight=False,
    )
    if outcome.drift:
        out.print(
            _drift_line(
                outcome.drift,
                threshold=model.config.monitoring.drift_warn_psi,
                against="the model's training data",
            ),
            highlight=False,
        )


def pd_timestamp(value):
    import pandas as pd

    from pipeline.errors import ConfigError

    if value is None:
        return None
    try:
        check_as_of(value.date())
    except ValueError as error:
        raise ConfigError(f"--as-of: {error}") from None
    return pd.Timestamp(value)


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
)
@click.option("--transactions", type=str, default=None)
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None)
@click.option("--output", type=click.Path(path_type=Path), default=None)
@click.option("--tracking-uri", type=str, default=None)
@click.option("-v", "--verbose", is_flag=True)
@click.pass_context
def retrain(
    ctx: click.Context,
    config_path: Path,
    transactions: str | None,
    as_of,
    output: Path | None,
    tracking_uri: str | None,
    verbose: bool,
) -> None:
    """Scheduled retraining: train, tagged scheduled, and idempotent (see README for cron).

    Exits 4 when the new model was registered but held back by the promotion gates.
    """
    outcome = ctx.invoke(
        train,
        config_path=config_path,
        transactions=transactions,
        as_of=as_of,
        horizon_days=None,
        output=output,
        seed=None,
        tracking_uri=tracking_uri,
        no_tracking=False,
        engine_name=None,
        trigger="scheduled",
        allow_share_shift=False,
        idempotent=True,
        verbose=verbose,
        allow_older=False,
    )
    tracked = outcome.tracked
    if tracked is not None and tracked.model_version is not None and not tracked.promoted:
        failed = ", ".join(g.name for g in tracked.gates if g.passed is False)
        console.print(
            f"[bold yellow]not promoted:[/] model version {tracked.model_version} stays "
            f"challenger (gates failed: {failed}); review it, `loyalty promote` if it should "
            f"serve; exit code {EXIT_NOT_PROMOTED}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_NOT_PROMOTED)


def _tracking_options(function):
    function = TRACKING_URI_OPTION(function)
    function = click.option("--experiment", default="loyalty-segmentation", show_default=True)(
        function
    )
    return click.option("--model-name", default="loyalty-segmentation", show_default=True)(function)


def _format(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        # MLflow stores every metric as a float: counts such as k read as counts (0 and 1 are
        # more often a share or a correlation at its bound).
        if (value.is_integer() and abs(value) >= 2) or abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:,.3f}"
    return str(value)


WIDE_OPTION = click.option(
    "--wide",
    is_flag=True,
    help="Every key figure, at full width (not cut to the terminal); default: fits 80 columns.",
)
# What `loyalty runs` shows by default: fits 80 columns with the full run id (32 characters),
# so that an id can always be copied into `compare` or the UI's search: 32 + 10 (as of) + 14
# ("v12 challenger") + 9 (customers) + 13 of borders = 78.
RUNS_NARROW = ("run_id", "status", "as_of", "model", "customers")
RUNS_WIDE = (
    "run_id",
    "status",
    "started",
    "as_of",
    "trigger",
    "model",
    "customers",
    "planted_macro_f1",
    "seed_stability_ari",
    "silhouette",
    "holdout_spend_gini",
    "share_loyal",
    "share_at_risk",
    "share_lost",
)
RUN_HEADERS = {"as_of": "as of", "planted_macro_f1": "planted F1", "seed_stability_ari": "seed ARI"}


def _model_cell(row: dict) -> str:
    """``v3 champion``: the registered version and its aliases, in one short cell."""
    version, aliases = row.get("model_version") or "", row.get("aliases") or ""
    return f"v{version} {aliases}".strip() if version else "-"


def _print_wide_or_narrow(table: Table, wide: bool) -> None:
    if wide:
        # As wide as the table needs, whatever the terminal: nothing is cut.
        RedactingConsole(width=max(_stdout().width, 400)).print(table, crop=False)
    else:
        _stdout().print(table)


@main.command()
@click.option("-n", "--last", "last", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also list runs that were killed or failed (hidden by default: they produced nothing).",
)
@WIDE_OPTION
@_tracking_options
def runs(
    last: int,
    show_all: bool,
    wide: bool,
    tracking_uri: str | None,
    experiment: str,
    model_name: str,
) -> None:
    """List training runs, newest first, with their key figures (full run ids)."""
    _configure_logging(False)
    from pipeline.tracking import training_runs

    table = training_runs(
        tracking_uri=tracking_uri, experiment=experiment, model_name=model_name, max_runs=last
    )
    if not show_all and not table.empty:
        ended_badly = table["status"].isin(["KILLED", "FAILED"])
        if ended_badly.any():
            console.print(
                f"{int(ended_badly.sum())} killed or failed runs hidden (loyalty runs --all)"
            )
        table = table[~ended_badly]
    _print_backtest_runs(tracking_uri=tracking_uri, experiment=experiment, last=last)
    if table.empty:
        console.print(f"no training runs in experiment '{experiment}' yet: run `make train`")
        return
    columns = RUNS_WIDE if wide else RUNS_NARROW
    out = Table(title=f"Training runs in '{experiment}'", title_justify="left")
    for column in columns:
        out.add_column(
            RUN_HEADERS.get(column, column.replace("share_", "% ")),
            justify="left" if column in {"run_id", "model", "as_of"} else "right",
            no_wrap=column == "run_id",
            min_width=32 if column == "run_id" else None,
        )
    for row in table.to_dict("records"):
        row["model"] = _model_cell(row)
        out.add_row(*(_format(row[c]) for c in columns))
    _print_wide_or_narrow(out, wide)


@main.command()
@click.argument("run_ids", nargs=-1)
@click.option(
    "-n",
    "--last",
    "last",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Compare the last N runs when no run ids are given.",
)
@WIDE_OPTION
@_tracking_options
def compare(
    run_ids: tuple[str, ...],
    last: int,
    wide: bool,
    tracking_uri: str | None,
    experiment: str,
    model_name: str,
) -> None:
    """Show runs side by side: metrics, status shares and which one is champion."""
    _configure_logging(False)
    from pipeline.tracking import training_runs

    # Backtest runs are shown in their own table; the ids left name training runs.
    left = _compare_backtests(run_ids, last=last, tracking_uri=tracking_uri, experiment=experiment)
    if left == ():
        return
    try:
        table = training_runs(
            tracking_uri=tracking_uri,
            experiment=experiment,
            model_name=model_name,
            max_runs=last,
            run_ids=list(left) if left else None,
        )
    except UserFacingError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)
    if table.empty:
        console.print(f"no training runs in experiment '{experiment}' yet: run `make train`")
        return
    # Narrow: columns are lettered and the full ids listed above the table (an id is 32
    # characters: two of them as headers would not fit 80 columns). Wide: the ids are headers.
    if not wide:
        # Two runs then fit 80 columns: 35 (the longest metric name) + 2 x 16 + 10 of borders.
        table = table.assign(
            started=table["started"].map(lambda t: f"{t:%Y-%m-%d %H:%M}", na_action="ignore"),
            data=table["data"].str[:12],
        )
    letters = [chr(ord("A") + i) if i < 26 else str(i + 1) for i in range(len(table))]
    out = Table(title="Runs side by side", title_justify="left")
    out.add_column("")
    for letter, row in zip(letters, table.itertuples(), strict=True):
        out.add_column(row.run_id if wide else letter, justify="right")
    for column in table.columns.drop("run_id"):
        out.add_row(column, *(_format(value) for value in table[column]))
    if not wide:
        for letter, run_id in zip(letters, table["run_id"], strict=True):
            _stdout().print(f"{letter}  {run_id}", highlight=False)
    _print_wide_or_narrow(out, wide)


@main.command()
@click.argument("version")
@click.option("--reason", required=True, help="Why this version should be the champion (recorded).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="Where the champion's bundle (model_path) and outputs (output) are published.",
)
@_tracking_options
def promote(
    version: str,
    reason: str,
    tracking_uri: str | None,
    experiment: str,
    model_name: str,
    config_path: Path = DEFAULT_CONFIG_PATH,
) -> None:
    """Make model VERSION the champion by hand, with a recorded reason; its bundle and outputs
    replace the local champion's (models/, outputs/latest)."""
    _configure_logging(False)
    import mlflow

    from pipeline.tracking import promote as promote_version
    from pipeline.train import publish_promoted

    try:
        path = config_path if (config_path != DEFAULT_CONFIG_PATH or config_path.exists()) else None
        config = load_config(
            path,
            {"tracking.tracking_uri": tracking_uri, "tracking.registered_model": model_name},
        )
        run_id = promote_version(
            version, reason=reason, tracking_uri=tracking_uri, model_name=model_name
        )
        try:
            publish_promoted(config, version, run_id=run_id, reason=reason)
        except (mlflow.exceptions.MlflowException, OSError, StopIteration) as error:
            console.print(
                f"[bold yellow]warning:[/] version {version} is champion in MLflow, but its bundle "
                f"and outputs could not be published to {config.model_path} and "
                f"{config.output}/ ({' '.join(str(error).split())[:200]}); the next training "
                "publishes its own",
                highlight=False,
                soft_wrap=True,
            )
    except UserFacingError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)
    except mlflow.exceptions.MlflowException as error:
        console.print(
            f"[bold red]error:[/] model '{model_name}' version {version}: {' '.join(error.message.split())}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_BAD_INPUT)
    _stdout().print(f"model '{model_name}' version {version} is now champion ({reason})")


# -- backtest ------------------------------------------------------------------------------------
BACKTEST_HEADLINE = (
    ("roc_auc", "ROC AUC, buys again"),
    ("brier", "Brier score"),
    ("ece", "calibration error (ECE)"),
    ("spend_spearman", "Spearman, spend"),
    ("spend_gini", "normalized Gini, spend"),
    ("spend_aggregate_error_pct", "aggregate spend error %"),
    ("purchases_mae", "MAE, purchases"),
)


def _backtest_table(metrics) -> Table:
    from pipeline.backtest import MODELS, POOLED

    pooled = metrics[metrics["cutoff"] == POOLED]
    table = Table(title="Backtest, all cut-offs pooled", title_justify="left")
    table.add_column("metric")
    for model in MODELS:
        table.add_column(model, justify="right")
    for metric, label in BACKTEST_HEADLINE:
        cells = []
        for model in MODELS:
            rows = pooled[
                (pooled["model"] == model) & (pooled["metric"].isin([metric, "fit_failed"]))
            ]
            if rows.empty:
                cells.append("-")
            elif rows["metric"].iloc[0] == "fit_failed":
                cells.append("failed")
            else:
                cells.append(_format(float(rows["value"].iloc[0])))
        table.add_row(label, *cells)
    return table


@main.command()
@CONFIG_OPTION
@TRANSACTIONS_OPTION
@click.option(
    "--cutoff",
    "cutoffs",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    multiple=True,
    help="A cut-off YYYY-MM-DD (repeatable): train on the data up to it, judge the next horizon.",
)
@click.option(
    "--folds",
    type=click.IntRange(min=1),
    default=None,
    help="Rolling origin: N cut-offs spaced by the horizon, the last one a horizon before the "
    "data's end (default 1, when no --cutoff is given).",
)
@horizon_option("Days judged after each cut-off; default: the config's horizon_days")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("outputs/backtest"),
    show_default=True,
    help="Output directory (replaced atomically).",
)
@TRACKING_URI_OPTION
@NO_TRACKING_OPTION
@VERBOSE_OPTION
def backtest(
    config_path: Path,
    transactions: str | None,
    cutoffs: tuple,
    folds: int | None,
    horizon_days: int | None,
    output: Path,
    tracking_uri: str | None,
    no_tracking: bool,
    verbose: bool,
) -> None:
    """Judge statuses and forecasts made at past cut-offs by what customers did next."""
    _configure_logging(verbose)
    started = time.perf_counter()
    if cutoffs and folds is not None:
        console.print(
            "[bold red]error:[/] give either --cutoff or --folds, not both", highlight=False
        )
        sys.exit(EXIT_BAD_INPUT)
    try:
        path = config_path if (config_path != DEFAULT_CONFIG_PATH or config_path.exists()) else None
        config = load_config(
            path,
            {
                "data.transactions": transactions,
                "horizon_days": horizon_days,
                "output": str(output),
                "tracking.tracking_uri": tracking_uri,
                "tracking.enabled": False if no_tracking else None,
            },
        )
        import pandas as pd

        from pipeline.backtest import run_backtest

        for noisy in ("alembic", "mlflow", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)
        outcome = run_backtest(
            config,
            cutoffs=[pd.Timestamp(c) for c in cutoffs] or None,
            folds=folds,
            horizon_days=horizon_days,
            on_progress=lambda line: console.print(
                f"[dim]{time.perf_counter() - started:6.1f} s[/] {line}", highlight=False
            ),
        )
    except UserFacingError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)
    result = outcome.result
    out = _stdout()
    out.print(_backtest_table(result.metrics))
    wins = result.tables["backtest_wins"]
    won = ", ".join(wins.loc[wins["verdict"] == "wins", "metric"]) or "none"
    lost = (
        ", ".join(
            f"{m} (to {b})"
            for m, b in zip(
                wins.loc[wins["verdict"] == "loses", "metric"],
                wins.loc[wins["verdict"] == "loses", "best_baseline"],
                strict=True,
            )
        )
        or "none"
    )
    lines = [
        f"cut-offs: {', '.join(str(c.date()) for c in result.cutoffs)}; horizon "
        f"{result.horizon_days} days",
        f"the project wins on: {won}",
        f"the project loses on: {lost}",
        f"outputs: {outcome.output}/ (backtest.html, backtest_metrics.csv, "
        "backtest_by_status.csv, calibration.csv)",
    ]
    if outcome.run_id:
        lines.append(f"MLflow run {outcome.run_id} (kind=backtest); browse it with: make ui")
    lines.append(f"done in {time.perf_counter() - started:.1f} s")
    for line in lines:
        out.print(line, highlight=False)


@main.command("backtest-table")
@click.argument("output", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--cutoff", default="pooled", show_default=True, help="A cut-off date, or pooled.")
def backtest_table(output: Path, cutoff: str) -> None:
    """Print a backtest's headline tables as markdown (for the README)."""
    from pipeline.backtest import markdown_summary

    try:
        click.echo(markdown_summary(output, cutoff=cutoff))
    except (OSError, KeyError) as error:
        console.print(
            f"[bold red]error:[/] {output}: not a backtest output folder ({error})",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_BAD_INPUT)


def _print_backtest_runs(*, tracking_uri: str | None, experiment: str, last: int) -> None:
    """`loyalty runs`: the backtest runs, newest first, with their pooled headline figures."""
    from pipeline.tracking import backtest_runs

    table = backtest_runs(tracking_uri=tracking_uri, experiment=experiment, max_runs=last)
    if table.empty:
        return
    columns = [
        "run_id",
        "started",
        "cutoffs",
        "horizon_days",
        "project.roc_auc",
        "last_period_again.roc_auc",
        "project.spend_gini",
        "last_period_again.spend_gini",
        "project.spend_aggregate_error_pct",
    ]
    out = Table(title=f"Backtest runs in '{experiment}'", title_justify="left")
    for column in columns:
        out.add_column(column, justify="left" if column in {"run_id", "cutoffs"} else "right")
    for row in table.to_dict("records"):
        row["run_id"] = row["run_id"][:12]
        out.add_row(*(_format(row[c]) for c in columns))
    _stdout().print(out)


def _compare_backtests(
    run_ids: tuple[str, ...], *, last: int, tracking_uri: str | None, experiment: str
) -> tuple[str, ...] | None:
    """`loyalty compare`: print the backtest runs side by side (the ids given that name one, or
    the last N); return the ids left for training runs (``()``: none left, None: the last N)."""
    from pipeline.tracking import backtest_runs

    table = backtest_runs(
        tracking_uri=tracking_uri,
        experiment=experiment,
        max_runs=last,
        run_ids=list(run_ids) or None,
    )
    if not table.empty:
        out = Table(title="Backtest runs side by side", title_justify="left")
        out.add_column("")
        for row in table.itertuples():
            out.add_column(row.run_id[:12], justify="right")
        for column in table.columns.drop("run_id"):
            out.add_row(column, *(_format(value) for value in table[column]))
        _stdout().print(out)
    if not run_ids:
        return None
    found = list(table["run_id"]) if not table.empty else []
    return tuple(i for i in run_ids if not any(r.startswith(i) for r in found))


if __name__ == "__main__":
    main()
