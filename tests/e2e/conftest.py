"""Helpers of the end-to-end tests: a small config, the command line in process, a tracking
store beside each test's files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main


def small_config(tmp_path: Path, extra: str = "") -> Path:
    """The default config on a smaller embedded sample, everything inside tmp_path."""
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
output: {tmp_path / "out"}
model_path: {tmp_path / "models" / "bundle.joblib"}
history_path: {tmp_path / "history.parquet"}
embedded: {{n_customers: 1500, directory: {tmp_path / "embedded"}}}
clustering: {{n_init: 3}}
{extra}
"""
    )
    return path


def run_cli(args: list[str]):
    """``loyalty ARGS`` in this process; exceptions propagate (a traceback is a failure)."""
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)  # mlartifacts/ lands beside the temporary store
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
