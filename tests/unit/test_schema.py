from __future__ import annotations

import pandas as pd
import pytest

from pipeline.config import DataConfig, TransactionColumns
from pipeline.errors import InputError
from pipeline.schema import (
    check_columns,
    classify_rows,
    clean_transactions,
    combine_parts,
    finish_rows,
    first_problem,
    resolve_as_of,
)
from tests.unit.conftest import RETAIL, raw, retail


def test_clean_rows_come_out_typed_and_sorted():
    result = clean_transactions(
        raw(
            [
                ["b", "2024-01-02", "5"],
                ["a", "2024-01-03 10:00:00", "7.5"],
                ["a", "2024-01-01", "1"],
            ]
        ),
        data=DataConfig(),
        source="t.csv",
    )
    tx = result.transactions
    assert tx["customer_id"].tolist() == ["a", "a", "b"]
    assert tx["amount"].tolist() == [1.0, 7.5, 5.0]
    assert str(tx["timestamp"].dtype) == "datetime64[ns]"
    assert result.as_of == pd.Timestamp("2024-01-03")
    assert result.quarantine.empty


def test_a_missing_column_names_the_file_and_the_column():
    with pytest.raises(InputError) as caught:
        clean_transactions(
            raw([["a", "2024-01-01"]], ("customer_id", "date")), data=DataConfig(), source="t.csv"
        )
    assert str(caught.value).startswith("t.csv, column 'timestamp': required column missing")
    assert "data.columns" in str(caught.value)


def test_columns_are_mapped_by_config():
    data = DataConfig(
        columns=TransactionColumns(customer_id="cust", timestamp="when", amount="value")
    )
    result = clean_transactions(
        raw([["a", "2024-01-01", "3"]], ("cust", "when", "value")), data=data, source="t.csv"
    )
    assert result.transactions["amount"].tolist() == [3.0]


def test_an_unparsable_date_names_the_column_the_row_and_the_value():
    rows = [["a", "2024-01-01", "1"], ["a", "2024-01-02", "1"], ["a", "31/01/2024", "1"]]
    with pytest.raises(InputError) as caught:
        clean_transactions(raw(rows), data=DataConfig(), source="t.csv")
    message = str(caught.value)
    assert "column 'timestamp'" in message and "row 3" in message and "'31/01/2024'" in message
    assert "timestamp_format" in message


def test_a_configured_date_format_reads_the_dates():
    data = DataConfig(timestamp_format="%d/%m/%Y")
    result = clean_transactions(raw([["a", "31/01/2024", "1"]]), data=data, source="t.csv")
    assert result.transactions["timestamp"].iloc[0] == pd.Timestamp("2024-01-31")


def test_a_non_numeric_amount_is_an_error_naming_its_row():
    with pytest.raises(InputError, match=r"column 'amount', row 2: cannot read '\$5' as a number"):
        clean_transactions(
            raw([["a", "2024-01-01", "1"], ["a", "2024-01-02", "$5"]]),
            data=DataConfig(),
            source="t.csv",
        )


def test_an_empty_table_is_an_error():
    with pytest.raises(InputError, match="no rows"):
        clean_transactions(raw([]), data=DataConfig(), source="t.csv")


def test_negative_amounts_stop_the_run_unless_configured_to_be_set_aside():
    rows = [["a", "2024-01-01", "10"], ["a", "2024-01-02", "-4"]]
    with pytest.raises(InputError, match=r"row 2: negative amount -4"):
        clean_transactions(raw(rows), data=DataConfig(), source="t.csv")
    result = clean_transactions(
        raw(rows), data=DataConfig(negative_amounts="quarantine"), source="t.csv"
    )
    assert result.quarantine["reason"].tolist() == ["negative_amount"]
    assert result.quarantine["source_row"].tolist() == [2]


