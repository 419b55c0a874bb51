"""Shared fixtures: small data made on the fly, never the working directory."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import ClusteringConfig, CLVConfig, Config, EngineConfig, FeatureConfig
from pipeline.engine import Engine, connect
from pipeline.features import CustomerHistory
from pipeline.model import TrainingResult
from pipeline.schema import clean_transactions
from pipeline.synthetic import generate_transactions


def _shared_data() -> Path:
    """The real data sets: $LOYALTY_SHARED_DATA, else ``shared/data`` beside the checkout or
    beside one of its parent folders (a clone in a subfolder still finds them)."""
    if os.environ.get("LOYALTY_SHARED_DATA"):
        return Path(os.environ["LOYALTY_SHARED_DATA"])
    project = Path(__file__).resolve().parents[1]
    for folder in project.parents:
        candidate = folder / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return project.parent / "shared" / "data"


SHARED_DATA = _shared_data()


def transactions(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """A clean transactions frame from (customer, timestamp, amount) tuples."""
    frame = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="ISO8601")
    frame["customer_id"] = frame["customer_id"].astype("string")
    return frame


@pytest.fixture
def six_rows() -> pd.DataFrame:
    """Three customers, as in lifetimes' own tests: one buys three times (two on one day)."""
    return transactions(
        [
            ("a", "2024-01-01 09:00", 10.0),
            ("a", "2024-01-11 10:00", 20.0),
            ("a", "2024-01-11 18:00", 5.0),
            ("a", "2024-01-31 12:00", 30.0),
            ("b", "2024-01-21 08:00", 7.0),
            ("c", "2024-01-02 08:00", 50.0),
        ]
    )


@pytest.fixture(scope="session")
def engine() -> Engine:
    """One embedded feature engine for the session's tests."""
    with connect(EngineConfig()) as opened:
        yield opened


def history_of(engine: Engine, frame: pd.DataFrame) -> CustomerHistory:
    """Clean transactions on the engine, with the default feature settings."""
    return CustomerHistory.from_frames(engine, frame, settings=FeatureConfig())


def spark_missing() -> str | None:
    """Why Spark cannot run here (None when it can): Spark is an optional engine, installed by
    ``make setup-spark``, and needs PySpark and a Java runtime."""
    if importlib.util.find_spec("pyspark") is None:
        return "PySpark is not installed (Spark is optional: make setup-spark)"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").exists()):
        return "no Java runtime on PATH or in JAVA_HOME (Spark needs Java 17: make setup-spark)"
    return None


@pytest.fixture(scope="module")
def spark():
    """A local Spark engine for a module's tests, or a skip naming what is absent."""
    reason = spark_missing()
    if reason is not None:
        pytest.skip(reason)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with connect(EngineConfig(name="spark", spark_master="local[2]")) as opened:
        yield opened


def cheap_config(**update) -> Config:
    """A config whose fit takes seconds, for tests that need *a* fitted result rather than a
    good one: k searched over three values with two bootstraps, one k-means start, no
    seed-stability refit, and BG/NBD against the naive rule only. Model quality is the model
    tests' business, on full configs."""
    config = Config(
        clustering=ClusteringConfig(
            k_range=(4, 6), n_init=1, stability_bootstraps=2, check_seed_stability=False
        ),
        clv=CLVConfig(candidates=("bgnbd",)),
    )
    return config.model_copy(update=update)


@pytest.fixture(scope="session")
def cheap_result() -> TrainingResult:
    """One quick fit on 800 planted customers, shared by every test that only reads a result."""
    from pipeline.train import fit_segmentation

    transactions, _ = generate_transactions(800, random_state=5)
    config = cheap_config()
    return fit_segmentation(clean_transactions(transactions, data=config.data, source="t"), config)


# -- the fast lane ------------------------------------------------------------------------------
# `make test-fast` passes --cheap-fits: the model tests then fit with cheap_config's settings
# (k searched over three values, one k-means start, BG/NBD only) instead of the shipped ones, and
# must still meet the same thresholds. `make test` (and CI) fits with the shipped config.
CHEAP_FITS = {"enabled": False}


def pytest_addoption(parser):
    parser.addoption(
        "--cheap-fits",
        action="store_true",
        help="model tests fit with cheap settings (the fast lane); the full suite does not",
    )


def pytest_configure(config):
    CHEAP_FITS["enabled"] = bool(config.getoption("--cheap-fits"))


def pytest_collection_modifyitems(config, items):
    # Every test that starts a Spark session (through the spark fixture) is marked: the fast
    # lane leaves them out (a JVM start per module), the full suite runs or skips them.
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)


def model_config(**fields) -> Config:
    """The shipped config (with ``fields``), or its cheap form in the fast lane."""
    config = Config(**fields)
    if not CHEAP_FITS["enabled"]:
        return config
    cheap = cheap_config()
    return config.model_copy(update={"clustering": cheap.clustering, "clv": cheap.clv})
