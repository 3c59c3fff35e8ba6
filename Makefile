# Switchboard developer commands. `make run` and `make test` install what they need themselves.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PROTO_SRC := $(wildcard protos/switchboard/v1/*.proto)
PYTHON ?= python3

.PHONY: install run test protos lint lint-protos check-generated pytest clean

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

## Serve on localhost:50051 with the embedded defaults (SQLite store, built-in connectors);
## --local creates (or reuses) a local development API key and prints it.
run: $(STAMP)
	$(VENV)/bin/switchboard serve --local

## Regenerate the Python messages and stubs from protos/ (never edit the output by hand).
protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=client --grpc_python_out=client \
		--pyi_out=client $(PROTO_SRC)
	@touch client/switchboard/v1/__init__.py

## Fails when the committed generated code differs from what `make protos` would write.
check-generated: $(STAMP)
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$$tmp --grpc_python_out=$$tmp \
		--pyi_out=$$tmp $(PROTO_SRC) && touch $$tmp/switchboard/v1/__init__.py && \
	if ! diff -r $$tmp/switchboard/v1 client/switchboard/v1 -x __pycache__ >/dev/null; then \
		echo "generated code is stale: run 'make protos' and commit the result"; \
		diff -r $$tmp/switchboard/v1 client/switchboard/v1 -x __pycache__ | head -20; \
		rm -rf $$tmp; exit 1; fi; rm -rf $$tmp; echo "generated code is up to date"

lint-protos: $(NODE_STAMP)
	npx --no-install buf lint protos

lint: $(STAMP)
	$(VENV)/bin/ruff check client server tests
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## The whole suite: contract lint, generated-code drift, ruff + mypy, then pytest.
test: lint-protos check-generated lint pytest

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
