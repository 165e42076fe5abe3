# paysync: `make dev` runs the whole system on this machine; `make test` runs every test.
# On a fresh machine both set up what they need: uv (from PyPI), the virtualenv, the Kafka
# jars (from Maven Central), PostgreSQL (Debian's package). Nothing else needs installing.

SHELL := /bin/bash
UV_VERSION := 0.13.9
BOOTSTRAP := .cache/bootstrap
UV := $(shell command -v uv 2>/dev/null || echo $(BOOTSTRAP)/bin/uv)
VENV := .venv
PYTEST_ARGS ?=

.PHONY: setup dev try test test-unit lint openapi-docs asyncapi-docs infra down bench-ingest bench-projector clean

$(BOOTSTRAP)/bin/uv:
	python3 -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled here, once, for the locked packages and the workspace's own: a host may set
# PYTHONDONTWRITEBYTECODE=1 (CI's does), and then every process the tests start (each service, each
# `paysync` command) compiled every module it imported, over a second of CPU each, as images do not
# (they set UV_COMPILE_BYTECODE=1). A source changed later is compiled in memory as usual.
$(VENV)/.synced: $(if $(filter $(BOOTSTRAP)/bin/uv,$(UV)),$(BOOTSTRAP)/bin/uv) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml)
	$(UV) sync --locked --python python3 --compile-bytecode
	$(VENV)/bin/python -m compileall -q -j0 libs services tools bench > /dev/null
	touch $@

## setup: the virtualenv with every package of the workspace, exactly as locked
setup: $(VENV)/.synced

## infra: Apache Kafka (KRaft, 127.0.0.1:9092) and PostgreSQL, started if not running
infra: setup
	$(VENV)/bin/paysync-dev up

## dev: broker, database, migrations, topics, demo tenant and the five services (Ctrl-C stops)
dev: setup
	$(VENV)/bin/python -m paysync_dev.demo run

## try: start a payment through the API (GATEWAY=stripe|paystack|mpesa), drive its OUTCOME at the
## simulator (pay|fail|cancel|expire|refund|dispute), and print its status from the API as it changes
GATEWAY ?= stripe
OUTCOME ?= pay
try: setup
	$(VENV)/bin/python -m paysync_dev.demo try --gateway $(GATEWAY) --outcome $(OUTCOME)

## stripe-mock: Stripe's own OpenAPI-driven mock, the contract check of our Stripe clients (needs Go)
STRIPE_MOCK_VERSION := v0.203.0
.cache/bin/stripe-mock:
	GOBIN=$(abspath .cache/bin) go install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)

## kustomize: renders deploy/k8s for tests/deploy (built once with Go, like stripe-mock)
KUSTOMIZE_VERSION := v5.8.0
.cache/bin/kustomize:
	GOBIN=$(abspath .cache/bin) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

## chromium: Debian's Chromium for the browser tests (tests/e2e/test_*_in_browser.py), installed when missing.
## Never a browser download (no `playwright install`); where it cannot be installed those tests skip, saying so.
.PHONY: chromium
chromium:
	@test -x /usr/bin/chromium || apt-get install -y --no-install-recommends chromium \
		|| (apt-get update && apt-get install -y --no-install-recommends chromium) \
		|| echo "make: chromium could not be installed; the browser tests will skip"

## test: every test; the fixtures start a Kafka broker, PostgreSQL and stripe-mock; tests/deploy checks deploy/
test: setup .cache/bin/stripe-mock .cache/bin/kustomize .cache/bin/loadgen chromium
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## lint: ruff's checks and formatting, mypy's types and the size limits, over every package (CI runs this before the tests)
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m paysync_dev.code_size libs services tools

## test-unit: only the tests that need no broker or database
test-unit: setup
	$(VENV)/bin/pytest -m "not integration and not e2e" libs services/*/tests/unit $(PYTEST_ARGS)

## openapi-docs: write docs/openapi/<service>.json from the HTTP services' routes (tests/docs/test_openapi.py checks them)
openapi-docs: setup
	$(VENV)/bin/python tools/openapi_docs.py

## asyncapi-docs: write docs/asyncapi.json from the topics and their contracts (tests/docs/test_asyncapi.py checks it)
asyncapi-docs: setup
	$(VENV)/bin/python tools/asyncapi_docs.py

## down: stop the local broker and database started by `make infra` / `make dev`
down: setup
	$(VENV)/bin/paysync-dev down

clean:
	rm -rf $(VENV) .cache .pytest_cache

## bench-ingest: webhook-ingest (uvicorn and Granian) throughput and latency beside the store-first peer and a
## bare endpoint, in one run (report in bench/README.md; BENCH_ARGS="--server uvicorn --seconds 20" and so on)
.cache/bin/loadgen: $(wildcard bench/loadgen/*.go) bench/loadgen/go.mod
	cd bench/loadgen && go build -o ../../.cache/bin/loadgen .

bench-ingest: setup .cache/bin/loadgen
	$(VENV)/bin/python bench/webhook_ingest/run.py $(BENCH_ARGS)

## bench-api: GET /v1/payments/{id} with the API-key check uncached and cached, in one run (bench/README.md)
.PHONY: bench-api
bench-api: setup .cache/bin/loadgen
	$(VENV)/bin/python bench/api_reads/run.py $(BENCH_ARGS)

## bench-projector: status-projector observations/s into PostgreSQL and observation-to-change latency (bench/README.md)
bench-projector: setup
	$(VENV)/bin/python bench/projector/run.py $(BENCH_ARGS)

## bench-e2e: the whole path, signed webhooks of the three gateways at 200, 500, 1,000/s and the maximum →
## status readable through the API and event on the stream clients; then 1 stream client against 200 (bench/README.md)
.PHONY: bench-e2e
bench-e2e: setup .cache/bin/loadgen
	$(VENV)/bin/python bench/e2e/run.py $(BENCH_ARGS)

## bench-stream: bench-e2e's stream comparison alone: webhook accepted → event on /v1/stream at 500/s, 1 client and 200
.PHONY: bench-stream
bench-stream: setup .cache/bin/loadgen
	$(VENV)/bin/python bench/e2e/run.py --preset stream $(BENCH_ARGS)

## bench-replay: paysync replay of 1,000,000 raw records, dry run and real run: records/s and peak memory (bench/README.md)
.PHONY: bench-replay
bench-replay: setup
	$(VENV)/bin/python bench/replay/run.py $(BENCH_ARGS)

## bench-reconciler: one sweep over 100,000 unsettled Stripe payments at the simulator's enforced 25 req/s (bench/README.md)
.PHONY: bench-reconciler
bench-reconciler: setup
	$(VENV)/bin/python bench/reconciler/run.py $(BENCH_ARGS)

## bench-reconciler-bulk: a bulk "Check payments" over 10,000 unsettled Stripe payments, one by one and through the Events list (bench/README.md)
.PHONY: bench-reconciler-bulk
bench-reconciler-bulk: setup
	$(VENV)/bin/python bench/reconciler/bulk.py $(BENCH_ARGS)
