# dsar: the two front-door commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint typecheck install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The sample holds dirty rows on purpose, so dsar exits 1 (finished, with rejects): not a failure.
run: $(STAMP)
	$(BIN)/dsar run data/sample_subjects.csv --config configs/default.toml || [ $$? -eq 1 ]

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests data
	$(BIN)/ruff format --check pipeline tests data

typecheck: $(STAMP)
	$(BIN)/mypy --strict pipeline

# One pytest worker per core (pytest-xdist); every test owns its emulator, port and tmp_path.
# PYTEST_WORKERS=0 runs in one process (e.g. to read a failing test's output in order).
PYTEST_WORKERS ?= auto

test: lint typecheck
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal

# The quick loop while editing: everything but the tests marked slow (chaos, soak, bench,
# subprocess and scale tests). `make test` and CI still run everything.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m 'not slow and not soak'

bench: $(STAMP)
	$(BIN)/dsar bench

clean:
	rm -rf $(VENV) dsar-runs build *.egg-info