def test_duplicates_follow_the_configured_policy():
    rows = [["a", "2024-01-01", "10"], ["a", "2024-01-01", "10"], ["b", "2024-01-01", "10"]]
    with pytest.raises(InputError, match="row 2: exact duplicate"):
        clean_transactions(raw(rows), data=DataConfig(), source="t.csv")
    aside = clean_transactions(raw(rows), data=DataConfig(duplicates="quarantine"), source="t.csv")
    assert aside.counts_by_reason() == {"duplicate": 1}
    kept = clean_transactions(raw(rows), data=DataConfig(duplicates="keep"), source="t.csv")
    assert len(kept.transactions) == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_duplicates_are_pandas_duplicated_whatever_the_column_types(seed):
    import numpy as np

    from pipeline import schema

    rng = np.random.default_rng(seed)
    n = 2000
    base = pd.DataFrame(
        {
            "customer_id": rng.choice(["a", "b", "c", None], n),
            "timestamp": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"),
            "amount": rng.integers(0, 10**6, n) / 100,
            "quantity": rng.choice([1, 2, 2**62], n),
            "returned": rng.choice([True, False], n),
            "product": rng.choice(["x", "y"], n),
        }
    )
    base.loc[:9, "amount"] = [0.0, -0.0, np.nan, np.nan, 0.0, -0.0, np.nan, 0.0, -0.0, np.nan]
    base.loc[:4, "timestamp"] = pd.NaT
    copies = base.sample(200, random_state=seed)  # exact duplicates
    other_text = base.sample(200, random_state=seed + 1).assign(product="z")  # numbers repeat
    signed_zero = base.loc[[0, 4, 7]].assign(amount=-0.0)  # equal to 0.0 for pandas
    frame = pd.concat([base, copies, other_text, signed_zero], ignore_index=True).sample(
        frac=1, random_state=seed, ignore_index=True
    )
    numbers = frame.drop(columns=["customer_id", "product"])
    # The narrowed comparison runs here: most rows' numbers are their own.
    assert numbers.duplicated(keep=False).mean() <= schema.DUPLICATE_CANDIDATES_SHARE
    for columns in (list(frame.columns), ["customer_id", "amount"], ["product", "timestamp"]):
        expected = frame[columns].duplicated(keep="first")
        assert expected.any()
        pd.testing.assert_series_equal(schema.exact_duplicates(frame[columns]), expected)


def test_rows_set_aside_are_counted_by_reason_and_none_vanish():
    rows = [
        ["a", "2024-01-01", "10"],
        [None, "2024-01-01", "10"],
        ["b", None, "10"],
        ["c", "2024-01-05", None],
        ["a", "2024-02-01 00:00:01", "3"],
        ["a", "2024-01-31 23:59:59", "3"],
    ]
    result = clean_transactions(
        raw(rows), data=DataConfig(), source="t.csv", as_of=pd.Timestamp("2024-01-31")
    )
    assert result.counts_by_reason() == {
        "after_as_of": 1,
        "missing_amount": 1,
        "missing_customer_id": 1,
        "missing_timestamp": 1,
    }
    assert result.rows_in == len(result.transactions) + len(result.quarantine) == 6
    # the as-of day is observed up to its end
    assert result.transactions["timestamp"].max() == pd.Timestamp("2024-01-31 23:59:59")
    assert set(result.quarantine.columns) >= {
        "source_row",
        "reason",
        "customer_id",
        "timestamp",
        "amount",
    }


def test_float_customer_ids_from_parquet_are_read_as_their_integer():
    frame = pd.DataFrame(
        {
            "customer_id": [12346.0, 12346.0],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "amount": [1.0, 2.0],
        }
    )
    result = clean_transactions(frame, data=DataConfig(), source="t.parquet")
    assert result.transactions["customer_id"].unique().tolist() == ["12346"]


def test_timezone_aware_timestamps_are_compared_in_utc():
    frame = pd.DataFrame(
        {"customer_id": ["a"], "timestamp": ["2024-01-01T23:30:00-02:00"], "amount": ["1"]}
    )
    result = clean_transactions(frame, data=DataConfig(), source="t.csv")
    assert result.transactions["timestamp"].iloc[0] == pd.Timestamp("2024-01-02 01:30:00")


def test_mixed_utc_offsets_and_naive_times_are_all_read_in_utc():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "timestamp": ["2024-01-01T23:30:00-02:00", "2024-02-01T09:00:00Z", "2024-03-01 10:00"],
            "amount": ["1", "2", "3"],
        }
    )
    result = clean_transactions(frame, data=DataConfig(), source="t.csv")
    assert result.transactions["timestamp"].tolist() == [
        pd.Timestamp("2024-01-02 01:30:00"),
        pd.Timestamp("2024-02-01 09:00:00"),
        pd.Timestamp("2024-03-01 10:00:00"),
    ]


