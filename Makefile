# Two commands do everything on a fresh machine: `make run` and `make test`.
# A second run reinstalls nothing unless requirements.txt, requirements-dev.txt or
# package.json changed (stamp files under .make/).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .make
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup lint typecheck pytest messages static services clean

setup: $(STAMPS)/python $(STAMPS)/npm $(STAMPS)/system messages

$(STAMPS):
	@mkdir -p $(STAMPS)

# Debian packages the project needs: gettext (compilemessages), chromium (browser tests),
# and the libraries WeasyPrint draws PDFs with.
$(STAMPS)/system: | $(STAMPS)
	@missing=""; \
	command -v msgfmt >/dev/null || missing="$$missing gettext"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ldconfig -p | grep -q libpangoft2-1.0 || missing="$$missing libpango-1.0-0 libpangoft2-1.0-0"; \
	fc-list 2>/dev/null | grep -qi dejavu || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@touch $@

$(STAMPS)/python: requirements.txt requirements-dev.txt | $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(STAMPS)/npm: package.json | $(STAMPS)
	npm install --no-audit --no-fund --loglevel=error
	node scripts/vendor-static.mjs
	@touch $@

# Compiled catalogues are build output: rebuilt when a .po file is newer.
messages: $(STAMPS)/python $(STAMPS)/system
	@shopt -s nullglob; for po in locale/*/LC_MESSAGES/django.po; do \
	  mo=$${po%.po}.mo; [ "$$mo" -nt "$$po" ] || { msgfmt --check -o "$$mo" "$$po" || exit 1; }; \
	done

# The live demo: web server, Celery worker, MQTT ingestor and device simulator together
# (scripts/run-dev.sh). Redis and Mosquitto on this machine when they answer, unless REDIS_URL /
# MQTT_URL say otherwise; without a broker the simulator posts over HTTP.
run: setup
	PY=$(PY) HOST=$(HOST) PORT=$(PORT) scripts/run-dev.sh

lint: $(STAMPS)/python
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(STAMPS)/python
	$(VENV)/bin/mypy

# Tests use the machine's PostgreSQL and Redis unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/virtualhospital
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1
TEST_MQTT_URL ?= mqtt://127.0.0.1:1883

TEST_ENV := DB_CONN_MAX_AGE=0 DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	MQTT_URL=$(TEST_MQTT_URL)

# Browser tests run in their own process: Playwright's sync API keeps an event loop in the
# main thread, which the async (WebSocket) tests need for themselves.
pytest: setup
	$(TEST_ENV) $(PY) -m pytest --ignore=tests/e2e $(PYTEST_ARGS)
	$(TEST_ENV) $(PY) -m pytest tests/e2e $(PYTEST_ARGS)

test: setup lint typecheck
	$(PY) manage.py makemigrations --check --dry-run
	$(MAKE) --no-print-directory pytest

clean:
	rm -rf $(STAMPS) $(VENV) node_modules static/vendor staticfiles var
