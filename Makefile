# The README's commands. Each target does its own set-up on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export AWS_DEFAULT_REGION ?= us-east-1
export MPLBACKEND := Agg
export PATH := $(HOME)/.local/bin:$(PATH)
RUN := uv run --frozen --no-sync
# compile bytecode on install (import prefect: 1.9 s -> 0.9 s); UV_COMPILE_BYTECODE=0 skips it
UV_COMPILE_BYTECODE ?= 1
PYTEST_ARGS ?=
# server builds: the demo's (make demo FLAVOR=mysql-9.7) and the ones the tests run on
FLAVOR ?= mariadb-10.11
BUILDS ?= mariadb-10.11 mariadb-11.8 mysql-9.7

.PHONY: setup demo test test-quick lint bench clean prefect-env deploy worker builds

setup: .venv/.synced
	@./scripts/ensure-system-packages.sh

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	UV_COMPILE_BYTECODE=$(UV_COMPILE_BYTECODE) uv sync --frozen --quiet
	@touch $@

# each build once into ~/.cache/mysqlops/servers (MYSQLOPS_SERVER_CACHE): seconds when cached
builds: setup
	$(RUN) python -m mysqlops builds fetch $(BUILDS)

demo: setup
	$(RUN) python -m mysqlops builds fetch $(FLAVOR)
	$(RUN) python -m flows.demo --flavor $(FLAVOR)

test: setup lint builds
	$(RUN) pytest -q $(PYTEST_ARGS)

test-quick: setup
	$(RUN) pytest -q -m "not integration and not flows and not slow and not e2e" $(PYTEST_ARGS)

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check mysqlops blocks flows deployments
	$(RUN) mypy

ENV_FILE ?= environment.toml

prefect-env: setup
	$(RUN) python -m deployments.setup --config $(ENV_FILE)

deploy: setup
	$(RUN) prefect --no-prompt deploy --all

# the process worker that cancels its running flow runs on SIGTERM/Ctrl-C (deployments/worker.py)
worker: setup
	$(RUN) python -m deployments.worker --pool mysqlops

bench: setup
	$(RUN) python -m bench.run_all

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .demo