@pytest.mark.parametrize(
    ("fmt", "value"), [("epoch_s", "1704151800"), ("epoch_ms", "1704151800000")]
)
def test_epoch_timestamps_are_read_when_the_config_says_so(fmt, value):
    frame = pd.DataFrame({"customer_id": ["a"], "timestamp": [value], "amount": ["1"]})
    result = clean_transactions(frame, data=DataConfig(timestamp_format=fmt), source="t.csv")
    assert result.transactions["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 23:30:00")


def test_an_epoch_number_without_the_setting_is_an_error_that_suggests_it():
    frame = pd.DataFrame({"customer_id": ["a"], "timestamp": ["1704151800"], "amount": ["1"]})
    with pytest.raises(InputError, match="cannot read '1704151800'.*epoch_s or epoch_ms"):
        clean_transactions(frame, data=DataConfig(), source="t.csv")


def test_nothing_left_before_the_as_of_date_is_an_error():
    with pytest.raises(InputError, match="no transactions on or before"):
        clean_transactions(
            raw([["a", "2024-05-01", "1"]]),
            data=DataConfig(),
            source="t.csv",
            as_of=pd.Timestamp("2024-01-01"),
        )


def test_amount_is_quantity_times_unit_price_and_cancellations_are_netted():
    result = clean_transactions(retail(), data=RETAIL, source="retail.csv")
    tx = result.transactions
    # 10 x 2.0 less the 4 units cancelled; c2's later purchase untouched
    assert tx[["customer_id", "amount"]].values.tolist() == [["c1", 12.0], ["c2", 6.0]]
    assert result.counts_by_reason() == {
        "cancellation_netted": 2,
        "cancellation_unmatched": 2,  # nothing of Z bought; c2 cancelled before buying
        "cancelled": 1,  # the five B units, cancelled in full
        "missing_customer_id": 1,
        "non_positive_price": 1,
        "non_product": 1,
    }
    assert result.rows_in == len(tx) + len(result.quarantine) == 10
    by_reason = result.quarantine.set_index("source_row")["reason"]
    assert by_reason[2] == "cancelled" and by_reason[6] == "non_product"


def test_cancellations_can_be_set_aside_without_netting():
    data = RETAIL.model_copy(update={"cancellations": "quarantine"})
    result = clean_transactions(retail(), data=data, source="retail.csv")
    assert result.counts_by_reason()["cancellation"] == 4
    assert result.transactions["amount"].tolist() == [20.0, 5.0, 6.0]


def test_a_cancellation_after_the_as_of_date_cancels_nothing_yet():
    result = clean_transactions(
        retail(), data=RETAIL, source="retail.csv", as_of=pd.Timestamp("2024-01-02")
    )
    assert result.transactions["amount"].tolist() == [20.0, 5.0]
    # rows 3, 4, 5 and 10; the other late rows were set aside for an earlier reason first
    assert result.counts_by_reason()["after_as_of"] == 4


def test_non_positive_prices_can_stop_the_run():
    data = RETAIL.model_copy(update={"non_positive_prices": "error"})
    with pytest.raises(InputError, match=r"column 'price', row 7: unit price 0 is not positive"):
        clean_transactions(retail(), data=data, source="retail.csv")


def test_a_mapping_needs_an_amount_or_quantity_and_price():
    with pytest.raises(ValueError, match="map either amount, or both quantity and unit_price"):
        TransactionColumns(amount=None, quantity="qty")


def clean_by_customer(
    frame: pd.DataFrame, *, data: DataConfig, source: str, as_of=None, partitions: int = 3
):
    """Clean the way Spark does: classify each partition of customers, then finish and combine."""
    frame = frame.reset_index(drop=True)
    check_columns(list(frame.columns), data=data, source=source)
    ids = frame[data.columns.customer_id].fillna("").astype(str)
    groups = [
        frame[ids.map(lambda i: sum(map(ord, i)) % partitions) == k] for k in range(partitions)
    ]
    classified = [classify_rows(group, data=data, source=source) for group in groups]
    problem = first_problem([p for rows in classified for p in rows.problems.found])
    if problem is not None:
        raise problem
    resolved = resolve_as_of(as_of, [rows.latest_usable() for rows in classified], source=source)
    parts = [finish_rows(rows, data=data, as_of=resolved) for rows in classified]
    return combine_parts(parts, rows_in=len(frame), as_of=resolved, source=source)


