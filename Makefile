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

.PHONY: help setup java train test bench lint format ui clean distclean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the project and its dependencies into $(VENV) (first run only, about a minute)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,spark]"
	@command -v java >/dev/null 2>&1 || $(MAKE) --no-print-directory java
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the project with its dev tools and Spark

java: ## Install a Java 17 runtime for Spark (apt, as root or with sudo)
	@if command -v java >/dev/null 2>&1; then java -version 2>&1 | head -1; \
	elif command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
		echo "Installing a Java 17 runtime for Spark (apt-get install openjdk-17-jre-headless)"; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; \
	else echo "Spark needs a Java 17 runtime: install one and put java on PATH"; exit 1; fi

train: $(STAMP) ## Train on the embedded sample (or ARGS="--transactions FILE --as-of YYYY-MM-DD ...")
	$(BIN)/loyalty train $(ARGS)

test: $(STAMP) ## Run the test suite
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP) ## Measure speed and memory against the plain alternatives (several minutes)
	$(BIN)/python -m pipeline.benchmarks $(ARGS)

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check pipeline tests
	$(BIN)/ruff format --check pipeline tests

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format pipeline tests
	$(BIN)/ruff check --fix pipeline tests

ui: $(STAMP) ## Browse runs in the MLflow UI at http://127.0.0.1:$(MLFLOW_PORT)
	@echo "MLflow UI on http://127.0.0.1:$(MLFLOW_PORT): Experiments > loyalty-segmentation > Training runs"
	@echo "(expand a run for its stage runs; tick two and Compare); Models > loyalty-segmentation for the aliases"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts \
		--host 127.0.0.1 --port $(MLFLOW_PORT)

clean: ## Remove run outputs (tracking store, artifacts, outputs, generated data, models)
	rm -rf outputs mlruns mlartifacts mlflow.db data/embedded .pytest_cache .ruff_cache
	find models -type f ! -name .gitkeep -delete

distclean: clean ## Also remove the virtual environment
	rm -rf $(VENV) *.egg-info

.PHONY: backtest
backtest: $(STAMP) ## Judge statuses and forecasts at past cut-offs by what came next (ARGS="--folds 2" or "--cutoff YYYY-MM-DD ...")
	$(BIN)/loyalty backtest $(ARGS)
