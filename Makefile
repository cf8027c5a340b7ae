# goldrush-operator developer commands. `make dev` and `make test` are the two entry points (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins packaging<24, which pytest 9 cannot use: it gets a virtual environment of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# The operator as the image installs it (requirements.lock and the package, no tools): what `make bench` measures.
RUNTIME_VENV := .venv-runtime
RUNTIME_STAMP := $(RUNTIME_VENV)/.installed
CHART := charts/goldrush-operator
DEV_DIR := .dev
SIM_PORT ?= 18080
# The e2e tier spends most of its time waiting on the operator and the plane (under one core busy on average):
# its modules run on E2E_WORKERS pytest-xdist workers, each with a control plane of its own (0: one process).
E2E_WORKERS ?= 2
E2E_PARALLEL := $(if $(filter 0,$(E2E_WORKERS)),,-n $(E2E_WORKERS) --dist loadfile)
export PYTHONPATH := $(CURDIR)/operator:$(CURDIR)/tests

.PHONY: help venv lint fmt test test-unit test-sim test-packaging test-e2e test-deps ensure-control-plane ensure-tools \
        ensure-jemalloc \
        cluster-up cluster-down crd chart-files lock dev dev-down bench bench-quick clean

help:
	@echo "make dev        run the operator on a local control plane against the API simulator"
	@echo "make dev-down   stop everything 'make dev' started"
	@echo "make test       lint + all test tiers (unit, sim, packaging, e2e) + dependency matrix"
	@echo "make lint       ruff, mypy --strict, import-linter contracts, hadolint, kubeconform + kubectl-validate"
	@echo "make cluster-up / cluster-down   local etcd + kube-apiserver, kubeconfig in $(DEV_DIR)/kubeconfig"
	@echo "make test-deps  unit + sim tiers on the lowest and newest allowed dependency versions"
	@echo "make lock       re-pin requirements.lock (the image's exact dependency versions)"
	@echo "make crd        regenerate crds/, schemas/ (published JSON Schema) and the chart's copy from the models"
	@echo "make chart-files  copy the CRD and deploy/monitoring files into the Helm chart"
	@echo "make bench      run the benchmark scenarios (bench/README)"

# The runtime dependencies at the lock's versions (the image's; pip takes no hashes in a constraints file): the
# e2e tier runs the operator as it ships. test-deps runs the unit and sim tiers on the lowest and newest too.
$(STAMP): pyproject.toml operator/pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	grep -E '^[A-Za-z0-9_.-]+==' requirements.lock | sed 's/ *\\$$//' > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -c $(VENV)/constraints.txt -e '.[dev]' -e ./operator
	touch $(STAMP)

venv: $(STAMP)

$(CHECKOV_STAMP): pyproject.toml
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[checkov]'
	touch $(CHECKOV_STAMP)

$(RUNTIME_STAMP): requirements.lock pyproject.toml
	test -x $(RUNTIME_VENV)/bin/python || $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(RUNTIME_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(RUNTIME_STAMP)

lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	@if [ -x $(BIN)/hadolint ] && [ -f Dockerfile ]; then $(BIN)/hadolint Dockerfile; fi
	$(BIN)/python -m support.manifestlint

fmt: $(STAMP)
	$(BIN)/ruff check --fix .

ensure-control-plane:
	bash hack/build-control-plane.sh

ensure-tools: $(STAMP)
	$(BIN)/python -m support.gotools

# The image's allocator (Dockerfile): the packaging test and the benchmarks run the operator with it.
ensure-jemalloc:
	@ls /usr/lib/*/libjemalloc.so.2 >/dev/null 2>&1 || (apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2)

# ensure-tools first: the lint's manifest checks then find kubeconform and kubectl-validate built in the tools'
# pool, whose Go cache they share with the other tools.
test: ensure-tools lint ensure-control-plane ensure-jemalloc test-deps
	$(BIN)/pytest -p no:cacheprovider tests/unit tests/sim tests/packaging
	$(BIN)/pytest -p no:cacheprovider $(E2E_PARALLEL) tests/e2e

# The unit and sim tiers against the lowest and the newest dependency versions pyproject allows.
test-deps: $(STAMP)
	$(BIN)/python -m support.depmatrix

test-unit: $(STAMP) $(CHECKOV_STAMP) ensure-tools
	$(BIN)/pytest -p no:cacheprovider tests/unit

test-packaging: $(STAMP) ensure-jemalloc
	$(BIN)/pytest -p no:cacheprovider tests/packaging

test-sim: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider tests/sim

test-e2e: $(STAMP) ensure-control-plane ensure-tools
	$(BIN)/pytest -p no:cacheprovider $(E2E_PARALLEL) tests/e2e

cluster-up: $(STAMP) ensure-control-plane
	$(BIN)/python -m support.ctlplane up --dir $(DEV_DIR)

cluster-down: $(STAMP)
	$(BIN)/python -m support.ctlplane down --dir $(DEV_DIR)

# Exact, hashed pins of the runtime dependencies, installed by the Dockerfile.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --no-header \
		--quiet -o requirements.lock

crd: $(STAMP)
	$(BIN)/python -m goldrush_operator.crdgen --crd-dir crds --schema-dir schemas
	$(MAKE) chart-files

# Helm reads no file outside the chart: it carries copies (tests/unit/test_helm_chart.py fails on drift).
chart-files:
	cp crds/goldrush.dev_goldrushpipelines.yaml crds/goldrush.dev_goldrushcredentials.yaml \
	  crds/goldrush.dev_clustergoldrushcredentials.yaml $(CHART)/files/
	cp deploy/monitoring/prometheusrule.yaml deploy/monitoring/grafana-dashboard.json $(CHART)/files/

dev: $(STAMP) cluster-up
	$(BIN)/python -m support.devenv up --dir $(DEV_DIR) --sim-port $(SIM_PORT)

dev-down: $(STAMP)
	-$(BIN)/python -m support.devenv down --dir $(DEV_DIR)
	$(BIN)/python -m support.ctlplane down --dir $(DEV_DIR)

bench: $(STAMP) $(RUNTIME_STAMP) ensure-control-plane ensure-jemalloc
	$(BIN)/python -m bench.run

bench-quick: $(STAMP) $(RUNTIME_STAMP) ensure-control-plane ensure-jemalloc
	$(BIN)/python -m bench.run --quick

clean: cluster-down
	rm -rf $(DEV_DIR) build dist *.egg-info $(CHECKOV_VENV) $(RUNTIME_VENV)
