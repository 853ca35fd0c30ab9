# newsetl — everything bootstraps from python3 + pip: uv is installed when missing, then the
# environment is synced from uv.lock (frozen). Targets: run, test, check, bench.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen --no-sync
LAKE ?= $(or $(NEWSETL_LAKE),./lake)

AF_HOME ?= airflow_home
PORT ?= 8080
SITE_PORT ?= 8765
OPS = $(RUN) python scripts/airflow_ops.py
OPS_ARGS = --home $(AF_HOME) --lake $(LAKE) --port $(PORT) --site-port $(SITE_PORT)

.PHONY: help setup run test check bench clean airflow airflow-down backfill cluster cluster-down

help:
	@echo "make run    - serve seeds/ on 127.0.0.1, run the news_ingest DAG once through Airflow"
	@echo "             (airflow_home/, SQLite) for the last complete hour into $(LAKE), summarise"
	@echo "make airflow            - scheduler + UI on PostgreSQL (127.0.0.1:$(PORT)) with the demo site"
	@echo "             (127.0.0.1:$(SITE_PORT)); detaches (FG=1: stays, Ctrl-C stops); login printed"
	@echo "make backfill FROM=T TO=T - backfill news_ingest over those hours (REPROCESS=completed"
	@echo "             to redo done ones), a line per interval, then the manifests and a query;"
	@echo "             on the make cluster stack when it runs (STACK=airflow|cluster to choose)"
	@echo "make airflow-down       - stop everything make airflow started, by PID"
	@echo "make cluster           - CeleryExecutor Airflow: PostgreSQL, Valkey broker, S3 server (lake),"
	@echo "             api-server (127.0.0.1:$(PORT)), scheduler, dag-processor, 2 Celery workers"
	@echo "make cluster-down       - stop everything make cluster started, by PID"
	@echo "make test   - lint, type-check and run the test suite"
	@echo "make check  - ruff (lint + format) and mypy --strict on etl/ dags/ scripts/ tests/ bench/"
	@echo "make bench  - quality, speed and memory benchmarks (figures printed)"

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)" \
		|| python3 -m pip install --quiet --user "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	@touch $@

setup: .venv/.synced

run: setup
	$(RUN) python scripts/demo.py --lake $(LAKE)

airflow: setup
	@$(OPS) up $(OPS_ARGS) $(if $(FG),--foreground)

airflow-down: setup
	@$(OPS) down --home $(AF_HOME)

backfill: setup
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=2022-05-14T09:00 TO=2022-05-14T11:00 [REPROCESS=completed]"; exit 2; }
	@$(OPS) backfill $(OPS_ARGS) --from $(FROM) --to $(TO) $(if $(REPROCESS),--reprocess $(REPROCESS)) \
		--cluster-home $(CLUSTER_HOME) $(if $(STACK),--stack $(STACK))

CLUSTER_HOME ?= cluster_home

cluster: setup
	@$(RUN) python scripts/cluster.py up --home $(CLUSTER_HOME) --port $(PORT) --site-port $(SITE_PORT)

cluster-down: setup
	@$(RUN) python scripts/cluster.py down --home $(CLUSTER_HOME)

check: setup
	$(RUN) ruff check etl tests bench dags scripts
	$(RUN) ruff format --check etl tests bench dags scripts
	$(RUN) mypy etl dags scripts tests bench

test: check
	$(RUN) pytest -q -n 2 --dist loadfile

bench: setup
	@status=0; for b in bench_quality bench_extract bench_fetch bench_warc_memory bench_upload bench_airflow bench_lake bench_seen bench_load bench_cluster; do \
		echo "== bench/$$b.py"; $(RUN) python bench/$$b.py || status=1; done; exit $$status

clean:
	-@test ! -f $(AF_HOME)/.newsetl-stack.json || $(OPS) down --home $(AF_HOME)
	-@test ! -f $(CLUSTER_HOME)/.newsetl-stack.json || $(RUN) python scripts/cluster.py down --home $(CLUSTER_HOME)
	rm -rf .venv lake airflow_home $(CLUSTER_HOME) .pytest_cache .mypy_cache .ruff_cache
