"""The package's import graph: every import counts, at module level, inside a function or
under ``TYPE_CHECKING``, because each one is a dependency a reader has to follow."""

from __future__ import annotations

import ast
from pathlib import Path

import pipeline

PACKAGE = Path(pipeline.__file__).parent


def import_graph() -> dict[str, set[str]]:
    """Module name -> the package modules it imports (``pipeline.x`` written as ``x``; a
    subpackage such as ``pipeline.features`` is one node)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        imported = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "pipeline":
                    imported |= {alias.name for alias in node.names}
                elif node.module.startswith("pipeline."):
                    imported.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                imported |= {
                    alias.name.split(".")[1]
                    for alias in node.names
                    if alias.name.startswith("pipeline.")
                }
    return {module: imported - {module} for module, imported in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import loop found by a depth-first walk (each reported once, from where it closes)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_the_cycle_finder_sees_a_loop_and_a_clean_graph():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_package_has_no_import_loop():
    graph = import_graph()
    assert {"schema", "features", "train", "model", "tracking"} <= graph.keys()
    assert cycles(graph) == []


def test_the_input_contract_does_not_know_the_feature_engine():
    # schema is the ground floor every stage reads: it may know config and errors, not features
    assert "features" not in import_graph()["schema"]


def test_presentation_and_tracking_depend_on_the_result_not_on_the_orchestrator():
    graph = import_graph()
    for module in ("plots", "report", "tracking"):
        assert "train" not in graph[module], module


def test_output_names_are_written_once_in_the_layout():
    # A reader that spells a file name itself silently stops finding the file when a writer
    # renames it (champion transitions read segments back from MLflow): every exact output name
    # lives in pipeline.layout.
    from pipeline import layout

    names = {
        value
        for key, value in vars(layout).items()
        if key.isupper() and isinstance(value, str) and "." in value
    }
    assert {"segments.parquet", "model.joblib", "metrics.json"} <= names
    spelled = [
        (path.name, node.value)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name not in ("layout.py", "benchmarks.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in names
    ]
    assert spelled == []
