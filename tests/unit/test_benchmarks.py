from __future__ import annotations

import pytest

from pipeline import benchmarks
from pipeline.benchmarks import parse_sizes, train_summary


def test_sizes_read_with_k_and_m_suffixes():
    assert parse_sizes("100k,1m,10M, 2500") == (100_000, 1_000_000, 10_000_000, 2_500)
    with pytest.raises(SystemExit, match="'lots' is not a row count"):
        parse_sizes("lots")


def test_the_train_summary_states_shares_and_ratios_against_targets_and_the_notebook():
    results = {
        ("train", 1_000_000): {
            "seconds": 40.0,
            "stages": {"data": 4.0, "clustering": 20.0, "clv": 16.0},
            "customers": 190_000,
            "chosen": "k=12",
            "peak_rss_gib": 1.5,
        },
        ("notebook", 1_000_000): {
            "seconds": 10.0,
            "stages": {"read": 1.0, "kmeans": 9.0},
            "peak_rss_gib": 0.5,
        },
    }
    text = "\n".join(train_summary(results, load=("load 1", "load 2")))
    assert "clustering 50% (20.0 s)" in text
    assert "largest stage clustering: 50% of the total, 1.25x the 40% ceiling (over)" in text
    assert "time target 20 s: 2.00x the target (not met)" in text
    assert "train takes 4.00x its time and 3.00x its memory" in text


@pytest.mark.slow
def test_the_value_stage_case_runs_on_inputs_made_as_train_makes_them(tmp_path, monkeypatch):
    # The case once built its features without the activity windows train adds, and its
    # forecast stopped with "learned value model needs columns ...": a bench that cannot run
    # measures nothing.
    monkeypatch.setattr(benchmarks, "CACHE", tmp_path)
    figures = benchmarks.case_clv(1500)
    assert figures["customers"] == 1500
    assert figures["seconds"] > 0 and figures["window_seconds"] > 0
    assert figures["chosen"] in {"bgnbd", "pareto_nbd", "mbgnbd", "nbd", "learned", "last_period"}


def test_a_bench_file_of_n_rows_is_whole_customers_over_the_whole_history(tmp_path, monkeypatch):
    # It was once the first n lines in time order: the smaller files ended months before the
    # as-of date, and the value stage was timed on a base where nobody had bought for a year.
    import pandas as pd

    monkeypatch.setattr(benchmarks, "CHUNK_CUSTOMERS", 400)
    monkeypatch.setattr(benchmarks, "CACHE", tmp_path)
    lines = pd.read_parquet(benchmarks.transactions_file(2000))
    assert len(lines) == 2000
    assert lines["timestamp"].is_monotonic_increasing
    assert lines["timestamp"].max() >= benchmarks.AS_OF - pd.Timedelta(days=31)
    assert lines["customer_id"].nunique() < 400  # whole customers, not every customer's first lines
