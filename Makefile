# One way to run everything, the same in CI and by hand.
#   make demo    set up, then deploy to the embedded default (this machine)
#   make test    set up, then every test: lint, unit, integration, the later ansible-cores, molecule (budget: 25 minutes)
#   make test-quick   lint and the unit tier (no Docker, no sshd), in parallel: before each commit
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

REPORTS := build/test-reports
# The unit tier: every test that needs neither the Docker engine nor the loopback SSH fleet
# (tests/conftest.py marks those from their fixtures), on two workers. The integration tier
# on two workers too, a whole module to a worker (its fleet and its cases' order stay
# together), the modules with the most cases first; ports are drawn per worker (testbed/ports.py).
UNIT := -m "not docker and not fleet" -n 2
INTEGRATION := -m "docker or fleet" -n 2 --dist loadfile

.PHONY: help setup bootstrap venv test test-quick test-cores cores speed soak lint lint-full sanity changelog pytest pytest-unit pytest-integration molecule collection demo bench bench-sidecar bench-ab monitoring ee constraints durations clean

help:
	@echo "make demo     set up this machine, then deploy the default model locally (port 9000)"
	@echo "make test     set up, then run every test (lint, unit, integration, molecule); prints each stage's time"
	@echo "make test-quick   lint and the unit tier only (no Docker, no sshd): the inner loop"
	@echo "make test-cores   the rollout strategy's and filters' tests and one deploy on each supported ansible-core"
	@echo "make setup    bench prerequisites (Docker, compose, sshd, base image) + .venv"
	@echo "make bench    the benchmark suite; writes docs/benchmarks.md"
	@echo "make soak     10 minutes of mixed good and bad requests with hot reloads (bench/soak.py)"
	@echo "make lint     ruff, yamllint, ansible-lint, ansible-test sanity (the fast tests)"
	@echo "make lint-full   make lint with every ansible-test sanity test (ansible-doc too)"

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
# Each stage's wall time is printed at the end (scripts/stages.sh); the first stage after
# setup prints this machine's speed, so a log says how fast its day was (docs/testing.md).
test:
	@bash scripts/stages.sh setup speed lint collection pytest-unit pytest-integration cores molecule
	@echo "make test: all passed"

test-quick: venv
	@bash scripts/stages.sh lint pytest-unit
	@echo "make test-quick: all passed"

# The supported ansible-core releases (meta/runtime.yml, constraints-cores.txt), each as the controller
# of the rollout strategy's tests, the rollout filters' and one deploy to a loopback edge: the dev set's
# release from .venv, the later ones from the controller image (scripts/test_cores.sh, which builds it
# once: scripts/controller_image.sh). Ends with a table of the rows. CORES=2.21 runs one row.
CORES ?=
test-cores: venv
	PY=$(abspath $(PY)) bash scripts/test_cores.sh $(CORES)

# make test's slice of the matrix: the rows of the releases after the dev set's (whose row the
# other stages cover), image build included.
cores: venv
	PY=$(abspath $(PY)) bash scripts/test_cores.sh $$(sed -nE 's/^ansible-core==([0-9]+\.[0-9]+)\.[0-9]+$$/\1/p' constraints-cores.txt)

speed: venv
	$(PY) bench/speed.py

# ansible-test sanity on the collection's Ansible content, with no ignore file
# (scripts/sanity.sh): `make lint` runs every test but ansible-doc (pylint included, about 45 s);
# ansible-doc (about 20 s) runs in `make lint-full` only. SANITY_TESTS=all selects every test.
SANITY_TESTS ?=
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint -q
	BIN=$(BIN) bash scripts/import_contracts.sh
	SANITY_TESTS=$(SANITY_TESTS) BIN=$(BIN) bash scripts/sanity.sh

lint-full:
	$(MAKE) --no-print-directory lint SANITY_TESTS=all

# Named sanity tests alone: make sanity TESTS='pylint import'
sanity: venv
	BIN=$(BIN) bash scripts/sanity.sh $(TESTS)

# changelogs/ is antsibull-changelog's: lint the fragments, regenerate CHANGELOG.md from
# changelogs/changelog.yaml. A release is `antsibull-changelog release --version X.Y.Z`
# (it moves the fragments into changelog.yaml), after galaxy.yml's version is X.Y.Z.
changelog: venv
	$(BIN)/antsibull-changelog lint
	$(BIN)/antsibull-changelog generate

pytest: pytest-unit pytest-integration

# Each tier keeps its temporary files under build/ (cleared when it starts): pytest prunes all
# but its three newest runs under /tmp, which would pull the fleets from under a long run
# while shorter runs start beside it.
pytest-unit: venv
	$(PY) -m pytest -ra $(UNIT) --basetemp=build/pytest-unit --durations=5 --junitxml=$(REPORTS)/unit.xml $(PYTEST_ARGS)

pytest-integration: venv
	$(PY) -m pytest -ra $(INTEGRATION) --basetemp=build/pytest-integration --durations=20 \
		--junitxml=$(REPORTS)/integration.xml $(PYTEST_ARGS)

# The table of the slowest tests in docs/testing.md, from the last run's reports.
durations:
	$(PYTHON) scripts/durations.py $(REPORTS)/unit.xml $(REPORTS)/integration.xml --write docs/testing.md

# The scenarios live where molecule expects a collection's: extensions/molecule/<name>/
# (`default` first: what the others share, and a check of the collection in place).
molecule: venv
	@scenarios=$$(ls -d extensions/molecule/*/molecule.yml 2>/dev/null | xargs -rn1 dirname | xargs -rn1 basename); \
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
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) -m bench $(BENCH_ARGS)

# One part of the suite: the sidecar side by side with the limit and the naive peer.
bench-sidecar: setup
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) bench/bench_sidecar.py

# One part of the suite: the serving model's p99 and throughput with a shadow beside it, against without.
bench-ab: setup
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) -m bench bench_ab

# The sidecar under a constant mixed load with a hot reload every minute (10 minutes).
soak: setup
	$(PY) bench/soak.py $(SOAK_ARGS)

# Prometheus scrape config for the fleet in the inventory (monitoring/).
monitoring: venv
	$(BIN)/ansible-playbook playbooks/monitoring.yml

# The AWX execution environment's build context (needs the collection tarball).
ee: collection
	$(BIN)/ansible-builder create -f awx/execution-environment.yml -c build/awx-ee

clean:
	rm -rf build dist .pytest_cache .ruff_cache
