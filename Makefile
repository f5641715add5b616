# Everything a developer or CI runs. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL_STAMP := $(VENV)/.model-installed

.PHONY: help venv run test lint format bench model evaluate lock audit up down logs clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	@touch $@

venv: $(STAMP) ## Create .venv from the lock file

run: $(STAMP) ## Start every service (and Prometheus/Alertmanager when installed)
	$(PY) -m services.stack

test: $(STAMP) lint ## Lint, then run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services $(wildcard ml) $(wildcard bench)

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) ## Benchmarks; results in bench/results/*.json, summary printed
	$(PY) -m bench $(BENCH_ARGS)

lock: ## Re-resolve requirements/*.txt from requirements/*.in
	$(PY) -m piptools compile -q --strip-extras --no-header --allow-unsafe -o requirements/runtime.txt requirements/runtime.in
	$(PY) -m piptools compile -q --strip-extras --no-header --allow-unsafe -o requirements/dev.txt requirements/dev.in

audit: $(STAMP) ## Known vulnerabilities in the locked dependencies
	$(VENV)/bin/pip-audit --strict -r requirements/runtime.txt

up: ## docker compose up (needs a Docker engine and a .env)
	docker compose up -d --build

down: ## docker compose down
	docker compose down

logs: ## Follow the compose logs
	docker compose logs -f --tail=100

clean: ## Remove the environment and local data
	rm -rf $(VENV) .data .mypy_cache .ruff_cache
