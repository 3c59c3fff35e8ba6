# Switchboard developer commands. `make run` and `make test` install what they need themselves.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
NODE_EXAMPLE_STAMP := examples/node/node_modules/.installed
PROTO_SRC := $(wildcard protos/switchboard/v1/*.proto)
# The server's own cache entries: generated beside the server code, not part of the contract.
SERVER_PROTO_SRC := $(wildcard server/protos/switchboard/server/*/*.proto)
SERVER_PROTOC = $(PY) -m grpc_tools.protoc -Iprotos -Iserver/protos
# The contract's Python code: messages, gRPC stubs, and typed .pyi for both (mypy-protobuf),
# so callers' mypy runs see typed replies and enums by name.
CLIENT_PROTOC = $(PY) -m grpc_tools.protoc -Iprotos \
	--plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy \
	--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc
# relax_strict_optional_primitives: constructors accept None for an unset scalar, as
# protobuf itself does at run time (the client passes its optional arguments straight on).
CLIENT_PROTOC_OUT = --python_out=$(1) --grpc_python_out=$(1) \
	--mypy_out=relax_strict_optional_primitives:$(1) --mypy_grpc_out=$(1)
PYTHON ?= python3

.PHONY: install run test protos docs docs-serve docs-build lint lint-protos breaking \
	release-contract check-generated pytest bench clean deps-system cluster-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@# npm ci refuses this lockfile: the registry here lacks buf's other-platform binaries,
	@# so the lock cannot list them; npm install still honours the pinned versions.
	npm install --no-fund --no-audit --loglevel=error
	@touch $@

## The Node.js example client: its own lockfile, installed exactly with `npm ci`.
$(NODE_EXAMPLE_STAMP): examples/node/package.json examples/node/package-lock.json
	cd examples/node && npm ci --no-fund --no-audit --loglevel=error
	@touch $@

## Serve on localhost:50051 with the embedded defaults (SQLite store, built-in connectors);
## --local creates (or reuses) a local development API key and prints it.
run: $(STAMP)
	$(VENV)/bin/switchboard serve --local

## Regenerate the Python messages and stubs and docs/api.md from protos/ (never edit by hand).
protos: $(STAMP)
	$(CLIENT_PROTOC) $(call CLIENT_PROTOC_OUT,client) $(PROTO_SRC)
	@# py.typed: callers' type checkers read the generated .pyi (PEP 561).
	@touch client/switchboard/v1/__init__.py client/switchboard/v1/py.typed
	$(SERVER_PROTOC) --python_out=server --pyi_out=server $(SERVER_PROTO_SRC)
	$(PY) tools/render_api_docs.py protos docs/api.md

## Regenerate the configuration reference in docs/configuration.md from the settings model.
docs: $(STAMP)
	$(PY) tools/render_config_docs.py docs/configuration.md

## Preview the docs site (mkdocs.yml, Material theme) on localhost:8000, rebuilt on each change.
## NO_MKDOCS_2_WARNING: Material prints a banner about MkDocs 2 on every build otherwise.
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

## Build the docs site into site/ (git-ignored); --strict: a broken link or anchor fails it.
docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

## Fails when the committed generated code differs from what `make protos` would write.
check-generated: $(STAMP)
	@tmp=$$(mktemp -d) && \
	$(CLIENT_PROTOC) $(call CLIENT_PROTOC_OUT,$$tmp) $(PROTO_SRC) && \
	touch $$tmp/switchboard/v1/__init__.py $$tmp/switchboard/v1/py.typed && \
	if ! diff -r $$tmp/switchboard/v1 client/switchboard/v1 -x __pycache__ >/dev/null; then \
		echo "generated code is stale: run 'make protos' and commit the result"; \
		diff -r $$tmp/switchboard/v1 client/switchboard/v1 -x __pycache__ | head -20; \
		rm -rf $$tmp; exit 1; fi; \
	$(SERVER_PROTOC) --python_out=$$tmp --pyi_out=$$tmp $(SERVER_PROTO_SRC) && \
	for f in $$(cd $$tmp/switchboard/server && find . -name '*_pb2*'); do \
		if ! diff -q $$tmp/switchboard/server/$$f server/switchboard/server/$$f >/dev/null; then \
			echo "server/switchboard/server/$$f is stale: run 'make protos' and commit the result"; \
			rm -rf $$tmp; exit 1; fi; done; \
	$(PY) tools/render_api_docs.py protos $$tmp/api.md && \
	if ! diff -q $$tmp/api.md docs/api.md >/dev/null; then \
		echo "docs/api.md is stale: run 'make protos' and commit the result"; \
		diff $$tmp/api.md docs/api.md | head -20; rm -rf $$tmp; exit 1; fi; \
	rm -rf $$tmp; $(PY) tools/render_config_docs.py --check docs/configuration.md && \
	echo "generated code, docs/api.md and the configuration reference are up to date"

lint-protos: $(NODE_STAMP)
	npx --no-install buf lint protos

## The last released contract, as a committed buf image (usable offline, without git tags).
CONTRACT_RELEASE ?= protos/releases/v1.0.0.binpb

## Fails when switchboard.v1 breaks the last released contract (rules: FILE, see buf.yaml).
breaking: $(NODE_STAMP)
	npx --no-install buf breaking protos --against $(CONTRACT_RELEASE)

## Snapshot a contract release: `make release-contract VERSION=1.1.0`, then commit the image,
## tag `contract/v$(VERSION)` and point CONTRACT_RELEASE at it.
release-contract: $(NODE_STAMP)
	@test -n "$(VERSION)" || { echo "usage: make release-contract VERSION=x.y.z"; exit 2; }
	npx --no-install buf build protos --exclude-source-info -o protos/releases/v$(VERSION).binpb

lint: $(STAMP)
	$(VENV)/bin/ruff check client server tests tools bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## Debian packages the tests start as real servers: PostgreSQL (the PostgreSQL store suite),
## redis-server (the Redis cache and the connector limits shared through Redis),
## rabbitmq-server (the amqp connector) and nginx (the gRPC load balancer of the cluster
## proof, tests/integration/test_cluster.py). Idempotent; installs only as root (CI),
## otherwise says what is missing and the tests that need it skip with that reason.
deps-system:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	test -x /usr/lib/rabbitmq/bin/rabbitmq-server || missing="$$missing rabbitmq-server"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } || \
		echo "unavailable:$$missing: the tests that need it will skip"

pytest: $(STAMP) $(NODE_STAMP) $(NODE_EXAMPLE_STAMP) deps-system
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## The whole suite: contract lint and breaking check, generated-code drift, the strict docs
## build, ruff + mypy, pytest.
test: lint-protos breaking check-generated docs-build lint pytest

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev,bench]"
	@command -v h2load >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq nghttp2-client >/dev/null; } || \
		echo "h2load (Debian nghttp2-client) unavailable: server-capacity runs will be skipped"
	@touch $@

## Benchmark against a bare grpc.aio echo server and a REST/JSON baseline (BENCH_QUICK=1: ~1 min).
bench: $(BENCH_STAMP)
	$(PY) -m bench

## PostgreSQL, Redis, three replicas behind nginx on loopback: a replica killed -9 under
## mixed load, the checks (writes, deliveries, errors, shared limit), then throughput for
## 1, 2 and 3 replicas. About 2 minutes; CLUSTER_SECONDS sets the load's length.
cluster-demo: $(STAMP) deps-system
	$(PY) -m bench.cluster

clean:
	rm -rf $(VENV) node_modules examples/node/node_modules .pytest_cache .mypy_cache .ruff_cache \
		site
