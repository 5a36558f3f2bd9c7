# The two commands of the README:  `make run` (demo, which sets up first) and `make test` (setup + all tests).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint lock clean

# --compile-bytecode: bytecode now, not at first import. uv does not compile by default, and where
# PYTHONDONTWRITEBYTECODE is set every process would compile Airflow, MLflow and Feast again.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==0.13.9
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements.txt
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)
	$(BIN)/tickerlake setup

run: $(STAMP)
	$(BIN)/tickerlake demo

# pytest's exit code 5 (no test collected) is not a failure of the suite: say so and pass.
test: setup
	$(BIN)/ruff check dags plugins include tests feature_repo
	@$(BIN)/python -m pytest tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check dags plugins include tests feature_repo

# Regenerate the lock from requirements.in (pyspark-client is left out: it ships the same
# `pyspark` module as the full pyspark that the Spark provider's [pyspark] extra brings).
lock:
	$(PYTHON) -m pip install -q uv==0.13.9
	$(PYTHON) -m uv pip compile requirements.in --python-version 3.11 --no-emit-package pyspark-client -o requirements.txt

clean:
	rm -rf $(VENV) .state
