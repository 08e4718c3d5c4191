# Tapeline developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install Tapeline with its dev tools

demo: setup ## Run the whole pipeline on embedded defaults: broker, simulator, connector, processor, query, signals
	$(PY) -m tools.demo

test: setup ## Run the test suite (starts the local Kafka broker when needed)
	$(PY) -m pytest -q -ra

lint: setup ## Ruff lint and format check, mypy (strict), the layer contracts (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

fuzz: setup ## Property-based fuzzing of every venue session on mutated real captures (TAPELINE_FUZZ_EXAMPLES, default 60000)
	TAPELINE_FUZZ_PROFILE=fuzz TAPELINE_FUZZ_REPORT=$(or $(FUZZ_REPORT),.run/fuzz-report.txt) $(PY) -m pytest -q -s -p no:cacheprovider tests/unit/venues/test_fuzz.py

bench: setup ## Benchmarks: parse, encode+produce, simulator -> ClickHouse throughput (writes docs/benchmarks.md)
	$(PY) -m tools.bench

kafka-up: ## Start the local single-node Kafka 4.x broker (downloads it from Maven Central once)
	$(PYTHON) tools/kafka_local.py start

kafka-down: ## Stop the local Kafka broker
	$(PYTHON) tools/kafka_local.py stop

kafka-status: ## Is the local broker answering?
	$(PYTHON) tools/kafka_local.py status

migrate: setup ## Apply ClickHouse migrations (TAPELINE_CLICKHOUSE__DSN; default embedded .run/chdb)
	$(VENV)/bin/tapeline migrate

proto: setup ## Regenerate gRPC stubs from schemas/proto into the package
	$(PY) -m tools.gen_proto

clean: ## Remove run state (.run: broker data, embedded ClickHouse); keeps .venv and the broker download
	-$(PYTHON) tools/kafka_local.py stop
	rm -rf .run

.PHONY: help setup demo test lint fuzz bench kafka-up kafka-down kafka-status migrate proto clean
