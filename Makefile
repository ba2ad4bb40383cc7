# memtrim: the two commands of the README's quick start, and their helpers.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (set PY=...)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[examples,report,bench,dev]'
	touch $(STAMP)

setup: $(STAMP)

## demo: set up, build the biomed example's data and model, then profile it.
demo: $(STAMP)
	$(BIN)/python examples/biomed/prepare.py
	$(BIN)/memtrim profile --json out/biomed-profile.json examples/biomed/run.py -- --variant static --out out/biomed-predictions.csv

## test: set up, then run the whole test suite.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

clean:
	rm -rf $(VENV) out .pytest_cache
