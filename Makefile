# cxpulse developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,grafana]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install cxpulse with its dev tools

system-deps: install ## Install Java, Maven, Prometheus and Alertmanager from Debian if missing (root)
	$(BIN)/python -m deploy.local.system_packages

demo: install system-deps ## Run Kafka, a worker, Prometheus, Alertmanager and live simulated traffic (Ctrl-C stops all)
	$(BIN)/cxpulse demo

test: install system-deps ## Lint, type-check and run the whole test suite (real Kafka and Prometheus included)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

soak: install system-deps ## Long campaigns: six broker outages, kill -9 a worker 10 times, scale 1 -> 3 -> 1, fleet and catch-up on an 8-day world (~35 min + fleet)
	CXPULSE_SOAK=1 CXPULSE_SOAK_KILLS=$${CXPULSE_SOAK_KILLS:-10} $(BIN)/python -m pytest -s -p no:cacheprovider \
		--timeout 2400 tests/streams/test_broker_restart_kafka.py tests/streams/test_restart_kafka.py \
		tests/streams/test_scale_out_kafka.py tests/streams/test_fleet_kafka.py $(PYTEST_ARGS)

lint: install ## ruff and mypy only
	$(BIN)/ruff check .
	$(BIN)/ruff format --check streams detectors schemas || true
	$(BIN)/mypy

bench: install system-deps ## Throughput benchmarks on the local broker (prints figures)
	$(BIN)/python -m bench.run_all

nab: install ## Score the metric anomaly detector on the NAB corpus
	$(BIN)/cxpulse nab --data ../shared/nab --out var/nab

kafka-start: install ## Start the local Kafka broker (installs it on first use)
	$(BIN)/cxpulse kafka start

kafka-stop: install ## Stop the local Kafka broker
	$(BIN)/cxpulse kafka stop

dashboards: install ## Regenerate grafana/dashboards/*.json from code
	$(BIN)/python -m grafana.generate

clean: ## Remove local data (Kafka, Prometheus, worker state) and caches
	-$(BIN)/cxpulse kafka stop
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install system-deps demo test soak lint bench nab kafka-start kafka-stop dashboards clean
