"""The command line: ``loyalty train`` (also ``python -m pipeline train``).

Exit codes: 0 success; 2 bad input or configuration (one line on stderr, nothing written);
1 an unexpected failure (a bug: the traceback is kept).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pipeline.config import DEFAULT_CONFIG_PATH, load_config
from pipeline.errors import UserFacingError

EXIT_BAD_INPUT = 2
STAGE_LABELS = {
    "data": "Reading and validating transactions",
    "features": "Building customer features",
    "clustering": "Clustering customers",
    "clv": "Fitting BG/NBD + Gamma-Gamma",
    "labeling": "Naming statuses",
    "outputs": "Writing outputs and plots",
    "tracking": "Logging to MLflow",
}

console = Console(stderr=True)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", module="mlflow")


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyalty-segmentation")
def main() -> None:
    """Segment customers by loyalty status from their transactions."""


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="YAML configuration; the flags below override it.",
)
@click.option(
    "--transactions",
    type=str,
    default=None,
    help="CSV or Parquet file of transactions. Default: the embedded planted sample.",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Observation end YYYY-MM-DD; later transactions are set aside and counted.",
)
@click.option(
    "--horizon-days", type=click.IntRange(min=1), default=None, help="Forecast horizon in days."
)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Output directory.")
@click.option("--seed", type=int, default=None, help="Random seed of every fitted stage.")
@click.option(
    "--tracking-uri",
    type=str,
    default=None,
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).",
)
@click.option("--no-tracking", is_flag=True, help="Do not log to MLflow.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def train(
    config_path: Path,
    transactions: str | None,
    as_of,
    horizon_days: int | None,
    output: Path | None,
    seed: int | None,
    tracking_uri: str | None,
    no_tracking: bool,
    verbose: bool,
) -> None:
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
            },
        )
        from pipeline.train import run_training  # heavy imports only once the config is known good

        # Third-party chatter that says nothing about the user's run (set after the import:
        # mlflow configures its own loggers when imported).
        for noisy in ("alembic", "mlflow", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)

        with console.status("Starting") as status:
            outcome = run_training(
                config, on_stage=lambda name: status.update(STAGE_LABELS.get(name, name))
            )
    except UserFacingError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)

    result = outcome.result
    out = Console()
    out.print(_summary_table(result.summary, result.metrics))
    metrics = result.metrics
    lines = [
        f"customers: {int(metrics['customers']):,}   rows used: {int(metrics['rows_used']):,}   "
        f"rows set aside: {int(metrics['rows_quarantined']):,} (see quarantine.csv)",
        f"as of {config.as_of or result.segments['as_of'].iloc[0].date()}, horizon {config.horizon_days} days, "
        f"seed {config.seed}",
    ]
    if "planted_macro_f1" in metrics:
        lines.append(f"planted statuses recovered: macro-F1 {metrics['planted_macro_f1']:.3f}")
    lines.append(f"outputs: {outcome.output}/   model: {config.model_path}")
    if outcome.run_id:
        lines.append(
            f"MLflow run {outcome.run_id}, model version {outcome.model_version} (make ui to browse)"
        )
    lines.append(f"done in {time.perf_counter() - started:.1f} s")
    for line in lines:
        out.print(line, highlight=False)


if __name__ == "__main__":
    main()
