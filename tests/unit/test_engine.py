"""One definition of every feature, two engines: on the same data they give the same features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import EngineConfig, FeatureConfig
from pipeline.engine import connect
from pipeline.features import CustomerHistory
from pipeline.synthetic import generate_transactions

AS_OF = pd.Timestamp("2025-12-31")


@pytest.fixture(scope="module")
def lines() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The planted sample with basket columns, and some return lines."""
    tx, _ = generate_transactions(600, as_of=AS_OF, random_state=5)
    rng = np.random.default_rng(5)
    tx = tx.astype({"customer_id": "string"}).assign(
        quantity=rng.integers(1, 6, len(tx)).astype("float64"),
        product=pd.Series(rng.choice(list("abcdefgh"), len(tx)), dtype="string"),
        invoice=pd.Series(np.arange(len(tx)) // 2, dtype="string"),
        discount=np.round(rng.uniform(0, 3, len(tx)), 2),
    )
    returned = tx.sample(40, random_state=5)[["customer_id", "timestamp", "amount"]]
    returns = returned.assign(timestamp=returned["timestamp"] + pd.Timedelta(days=3))
    return tx, returns.sort_values(["customer_id", "timestamp"]).reset_index(drop=True)


def test_spark_and_duckdb_give_identical_features_at_every_cut_off(spark, engine, lines):
    tx, returns = lines
    settings = FeatureConfig(activity_windows_days=(30, 90))
    on_duckdb = CustomerHistory.from_frames(engine, tx, settings=settings, returns=returns)
    on_spark = CustomerHistory.from_frames(spark, tx, settings=settings, returns=returns)
    for cut in (AS_OF, AS_OF - pd.Timedelta(days=180)):
        expected = on_duckdb.features(cut)
        assert {"items_per_order", "distinct_products", "discount_share", "return_rate"} <= set(
            expected.columns
        )
        pd.testing.assert_frame_equal(on_spark.features(cut), expected, check_exact=True)
    customers = on_duckdb.features(AS_OF)["customer_id"]
    start, end = AS_OF - pd.Timedelta(days=180), AS_OF
    for got, want in zip(
        on_spark.purchases_between(customers, start=start, end=end),
        on_duckdb.purchases_between(customers, start=start, end=end),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)
    assert on_spark.first_day() == on_duckdb.first_day()


@pytest.fixture(scope="module")
def events(lines) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean loyalty events and campaign interactions for part of the sample's customers.

    Points with cents and events around the cut-offs; campaigns with and without ids,
    timestamps and channels, and channel ties, so every branch of the features is compared.
    """
    tx, _ = lines
    rng = np.random.default_rng(7)
    customers = tx["customer_id"].drop_duplicates().sample(400, random_state=7).to_numpy()
    # Plus members who never bought: both engines must leave them out.
    members = np.concatenate([customers, ["never-1", "never-2"]])
    n = 3000
    when = AS_OF - pd.to_timedelta(rng.integers(-30, 720, n), unit="D")
    earning = rng.random(n) < 0.7
    points = np.round(rng.uniform(0, 500, n), 2)
    loyalty = pd.DataFrame(
        {
            "customer_id": pd.Series(rng.choice(members, n), dtype="string"),
            "timestamp": (when + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")).astype(
                "datetime64[ns]"
            ),
            "points_earned": np.where(earning, points, 0.0),
            "points_redeemed": np.where(earning, 0.0, points),
        }
    )
    m = 4000
    campaign_ids = pd.Series(rng.choice([f"c{i}" for i in range(12)], m), dtype="string")
    channels = pd.Series(rng.choice(["email", "sms", "app"], m), dtype="string")
    stamps = pd.Series(AS_OF - pd.to_timedelta(rng.integers(-30, 400, m), unit="D"))
    campaigns = pd.DataFrame(
        {
            "customer_id": pd.Series(rng.choice(members, m), dtype="string"),
            "timestamp": stamps.mask(rng.random(m) < 0.2).astype("datetime64[ns]"),
            "campaign_id": campaign_ids.mask(rng.random(m) < 0.1),
            "channel": channels.mask(rng.random(m) < 0.15),
            "event": pd.Series(
                rng.choice(["sent", "sent", "opened", "clicked", "converted"], m), dtype="string"
            ),
        }
    )
    return loyalty, campaigns


def test_spark_and_duckdb_give_identical_loyalty_and_campaign_features(
    spark, engine, lines, events
):
    tx, returns = lines
    loyalty, campaigns = events
    settings = FeatureConfig(recent_window_days=90)
    histories = [
        CustomerHistory.from_frames(
            opened, tx, settings=settings, returns=returns, loyalty=loyalty, campaigns=campaigns
        )
        for opened in (engine, spark)
    ]
    for cut in (AS_OF, AS_OF - pd.Timedelta(days=180)):
        expected = histories[0].features(cut)
        assert {"points_balance_trend", "preferred_channel", "top_product"} <= set(expected.columns)
        # the sample exercises the branches: ties, missing rates, null channels
        assert (
            expected["preferred_channel"].notna().any()
            and expected["preferred_channel"].isna().any()
        )
        assert (
            expected["redemption_rate"].notna().any() and expected["redemption_rate"].isna().any()
        )
        pd.testing.assert_frame_equal(histories[1].features(cut), expected, check_exact=True)


def test_both_engines_read_the_same_parquet_and_csv_files_into_the_same_features(
    spark, engine, lines, tmp_path
):
    tx, _ = lines
    parquet, csv = tmp_path / "lines.parquet", tmp_path / "lines.csv"
    # Spark reads microsecond timestamps only (pandas writes nanoseconds unless told).
    tx[["customer_id", "timestamp", "amount"]].to_parquet(
        parquet, index=False, coerce_timestamps="us"
    )
    tx[["customer_id", "timestamp", "amount"]].to_csv(csv, index=False)
    settings = FeatureConfig()
    expected = CustomerHistory.from_frames(
        engine, tx[["customer_id", "timestamp", "amount"]], settings=settings
    ).features(AS_OF)
    for opened in (engine, spark):
        for path in (parquet, csv):
            table = opened.read(path)
            table = table.mutate(
                customer_id=table.customer_id.cast("string"),
                timestamp=table.timestamp.cast("timestamp"),
            )
            got = CustomerHistory.from_table(opened, table, settings=settings).features(AS_OF)
            pd.testing.assert_frame_equal(
                got, expected, check_exact=True, obj=f"{opened.name} {path.name}"
            )


def test_spark_is_an_optional_extra_and_the_default_install_has_no_pyspark():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "pyspark" in d or "spark" in d.lower()]
    assert any("pyspark" in d for d in project["optional-dependencies"]["spark"])


def test_training_code_runs_on_the_default_engine_with_pyspark_unimportable():
    import subprocess
    import sys

    # None in sys.modules makes every `import pyspark` fail, as on a machine without the extra.
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "import pipeline.cli, pipeline.train, pipeline.score, pipeline.distributed\n"
        "from pipeline.config import EngineConfig\n"
        "from pipeline.engine import connect\n"
        "with connect(EngineConfig()) as engine:\n"
        "    assert engine.name == 'duckdb'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_spark_without_pyspark_says_what_to_install(monkeypatch):
    import sys

    from pipeline.errors import ConfigError

    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(ConfigError, match="make setup-spark"), connect(EngineConfig(name="spark")):
        pass


def test_spark_without_java_says_so_before_starting_a_gateway(monkeypatch, tmp_path):
    import sys
    import types

    from pipeline.errors import ConfigError

    fake = types.ModuleType("pyspark.sql")
    fake.SparkSession = object  # never reached: the Java check comes first
    monkeypatch.setitem(sys.modules, "pyspark", types.ModuleType("pyspark"))
    monkeypatch.setitem(sys.modules, "pyspark.sql", fake)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ConfigError, match="no Java runtime"), connect(EngineConfig(name="spark")):
        pass
