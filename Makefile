# crm-invoices: `make run` loads the sandbox CRMs into data/crm_invoices.duckdb and builds the marts;
# `make test` runs the whole test suite. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RUNTIME__DLTHUB_TELEMETRY := false
export DO_NOT_TRACK := 1

.PHONY: run test test-salesman-real test-browser test-postgres report-screenshot reliability bench bench-scale lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/crm-invoices run --demo

# Tests run in parallel (pytest-xdist, one worker per core, at most 4): the suite is CPU-bound (each end-to-end
# test runs the CLI and a dbt build), about 56 min of CPU; work stealing keeps the long tests from ending on one
# worker. `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --maxprocesses 4 --dist worksteal

# The real SalesMan server (PHP 8.2 + MariaDB 10.11 on loopback, from ../shared/servers/salesman; installs the
# Debian packages when missing, so it needs root): builds its own data, compares the marts with its database.
test-salesman-real: $(STAMP)
	bash .ci/salesman_real.sh

# the finance report in headless Chromium (Debian's chromium package), network off
test-browser: $(STAMP)
	$(BIN)/pytest -q tests/test_report_browser.py

# the same load and marts on a throwaway PostgreSQL cluster (Debian's postgresql, installed when missing)
test-postgres: $(STAMP)
	bash .ci/postgres.sh

report-screenshot: $(STAMP)
	$(BIN)/python -m crm_invoices.pipelines.report.screenshot docs/report.png

# kill -9 at KILL_POINTS moments per variant (first load, rerun with changes); writes docs/reliability_kill_sweep.md
KILL_POINTS ?= 12
reliability: $(STAMP)
	$(BIN)/python -m tests.crash_sweep --points $(KILL_POINTS)

# client CPU and server CPU per source, wall vs each API's bound at 0 and 80 ms RTT, plain-dlt baselines beside
bench: $(STAMP)
	$(BIN)/python -m bench

# growth from 10k to 1M SalesMan invoices (long: about an hour on 2 cores)
bench-scale: $(STAMP)
	$(BIN)/python -m bench --scale

lint: $(STAMP)
	$(BIN)/ruff check sources pipelines sandbox tests bench setup.py

clean:
	rm -rf data models/target models/logs
