# therapy-claims: the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := True
export GX_ANALYTICS_ENABLED := false
export PATH := $(CURDIR)/$(BIN):$(PATH)
export THERAPY_CLAIMS_LANDING ?= $(CURDIR)/demo-data/landing
export THERAPY_CLAIMS_OUT ?= $(CURDIR)/demo-data/out
BENCH_LINES ?= 1000000

.PHONY: help venv airflow-home demo test lint format airflow bench clean up down compose-check

help:
	@echo "make demo   - set up and run the nightly job on a synthetic demo night (Airflow on SQLite)"
	@echo "make test   - set up and run the test suite"
	@echo "make airflow- start Airflow standalone (UI on http://localhost:8080) over the same home"
	@echo "make bench  - end-to-end benchmark (BENCH_LINES=$(BENCH_LINES))"
	@echo "make lint   - ruff check + format check"
	@echo "make up / make down - the docker-compose stack (Airflow + Celery + LocalStack S3/SQS)"

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)

airflow-home: $(AIRFLOW_HOME)/airflow.db

demo: airflow-home
	$(BIN)/therapy-claims demo --dir demo-data

test: venv
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check src tests dags plugins
	$(BIN)/ruff format --check src tests dags plugins

format: venv
	$(BIN)/ruff format src tests dags plugins
	$(BIN)/ruff check --fix src tests dags plugins

airflow: airflow-home
	AIRFLOW__API__PORT=8080 $(BIN)/airflow standalone

bench: venv
	$(BIN)/python -m therapy_claims.bench --lines $(BENCH_LINES) --dir bench-out

clean:
	rm -rf demo-data bench-out .pytest_cache .ruff_cache

# docker-compose stack (Airflow 3 + CeleryExecutor + Postgres + Redis + LocalStack S3/SQS).
# COMPOSE can be "docker compose" (plugin) or "docker-compose" (Debian package).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.env:
	docker/make-env.sh .env

up: .env
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down

# validate docker-compose.yaml with a throwaway .env (CI; needs docker-compose, no daemon)
compose-check:
	@tmp=$$(mktemp); FORCE=1 docker/make-env.sh $$tmp >/dev/null; \
	docker-compose --env-file $$tmp -f docker-compose.yaml config -q; rc=$$?; rm -f $$tmp; \
	[ $$rc = 0 ] && echo "docker-compose.yaml: valid"; exit $$rc
