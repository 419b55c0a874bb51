"""On Spark, the same rules per partition of customers give what pandas gives on the whole file."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import io
from pipeline.config import Config, DataConfig, EngineConfig
from pipeline.distributed import clean_on_spark, read_raw
from pipeline.errors import InputError
from pipeline.schema import clean_transactions
from pipeline.score import run_scoring
from pipeline.synthetic import generate_transactions
from pipeline.train import fit_segmentation
from tests.unit.conftest import RETAIL, look_alike_ids_file, retail

SPARK = EngineConfig(name="spark", spark_master="local[2]")
AS_OF = pd.Timestamp("2025-12-31")


def sorted_lines(frame: pd.DataFrame) -> pd.DataFrame:
    return (
        frame.astype({"customer_id": "string"})
        .sort_values(["customer_id", "timestamp", "amount"], kind="mergesort")
        .reset_index(drop=True)
    )


@pytest.mark.parametrize("as_of", [None, pd.Timestamp("2024-01-03")])
def test_spark_cleans_a_file_as_pandas_does(spark, tmp_path, as_of):
    path = tmp_path / "retail.csv"
    pd.concat([retail(), retail().iloc[[0, 5]]], ignore_index=True).to_csv(path, index=False)
    data = RETAIL.model_copy(update={"duplicates": "quarantine"})
    expected = clean_transactions(
        io.read_table(str(path), string_columns=("cust",)), data=data, source="r.csv", as_of=as_of
    )
    got = clean_on_spark(read_raw(spark.session, str(path)), data=data, source="r.csv", as_of=as_of)
    assert (got.as_of, got.rows_in, got.rows_used) == (
        expected.as_of,
        expected.rows_in,
        len(expected.transactions),
    )
    assert got.counts_by_reason() == expected.counts_by_reason()
    lines = got.lines.toPandas()
    pd.testing.assert_frame_equal(
        sorted_lines(lines), sorted_lines(expected.transactions), check_dtype=False
    )
    pd.testing.assert_frame_equal(
        sorted_lines(got.returns.toPandas()), sorted_lines(expected.returns), check_dtype=False
    )
    # Set-aside rows keep their original columns (as text) and their place in the file.
    assert got.quarantine["source_row"].tolist() == expected.quarantine["source_row"].tolist()
    assert list(got.quarantine.columns) == list(expected.quarantine.columns)
    assert got.quarantine["reason"].tolist() == expected.quarantine["reason"].tolist()


def test_spark_tells_the_first_problem_of_the_file_with_every_partition_counted(spark, tmp_path):
    path = tmp_path / "bad.csv"
    rows = [["a", "2024-01-01", "1"], ["b", "2024-01-02", "-3"], ["c", "2024-01-03", "-4"]]
    rows += [[f"x{i}", "2024-01-04", "-1"] for i in range(20)] + [["e", "yesterday", "5"]]
    pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).to_csv(path, index=False)
    with pytest.raises(InputError) as caught:
        clean_on_spark(read_raw(spark.session, str(path)), data=DataConfig(), source="bad.csv")
    assert str(caught.value).startswith(
        "bad.csv, column 'amount', row 2: negative amount -3 (22 such rows)"
    )


@pytest.mark.parametrize(
    "header",
    ["customer_id,timestamp,amount,amount", 'customer_id,timestamp,amount,"amount"'],
    ids=["plain", "quoted"],  # a header is CSV too: "amount" is amount
)
def test_spark_refuses_a_header_naming_a_column_twice_as_pandas_does(spark, tmp_path, header):
    # Spark would rename the two to amount2 and amount3 and go on
    path = tmp_path / "t.csv"
    path.write_text(f"{header}\na,2024-01-01,1,2\n")
    with pytest.raises(InputError) as on_spark:
        read_raw(spark.session, str(path))
    with pytest.raises(InputError) as in_memory:
        io.read_table(str(path))
    assert str(on_spark.value) == str(in_memory.value)


def test_spark_refuses_a_nul_byte_in_an_id_naming_its_row(spark, tmp_path):
    # a NUL would otherwise cut C1\0X short to C1: a phantom customer
    path = tmp_path / "t.csv"
    path.write_bytes(b"customer_id,timestamp,amount\nb,2024-01-01,1\nC1\0X,2024-01-02,2\n")
    with pytest.raises(InputError, match=r"row 2.*control character"):
        clean_on_spark(read_raw(spark.session, str(path)), data=DataConfig(), source="t.csv")


@pytest.fixture(scope="module")
def planted_file(tmp_path_factory):
    transactions, _ = generate_transactions(700, as_of=AS_OF, random_state=3)
    path = tmp_path_factory.mktemp("planted") / "transactions.csv"
    transactions.to_csv(path, index=False)
    return path


def small(engine: EngineConfig) -> Config:
    return Config.model_validate(
        {
            "engine": engine.model_dump(),
            "clustering": {"k_range": [10, 11], "n_init": 2, "check_seed_stability": False},
            "clv": {"candidates": ["bgnbd", "learned"]},
        }
    )


def test_training_on_spark_gives_the_segment_table_of_training_on_duckdb(spark, planted_file):
    path = str(planted_file)
    data = DataConfig()
    on_duckdb = fit_segmentation(
        clean_transactions(
            io.read_table(path, string_columns=("customer_id",)), data=data, source=path
        ),
        small(EngineConfig()),
    )
    clean = clean_on_spark(read_raw(spark.session, path), data=data, source=path, as_of=None)
    on_spark = fit_segmentation(clean, small(SPARK))
    pd.testing.assert_frame_equal(on_spark.segments, on_duckdb.segments, check_exact=True)
    assert on_spark.metrics["rows_used"] == on_duckdb.metrics["rows_used"]


def test_scoring_on_spark_writes_the_segments_pandas_scoring_writes(spark, planted_file, tmp_path):
    path = str(planted_file)
    model = fit_segmentation(
        clean_transactions(
            io.read_table(path, string_columns=("customer_id",)), data=DataConfig(), source=path
        ),
        small(EngineConfig()),
    ).model
    later = AS_OF + pd.Timedelta(days=30)
    expected = run_scoring(
        model, transactions=path, as_of=later, output=tmp_path / "pandas", engine=EngineConfig()
    )
    got = run_scoring(
        model, transactions=path, as_of=later, output=tmp_path / "spark", engine=SPARK
    )
    written = pd.read_parquet(tmp_path / "spark" / "segments.parquet")
    # Spark writes text as plain strings and times in microseconds: compare in pandas' types.
    written = written.astype(expected.segments.dtypes.to_dict()).reset_index(drop=True)
    pd.testing.assert_frame_equal(written, expected.segments.reset_index(drop=True))
    assert got.customers == len(expected.segments)
    pd.testing.assert_frame_equal(got.summary, expected.summary, check_exact=False, rtol=1e-12)
    assert got.drift == pytest.approx(expected.drift)


def test_spark_cleans_look_alike_ids_together_and_tells_the_merge_once(spark, tmp_path, caplog):
    # Keyed by the raw text, the three spellings of CUS1 would be cleaned in different
    # partitions, and no partition would see two of them to warn about; a warning given
    # inside a Spark worker would not reach the user either.
    path = look_alike_ids_file(tmp_path / "ids.csv")
    expected = clean_transactions(
        io.read_table(str(path), string_columns=("customer_id",)), data=DataConfig(), source="i.csv"
    )
    told_in_memory = [r.getMessage() for r in caplog.records if "normalised" in r.getMessage()]
    caplog.clear()
    got = clean_on_spark(read_raw(spark.session, str(path)), data=DataConfig(), source="i.csv")
    told_on_spark = [r.getMessage() for r in caplog.records if "normalised" in r.getMessage()]
    pd.testing.assert_frame_equal(
        sorted_lines(got.lines.toPandas()), sorted_lines(expected.transactions), check_dtype=False
    )
    assert told_on_spark == told_in_memory
    assert len(told_in_memory) == 1 and ": 2 ids became the same" in told_in_memory[0]
