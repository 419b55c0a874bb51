"""Credentials in URIs are replaced by *** wherever text is recorded or printed."""

from __future__ import annotations

import io
import logging

import pytest

from pipeline.config import Config
from pipeline.model import SegmentationModel
from pipeline.redact import (
    RedactingConsole,
    RedactingFilter,
    redact,
    redact_values,
    redacted_config,
)

SECRET_URI = "https://bob:hunter2@mlflow.example.com:8443/api?x=1&access_token=t0ps3cret"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://bob:hunter2@host:5000", "http://***@host:5000"),
        ("postgresql+psycopg2://u:p%40ss@db/mlflow", "postgresql+psycopg2://***@db/mlflow"),
        ("https://ghp_abc123@host/repo", "https://***@host/repo"),
        ("https://host/a.csv?sv=2024&sig=AbC%2B&se=1", "https://host/a.csv?sv=2024&sig=***&se=1"),
        ("s3://bucket/k.parquet?X-Amz-Signature=ff00", "s3://bucket/k.parquet?X-Amz-Signature=***"),
        ("https://host/x?api_key=k1&password=p", "https://host/x?api_key=***&password=***"),
        (
            f"cannot reach {SECRET_URI}: refused",
            "cannot reach https://***@mlflow.example.com:8443/api?x=1&access_token=***: refused",
        ),
    ],
)
def test_credentials_in_a_uri_become_stars(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///mlflow.db",
        "http://127.0.0.1:5000",
        "/home/ann@corp/sales.csv",  # an @ in a path is not user-info: there is no scheme
        "data/sales.csv",
        "k=5 clusters, as_of=2025-12-31",
        "ann@example.com wrote the config",
    ],
)
def test_text_without_credentials_is_unchanged(text):
    assert redact(text) == text


def test_run_params_keep_their_keys_and_lose_only_the_secret():
    params = redact_values({"tracking.tracking_uri": SECRET_URI, "seed": "42", "k": 5})
    assert params["seed"] == "42" and params["k"] == 5
    assert "hunter2" not in params["tracking.tracking_uri"]
    assert "t0ps3cret" not in params["tracking.tracking_uri"]
    assert params["tracking.tracking_uri"].startswith("https://***@mlflow.example.com")


def test_a_bundle_never_stores_the_credential_of_its_config():
    config = Config.model_validate(
        {
            "tracking": {"tracking_uri": SECRET_URI},
            "data": {"transactions": "https://h/s.csv?token=x9"},
        }
    )
    bundle = SegmentationModel(
        config=config,
        trained_as_of=None,
        prior_gap_days=1.0,
        clusterer=None,
        value_model=None,
        labeler=None,
    )
    stored = bundle.config.model_dump_json()
    assert "hunter2" not in stored and "t0ps3cret" not in stored and "x9" not in stored
    assert bundle.config.data.transactions == "https://h/s.csv?token=***"
    # everything else is the config as given
    assert (
        bundle.config.model_copy(update={"tracking": config.tracking, "data": config.data})
        == config
    )


def test_a_config_without_credentials_is_kept_as_it_is():
    config = Config()
    assert redacted_config(config) is config


def test_log_lines_and_their_tracebacks_are_redacted():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    try:
        logger.warning("connecting to %s", SECRET_URI)
        try:
            raise ConnectionError(f"refused by {SECRET_URI}")
        except ConnectionError:
            logger.exception("tracking failed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "connecting to https://***@mlflow.example.com" in written
    assert "ConnectionError: refused by https://***@" in written
    assert "hunter2" not in written and "t0ps3cret" not in written


def test_error_lines_printed_by_the_command_line_are_redacted():
    out = io.StringIO()
    RedactingConsole(file=out, width=200).print(f"[bold red]error:[/] cannot reach {SECRET_URI}")
    assert out.getvalue().startswith("error: cannot reach https://***@mlflow.example.com")
    assert "hunter2" not in out.getvalue()