@pytest.mark.parametrize("as_of", [None, pd.Timestamp("2024-01-03")])
def test_cleaning_partitions_of_customers_gives_what_cleaning_the_whole_file_gives(as_of):
    messy = pd.concat([retail(), retail().iloc[[0, 5]]], ignore_index=True)  # two duplicates
    data = RETAIL.model_copy(update={"duplicates": "quarantine"})
    whole = clean_transactions(messy, data=data, source="r.csv", as_of=as_of)
    split = clean_by_customer(messy, data=data, source="r.csv", as_of=as_of)
    pd.testing.assert_frame_equal(split.transactions, whole.transactions)
    pd.testing.assert_frame_equal(split.quarantine, whole.quarantine)
    pd.testing.assert_frame_equal(split.returns, whole.returns)
    assert (split.as_of, split.rows_in) == (whole.as_of, whole.rows_in)
    assert whole.counts_by_reason()["duplicate"] == 2


def test_the_first_problem_in_the_file_is_told_with_rows_counted_over_every_partition():
    rows = [
        ["a", "2024-01-01", "1"],
        ["b", "2024-01-02", "-3"],
        ["c", "2024-01-03", "-4"],
        ["a", "2024-01-01", "1"],  # duplicate of row 1, but after the first negative amount
        ["d", "2024-01-04", "-5"],
        ["e", "yesterday", "5"],
    ]
    for clean in (clean_transactions, clean_by_customer):
        with pytest.raises(InputError) as caught:
            clean(raw(rows), data=DataConfig(), source="t.csv")
        assert str(caught.value).startswith(
            "t.csv, column 'amount', row 2: negative amount -3 (3 such rows)"
        )


def test_line_columns_are_carried_and_returns_are_kept_aside_for_the_return_rate():
    data = RETAIL.model_copy(
        update={
            "columns": RETAIL.columns.model_copy(update={"discount": ("disc", "coupon")}),
        }
    )
    frame = retail().assign(disc="0.5", coupon="1")
    result = clean_transactions(frame, data=data, source="retail.csv")
    tx = result.transactions.set_index("customer_id")
    assert list(result.transactions.columns) == [
        "customer_id",
        "timestamp",
        "amount",
        "quantity",
        "product",
        "invoice",
        "discount",
    ]
    assert tx.loc["c1", ["quantity", "product", "invoice", "discount"]].tolist() == [
        6.0,  # 10 bought, 4 cancelled
        "A",
        "100",
        1.5,
    ]
    # the netted and the unmatched cancellation lines, as positive values returned
    returns = result.returns
    assert returns["customer_id"].tolist() == ["c1", "c1", "c1", "c2"]
    assert returns["amount"].tolist() == [8.0, 5.0, 3.0, 2.0]


def test_a_returns_flag_marks_return_lines():
    columns = TransactionColumns(returns="is_return")
    rows = [["a", "2024-01-01", "10", "no"], ["a", "2024-01-05", "4", "yes"]]
    result = clean_transactions(
        raw(rows, ("customer_id", "timestamp", "amount", "is_return")),
        data=DataConfig(columns=columns),
        source="t.csv",
    )
    assert result.transactions["amount"].tolist() == [6.0]  # 10 less the 4 returned
    assert result.counts_by_reason() == {"cancellation_netted": 1}
    with pytest.raises(InputError, match=r"column 'is_return', row 1: cannot read 'maybe'"):
        clean_transactions(
            raw(
                [["a", "2024-01-01", "10", "maybe"]],
                ("customer_id", "timestamp", "amount", "is_return"),
            ),
            data=DataConfig(columns=columns),
            source="t.csv",
        )


# -- hostile input (issue 15): one clear error, or set aside with a reason ------------------------
def test_the_no_end_sentinel_and_dates_past_2262_are_set_aside_as_after_as_of():
    result = clean_transactions(
        raw(
            [
                ["a", "2024-01-01", "5"],
                ["a", "9999-12-31", "5"],
                ["b", "2300-01-01 10:00:00", "7"],
                ["b", "2024-01-02", "7"],
            ]
        ),
        data=DataConfig(),
        source="t.csv",
    )
    assert result.quarantine["reason"].tolist() == ["after_as_of", "after_as_of"]
    assert result.quarantine["source_row"].tolist() == [2, 3]
    # The sentinel is not the last transaction: the default as-of is the last real day.
    assert result.as_of == pd.Timestamp("2024-01-02")


