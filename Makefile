# newsetl — everything bootstraps from python3 + pip: uv is installed when missing, then the
# environment is synced from uv.lock (frozen). Targets: run, test, check, bench.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen --no-sync
LAKE ?= $(or $(NEWSETL_LAKE),./lake)

.PHONY: help setup run test check bench clean

help:
	@echo "make run    - serve seeds/ on 127.0.0.1, run the news_ingest DAG once through Airflow"
	@echo "             (airflow_home/, SQLite) for the last complete hour into $(LAKE), summarise"
	@echo "make test   - lint, type-check and run the test suite"
	@echo "make check  - ruff (lint + format) and mypy --strict on etl/"
	@echo "make bench  - quality, speed and memory benchmarks (figures printed)"

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)" \
		|| python3 -m pip install --quiet --user "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	@touch $@

setup: .venv/.synced

run: setup
	$(RUN) python scripts/demo.py --lake $(LAKE)

check: setup
	$(RUN) ruff check etl tests bench dags scripts
	$(RUN) ruff format --check etl tests bench dags scripts
	$(RUN) mypy etl

test: check
	$(RUN) pytest -q

bench: setup
	@status=0; for b in bench_quality bench_extract bench_fetch bench_warc_memory bench_upload bench_airflow bench_load; do \
		echo "== bench/$$b.py"; $(RUN) python bench/$$b.py || status=1; done; exit $$status

clean:
	rm -rf .venv lake airflow_home .pytest_cache .mypy_cache .ruff_cache
