# edgebus: the commands of CONTRACT.md. `make start` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/pytest
COMPOSE ?= $(shell command -v docker-compose >/dev/null 2>&1 && echo docker-compose || echo docker compose)

.PHONY: install start test test-unit test-risk test-monitoring test-integration test-e2e \
        lint-check lint format bench status up down logs replay chaos test-compose clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

start: $(STAMP)
	$(BIN)/edgebus start

test: $(STAMP)
	$(PYTEST) -q -p no:cacheprovider

test-unit: $(STAMP)
	$(PYTEST) -q tests/unit

test-risk: $(STAMP)
	$(PYTEST) -q -m risk

test-monitoring: $(STAMP)
	$(PYTEST) -q -m monitoring

test-integration: $(STAMP)
	$(PYTEST) -q tests/integration tests/e2e

test-e2e: $(STAMP)
	$(PYTEST) -q tests/e2e

lint-check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench.run

status: $(STAMP)
	$(BIN)/edgebus status

replay: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make replay FILE=path [SPEED=x]"; exit 2; }
	$(BIN)/edgebus replay "$(FILE)" --speed $(or $(SPEED),1)

chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

test-compose:
	bash scripts/test_compose.sh

up:
	$(COMPOSE) up -d

down:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
