"""The optional tables end to end: `train` reads them, `score` reads them again from the bundle's
config, and a table that is not configured is simply skipped."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.features import CAMPAIGN_FEATURES, LOYALTY_FEATURES
from pipeline.ingest import prepare_embedded_sample
from tests.e2e.conftest import small_config


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_tables(tmp_path: Path) -> dict[str, Path]:
    """A points ledger (long layout), a send list and a response log for the embedded sample's
    customers, plus members who never bought and rows without a customer."""
    prepare_embedded_sample(load_config(small_config(tmp_path)))
    ids = pd.read_csv(tmp_path / "embedded" / "planted_truth.csv", dtype={"customer_id": "string"})[
        "customer_id"
    ]
    rng = np.random.default_rng(11)
    members = np.concatenate([ids.to_numpy(), ["never-a", "never-b"]])
    n = 5000
    days = pd.Timestamp("2025-12-31") - pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    ledger = pd.DataFrame(
        {
            "member": rng.choice(members, n),
            "booked": days.strftime("%d/%m/%Y"),
            "kind": rng.choice(["EARN", "earn", "REDEEM", "expiry"], n),
            "points": rng.integers(1, 400, n),
        }
    )
    ledger.loc[7, "member"] = None
    sends = pd.DataFrame(
        {"member": rng.choice(members, 3000), "campaign": rng.choice(list("ABCDEF"), 3000)}
    )
    responses = pd.DataFrame(
        {
            "member": rng.choice(members, 2000),
            "campaign": rng.choice(list("ABCDEF"), 2000),
            "channel": rng.choice(["email", "sms"], 2000),
            "what": rng.choice(["open", "click", "order"], 2000),
            "at": (pd.Timestamp("2025-12-31") - pd.to_timedelta(rng.integers(0, 300, 2000), "D"))
            .strftime("%Y-%m-%d")
            .to_numpy(),
        }
    )
    responses.loc[[3, 4], "member"] = None
    paths = {
        "ledger": tmp_path / "ledger.csv",
        "sends": tmp_path / "sends.parquet",
        "responses": tmp_path / "responses.csv",
    }
    ledger.to_csv(paths["ledger"], index=False)
    sends.to_parquet(paths["sends"], index=False)
    responses.to_csv(paths["responses"], index=False)
    return paths


def tables_config(tmp_path: Path, paths: dict[str, Path]) -> Path:
    return small_config(
        tmp_path,
        f"""
data:
  loyalty_events:
    path: {paths["ledger"]}
    columns: {{customer_id: member, timestamp: booked, points: points, event_type: kind}}
    event_values: {{earned: [earn], redeemed: [redeem], ignored: [expiry]}}
    timestamp_format: "%d/%m/%Y"
  campaigns:
    - {{path: {paths["sends"]}, columns: {{customer_id: member, campaign_id: campaign}}, event: sent}}
    - path: {paths["responses"]}
      columns: {{customer_id: member, campaign_id: campaign, channel: channel, event: what, timestamp: at}}
      event_values: {{opened: [open], clicked: [click], converted: [order]}}
sub_segments:
  - {{name: "loyal, prefers email", statuses: [loyal], when: {{preferred_channel: [email]}}}}
""",
    )


def test_train_joins_the_tables_features_and_score_reads_the_tables_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = write_tables(tmp_path)
    config = tables_config(tmp_path, paths)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("train", "--config", str(config), "--tracking-uri", uri)
    assert result.exit_code == 0, result.output
    assert "loyalty events: rows used" in result.output
    trained = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert len(trained) == 1500  # the members who never bought are not added
    assert {*LOYALTY_FEATURES, *CAMPAIGN_FEATURES} <= set(trained.columns)
    ledger = pd.read_csv(paths["ledger"], dtype={"member": "string"})
    earned = ledger[ledger["kind"].str.lower() == "earn"].groupby("member")["points"].sum()
    got = trained.set_index("customer_id")["points_earned"]
    pd.testing.assert_series_equal(
        got[got > 0], earned.reindex(got.index).dropna().astype("float64"), check_names=False
    )
    prefers_email = (trained["status"] == "loyal") & (trained["preferred_channel"] == "email")
    assert prefers_email.any()
    assert (trained.loc[prefers_email, "sub_segment"] == "loyal, prefers email").all()
    assert trained.loc[~prefers_email, "sub_segment"].isna().all()

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    expiries = int((ledger["kind"] == "expiry").sum() - (ledger.loc[7, "kind"] == "expiry"))
    assert metrics["loyalty_rows_in"] == 5000
    assert metrics["loyalty_set_aside_missing_customer_id"] == 1
    assert metrics["loyalty_set_aside_ignored_event_type"] == expiries
    assert metrics["loyalty_rows_used"] + metrics["loyalty_rows_set_aside"] == 5000
    assert metrics["campaign_rows_in"] == 5000 and metrics["campaign_rows_set_aside"] == 2
    assert (tmp_path / "out" / "data_loyalty_set_aside.csv").exists()

    scored_dir = tmp_path / "scored"
    scored = run_cli(
        "score",
        "--model",
        str(tmp_path / "models" / "bundle.joblib"),
        "--transactions",
        str(tmp_path / "embedded" / "transactions.csv"),
        "--as-of",
        "2025-12-31",
        "--output",
        str(scored_dir),
    )
    assert scored.exit_code == 0, scored.output
    pd.testing.assert_frame_equal(pd.read_parquet(scored_dir / "segments.parquet"), trained)
    scored_metrics = json.loads((scored_dir / "metrics.json").read_text())["metrics"]
    assert scored_metrics["campaign_rows_set_aside"] == 2

    # The registered pyfunc reads the same tables: the same table from raw transactions.
    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model("models:/loyalty-segmentation@champion")
    raw = pd.read_csv(tmp_path / "embedded" / "transactions.csv", dtype={"customer_id": "string"})
    predicted = pyfunc.predict(raw, params={"as_of": "2025-12-31"})
    # (the Parquet file stores times in microseconds: compare values, not resolutions)
    times = {c: trained[c].dtype for c in trained.select_dtypes("datetime").columns}
    pd.testing.assert_frame_equal(predicted.reset_index(drop=True).astype(times), trained)

    # The bundle names its tables: scoring without them is one clear line, exit 2.
    paths["ledger"].rename(tmp_path / "elsewhere.csv")
    missing = run_cli(
        "score",
        "--model",
        str(tmp_path / "models" / "bundle.joblib"),
        "--transactions",
        str(tmp_path / "embedded" / "transactions.csv"),
        "--output",
        str(tmp_path / "scored-again"),
    )
    assert missing.exit_code == 2
    assert f"{paths['ledger']}: file not found. Check data.loyalty_events" in missing.output
    assert not (tmp_path / "scored-again").exists()


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("ledger", "column 'booked', row 1: cannot read"),
        ("responses", "column 'what', row 1: event value 'bounced' is not listed"),
    ],
)
def test_a_bad_table_stops_training_with_one_line_and_nothing_written(tmp_path, broken, expected):
    paths = write_tables(tmp_path)
    frame = pd.read_csv(paths[broken])
    if broken == "ledger":
        frame["booked"] = "2025-12-01"  # ISO, but the config says %d/%m/%Y
    else:
        frame.loc[0, "what"] = "bounced"
    frame.to_csv(paths[broken], index=False)
    result = run_cli("train", "--config", str(tables_config(tmp_path, paths)), "--no-tracking")
    assert result.exit_code == 2
    assert f"{paths[broken]}, {expected}" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "models").exists()
