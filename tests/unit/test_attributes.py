from __future__ import annotations

import pandas as pd
import pytest

from pipeline.actions import assign_sub_segments
from pipeline.config import CustomerColumns, CustomersConfig, SubSegmentRule
from pipeline.errors import InputError
from pipeline.features.attributes import attribute_features
from pipeline.schema import clean_customers

CONFIG = CustomersConfig(
    path="customers.csv",
    columns=CustomerColumns(customer_id="id", birth_date="born", tier="level", location="city"),
)


def raw(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "born", "level", "city"]).astype("string")


def test_attributes_are_typed_and_ages_banded():
    customers = clean_customers(
        raw(
            [
                ["a", "1990-06-15", "gold", "Leeds"],
                ["b", "2010-01-01", "silver", "York"],
                ["c", None, None, None],
            ]
        ),
        config=CONFIG,
        source="customers.csv",
    )
    features = attribute_features(customers, as_of=pd.Timestamp("2025-12-31")).set_index(
        "customer_id"
    )
    assert features.loc["a", "age"] == 35 and features.loc["a", "age_band"] == "35-44"
    assert features.loc["b", "age_band"] == "<18"
    assert pd.isna(features.loc["c", "age"]) and pd.isna(features.loc["c", "tier"])
    assert features.loc["a", "tier"] == "gold" and features.loc["b", "location"] == "York"


def test_a_customer_listed_twice_is_an_error_naming_the_row():
    with pytest.raises(
        InputError, match=r"column 'id', row 2: customer 'a' appears more than once"
    ):
        clean_customers(
            raw([["a", None, None, None], ["a", None, None, None]]),
            config=CONFIG,
            source="customers.csv",
        )


def test_a_mapped_column_missing_from_the_file_is_named():
    with pytest.raises(InputError, match="column 'level'"):
        clean_customers(
            raw([["a", None, None, None]]).drop(columns="level"),
            config=CONFIG,
            source="customers.csv",
        )


def test_sub_segments_combine_a_status_with_customer_attributes():
    segments = pd.DataFrame(
        {
            "status": ["loyal", "loyal", "at_risk"],
            "tier": ["gold", "silver", "gold"],
            "age_band": ["35-44", "35-44", "65+"],
        }
    )
    rules = (
        SubSegmentRule(name="loyal, gold tier", statuses=("loyal",), when={"tier": ("gold",)}),
        SubSegmentRule(
            name="at risk, senior", statuses=("at_risk",), when={"age_band": ("55-64", "65+")}
        ),
    )
    assert assign_sub_segments(segments, rules).fillna("").tolist() == [
        "loyal, gold tier",
        "",
        "at risk, senior",
    ]
