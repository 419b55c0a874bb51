"""Helpers of the unit tests: small raw tables in a retailer's own column names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.config import DataConfig, TransactionColumns


def raw(rows, columns=("customer_id", "timestamp", "amount")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns)).astype("string")


RETAIL = DataConfig(
    columns=TransactionColumns(
        customer_id="cust",
        timestamp="date",
        amount=None,
        quantity="qty",
        unit_price="price",
        invoice="invoice",
        product="code",
    ),
    non_product_codes=("POST",),
)
RETAIL_ROWS = [
    ["100", "A", "10", "2.0", "c1", "2024-01-01"],
    ["101", "B", "5", "1.0", "c1", "2024-01-02"],
    ["C102", "A", "-4", "2.0", "c1", "2024-01-03"],
    ["C103", "B", "-5", "1.0", "c1", "2024-01-04"],
    ["C104", "Z", "-1", "3.0", "c1", "2024-01-04"],
    ["105", "POST", "1", "15.0", "c1", "2024-01-04"],
    ["106", "A", "1", "0.0", "c2", "2024-01-04"],
    ["107", "A", "2", "2.0", None, "2024-01-04"],
    ["C108", "A", "-1", "2.0", "c2", "2024-01-01"],
    ["109", "A", "3", "2.0", "c2", "2024-01-05"],
]


def retail():
    return raw(RETAIL_ROWS, ("invoice", "code", "qty", "price", "cust", "date"))


def look_alike_ids_file(path: Path) -> Path:
    """A CSV where one customer is spelt three ways that normalise to one (plain, full-width,
    with a zero-width space), scattered among 40 others."""
    rows = [[f"K{i}", f"2024-01-{1 + i % 28:02d}", "3"] for i in range(40)]
    rows[5:5] = [["CUS1", "2024-01-01", "5"]]
    rows[17:17] = [["ＣＵＳ１", "2024-01-04", "6"]]  # full-width
    rows[33:33] = [["CUS\u200b1", "2024-01-09", "7"]]
    pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).to_csv(path, index=False)
    return path