def test_a_far_future_date_in_a_custom_format_is_set_aside_too():
    data = DataConfig(timestamp_format="%d/%m/%Y")
    result = clean_transactions(
        raw([["a", "01/01/2024", "5"], ["a", "31/12/9999", "5"]]), data=data, source="t.csv"
    )
    assert result.quarantine["reason"].tolist() == ["after_as_of"]


def test_a_date_before_1678_is_a_clear_error_not_an_unreadable_format():
    with pytest.raises(InputError, match="row 2: '1500-01-01' is before 1678"):
        clean_transactions(
            raw([["a", "2024-01-01", "5"], ["a", "1500-01-01", "5"]]),
            data=DataConfig(),
            source="t.csv",
        )


@pytest.mark.parametrize("amount", ["inf", "Infinity", "-inf", "1e14", "123456789012345"])
def test_infinite_or_overflowing_amounts_are_a_one_line_error(amount):
    with pytest.raises(InputError, match="column 'amount', row 2: .* not a finite amount below"):
        clean_transactions(
            raw([["a", "2024-01-01", "5"], ["a", "2024-01-02", amount]]),
            data=DataConfig(),
            source="t.csv",
        )


def test_infinite_amounts_in_a_numeric_column_are_refused_too():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a"],
            "timestamp": ["2024-01-01", "2024-01-02"],
            "amount": [1.0, float("inf")],
        }
    )
    with pytest.raises(InputError, match="row 2"):
        clean_transactions(frame, data=DataConfig(), source="t.parquet")


def test_a_huge_value_is_quoted_in_at_most_80_characters():
    huge = "x" * 1_000_000
    with pytest.raises(InputError) as caught:
        clean_transactions(
            raw([["a", "2024-01-01", "5"], ["a", huge, "5"]]), data=DataConfig(), source="t.csv"
        )
    message = str(caught.value)
    # 80 characters of the value, its length, and the sentence around it.
    assert len(message) < 400
    assert "(1,000,000 characters)" in message


@pytest.mark.parametrize("bad_id", ["C1\x00X", "C\x01", "C\x7f2", "C1\nC2"])
def test_control_characters_in_an_id_are_an_error_naming_the_row(bad_id):
    with pytest.raises(InputError, match="column 'customer_id', row 2: id .* control character"):
        clean_transactions(
            raw([["a", "2024-01-01", "5"], [bad_id, "2024-01-02", "5"]]),
            data=DataConfig(),
            source="t.csv",
        )


def test_full_width_and_zero_width_ids_are_normalised_into_the_same_customer(caplog):
    result = clean_transactions(
        raw(
            [
                ["CUS1", "2024-01-01", "5"],
                ["ＣＵＳ１", "2024-01-02", "5"],  # full-width
                ["CUS\u200b1", "2024-01-03", "5"],  # a zero-width space inside
            ]
        ),
        data=DataConfig(),
        source="t.csv",
    )
    assert result.transactions["customer_id"].unique().tolist() == ["CUS1"]
    assert "2 ids became the same as another id once normalised" in caplog.text


def test_a_cyrillic_look_alike_id_stays_apart_but_is_warned_about(caplog):
    result = clean_transactions(
        raw([["CUS1", "2024-01-01", "5"], ["\u0421US1", "2024-01-02", "5"]]),  # Cyrillic Es
        data=DataConfig(),
        source="t.csv",
    )
    assert result.transactions["customer_id"].nunique() == 2
    assert "1 ids mix ASCII letters with letters of another script" in caplog.text


def test_plain_ascii_ids_raise_no_warning(caplog):
    clean_transactions(
        raw([["CUS1", "2024-01-01", "5"], ["CUS2", "2024-01-02", "5"]]),
        data=DataConfig(),
        source="t.csv",
    )
    assert caplog.text == ""


def test_ids_are_stripped_exactly_as_python_strips_them():
    import sys

    from pipeline.schema import PYTHON_WHITESPACE, customer_id_keys

    # Ids are trimmed in Arrow: with the very set of characters Python's str.strip() removes.
    assert (
        "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()) == PYTHON_WHITESPACE
    )
    padded = [f"{space}CUS{i}{space}" for i, space in enumerate(PYTHON_WHITESPACE)]
    ids = customer_id_keys(pd.Series([*padded, " 12346.0 ", "12.50", " ", None, "\u00a0A\u200bB"]))
    assert ids.tolist()[: len(padded)] == [f"CUS{i}" for i in range(len(padded))]
    assert ids.tolist()[len(padded) :] == ["12346", "12.50", pd.NA, pd.NA, "AB"]
    assert ids.dtype == "string"


