# The two entry points of the README: `make demo` (install + the whole DAG on
# the bundled demo) and `make test` (install + the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# torch OpenMP threads spin while waiting; on 2 busy cores that makes training ~8x slower.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install demo test lint bench server

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	talkedit server start
	dvc repro
	@echo "Outputs under data/; Prefect UI: http://127.0.0.1:4200"

test: install
	# Two workers, one per core (a file's tests stay together: module fixtures are built once).
	pytest -q -n 2 --dist loadfile

lint: install
	ruff check .

bench: install
	for b in benchmarks/[a-z]*.py; do [ "$$b" = benchmarks/common.py ] || python $$b || exit 1; done

server: install
	talkedit server start
