# One entry point for developers, the README and CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := openai,anthropic,api,rag,local,dev
# sentence-transformers needs torch: this pinned CPU build is on the machines' disk
# (any other version would download gigabytes), so it is installed first.
TORCH := torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install services test test-unit test-integration lint typecheck bench demo schemathesis clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

services:
	scripts/ensure-services.sh

test: install services
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

test-integration: install services
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

bench: install services
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

schemathesis: install services
	API_SCHEMATHESIS_EXAMPLES=200 API_SCHEMATHESIS_MIN_REQUESTS=10000 \
	  $(BIN)/pytest -q -p no:cacheprovider tests/integration/test_api_schemathesis.py

# No services target: without AI_AGENTS_DATABASE_URL / AI_AGENTS_REDIS_URL the demo
# starts its own embedded PostgreSQL and Valkey under .ai_agents/.
demo: install
	$(BIN)/python -m ai_agents demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
