"""Reading the optional tables: skipped when absent, fingerprinted and accounted when present."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.config import DataConfig
from pipeline.errors import InputError
from pipeline.tables import read_optional_tables

AS_OF = pd.Timestamp("2024-06-30")


def data_with(**tables) -> DataConfig:
    return DataConfig.model_validate(tables)


def loyalty_section(path) -> dict:
    return {
        "path": str(path),
        "columns": {"customer_id": "id", "timestamp": "at", "points_earned": "pts"},
    }


def test_tables_that_are_not_configured_are_skipped():
    tables = read_optional_tables(DataConfig(), as_of=AS_OF)
    assert (tables.attributes, tables.loyalty, tables.campaigns) == (None, None, None)
    assert tables.metrics() == {} and tables.fingerprint == ""


def test_configured_tables_are_accounted_and_their_contents_fingerprinted(tmp_path):
    points = tmp_path / "points.csv"
    sends = tmp_path / "sends.csv"
    # ids such as 007 stay text: the customer id column is read as strings
    pd.DataFrame({"id": ["007", None, "9"], "at": ["2024-01-01"] * 3, "pts": [1, 2, 3]}).to_csv(
        points, index=False
    )
    pd.DataFrame({"who": ["007", "9"]}).to_csv(sends, index=False)
    data = data_with(
        loyalty_events=loyalty_section(points),
        campaigns=[{"path": str(sends), "columns": {"customer_id": "who"}, "event": "sent"}],
    )
    tables = read_optional_tables(data, as_of=AS_OF)
    assert tables.loyalty.events["customer_id"].tolist() == ["007", "9"]
    assert tables.metrics() == {
        "loyalty_rows_in": 3.0,
        "loyalty_rows_used": 2.0,
        "loyalty_rows_set_aside": 1.0,
        "loyalty_set_aside_missing_customer_id": 1.0,
        "campaign_rows_in": 2.0,
        "campaign_rows_used": 2.0,
        "campaign_rows_set_aside": 0.0,
    }
    before = tables.fingerprint
    assert before == read_optional_tables(data, as_of=AS_OF).fingerprint
    pd.DataFrame({"id": ["007"], "at": ["2024-01-01"], "pts": [5]}).to_csv(points, index=False)
    assert read_optional_tables(data, as_of=AS_OF).fingerprint != before


def test_a_table_file_that_is_not_there_names_the_setting_to_fix(tmp_path):
    data = data_with(loyalty_events=loyalty_section(tmp_path / "gone.csv"))
    with pytest.raises(InputError) as caught:
        read_optional_tables(data, as_of=AS_OF)
    assert str(caught.value) == (
        f"{tmp_path / 'gone.csv'}: file not found. Check data.loyalty_events in the config "
        "(scoring reads the tables the model was trained with)"
    )


def test_an_empty_table_file_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "points.csv"
    empty.write_text("")
    with pytest.raises(InputError, match=r"points.csv: the file is empty"):
        read_optional_tables(data_with(loyalty_events=loyalty_section(empty)), as_of=AS_OF)
