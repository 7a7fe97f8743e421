# The two commands of the README: `make up` runs the whole system with a demo city,
# `make test` runs every test. Both install what they need first (uv included).
SHELL := /bin/bash
UV_VERSION := 0.13.8
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen --no-sync

.PHONY: help install up down status logs test unit lint typecheck schemas bench clean

help:
	@echo "make up      install, start the local stack with the demo city, start every service"
	@echo "make down    stop everything 'make up' started"
	@echo "make status  show every process, its health and URL"
	@echo "make test    install and run the whole test suite (lint, types, unit, integration)"

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --frozen

up: install
	$(RUN) onegrid dev up --seed-demo

down:
	$(RUN) onegrid dev down

status:
	$(RUN) onegrid dev status

logs:
	$(RUN) onegrid dev logs

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

# Packages by module name (pyproject [tool.mypy] packages), then every test file by path.
TEST_FILES = $(shell find contracts libs cli services tests deploy -name '*.py' -path '*tests/*' -not -path '*/.venv/*' 2>/dev/null)
typecheck: install
	$(RUN) mypy
	$(RUN) mypy $(TEST_FILES)

schemas: install
	$(RUN) python -m onegrid_contracts.generate

test: install lint typecheck
	$(RUN) pytest $(PYTEST_ARGS)

bench: install
	$(RUN) onegrid bench

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache
