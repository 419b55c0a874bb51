"""Screenshots of the README's MLflow UI walkthrough, taken in a real browser engine.

    make ui-screenshots            # or: python -m tests.ui_walkthrough --url http://127.0.0.1:5000

It opens each page the walkthrough names (home with the GenAI / Model training toggle, the
experiment's runs with the stage runs expanded, the runs filtered to trainings, two trainings
compared, a run's overview and artifacts, the experiment's Models tab, the model registry) in
Chromium, as embedded by QtWebEngine (the ``ui-check`` extra: a pip wheel, no system browser,
no download at run time), offscreen, and saves one PNG per step to ``--out``. Whoever changes
the walkthrough or upgrades MLflow looks at them; nothing here asserts on pixels.

It needs a tracking server with at least two trainings (``make train`` twice, e.g. once with an
older ``--as-of``). Without a GPU the compare page's parallel-coordinates plot says "WebGL is not
supported": that is the headless engine, not MLflow.

Test tooling, not a test: pytest does not collect it, and nothing in ``pipeline/`` imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

# Clicks every run's expander in the runs table, so that the stage runs show under each parent.
EXPAND_PARENTS = (
    "document.querySelectorAll('.ag-row [col-id*=name i] button').forEach(b => b.click())"
)


def _training_runs(url: str, experiment: str) -> tuple[str, list[str]]:
    """The experiment's id and its two latest training runs, over MLflow's REST API."""

    def call(path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    for _ in range(90):  # a server started beside this script takes a few seconds to answer
        try:
            found = call(
                "experiments/search", {"filter": f"name = '{experiment}'", "max_results": 1}
            )
            break
        except OSError:
            time.sleep(1)
    else:
        raise SystemExit(f"no MLflow server answers at {url}")
    if not found.get("experiments"):
        raise SystemExit(f"no experiment '{experiment}' at {url}: run `make train` first")
    experiment_id = found["experiments"][0]["experiment_id"]
    runs = call(
        "runs/search",
        {
            "experiment_ids": [experiment_id],
            "filter": "tags.run_kind = 'training'",
            "max_results": 2,
            "order_by": ["attributes.start_time DESC"],
        },
    ).get("runs", [])
    if len(runs) < 2:
        raise SystemExit(f"{len(runs)} training run(s) at {url}: the walkthrough compares two")
    return experiment_id, [run["info"]["run_id"] for run in runs]


def pages(url: str, experiment_id: str, run_ids: list[str], model: str) -> list[tuple]:
    """(file name, address, script to run once loaded or None), in the walkthrough's order."""
    mode = "workflowType=machine_learning"
    runs = f"{url}/#/experiments/{experiment_id}/runs"
    trainings = urllib.parse.quote("tags.run_kind = 'training'")
    compared = urllib.parse.quote(json.dumps(run_ids, separators=(",", ":")))
    newest = f"{url}/#/experiments/{experiment_id}/runs/{run_ids[0]}"
    return [
        ("1_home_genai_toggle.png", f"{url}/", None),
        ("2_runs_model_training.png", f"{runs}?{mode}", None),
        ("2_runs_stage_runs_expanded.png", f"{runs}?{mode}", EXPAND_PARENTS),
        ("2_run_overview.png", f"{newest}?{mode}", None),
        ("3_runs_trainings_only.png", f"{runs}?{mode}&searchFilter={trainings}", None),
        (
            "3_compare_two_trainings.png",
            f"{url}/#/compare-runs?runs={compared}&experiments=%5B%22{experiment_id}%22%5D&{mode}",
            None,
        ),
        ("4_run_artifacts.png", f"{newest}/artifacts?{mode}", None),
        ("4_experiment_models_tab.png", f"{url}/#/experiments/{experiment_id}/models?{mode}", None),
        ("5_model_registry.png", f"{url}/#/models/{model}?{mode}", None),
    ]


def screenshot_all(shots: list[tuple], out: Path, *, wait_ms: int) -> None:
    """Load each page in one offscreen Chromium and save what it shows."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--disable-gpu --no-sandbox")
    try:
        from PyQt6.QtCore import QSize, QTimer, QUrl
        from PyQt6.QtWebEngineWidgets import QWebEngineView
        from PyQt6.QtWidgets import QApplication
    except ImportError:
        raise SystemExit("needs the ui-check extra: pip install -e '.[ui-check]'") from None

    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    view = QWebEngineView()
    view.resize(QSize(1600, 1200))
    view.show()
    queue = list(shots)

    def next_page() -> None:
        if not queue:
            app.quit()
            return
        name, address, script = queue[0]
        view.load(QUrl(address))
        if script:
            QTimer.singleShot(wait_ms // 2, lambda: view.page().runJavaScript(script))
        QTimer.singleShot(wait_ms, save)

    def save() -> None:
        name, address, _ = queue.pop(0)
        view.grab().save(str(out / name))
        print(f"{out / name}  <- {address}")
        next_page()

    QTimer.singleShot(0, next_page)
    app.exec()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the MLflow UI's address")
    parser.add_argument("--experiment", default="loyalty-segmentation")
    parser.add_argument("--model", default="loyalty-segmentation", help="registered model name")
    parser.add_argument("--out", type=Path, default=Path("outputs/ui-walkthrough"))
    parser.add_argument(
        "--wait-ms", type=int, default=12_000, help="time each page gets to load and draw"
    )
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    experiment_id, run_ids = _training_runs(url, args.experiment)
    screenshot_all(pages(url, experiment_id, run_ids, args.model), args.out, wait_ms=args.wait_ms)


if __name__ == "__main__":
    main()
