"""A file cleaned from disk, partition by partition, comes out as the whole file cleaned in memory."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import io, streaming
from pipeline.config import Config, DataConfig
from pipeline.errors import InputError
from pipeline.schema import clean_transactions
from pipeline.streaming import clean_streaming, streams
from pipeline.synthetic import generate_transactions
from pipeline.train import fit_segmentation
from tests.unit.conftest import RETAIL, look_alike_ids_file, retail

AS_OF = pd.Timestamp("2025-12-31")


@pytest.fixture
def small_partitions(monkeypatch):
    # A handful of rows per partition, so that a small file spreads over several.
    monkeypatch.setattr(streaming, "ROWS_PER_PARTITION", 3)


def in_memory(path, data: DataConfig, as_of=None):
    raw = io.read_table(str(path), string_columns=(data.columns.customer_id,))
    return clean_transactions(raw, data=data, source=str(path), as_of=as_of)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["customer_id", "timestamp", "amount"], kind="mergesort").reset_index(
        drop=True
    )


@pytest.mark.parametrize("as_of", [None, pd.Timestamp("2024-01-03")])
def test_a_file_cleaned_from_disk_gives_what_cleaning_it_in_memory_gives(
    tmp_path, small_partitions, as_of
):
    path = tmp_path / "retail.csv"
    pd.concat([retail(), retail().iloc[[0, 5]]], ignore_index=True).to_csv(path, index=False)
    data = RETAIL.model_copy(update={"duplicates": "quarantine"})
    expected = in_memory(path, data, as_of)
    got = clean_streaming(str(path), data=data, as_of=as_of)
    assert len(list((got.folder / "raw").iterdir())) > 1  # it really was split
    assert (got.as_of, got.rows_in, got.rows_used) == (
        expected.as_of,
        expected.rows_in,
        len(expected.transactions),
    )
    assert got.counts_by_reason() == expected.counts_by_reason()
    assert got.rows_quarantined == len(expected.quarantine)
    lines = pd.read_parquet(got.folder / "lines").astype({"customer_id": "string"})
    pd.testing.assert_frame_equal(
        canonical(lines), canonical(expected.transactions), check_dtype=False
    )
    returns = pd.read_parquet(got.folder / "returns").astype({"customer_id": "string"})
    pd.testing.assert_frame_equal(
        canonical(returns), canonical(expected.returns), check_dtype=False
    )
    got.write_quarantine(tmp_path / "streamed.csv")
    expected.write_quarantine(tmp_path / "in_memory.csv")
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "streamed.csv", dtype=str),
        pd.read_csv(tmp_path / "in_memory.csv", dtype=str),
    )


def test_the_first_problem_of_the_file_is_told_with_every_partition_counted(
    tmp_path, small_partitions
):
    path = tmp_path / "bad.csv"
    rows = [["a", "2024-01-01", "1"], ["b", "2024-01-02", "-3"], ["c", "2024-01-03", "-4"]]
    rows += [[f"x{i}", "2024-01-04", "-1"] for i in range(20)] + [["e", "yesterday", "5"]]
    pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).to_csv(path, index=False)
    for clean in (
        lambda: in_memory(path, DataConfig()),
        lambda: clean_streaming(str(path), data=DataConfig()),
    ):
        with pytest.raises(InputError) as caught:
            clean()
        assert str(caught.value).startswith(
            f"{path}, column 'amount', row 2: negative amount -3 (22 such rows)"
        )


def test_a_customer_spelt_two_ways_stays_in_one_partition(tmp_path, small_partitions):
    # Parquet files with missing ids store them as floats: 12346.0 is customer 12346.
    frame = pd.DataFrame(
        {
            "customer_id": [12346.0, None, 12346.0, 777.0, 12346.0, 777.0],
            "timestamp": pd.to_datetime([f"2024-01-0{d}" for d in range(1, 7)]),
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    path = tmp_path / "ids.parquet"
    frame.to_parquet(path, index=False)
    got = clean_streaming(str(path), data=DataConfig())
    lines = pd.read_parquet(got.folder / "lines")
    assert sorted(lines["customer_id"].unique()) == ["12346", "777"]
    assert got.counts_by_reason() == {"missing_customer_id": 1}


def test_training_on_a_file_cleaned_from_disk_gives_the_same_segments(tmp_path, monkeypatch):
    # 600 planted customers buy about 13 times each: a few partitions
    monkeypatch.setattr(streaming, "ROWS_PER_PARTITION", 2_000)
    transactions, _ = generate_transactions(600, as_of=AS_OF, random_state=3)
    path = tmp_path / "transactions.csv"
    transactions.to_csv(path, index=False)
    config = Config.model_validate(
        {"clustering": {"k_range": [10, 11], "n_init": 2, "check_seed_stability": False}}
    )
    expected = fit_segmentation(in_memory(path, config.data), config)
    got = fit_segmentation(clean_streaming(str(path), data=config.data), config)
    pd.testing.assert_frame_equal(got.segments, expected.segments, check_exact=True)


def test_only_files_larger_than_the_threshold_are_cleaned_from_disk(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("customer_id,timestamp,amount\na,2024-01-01,1\n")
    assert streams(str(path), DataConfig(stream_above_mb=0))
    assert not streams(str(path), DataConfig())  # 1 GiB by default
    assert not streams(str(path), DataConfig(stream_above_mb=None))
    assert not streams("lifetimes:cdnow", DataConfig(stream_above_mb=0))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "customer_id,when,amount\na,2024-01-01,1\n",
            "column 'timestamp': required column missing",
        ),
        ("customer_id,timestamp,amount\n", "the file has a header but no rows"),
        ("customer_id,timestamp,amount\na,2024-01-01,1\nb,yesterday,2\n", "row 2: cannot read"),
        ("customer_id,timestamp,amount\na,2024-01-01,1\n\udcff\udcfe,2,3\n", "cannot be read"),
    ],
)
def test_bad_files_are_told_in_one_line_as_in_memory(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))  # the last: invalid UTF-8
    with pytest.raises(InputError, match=expected) as caught:
        clean_streaming(str(path), data=DataConfig())
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_a_header_naming_a_column_twice_is_refused_from_disk_as_in_memory(tmp_path):
    # DuckDB would read the second one as amount_1 and use the first without a word
    path = tmp_path / "t.csv"
    path.write_text("customer_id,timestamp,amount,amount\na,2024-01-01,1,2\n")
    with pytest.raises(InputError) as on_disk:
        clean_streaming(str(path), data=DataConfig())
    with pytest.raises(InputError) as in_memory:
        io.read_table(str(path))
    assert str(on_disk.value) == str(in_memory.value)
    assert "column 'amount'" in str(on_disk.value) and "more than once" in str(on_disk.value)


def test_a_nul_byte_in_an_id_is_refused_from_disk_naming_its_row(tmp_path):
    # a NUL would otherwise cut C1\0X short to C1: a phantom customer
    path = tmp_path / "t.csv"
    path.write_bytes(b"customer_id,timestamp,amount\nb,2024-01-01,1\nC1\0X,2024-01-02,2\n")
    with pytest.raises(InputError, match=r"row 2.*control character"):
        clean_streaming(str(path), data=DataConfig())


def test_look_alike_ids_meet_in_one_partition_and_are_told_once_as_in_memory(
    tmp_path, small_partitions, caplog
):
    # Keyed by the raw text, the three spellings of CUS1 would be cleaned in different
    # partitions, and no partition would see two of them to warn about.
    path = look_alike_ids_file(tmp_path / "ids.csv")
    data = DataConfig()
    expected = in_memory(path, data)
    told_in_memory = [r.getMessage() for r in caplog.records if "normalised" in r.getMessage()]
    caplog.clear()
    got = clean_streaming(str(path), data=data)
    told_from_disk = [r.getMessage() for r in caplog.records if "normalised" in r.getMessage()]
    lines = pd.read_parquet(got.folder / "lines")
    pd.testing.assert_frame_equal(
        canonical(lines), canonical(expected.transactions), check_dtype=False
    )
    raw_parts = [pd.read_parquet(part) for part in sorted((got.folder / "raw").iterdir())]
    assert len(raw_parts) > 5
    holding = [p for p in raw_parts if p["customer_id"].str.contains("CUS|ＣＵＳ").any()]
    assert len(holding) == 1 and holding[0]["customer_id"].str.contains("CUS|ＣＵＳ").sum() == 3
    assert told_from_disk == told_in_memory
    assert len(told_in_memory) == 1 and ": 2 ids became the same" in told_in_memory[0]
