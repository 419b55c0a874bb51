"""Helpers of the end-to-end tests: a small config, the command line in process, a tracking
store beside each test's files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main


def small_config(
    tmp_path: Path, extra: str = "", *, n_customers: int = 1500, clustering: str = "{n_init: 3}"
) -> Path:
    """The default config on a smaller embedded sample, everything inside tmp_path."""
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
output: {tmp_path / "out"}
model_path: {tmp_path / "models" / "bundle.joblib"}
history_path: {tmp_path / "history.parquet"}
embedded: {{n_customers: {n_customers}, directory: {tmp_path / "embedded"}}}
clustering: {clustering}
{extra}
"""
    )
    return path


def quick_config(tmp_path: Path, extra: str = "") -> Path:
    """A config whose training takes seconds, for tests of what happens around a fit
    (publication, kills, idempotency), not of the model: 700 customers, k searched over three
    values, one k-means start, no seed-stability refit, BG/NBD against the naive rule."""
    return small_config(
        tmp_path,
        "clv: {candidates: [bgnbd]}\n" + extra,
        n_customers=700,
        clustering="{n_init: 1, k_range: [4, 6], stability_bootstraps: 2, "
        "check_seed_stability: false}",
    )


def run_cli(args: list[str]):
    """``loyalty ARGS`` in this process; exceptions propagate (a traceback is a failure)."""
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)  # mlartifacts/ lands beside the temporary store
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
