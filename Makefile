# memtrim: the two commands of the README's quick start, and their helpers.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo profile-demo test lint clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (set PY=...)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[examples,report,bench,dev]'
	touch $(STAMP)

setup: $(STAMP)

## demo: set up, build the biomed example's data and model, then optimize it
## (verified on its workloads; the slimmed copy and its report land in out/biomed).
demo: $(STAMP)
	$(BIN)/python examples/biomed/prepare.py
	$(BIN)/memtrim optimize examples/biomed/run.py -o out/biomed --force --json out/biomed-report.json
	@echo "report: out/biomed/memtrim-report.html"

## profile-demo: where the biomed example's memory goes.
profile-demo: $(STAMP)
	$(BIN)/python examples/biomed/prepare.py
	mkdir -p out && cd out && ../$(BIN)/memtrim profile --json biomed-profile.json ../examples/biomed/run.py -- --variant static --out biomed-predictions.csv

## test: set up, then run the whole test suite.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

clean:
	rm -rf $(VENV) out .pytest_cache
