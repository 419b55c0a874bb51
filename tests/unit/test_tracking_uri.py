"""The project's tracking store is found from any working directory (notebooks run in notebooks/)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import tracking

PROJECT = Path(__file__).resolve().parents[2]


def test_the_default_store_is_the_projects_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.project_tracking_uri() == f"sqlite:///{PROJECT / 'mlflow.db'}"
    monkeypatch.chdir(PROJECT / "notebooks")
    assert tracking.project_tracking_uri() == f"sqlite:///{PROJECT / 'mlflow.db'}"


def test_an_explicit_or_environment_store_is_used_as_given(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.project_tracking_uri() == "http://127.0.0.1:5000"
    assert tracking.project_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_every_notebook_reads_the_projects_store():
    for path in sorted((PROJECT / "notebooks").glob("*.ipynb")):
        code = "".join(
            "".join(cell["source"])
            for cell in json.loads(path.read_text())["cells"]
            if cell["cell_type"] == "code"
        )
        assert "tracking.project_tracking_uri()" in code, path.name
        assert "resolve_tracking_uri" not in code, path.name
