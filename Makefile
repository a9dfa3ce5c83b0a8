# The commands of the README: `make demo`, `make test` and `make lint`. All install first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo demo-setup demo-reset test lint format bench-deps screenshots

install: $(STAMP)

# A line per step (scripts/pip_install.py shows pip's progress in one line).
$(STAMP): requirements.txt requirements-dev.txt
	@echo "• Making the virtual environment $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@echo "• Updating pip"
	@$(PY) -m pip install --quiet --upgrade pip
	@echo "• Installing Canary's dependencies (about a minute the first time)"
	@$(PY) scripts/pip_install.py -r requirements-dev.txt
	@# The client is imported from its source (tests, lint-imports), as pytest's pythonpath does.
	@$(PY) -c "import pathlib, site; pathlib.Path(site.getsitepackages()[0], 'canary-client.pth').write_text(str(pathlib.Path('client').resolve()) + '\\n')"
	@touch $(STAMP)

# Embedded default: SQLite, tasks in-process, demo data, e-mails kept in the dashboard's
# outbox, dashboard on port 8000 (plain HTTP on the loopback address, so no HTTPS redirect and
# no secure-only cookies). The demo command's last lines are the address and the logins.
demo: demo-setup
	@CANARY_HTTPS=false $(PY) manage.py runserver --skip-checks 127.0.0.1:8000

demo-setup: install
	@$(PY) manage.py demo

# Start over: a new embedded database with fresh demo data (refused on any other database).
demo-reset: install
	@$(PY) manage.py demo --reset
	@CANARY_HTTPS=false $(PY) manage.py runserver --skip-checks 127.0.0.1:8000

test: install
	$(PY) -m pytest

# The README's pictures, retaken: the browser tests alone (headless Chromium, 1440x900, on the
# demo data), writing into docs/screenshots (SCREENSHOTS=dir to put them elsewhere).
SCREENSHOTS ?= docs/screenshots
screenshots: install
	CANARY_SCREENSHOTS=$(SCREENSHOTS) $(PY) -m pytest -m browser -q

# Import directions (.importlinter); the client is imported from its source, as in the tests.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=.:client $(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Evidently and NannyML (the drift and estimate benchmarks' baselines) live in their own venv:
# bench/drift.py and bench/estimate.py run them there as subprocesses, so their pins never touch
# the app's.
BENCH_VENV := .venv-bench
bench-deps: install
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt
