# Every target bootstraps .venv from the committed lock file (requirements.lock, with hashes) first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: setup run test ui lint clean bench

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes -r requirements.lock
	$(PIP) install --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

# The demo: a generated sample inbox (kept once made), every Dagster asset, the reports.
run: setup
	@test -d data/inbox/fhir || $(BIN)/karte generate --out data/inbox --fault-rate 0.02
	$(BIN)/karte run

test: setup
	$(BIN)/pytest -n 2  # two workers: CI and the dev machines have 2 cores

# Every benchmark section (views, ingest, incremental, reports at national scale, parallel): data/reports/bench.json
bench: setup
	$(BIN)/karte bench

ui: setup
	$(BIN)/dagster dev -w workspace.yaml

lint: setup
	$(BIN)/ruff check pipelines assets tests

clean:
	rm -rf data/inbox data/reports data/warehouse.duckdb data/warehouse.duckdb.wal data/warehouse.duckdb.raw
