# trackflow — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
# the interpreter the environment is built with: make test PYTHON=3.13 (3.11 to 3.13 supported)
PYTHON ?= 3.11
SYNCED := $(VENV)/.synced-python-$(PYTHON)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DUCKDB_PATH ?= data/warehouse.duckdb

.PHONY: help setup demo test lint dev docs bench bench-full soak clean browser postgres postgres-start

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(SYNCED): pyproject.toml uv.lock | $(if $(filter .tools/bin/uv,$(UV)),.tools/bin/uv)
	$(UV) sync --frozen --extra embedded --python $(PYTHON)
	$(BIN)/python -m pipelines.warehouse
	@rm -f $(VENV)/.synced-python-*
	@touch $@

setup: $(SYNCED) ## create .venv with the locked dependencies (PYTHON=3.11|3.12|3.13)
	@mkdir -p $(DAGSTER_HOME) data

browser: ## install Debian's chromium for the browser tests (if missing)
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

demo: setup ## embedded broker, 3 days of traffic, the whole Dagster graph (persistent DAGSTER_HOME), summary, report
	$(BIN)/python -m orchestration.demo
	$(BIN)/trackflow report

postgres: ## make sure PostgreSQL answers on 127.0.0.1:5432 (start the local cluster; install it if missing)
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || $(MAKE) --no-print-directory postgres-start

postgres-start:
	@command -v pg_ctlcluster >/dev/null || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null && \
	  echo "host all postgres 127.0.0.1/32 trust" > /tmp/trackflow-pg-hba && \
	  cat /etc/postgresql/*/main/pg_hba.conf >> /tmp/trackflow-pg-hba && \
	  cp /tmp/trackflow-pg-hba /etc/postgresql/*/main/pg_hba.conf)
	pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start
	@for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
	  echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1

test: setup browser postgres lint ## lint, then the whole test suite (real broker, DuckDB, dbt, Dagster, PostgreSQL)
	$(BIN)/pytest -q

lint: setup ## ruff (python), mypy (types) and sqlfluff (dbt models)
	$(BIN)/ruff check pipelines orchestration tests benchmarks
	$(BIN)/ruff format --check pipelines orchestration tests benchmarks
	$(BIN)/mypy
	cd dbt_project && ../$(BIN)/sqlfluff lint models macros

dev: setup ## open the Dagster UI (dagster dev -w workspace.yaml) on http://127.0.0.1:3000
	$(BIN)/python -m orchestration.instance
	$(BIN)/dagster dev -w workspace.yaml

bench: setup postgres ## quick benchmarks (~12 min): ingestion vs kafka-python at 300k, collector with 1 and 2 workers, dbt vs its floor at 1M, lake vs file and 2 shards vs 1 at 300k
	$(BIN)/python -m benchmarks.ingest_throughput --events 300000 --repeat 3
	$(BIN)/python benchmarks/collector_throughput.py --seconds 20
	$(BIN)/python -m benchmarks.transforms --events 1000000 --repeat 1 --no-incremental
	$(BIN)/python -m benchmarks.lake --events 300000

bench-full: setup postgres ## long benchmarks (~50 min): ingestion and memory at 3M, dbt at 1M and 10M with incremental cost, lake vs file at 1M, freshness through Dagster
	$(BIN)/python -m benchmarks.ingest_throughput --events 3000000 --repeat 2
	$(BIN)/python -m benchmarks.lake --events 1000000 --dbt
	$(BIN)/python -m benchmarks.transforms --events 1000000 --repeat 1 --full --full-events 10000000 --full-repeat 1 --incremental-repeat 3
	$(BIN)/python -m benchmarks.freshness

docs: setup ## generate and serve dbt's documentation site for the models (http://127.0.0.1:8081)
	$(BIN)/dbt docs generate --project-dir dbt_project --profiles-dir dbt_project --static
	$(BIN)/dbt docs serve --project-dir dbt_project --profiles-dir dbt_project --host 127.0.0.1 --port 8081 --no-browser

clean: ## stop the embedded broker and remove local state (warehouse, dagster home)
	-$(BIN)/trackflow broker stop
	rm -rf data .dagster_home .trackflow dbt_project/target dbt_project/logs

soak: setup ## crash-anywhere soak: 200 SIGKILLs during ingestion while producing (prints totals)
	$(BIN)/python -m tests.reliability.crash --kills 200 --events 200000
