# edgebus: the commands of CONTRACT.md. `make start` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/pytest
COMPOSE ?= $(shell command -v docker-compose >/dev/null 2>&1 && echo docker-compose || echo docker compose)

.PHONY: install start test test-all test-unit test-risk test-monitoring test-integration test-e2e \
        lint-check lint format bench bench-peers status up down logs replay backtest redis-cli \
        chaos test-compose clean

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

# every suite, as the seeds' README names it; `-m ""` also runs any test that a marker
# deselects by default
test-all: $(STAMP)
	$(PYTEST) -q -p no:cacheprovider -m ""

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

bench-peers: $(STAMP)
	$(BIN)/python -m bench.peers

status: $(STAMP)
	$(BIN)/edgebus status

replay: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make replay FILE=path [SPEED=x]"; exit 2; }
	$(BIN)/edgebus replay "$(FILE)" --speed $(or $(SPEED),1)

backtest: $(STAMP)
	@test -n "$(FILE)$(ARGS)" || { echo 'usage: make backtest FILE=path [OUT=dir] [ARGS="--preset NAME ..."], or ARGS="--synthetic --ticks N --seed S"'; exit 2; }
	$(BIN)/edgebus backtest $(if $(FILE),"$(FILE)") $(if $(OUT),--out "$(OUT)") $(ARGS)

# e.g. make redis-cli ARGS="XREVRANGE fills + - COUNT 5"
redis-cli: $(STAMP)
	$(BIN)/edgebus redis-cli $(ARGS)

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
