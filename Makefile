# One way to run everything, the same in CI and by hand.
#   make demo    set up, then deploy to the embedded default (this machine)
#   make test    set up, then every test: lint, unit, integration, molecule
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
export PYTHONUNBUFFERED := 1

.PHONY: help setup bootstrap venv test lint pytest molecule collection demo bench bench-sidecar monitoring ee constraints clean

help:
	@echo "make demo     set up this machine, then deploy the default model locally (port 9000)"
	@echo "make test     set up, then run every test (lint, unit, integration, molecule)"
	@echo "make setup    bench prerequisites (Docker, compose, sshd, base image) + .venv"
	@echo "make bench    the benchmark suite; writes docs/benchmarks.md"
	@echo "make lint     ruff, ansible-lint, yamllint"

setup: bootstrap venv

bootstrap:
	bash scripts/bootstrap.sh

# Idempotent: reinstalls only when pyproject.toml or constraints.txt changed.
venv: $(STAMP)
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

constraints: venv
	{ echo "# Pinned versions of every Python package the project installs (pip install -c constraints.txt)."; \
	  echo "# Regenerate with: make constraints"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^-e'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# pytest exits 5 when it collected no test: that fails here like any other failure.
test: setup lint collection pytest molecule
	@echo "make test: all passed"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint -q

pytest: venv
	$(PY) -m pytest -ra --durations=15 $(PYTEST_ARGS)

molecule: venv
	@scenarios=$$(ls -d molecule/*/molecule.yml 2>/dev/null | xargs -rn1 dirname | xargs -rn1 basename); \
	if [ -z "$$scenarios" ]; then echo "molecule: no scenarios yet"; exit 0; fi; \
	for s in $$scenarios; do echo "== molecule test -s $$s"; $(BIN)/molecule test -s $$s; done

# The same tree builds as the collection edgeinfer.deploy.
collection: venv
	rm -rf build/collection && mkdir -p build/collection
	$(BIN)/ansible-galaxy collection build --force --output-path build/collection . >/dev/null
	@ls build/collection/edgeinfer-deploy-*.tar.gz

# The main job on the embedded default: GPUSRV and the edge are this machine (inventory/local).
demo: setup
	$(BIN)/ansible-playbook playbooks/deploy.yml

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

# One part of the suite: the sidecar side by side with the limit and the naive peer.
bench-sidecar: setup
	$(PY) bench/bench_sidecar.py

# Prometheus scrape config for the fleet in the inventory (monitoring/).
monitoring: venv
	$(BIN)/ansible-playbook playbooks/monitoring.yml

# The AWX execution environment's build context (needs the collection tarball).
ee: collection
	$(BIN)/ansible-builder create -f awx/execution-environment.yml -c build/awx-ee

clean:
	rm -rf build dist .pytest_cache .ruff_cache
