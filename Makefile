# goldrush-operator developer commands. `make dev` and `make test` are the two entry points (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins packaging<24, which pytest 9 cannot use: it gets a virtual environment of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHART := charts/goldrush-operator
DEV_DIR := .dev
SIM_PORT ?= 18080
export PYTHONPATH := $(CURDIR)/operator:$(CURDIR)/tests

.PHONY: help venv lint fmt test test-unit test-sim test-e2e ensure-control-plane ensure-tools cluster-up cluster-down \
        crd chart-files dev dev-down bench bench-quick clean

help:
	@echo "make dev        run the operator on a local control plane against the API simulator"
	@echo "make dev-down   stop everything 'make dev' started"
	@echo "make test       lint + all test tiers (unit, sim, e2e)"
	@echo "make lint       ruff, mypy --strict, hadolint; installs checkov for the manifest checks of make test"
	@echo "make cluster-up / cluster-down   local etcd + kube-apiserver, kubeconfig in $(DEV_DIR)/kubeconfig"
	@echo "make crd        regenerate crds/ from the pydantic models (and the chart's copy)"
	@echo "make chart-files  copy the CRD and deploy/monitoring files into the Helm chart"
	@echo "make bench      run the benchmark scenarios (bench/README)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(CHECKOV_STAMP): pyproject.toml
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[checkov]'
	touch $(CHECKOV_STAMP)

lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@if [ -x $(BIN)/hadolint ] && [ -f Dockerfile ]; then $(BIN)/hadolint Dockerfile; fi

fmt: $(STAMP)
	$(BIN)/ruff check --fix .

ensure-control-plane:
	bash hack/build-control-plane.sh

ensure-tools: $(STAMP)
	$(BIN)/python -m support.gotools

test: lint ensure-control-plane ensure-tools
	$(BIN)/pytest -p no:cacheprovider tests/unit tests/sim tests/e2e

test-unit: $(STAMP) $(CHECKOV_STAMP) ensure-tools
	$(BIN)/pytest -p no:cacheprovider tests/unit

test-sim: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider tests/sim

test-e2e: $(STAMP) ensure-control-plane ensure-tools
	$(BIN)/pytest -p no:cacheprovider tests/e2e

cluster-up: $(STAMP) ensure-control-plane
	$(BIN)/python -m support.ctlplane up --dir $(DEV_DIR)

cluster-down: $(STAMP)
	$(BIN)/python -m support.ctlplane down --dir $(DEV_DIR)

crd: $(STAMP)
	$(BIN)/goldrush-operator crd > crds/goldrush.dev_goldrushpipelines.yaml
	$(MAKE) chart-files

# Helm reads no file outside the chart: it carries copies (tests/unit/test_helm_chart.py fails on drift).
chart-files:
	cp crds/goldrush.dev_goldrushpipelines.yaml $(CHART)/files/
	cp deploy/monitoring/prometheusrule.yaml deploy/monitoring/grafana-dashboard.json $(CHART)/files/

dev: $(STAMP) cluster-up
	$(BIN)/python -m support.devenv up --dir $(DEV_DIR) --sim-port $(SIM_PORT)

dev-down: $(STAMP)
	-$(BIN)/python -m support.devenv down --dir $(DEV_DIR)
	$(BIN)/python -m support.ctlplane down --dir $(DEV_DIR)

bench: $(STAMP) ensure-control-plane
	$(BIN)/python -m bench.run

bench-quick: $(STAMP) ensure-control-plane
	$(BIN)/python -m bench.run --quick

clean: cluster-down
	rm -rf $(DEV_DIR) build dist *.egg-info $(CHECKOV_VENV)
