# Every target documents itself: `make` (or `make help`) lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install whenever pyproject.toml changes (the stamp is older than it).
STAMP := $(VENV)/.installed
ARGS ?=
MLFLOW_PORT ?= 5000

.PHONY: help setup setup-spark notebook train test test-fast bench lint format ui clean distclean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the project and its dev tools into $(VENV) (first run only; pip shows each package)"
	@set -o pipefail; $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off --upgrade pip | { grep -v '^Requirement already satisfied' || true; }
	@set -o pipefail; $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e ".[dev]" | { grep -v '^Requirement already satisfied' || true; }
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the project with its dev tools (no Spark, no Java, no root)

setup-spark: $(STAMP) ## Opt in to Spark: install the spark extra (needs a Java 17 runtime on PATH)
	@echo "Installing the spark extra (pyspark, about 470 MB)"
	@set -o pipefail; $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e ".[dev,spark]" | { grep -v '^Requirement already satisfied' || true; }
	@if command -v java >/dev/null 2>&1; then java -version 2>&1 | head -1; \
	else echo "Spark also needs a Java 17 runtime, and none is on PATH. Without root: download a JDK 17"; \
		echo "tarball (e.g. https://adoptium.net/temurin/releases/?version=17), unpack it in your home"; \
		echo "folder and set JAVA_HOME=<folder> and PATH=\$$JAVA_HOME/bin:\$$PATH. With a package manager:"; \
		echo "'brew install openjdk@17' (macOS) or 'sudo apt-get install openjdk-17-jre-headless' (Debian)."; fi

train: $(STAMP) ## Train on the embedded sample (or ARGS="--transactions FILE --as-of YYYY-MM-DD ...")
	$(BIN)/loyalty train $(ARGS)

# Two workers on a 2-core machine: the suite trains end to end many times and waits on
# subprocesses. One file's tests stay on one worker (its module fixtures are shared).
TEST_WORKERS ?= 2
test: $(STAMP) ## Run the whole test suite, the one CI runs (TEST_WORKERS=1 for one process)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

test-fast: $(STAMP) ## Unit and model tests, model fits on cheap settings, no Spark: for developing
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow and not spark and not shipped_config" --cheap-fits tests/unit tests/model $(ARGS)

bench: $(STAMP) ## Measure speed and memory against the plain alternatives (several minutes)
	$(BIN)/python -m pipeline.benchmarks $(ARGS)

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check pipeline tests
	$(BIN)/ruff format --check pipeline tests

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format pipeline tests
	$(BIN)/ruff check --fix pipeline tests

ui: $(STAMP) ## Browse runs in the MLflow UI at http://127.0.0.1:$(MLFLOW_PORT)
	@echo "MLflow UI on http://127.0.0.1:$(MLFLOW_PORT): switch the sidebar from GenAI to 'Model training', then"
	@echo "Experiments > loyalty-segmentation > Runs; search tags.run_kind = 'training' before ticking two runs"
	@echo "to Compare; 'Model registry' (sidebar) > loyalty-segmentation for the aliases. See the README."
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts \
		--host 127.0.0.1 --port $(MLFLOW_PORT)

UI_CHECK_PORT ?= 5099
.PHONY: ui-screenshots
ui-screenshots: $(STAMP) ## Screenshot the README's MLflow UI walkthrough in a headless Chromium (outputs/ui-walkthrough/)
	@$(BIN)/python -c 'import PyQt6.QtWebEngineWidgets' 2>/dev/null || { echo "Installing the ui-check extra (QtWebEngine: Chromium as a pip wheel, about 200 MB)"; \
		set -o pipefail; $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e ".[dev,ui-check]" | { grep -v '^Requirement already satisfied' || true; }; }
	@$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts \
		--host 127.0.0.1 --port $(UI_CHECK_PORT) >/dev/null 2>&1 & server=$$!; \
	trap "kill $$server 2>/dev/null" EXIT; \
	$(BIN)/python -m tests.ui_walkthrough --url http://127.0.0.1:$(UI_CHECK_PORT) --out outputs/ui-walkthrough

clean: ## Remove run outputs (tracking store, artifacts, outputs, generated data, models)
	rm -rf outputs mlruns mlartifacts mlflow.db data/embedded .pytest_cache .ruff_cache
	find models -type f ! -name .gitkeep -delete

distclean: clean ## Also remove the virtual environment
	rm -rf $(VENV) *.egg-info

.PHONY: backtest
backtest: $(STAMP) ## Judge statuses and forecasts at past cut-offs by what came next (ARGS="--folds 2" or "--cutoff YYYY-MM-DD ...")
	$(BIN)/loyalty backtest $(ARGS)
NOTEBOOK_PORT ?= 8888
notebook: $(STAMP) ## Open the notebooks in JupyterLab (installs the notebook extra on first use)
	@$(BIN)/python -c 'import jupyterlab' 2>/dev/null || { echo "Installing JupyterLab (the notebook extra)"; \
		set -o pipefail; $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e ".[dev,notebook]" | { grep -v '^Requirement already satisfied' || true; }; }
	@echo "JupyterLab on http://127.0.0.1:$(NOTEBOOK_PORT); the notebooks read the project's mlflow.db from any folder"
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --port=$(NOTEBOOK_PORT) --no-browser
