from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.config import Config, config_as_flat_dict, load_config
from pipeline.errors import ConfigError

PROJECT = Path(__file__).resolve().parents[2]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name", ["default.yaml", "cdnow.yaml", "online_retail.yaml", "completejourney.yaml"]
)
def test_the_shipped_configs_are_valid(name):
    assert isinstance(load_config(PROJECT / "configs" / name), Config)


def test_flags_override_the_file_and_absent_flags_do_not(tmp_path):
    path = write(tmp_path, "seed: 7\nhorizon_days: 30\n")
    config = load_config(path, {"seed": 11, "horizon_days": None, "as_of": "2024-12-31"})
    assert (config.seed, config.horizon_days, config.as_of) == (11, 30, dt.date(2024, 12, 31))


def test_a_misspelt_key_is_an_error_that_names_it(tmp_path):
    path = write(tmp_path, "clustering:\n  n_cluster: 5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'clustering.n_cluster'"):
        load_config(path)


def test_a_wrong_value_names_the_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"'horizon_days'"):
        load_config(write(tmp_path, "horizon_days: -3\n"))
    with pytest.raises(ConfigError, match=r"'as_of'.*YYYY-MM-DD"):
        load_config(write(tmp_path, "as_of: 31/12/2024\n"))


def test_a_missing_or_malformed_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "seed: [1\n"))


def test_config_objects_are_frozen():
    with pytest.raises(ValueError):
        Config().seed = 3  # type: ignore[misc]


def test_the_flat_form_has_dotted_keys():
    flat = config_as_flat_dict(Config())
    assert flat["clustering.k_range"] == "[10, 18]"
    assert flat["data.columns.customer_id"] == "customer_id"


def test_the_online_retail_config_sets_aside_the_adjustment_and_test_codes_of_other_years():
    import pandas as pd

    from pipeline.schema import clean_transactions

    config = load_config(PROJECT / "configs" / "online_retail.yaml")
    assert {"ADJUST", "ADJUST2", "TEST001", "TEST002"} <= set(config.data.non_product_codes)
    raw = pd.DataFrame(
        {
            "CustomerID": ["1", "1", "1"],
            "InvoiceDate": ["2011-01-01", "2011-01-02", "2011-01-03"],
            "Quantity": ["1", "1", "1"],
            "UnitPrice": ["5", "5", "5"],
            "InvoiceNo": ["1", "2", "3"],
            "StockCode": ["85123A", "ADJUST2", "TEST001"],
        }
    ).astype("string")
    clean = clean_transactions(raw, data=config.data, source="t.csv")
    assert clean.quarantine["reason"].tolist() == ["non_product", "non_product"]


@pytest.mark.parametrize("as_of", ["1500-01-01", "2262-04-11", "9999-12-31"])
def test_an_as_of_pandas_cannot_represent_is_a_config_error(as_of):
    with pytest.raises(ConfigError, match="outside 1677-09-23 to 2262-04-10"):
        load_config(None, {"as_of": as_of})
