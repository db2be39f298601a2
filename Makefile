# One entry point for developers, the README and CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := embedded,openai,anthropic,api,rag,local,documents,otel,dev
# sentence-transformers needs torch: this pinned CPU build is on the machines' disk
# (any other version would download gigabytes), so it is installed first.
TORCH := torch==2.13.0
PYTEST_ARGS ?=
# Every install resolves to the exact versions in constraints.txt, so a new release on
# the index cannot change what CI runs. `make constraints` rewrites it from the venv.
CONSTRAINTS := constraints.txt
# llama-cpp-python compiles llama.cpp. A native build (-march=native) takes the build
# machine's newest instructions: on our CI machines (AVX-512 and AMX under a hypervisor)
# it crashed with SIGSEGV in its first decode. The portable build (AVX2) runs everywhere
# we run; it is built without pip's wheel cache, which may hold a native build.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF

.PHONY: install constraints services test test-pgvector test-unit test-integration check-vendors deliberate-bugs test-loaded test-pgbouncer test-cluster lint typecheck bench demo schemathesis chaos clean mutation

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "pip==26.3"
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) "$(TORCH)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(BIN)/python -m pip install -q --no-cache-dir -c $(CONSTRAINTS) llama-cpp-python
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install -q -c $(CONSTRAINTS) \
	  -e ".[$(EXTRAS)]"
	touch $@

# After a deliberate upgrade (pip install -U ... in the venv, tests green): pin it.
constraints:
	( echo "# Exact versions every install uses (make install passes -c constraints.txt)."; \
	  echo "# Regenerate after a deliberate upgrade: make constraints"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^ai-agents' ) > $(CONSTRAINTS)

services:
	scripts/ensure-services.sh

# The RAG and doctor tests run a second time with every database on the embedded
# PostgreSQL 18 with pgvector (the system server has none): the pgvector path.
PGVECTOR_TESTS := tests/integration/test_rag_*.py tests/integration/test_doctor.py

test: install services
	$(BIN)/pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-pgvector

test-pgvector: install services
	AI_AGENTS_TEST_ON_PGVECTOR=1 $(BIN)/pytest -q $(PGVECTOR_TESTS)

test-unit: install
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

test-integration: install services
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

# The integration suite with every test database reached through PgBouncer in
# transaction mode (started by tests/pgbouncer.py on a spare port, stopped after).
test-pgbouncer: install services
	$(BIN)/python -m tests.pgbouncer tests/integration $(PYTEST_ARGS)

# The Redis-touching integration tests on a local 3-primary Redis Cluster (started by
# tests/redis_cluster.py with Debian's redis-server on spare ports, stopped after).
test-cluster: install services
	$(BIN)/python -m tests.redis_cluster $(PYTEST_ARGS)

# Our model table against the installed vendor SDKs' model and deprecation lists
# (tests/vendors, outside `make test`: it changes with an SDK upgrade, not with our code).
check-vendors: install
	$(BIN)/pytest -q tests/vendors

# Each deliberate bug of tests/bugs/catalog.py (lock removed, limiter window off by one,
# ...) applied to a copy of the repository must make one of its tests fail within 60 s.
deliberate-bugs: install services
	$(BIN)/python -m tests.bugs.run --limit 60

# `make test` LOADED_RUNS times in a row, each in a new random order, beside a CPU burner.
LOADED_RUNS ?= 5
test-loaded: install services
	$(BIN)/python -m tests.loaded_runs --runs $(LOADED_RUNS) --burners 1

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# Run by bench/rag.py (or helpers of other scripts), not on their own.
BENCH_PARTS := bench/_common.py bench/_instant_openai.py bench/rag_ingest.py \
  bench/rag_search.py bench/rag_eval.py

bench: install services
	@for script in $(filter-out $(BENCH_PARTS),$(wildcard bench/*.py)); do \
	  echo "== $$script"; $(BIN)/python $$script || exit 1; done

# The multi-process load test (docs/testing.md, "Load test"): a fake vendor with 300 ms
# latency, `ai-agents serve --workers 3`, 4 workers, 10,000 threads, 60 s of sync runs,
# streams, background runs and reads, then every touched thread checked in PostgreSQL
# (0 lost, 0 duplicated, turns contiguous). LOAD_ARGS passes options (--duration 10 ...).
# `make bench` runs it too, with the defaults; its vendor is one of the helpers.
BENCH_PARTS += bench/_latency_openai.py
LOAD_ARGS ?=
.PHONY: bench-load
bench-load: install services
	$(BIN)/python bench/load.py $(LOAD_ARGS)

schemathesis: install services
	API_SCHEMATHESIS_EXAMPLES=200 API_SCHEMATHESIS_MIN_REQUESTS=10000 \
	  $(BIN)/pytest -q -p no:cacheprovider tests/integration/test_api_schemathesis.py

# Fault runs under load (docs/operations.md, "Chaos testing"). No services target: the
# run starts its own PostgreSQL, Redis and vendor on spare ports and stops only those.
# AI_AGENTS_CHAOS_SECONDS sets the load's length (default 75).
chaos: install
	AI_AGENTS_CHAOS=1 $(BIN)/pytest -q -s -p no:cacheprovider tests/chaos $(PYTEST_ARGS)

# No services target: without AI_AGENTS_DATABASE_URL / AI_AGENTS_REDIS_URL the demo
# starts its own embedded PostgreSQL and Valkey in the user's data directory
# (~/.local/share/ai-agents), which `ai-agents serve`, `keys`, `worker`... then reuse.
demo: install
	$(BIN)/python -m ai_agents demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Mutation testing of the core (docs/testing.md, "Mutation testing"): mutmut over the
# modules and tests in setup.cfg ([mutmut], [mutation]), from a clean mutants/, then the
# score per module and overall. MUTATION_CHILDREN mutants are tested at once.
MUTATION_CHILDREN ?= 2
mutation: install services
	rm -rf mutants
	MUTATION_CHILDREN=$(MUTATION_CHILDREN) $(BIN)/python tools/mutation.py run
