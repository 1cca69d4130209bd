# agentstream — the two commands: `make demo` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install compile wheel services services-down migrate lint format test test-unit demo bench check-compose clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv with agentstream (editable) and the dev tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	touch $@

compile: install ## compile the hot modules with mypyc, in place (pyproject.toml lists them)
	$(BIN)/python scripts/compile.py

wheel: install ## build the sdist and, from it, the wheel into dist/ (what `pip install` gets)
	$(BIN)/python -m build --outdir dist .
	rm -rf agentstream.egg-info

services: ## start (or reuse) the local Kafka broker and PostgreSQL server
	scripts/services.sh up

services-down: ## stop the local services this checkout started
	scripts/services.sh down

migrate: install services ## apply the migrations in agentstream/sql/
	$(BIN)/agentstream migrate

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-unit: compile ## the tests that need no services
	AGENTSTREAM_EXPECT_COMPILED=1 $(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

test: compile lint services migrate ## from a fresh clone: install, services, migrate, the whole suite
	AGENTSTREAM_EXPECT_COMPILED=1 $(BIN)/pytest $(PYTEST_ARGS)

demo: compile services ## the whole pipeline on synthetic traffic, with a report
	scripts/demo.sh

bench: compile services migrate ## run the benchmarks in bench/ (minutes; see BENCHMARKS.md)
	for b in bench/produce.py bench/decode.py bench/ingest.py bench/peer.py bench/analytics.py bench/otlp.py bench/otlp_phoenix.py bench/alerts.py; do [ -f $$b ] && $(BIN)/python $$b; done

check-compose: ## validate docker-compose.yml with `docker compose config` (builds the plugin once)
	scripts/check-compose.sh

clean: ## remove build and test leftovers (keeps .venv and the services' data)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache out
	$(BIN)/python scripts/compile.py --clean