def test_a_huge_header_is_quoted_briefly_when_a_column_is_missing():
    frame = pd.DataFrame({"x" * 10_000: ["a"], "timestamp": ["2024-01-01"], "amount": ["1"]})
    with pytest.raises(InputError) as caught:
        clean_transactions(frame, data=DataConfig(), source="t.csv")
    assert "required column missing" in str(caught.value) and len(str(caught.value)) < 400


def test_far_future_dates_as_epoch_seconds_or_typed_parquet_dates_are_set_aside_too():
    epoch = raw([["a", "1700000000", "1"], ["a", "253402214400", "2"]])  # 2023 and 9999-12-31
    clean = clean_transactions(epoch, data=DataConfig(timestamp_format="epoch_s"), source="t.csv")
    assert clean.quarantine["reason"].tolist() == ["after_as_of"]
    # Parquet stores dates at second or millisecond resolution, which holds year 9999
    typed = pd.DataFrame(
        {
            "customer_id": ["a", "a"],
            "timestamp": pd.Series(["2024-01-01", "9999-12-31"]).astype("datetime64[s]"),
            "amount": [1.0, 2.0],
        }
    )
    clean = clean_transactions(typed, data=DataConfig(), source="t.parquet")
    assert clean.quarantine["reason"].tolist() == ["after_as_of"]
    assert clean.as_of == pd.Timestamp("2024-01-01")


def test_adjustments_and_tests_are_set_aside_by_their_names_listed_or_not():
    frame = raw(
        [
            ["a", "2024-01-01", "1", "ADJUST2"],
            ["a", "2024-01-02", "2", "test-001"],
            ["a", "2024-01-03", "3", "TESTAMENT"],  # a product that merely starts alike
            ["a", "2024-01-04", "4", "85123A"],
        ],
        ("customer_id", "timestamp", "amount", "code"),
    )
    data = DataConfig(columns=TransactionColumns(product="code"))
    result = clean_transactions(frame, data=data, source="t.csv")
    assert result.transactions["product"].tolist() == ["TESTAMENT", "85123A"]
    assert result.counts_by_reason() == {"non_product": 2}


def test_a_code_outside_the_shops_product_pattern_is_a_service_line():
    frame = raw(
        [
            ["a", "2024-01-01", "1", "85123A"],
            ["a", "2024-01-02", "2", "POST"],
            ["a", "2024-01-03", "3", "BANK CHARGES"],
            ["a", "2024-01-04", "4", "22423"],
        ],
        ("customer_id", "timestamp", "amount", "code"),
    )
    data = DataConfig(
        columns=TransactionColumns(product="code"), product_code_pattern=r"\d{5}[A-Za-z]{0,2}"
    )
    result = clean_transactions(frame, data=data, source="t.csv")
    assert result.transactions["product"].tolist() == ["85123A", "22423"]
    assert result.counts_by_reason() == {"non_product": 2}


def test_a_product_pattern_that_is_not_a_regular_expression_is_a_config_error():
    with pytest.raises(ValueError, match="not a regular expression"):
        DataConfig(product_code_pattern="[unclosed")


def test_lines_are_ordered_by_customer_then_time_with_ties_in_file_order_as_pandas_orders():
    from pipeline.schema import _in_customer_order

    lines = pd.DataFrame(
        {
            "customer_id": pd.array(["b", "a", "É", "a", "Z", "a", "b"], dtype="string"),
            "timestamp": pd.to_datetime(
                [
                    "2024-01-02",
                    "2024-01-03",
                    "2024-01-01",
                    "2024-01-01",
                    "2024-01-05",
                    "2024-01-01",
                    "2024-01-02",
                ]
            ),
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        }
    )
    expected = lines.sort_values(["customer_id", "timestamp"], kind="mergesort")
    ordered = _in_customer_order(lines)
    assert ordered.index.tolist() == expected.index.tolist() == [4, 3, 5, 1, 0, 6, 2]
