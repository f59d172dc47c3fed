# Bestie backend. `make dev` serves everything locally; `make test` is what CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install dev test check test-concurrent test-compat lint lint-ruff lint-format lint-types lint-migrations lint-layers fmt migrate bench cost load bundle mutants clean

install: $(STAMP)

# uv installs the pinned set in seconds where pip takes over half a minute (a third of a fresh
# clone's `make test`); pip installs it when uv cannot be had. The venv is made without pip
# (ensurepip took 3.5 s of a fresh clone's run): the host's pip puts uv into it (`pip --python`,
# pip >= 22.3); without such a pip, the venv gets pip of its own first.
UV_VERSION := 0.13.9
VENV_PIP = $(BIN)/python -m ensurepip --default-pip >/dev/null && $(BIN)/python -m pip install --quiet

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	@$(PYTHON) -m pip --python $(BIN)/python install --quiet uv==$(UV_VERSION) || $(VENV_PIP) uv==$(UV_VERSION) || true
	test -x $(BIN)/uv && $(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt \
	  || { $(VENV_PIP) -r requirements-dev.txt; }
	@rm -f $(VENV)/.installed-*
	@touch $@

# The schema needs pg_trgm (migrations/0027_pg_trgm.sql), which pgserver's bundled Postgres lacks:
# Debian's postgresql-contrib brings a Postgres that ships it (infra/embedded.py picks it).
PG_TRGM = @ls /usr/share/postgresql/*/extension/pg_trgm.control >/dev/null 2>&1 || [ -n "$(DATABASE_URL)$(TEST_DATABASE_URL)" ] || { apt-get update && apt-get install -y postgresql-contrib; }

dev: install
	$(PG_TRGM)
	$(BIN)/python -m infra.dev

# The five checks are independent: they run at once (each one's output kept together), and
# lint fails when any of them does.
LINT_STEPS := lint-ruff lint-format lint-types lint-migrations lint-layers

lint: install
	@$(MAKE) --no-print-directory -j5 --output-sync=target $(LINT_STEPS)

lint-ruff:
	$(BIN)/ruff check .
lint-format:
	$(BIN)/ruff format --check .
lint-types:
	$(BIN)/mypy
lint-migrations:
	$(BIN)/python -m infra.lint_migrations
lint-layers:
	$(BIN)/lint-imports --no-cache --no-logo

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# pytest-xdist workers, each with its own embedded Postgres and Valkey (README, "Tests"). Servers
# of your own (TEST_DATABASE_URL) would be shared by the workers, so that run is serial.
# Debian's redis-server (built with TLS) serves the Valkey TLS tests (tests/integration/test_valkey_tls.py).
# Three per core, at most 16: much of a test's time is waiting (long polls, server processes,
# timeouts), so workers beyond the cores keep them busy (README, "Tests").
TEST_WORKERS ?= $(if $(TEST_DATABASE_URL),0,$(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n * 3 > 16 ? 16 : n * 3 ))))

# Bytecode is written during the run even where PYTHONDONTWRITEBYTECODE is set (Python takes an
# empty value as unset): without it every worker rewrites every test module's asserts again and
# every server process the tests start compiles the whole code base from source.
#
# Lint runs beside the suite, not before it: on a fresh clone mypy keeps one core busy for about
# 8 s while the other has nothing to do, and the suite's start (bytecode, workers collecting)
# takes that core. Lint's output is printed after the suite's; the target fails when either does.
test: export PYTHONDONTWRITEBYTECODE :=
test: install
	$(PG_TRGM)
	@command -v redis-server >/dev/null 2>&1 || { apt-get update && apt-get install -y redis-server; }
	@log=$$(mktemp); $(MAKE) --no-print-directory lint >"$$log" 2>&1 & lint=$$!; \
	  $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS); suite=$$?; \
	  wait $$lint; linted=$$?; echo "---- make lint (ran beside the suite)"; cat "$$log"; rm -f "$$log"; \
	  [ $$linted -eq 0 ] || echo "make lint failed"; [ $$suite -eq 0 ] && [ $$linted -eq 0 ]

# The inner loop, under 30 s: lint, then the unit and tooling tiers (no servers) and any test files named in
# CHECK_TESTS, in one process (README, "Tests").
check: lint
	$(BIN)/python -m pytest -p no:xdist -q tests/unit tests/tooling $(CHECK_TESTS) $(PYTEST_ARGS)

# Two parallel runs started at once on a subset both pass, and a run killed with SIGKILL leaves
# no postgres or valkey-server running (tests/support/concurrent_runs.py). Not part of make test.
test-concurrent: install
	$(BIN)/python -m tests.support.concurrent_runs

# The integration tests on the oldest servers we claim: the image's Postgres 15 and Debian's
# redis-server 7.0 (nearest to Memorystore's Valkey 7.2). Installs redis-server when missing;
# not part of `make test`. See infra/compat.py. Then openapi-generator's dart-dio client with
# zero warnings (tests/clients/dart_dio.py; installs a JRE when java is missing).
test-compat: install
	@command -v redis-server >/dev/null 2>&1 || { apt-get update && apt-get install -y redis-server; }
	$(BIN)/python -m infra.compat $(PYTEST_ARGS)
	@command -v java >/dev/null 2>&1 || { apt-get update && apt-get install -y default-jre-headless; }
	$(BIN)/python -m tests.clients.dart_dio

migrate: install
	$(BIN)/python -m infra.migrate

bundle: install
	$(BIN)/python -m infra.bundle

bench: install
	$(BIN)/python -m bench

# The monthly cost at 1k/10k/100k online from measured per-request cost (docs/cost.md, docs/cost.png).
cost: install
	LOG_LEVEL=WARNING $(BIN)/python -m bench.cost

# Locust against two server processes on their own Postgres + Valkey, 60 s, then the invariants;
# fails on any error or violation. LOAD_ARGS="--seconds 20 --mitras 100 --customers 20" for less.
# CHAOS=1 makes faults during the run and checks the invariants through them (bench/load/chaos.py).
load: install
	$(BIN)/python -m bench.load $(if $(CHAOS),--chaos) $(LOAD_ARGS)

# On demand, not in CI: break each invariant of tests/mutants.toml in a scratch copy, run its tests.
# MUTANTS="name ..." runs only those.
mutants: install
	$(BIN)/python -m tests.support.mutants $(MUTANTS)

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
