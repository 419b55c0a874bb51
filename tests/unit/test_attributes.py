from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.actions import assign_sub_segments
from pipeline.config import CustomerColumns, CustomersConfig, SubSegmentRule
from pipeline.errors import ConfigError, InputError
from pipeline.features.attributes import attribute_features
from pipeline.model import assemble_segments
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


BANDED = CustomersConfig(
    path="demographics.parquet",
    columns=CustomerColumns(
        customer_id="household_id", age_band="age", extra=("income", "household_size")
    ),
)


def demographics(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["household_id", "age", "income", "household_size"])
    # as in the Complete Journey's Parquet file: bands and sizes stored as categories
    return frame.astype({"age": "category", "income": "category", "household_size": "category"})


def test_an_age_band_column_is_taken_as_given_and_extra_columns_pass_through_as_text():
    customers = clean_customers(
        demographics(
            [
                ["1", "45-54", "50-74K", "2"],
                ["2", "19-24", "Under 15K", "5+"],
                ["3", None, " 100-124K ", None],
            ]
        ),
        config=BANDED,
        source="demographics.parquet",
    )
    features = attribute_features(customers, as_of=pd.Timestamp("2017-12-31")).set_index(
        "customer_id"
    )
    assert list(features.columns) == ["age_band", "income", "household_size"]
    # the file's own bands: "19-24" is not re-cut into the derived bands' "18-24"
    assert features["age_band"].tolist()[:2] == ["45-54", "19-24"]
    assert features.loc["3", "income"] == "100-124K"
    assert features.loc["2", "household_size"] == "5+"
    assert pd.isna(features.loc["3", "age_band"]) and pd.isna(features.loc["3", "household_size"])
    assert all(str(features[c].dtype) == "string" for c in features.columns)


def test_a_missing_extra_column_is_named():
    with pytest.raises(InputError, match="column 'household_size'"):
        clean_customers(
            demographics([["1", "45-54", "50-74K", "2"]]).drop(columns="household_size"),
            config=BANDED,
            source="demographics.parquet",
        )


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"birth_date": "born", "age_band": "age"}, "birth_date .* or age_band, not both"),
        ({"extra": ("tier",)}, r"extra columns may not be named like an attribute: \['tier'\]"),
        ({"extra": ("income", "income")}, "extra lists a column twice"),
    ],
)
def test_the_customers_mapping_rejects_ambiguous_columns(columns, message):
    with pytest.raises(ValueError, match=message):
        CustomerColumns(**columns)


def test_an_extra_column_that_would_replace_a_segment_column_is_a_config_error():
    features = pd.DataFrame({"customer_id": ["a"], "typical_gap_days": [10.0]})
    values = pd.DataFrame({"p_alive": [0.9], "days_to_next_purchase": [3.0]})
    statuses = pd.DataFrame({"status": ["loyal"]})
    # status is a feature-stage column; channel is added later, by the playbook
    attributes = pd.DataFrame({"customer_id": ["a"], "status": ["vip"], "channel": ["web"]})
    with pytest.raises(ConfigError, match=r"columns \['channel', 'status'\] would replace columns"):
        assemble_segments(
            features,
            np.array([0]),
            values,
            statuses,
            as_of=pd.Timestamp("2024-01-01"),
            sub_segments=(),
            playbook={},
            attributes=attributes,
        )
