from __future__ import annotations

import mlflow

from pipeline.tracking import _input_dataset


def test_the_logged_input_is_the_file_and_the_runs_fingerprint_without_reading_it(
    tmp_path, monkeypatch
):
    def no_second_pass(*args, **kwargs):
        raise AssertionError("the frame was handed to MLflow to hash and profile again")

    monkeypatch.setattr(mlflow.data, "from_pandas", no_second_pass)
    path = tmp_path / "sales.csv"  # never created: nothing is read
    dataset = _input_dataset(str(path), "0123456789abcdef")
    described = dataset.to_dict()
    assert described["digest"] == "0123456789abcdef"
    assert described["name"] == "sales.csv"
    assert str(path) in described["source"]
    assert "profile" not in described
