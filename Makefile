# Two commands for a new user: `make run` (the app on this machine, with everything it needs) and `make test`.
# Both install what is missing: a Python 3.13 virtual environment in .venv and Azurite in node_modules.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.13
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed

.PHONY: help deps browser run demo test test-under-load unit consent consent-rehearsal lint typecheck pytest bench clean infra-check caller-key

help:
	@echo "make run    start the app locally (Functions host on Microsoft's worker + Azurite + sandbox); PORT=, KEYS="
	@echo "make demo   submit a sandbox upgrade to the running app (make run) and follow it to the end; PORT="
	@echo "            fleet: make run ARGS=\"--fleet 300\", then make demo ARGS=--fleet (a report batch and its CSV)"
	@echo "make unit   the unit tier (tests/unit: pure rules, no Azurite, Node or sandbox) in seconds"
	@echo "make test   lint, type-check and run the test suite (the unit tier included)"
	@echo "make test-under-load  make test beside two CPU-bound processes (a busy machine); LOAD_BURNERS="
	@echo "make bench  benchmark against a naive relay"
	@echo "make consent ARGS=\"--vault <vault> --tenant <partner tenant> --client-id <SAM app id> ...\""
	@echo "            the one-time SAM consent into Key Vault (README \"Deploy\"); ARGS=--help lists the options"
	@echo "make consent-rehearsal  the consent tool end to end against the local sandbox (signs in for you)"
	@echo "make infra-check  Bicep syntax gate + checkov policy scan of infra/ (part of make test)"

$(PY_STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.13 is required: put python3.13 on PATH (or: make PYTHON=/path/to/python3.13)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else "Python 3.13 is required, $(PYTHON) is " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are required for Azurite"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# checkov's large dependency tree gets its own venv; recreated whenever requirements-infra.txt changes.
$(INFRA_STAMP): requirements-infra.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.13 is required: put python3.13 on PATH (or: make PYTHON=/path/to/python3.13)"; exit 1; }
	rm -rf $(INFRA_VENV)
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	@touch $@

deps: $(PY_STAMP) $(NODE_STAMP)

# lint-imports holds shared/'s dependency direction (pyproject.toml [tool.importlinter]): an upward import fails.
lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: deps
	$(VENV)/bin/mypy

# Coverage of the app (shared/ and the function folders) is printed at the end; COVERAGE_CORE=sysmon keeps it cheap.
# Three workers (pytest-xdist), each with its own Azurite and sandbox: many tests wait on real sockets, queues and
# other processes, so three of them keep 2 cores busy; worksteal evens out the long ones. PYTEST_WORKERS=1 runs serially.
COVERED := --cov=shared $(addprefix --cov=,$(patsubst %/function.json,%,$(wildcard */function.json)))
PYTEST_WORKERS ?= 3
# The progress page is tested in Debian's chromium (tests/test_progress_page_browser.py): installed when missing and
# apt-get can (as root, as CI and these machines run); otherwise that test says how to install it.
browser:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

pytest: deps browser
	COVERAGE_CORE=sysmon $(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(COVERED) --cov-report=term:skip-covered

# No Bicep compiler exists offline: gate syntax with two parsers (checkov exits 0 on files it cannot parse),
# then fail on any failed checkov policy; accepted exceptions are `checkov:skip=` comments inside the Bicep resources.
infra-check: $(INFRA_STAMP)
	$(INFRA_VENV)/bin/python infra/check_syntax.py
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(INFRA_VENV)/bin/checkov -d infra --framework bicep --skip-download --compact --quiet

test: infra-check lint typecheck pytest

# The unit tier: needs the Python venv only (no node_modules, no Azurite, no sandbox). --confcutdir keeps
# tests/conftest.py (the Azurite and sandbox fixtures) from even loading; the plugins it has no use for (xdist,
# coverage, schemathesis, anyio) stay unloaded: a few seconds.
unit: $(PY_STAMP)
	$(PY) -m pytest tests/unit -q --confcutdir=tests/unit -p no:xdist -p no:pytest_cov -p no:schemathesis -p no:anyio

# `make test` on a busy machine: LOAD_BURNERS (2) CPU-bound processes run beside it and are killed when it ends,
# fails or is interrupted. The suite waits for conditions with deadlines, never for fixed times, so it stays green.
LOAD_BURNERS ?= 2
test-under-load:
	@burners=(); trap 'kill $${burners[@]} 2>/dev/null; wait $${burners[@]} 2>/dev/null' EXIT INT TERM; \
	for _ in $$(seq $(LOAD_BURNERS)); do python3 -c 'while 1: pass' & burners+=($$!); done; \
	echo "test-under-load: $(LOAD_BURNERS) CPU burners running (pids $${burners[*]})"; \
	started=$$SECONDS; $(MAKE) test; status=$$?; \
	echo "test-under-load: make test exited $$status after $$((SECONDS - started)) s beside $(LOAD_BURNERS) CPU burners"; \
	exit $$status

# make run PORT=7081 (default 7071), make run KEYS=keys.json (enforce authLevel with those function keys);
# make demo uses the `make run` of this checkout (the newest, or the one on PORT=...).
# Other options go through ARGS, e.g. make run ARGS=--app-logs, make demo ARGS="--customer failing --callback"
run: deps
	$(PY) -m localrun $(if $(PORT),--port $(PORT)) $(if $(KEYS),--keys $(KEYS)) $(ARGS)

demo: deps
	$(PY) -m localrun.demo $(if $(PORT),--port $(PORT)) $(ARGS)

bench: deps
	$(PY) -m bench

# The consent tool needs the venv (msal, azure-identity) and the repo root, whatever shell it is typed in: make gives
# both. The rehearsal starts the sandbox only (no Azurite, no Node). docs/deploy.md, "Consent".
consent: $(PY_STAMP)
	$(PY) -m tools.consent $(ARGS)

consent-rehearsal: $(PY_STAMP)
	$(PY) -m tools.consent_rehearsal $(ARGS)

# Named caller keys in Key Vault: make caller-key ARGS="--vault <name> create crm --roles Upgrades.Create"
caller-key: deps
	$(PY) -m tools.caller_keys $(ARGS)

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
