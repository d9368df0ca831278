# fusion-eval: the two commands of the README, and their set-up steps.
#   make demo   set up, then run the demo study (SQLite, embedded Celery broker) and serve it
#   make test   set up, then run every test: on PostgreSQL (+ Redis) and again on SQLite
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: demo test test-sqlite test-postgres install browser services clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

install: $(STAMP)
	mkdir -p var

browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

services:
	@bash .ci/services

# The demo is what gets shown to people: DEBUG off whatever the shell exports (run
# `DEBUG=1 .venv/bin/python manage.py demo` to develop against it).
demo: install
	DEBUG=0 $(BIN)/python manage.py demo

test: install browser services
	DATABASE_URL=$(PG_URL) FUSION_TEST_REDIS_URL=$(REDIS_URL) $(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q tests/webapp

test-sqlite: install browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf var
