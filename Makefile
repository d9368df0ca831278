# fusion-eval: the two commands of the README, and their set-up steps.
#   make demo   set up from requirements.lock (runtime only), then run the demo study (SQLite, embedded broker) and serve it
#               on ADDRPORT (default 127.0.0.1:8000; e.g. `make demo ADDRPORT=127.0.0.1:8600`)
#   make test   set up from requirements-dev.lock, then run the tests: on PostgreSQL (+ Redis), and those of the web app
#               that use the database again on SQLite; `make test-slow` runs the few that CI leaves out
#   make lint   ruff and mypy, with the settings in pyproject.toml, and models that match their migrations
#   make lock   recompile both lock files from requirements.txt / requirements-dev.txt
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# pip itself is not in the lock files (no resolver pins the installer); this is the one it gets.
PIP_VERSION := 26.3
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS_URL ?= redis://127.0.0.1:6379/15
# Tests run in TEST_PROCS processes (pytest-xdist): one file's tests stay in one process, so a
# module's fixtures are built once; the Redis-using tests of process gwN use REDIS_URL's database less N
# (tests/conftest.py). `make test TEST_PROCS=0` runs them in one process, as before.
TEST_PROCS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_PROCS) --dist loadfile

.PHONY: demo test test-sqlite test-slow install install-dev lint lint-fix lock check-lock check-lock-current browser services clean

# One stamp per lock (the runtime lock's packages are a subset of the dev lock's, same versions).
# --no-deps: the lock already names every package, and pip must not resolve anything else;
# the hashes in the lock make pip refuse any other file.
$(VENV)/.installed-%: %.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==$(PIP_VERSION)
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r $<
	touch $@

install: $(VENV)/.installed-requirements
	mkdir -p var

install-dev: $(VENV)/.installed-requirements-dev
	mkdir -p var

# Compile both locks with uv (tools/lock.py; uv's settings are in pyproject.toml, [tool.uv.pip]).
# Today's pins are kept where they still fit: `make lock ARGS="--upgrade-package NAME"` moves one.
ARGS ?=
lock:
	$(BIN)/python -m tools.lock $(ARGS)

# CI: the lock files are what compiling the requirements files gives now.
check-lock-current:
	$(BIN)/python -m tools.lock --check

# The installed packages are exactly the lock's (names normalized, pip's own line left out).
check-lock:
	$(BIN)/python -m tools.check_lock requirements-dev.lock

lint:
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python manage.py makemigrations --check --dry-run

# The fix pass: ruff's safe fixes, strict=True on every zip(), then the list of what is left.
lint-fix:
	$(BIN)/python -m tools.lint_fix

# Chromium for the browser tests: installing it (when /usr/bin/chromium is missing) needs root.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

services:
	@bash .ci/services

# The demo is what gets shown to people: DEBUG off whatever the shell exports (run
# `DEBUG=1 .venv/bin/python manage.py demo` to develop against it).
ADDRPORT ?= 127.0.0.1:8000
demo: install
	DEBUG=0 $(BIN)/python manage.py demo --addrport $(ADDRPORT)

# The second pass is on SQLite whatever the shell exports: settings.py reads an empty
# DATABASE_URL as unset. It runs the web app's tests that use the database; the others
# cannot reach it, so they would run the same code again (docs/development.md).
test: install-dev browser services
	DATABASE_URL=$(PG_URL) FUSION_TEST_REDIS_URL=$(REDIS_URL) $(PYTEST)
	DATABASE_URL= $(PYTEST) --database-tests-only tests/webapp

test-sqlite: install-dev browser
	$(PYTEST)

# The tests CI leaves out (tests/slow.py: marked slow, skipped unless FUSION_SLOW_TESTS=1), on
# PostgreSQL as the first pass; docs/development.md says which they are and when to run them.
test-slow: install-dev browser services
	FUSION_SLOW_TESTS=1 DATABASE_URL=$(PG_URL) FUSION_TEST_REDIS_URL=$(REDIS_URL) $(PYTEST) -m slow

clean:
	rm -rf var
