# Touchstream: every target does its own set-up on a fresh machine (Java 17 and Maven present).
# `make help` lists the targets.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
STACK  := $(PYTHON) deploy/local/stack.py
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install redis-server chromium node browser-sdks prometheus up down status topics test test-unit demo lint bench hotspots chaos clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools

redis-server: ## Install Debian's redis-server when it is missing
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server from Debian"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null; }
	@command -v redis-server >/dev/null || { echo "redis-server could not be installed: apt-get install -y redis-server"; exit 1; }

CHROMIUM := /usr/bin/chromium
chromium: ## Install Debian's chromium (the browser tests drive it; nothing is downloaded) when it is missing
	@test -x $(CHROMIUM) || { \
	  echo "installing chromium from Debian"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
	@test -x $(CHROMIUM) || { echo "chromium could not be installed: apt-get install -y chromium"; exit 1; }

node: ## Install Debian's nodejs and npm when they are missing (the SDK tests run on them)
	@command -v npm >/dev/null || { \
	  echo "installing nodejs and npm from Debian"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null; }
	@command -v npm >/dev/null || { echo "npm could not be installed: apt-get install -y nodejs npm"; exit 1; }

SDKS_STAMP := tests/browser/node_modules/.package-lock.json
$(SDKS_STAMP): tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(SDKS_STAMP)

browser-sdks: node $(SDKS_STAMP) ## npm ci the unmodified JavaScript SDKs the browser and Node tests load

prometheus: ## Install Debian's prometheus (with promtool) when missing: the ops tests run the real one
	@command -v promtool >/dev/null || { \
	  echo "installing prometheus from Debian"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
	@command -v promtool >/dev/null || { echo "prometheus could not be installed: apt-get install -y prometheus"; exit 1; }

up: redis-server ## Start Kafka (KRaft) and Redis and wait until they answer
	@$(STACK) up

down: ## Stop exactly what `make up` started
	@$(STACK) down

status: ## Show whether Kafka and Redis answer
	@$(STACK) status

topics: install up ## Create the platform's Kafka topics (idempotent)
	$(BIN)/touchstream topics create

test: install up chromium browser-sdks prometheus ## Unit and integration tests on the real stack (browsers included)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install ## Unit tests only (nothing running needed)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

demo: install up ## Run the main job end to end and print a summary
	$(BIN)/touchstream demo

BENCH_EVENTS ?= 1000000
BENCH_GROWTH ?= 10000,100000,1000000
BENCH_LAKE_SIZES ?= 1000000
bench: install up ## Throughput, latency, memory vs baselines (BENCH_EVENTS=N, BENCH_GROWTH=sizes, BENCH_LAKE_SIZES=1000000,10000000); writes bench-results.json
	$(BIN)/touchstream bench --events $(BENCH_EVENTS) --growth "$(BENCH_GROWTH)" --lake-sizes "$(BENCH_LAKE_SIZES)"

HOTSPOT_EVENTS ?= 100000
hotspots: install up ## py-spy samples of one worker draining HOTSPOT_EVENTS synthetic events; top frames
	$(BIN)/touchstream hotspots --events $(HOTSPOT_EVENTS)

chaos: install up ## Kill the worker 3x, restart Redis and Kafka mid-stream; verify nothing lost or repeated
	$(BIN)/pytest tests/chaos -s -p no:cacheprovider

lint: install ## ruff check
	$(BIN)/ruff check .

clean: down ## Stop the stack and remove .venv and .local
	rm -rf $(VENV) .local
