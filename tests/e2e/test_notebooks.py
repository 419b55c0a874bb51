"""The notebooks run: both execute against a temporary store holding two trainings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("notebooks")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = folder / "config.yaml"
    config.write_text(
        f"output: {folder / 'out'}\n"
        f"model_path: {folder / 'models' / 'bundle.joblib'}\n"
        f"embedded: {{n_customers: 1200, directory: {folder / 'embedded'}}}\n"
        # the notebooks read what trainings logged, whatever the model: quick fits
        "clustering: {n_init: 1, k_range: [4, 6], stability_bootstraps: 2, "
        "check_seed_stability: false}\n"
        "promotion: {min_seed_stability: 0.0}\n"
    )
    for as_of in ("2025-12-31", "2025-10-31"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "train",
                "--config",
                str(config),
                "--tracking-uri",
                uri,
                "--as-of",
                as_of,
                "--allow-share-shift",
                "--allow-older",
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    return folder, uri


def execute(name: str, folder: Path, uri: str, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the kernel inherits it
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode, kind: str) -> list:
    return [
        o
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if kind in o.get("data", {})
    ]


def text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_the_segment_exploration_notebook_profiles_the_champions_statuses(store, monkeypatch):
    folder, uri = store
    notebook = execute("1.0-explore-segments.ipynb", folder, uri, monkeypatch)
    assert len(outputs(notebook, "image/png")) >= 4
    printed = text(notebook)
    # the second training (as of 2025-10-31) was promoted with --allow-share-shift --allow-older
    assert "customers as of 2025-10-31" in printed
    for status in ("loyal", "at_risk", "lost"):
        assert status in printed


def test_the_run_comparison_notebook_lines_up_both_runs(store, monkeypatch):
    folder, uri = store
    notebook = execute("2.0-compare-runs.ipynb", folder, uri, monkeypatch)
    printed = text(notebook)
    assert "2 training runs" in printed
    assert "2025-10-31" in printed and "2025-12-31" in printed
    assert "champion" in printed
    assert len(outputs(notebook, "image/png")) >= 2


def test_the_committed_notebooks_carry_no_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        assert all(
            not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"
        ), path.name
