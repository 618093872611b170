# Everything a newcomer needs: `make demo` and `make test`. Both create .venv and install on first use.
# `make test` is lint, types and the fast test tier (under 3 minutes on 2 cores); `make test-all` is
# everything CI runs (docs/testing.md).
# The newest Python 3.10+ on the machine (Airflow 3 supports 3.10 to 3.13); PYTHON=... overrides it.
ifndef PYTHON
PYTHON := $(firstword $(foreach python,python3.13 python3.12 python3.11 python3.10 python3,\
	$(shell command -v $(python) >/dev/null 2>&1 && $(python) -c 'import sys; print(int(sys.version_info >= (3, 10)))' 2>/dev/null | grep -qx 1 && echo $(python))))
endif
# Some images set PYTHONDONTWRITEBYTECODE: then no process keeps the bytecode it compiles, and every one
# (each test worker, emulator, probe and Airflow subprocess) compiles Airflow's modules anew, about 5 s.
# Unset here, the first process to import a module writes its bytecode and the others read it.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
BIN := $(VENV)/bin
PYPROJECT_SUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Two installs in one .venv: `make demo` needs only the runtime and the [emulator] extra (DEMO_STAMP);
# everything else adds the test tools (STAMP), which include the emulator.
STAMP := $(VENV)/.installed-$(PYPROJECT_SUM)
DEMO_STAMP := $(VENV)/.installed-demo-$(PYPROJECT_SUM)

# The oldest supported Airflow minor, tested by `make test-compat` in its own virtualenv: the unit
# tests, provider registration through Airflow's CLI, the hooks and the triggers against the emulator.
# Tests that go through `dag.test()` run on 3.3 only: on 3.2.2 its in-process execution API starts
# its lifespan on a background loop and races the first request ("'State' object has no attribute
# 'svcs_registry'"), fixed in 3.3.
COMPAT_AIRFLOW ?= 3.2
COMPAT_VENV := .venv-airflow-$(COMPAT_AIRFLOW)
COMPAT_TESTS := tests/unit tests/integration/test_provider_registration.py tests/integration/hooks tests/integration/triggers

.PHONY: install browser test test-all lint typecheck pytest test-slow test-system test-compat test-stack package-check demo docs airflow bench bench-peers clean

$(VENV)/bin/uv:
	@test -n "$(PYTHON)" || { echo "No Python 3.10 or newer found; install one or run make PYTHON=/path/to/python3.x"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(STAMP): pyproject.toml | $(VENV)/bin/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[test]"
	@rm -f $(VENV)/.installed-*
	@touch $@ $(DEMO_STAMP)

# The runtime and the emulator only: no test tools, browsers' driver or linters.
$(DEMO_STAMP): pyproject.toml | $(VENV)/bin/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[emulator]"
	@rm -f $(VENV)/.installed-demo-*
	@touch $@

install: $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; its own browser download is not used).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when its selection holds no test: a tier emptied by a marker or -k typo. That is a
# failure (checks that silently do not run), reported as such rather than as a bare status.
PYTEST_FAILED = { status=$$?; [ $$status -ne 5 ] || echo "pytest selected no tests ($@): check the markers" >&2; exit $$status; }

# The fast tier (what plain `pytest` selects: no slow, system, browser or stack marker) on three
# pytest-xdist workers, each with its own Airflow home: on 2 cores, three beat two (118 s against
# 141-146 s, side by side) because much of each test waits on sockets (docs/testing.md).
# PYTEST_WORKERS= runs it serially. The slow tier stays on two (SLOW_WORKERS): its timing tests.
PYTEST_WORKERS ?= -n 3 --dist loadfile
SLOW_WORKERS ?= -n 2 --dist loadfile

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS) || $(PYTEST_FAILED)

# mypy (about 25 s from cold, one core) runs beside the tests, which leave a third of two cores idle.
test: lint
	@$(MAKE) --no-print-directory -j2 typecheck pytest

# The slow tier: endurance, the fault matrices, subprocess end-to-end runs (make demo, lineage,
# the provider CLI, the benchmark harness, whose plots need the [bench] extra's matplotlib).
test-slow: $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[test,bench]"
	$(BIN)/python -m pytest -m slow $(SLOW_WORKERS) $(PYTEST_ARGS) || $(PYTEST_FAILED)

# Airflow's services as processes and the browser tests of its web UI, one at a time: each starts
# its own deployment.
test-system: $(STAMP) browser
	$(BIN)/python -m pytest -m "system or browser" $(PYTEST_ARGS) || $(PYTEST_FAILED)

# Everything, as CI runs it (.ci/run): lint, types, the fast tier, the docs site, the slow tier, the system and
# browser tests, the package as a wheel, the oldest supported Airflow, and the production-shaped
# stack. Installs what it needs (Chromium, PostgreSQL and Redis from Debian's packages).
test-all: test docs test-slow test-system package-check test-compat test-stack

# Airflow 3.2 leaves FastAPI uncapped and its execution API breaks on FastAPI 0.137+;
# Airflow 3.3 caps it at <0.137, so the same cap is applied here.
test-compat:
	@test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip uv
	$(COMPAT_VENV)/bin/uv pip install --quiet --python $(COMPAT_VENV)/bin/python -e ".[test]" \
		"apache-airflow==$(COMPAT_AIRFLOW).*" "fastapi<0.137"
	AIRFLOW_HOME=$(CURDIR)/.airflow/test-home-$(COMPAT_AIRFLOW) $(COMPAT_VENV)/bin/python -m pytest \
		-m "not system and not browser and not stack" $(COMPAT_TESTS) $(PYTEST_ARGS) || $(PYTEST_FAILED)
	AIRFLOW_HOME=$(CURDIR)/.airflow/test-home-$(COMPAT_AIRFLOW) $(COMPAT_VENV)/bin/python -m pytest \
		tests/integration/sensors -k "trigger and not blocks" $(PYTEST_ARGS) || $(PYTEST_FAILED)

# The production-shaped stack (tests/system/test_celery_stack.py): PostgreSQL and Redis from Debian's
# packages (installed here when missing, with apt-get, as root), the [stack] extra, CeleryExecutor with
# two workers. 7 to 9 minutes on a loaded 2-core machine (docs/scaling.md, "Measured on the stack").
test-stack: $(STAMP)
	@command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
			postgresql redis-server; }
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[test,stack]"
	$(BIN)/python -m pytest tests/system/test_celery_stack.py -m stack -s $(PYTEST_ARGS) || $(PYTEST_FAILED)

# The package as a user of the package index gets it: build the sdist and the wheel, `twine check
# --strict` them, install the wheel alone into a fresh virtualenv and, from a directory without the
# source tree, check Airflow registers the provider and run the daily example DAG against the emulator.
PKG_DIR := .airflow/package-check
package-check: $(STAMP)
	rm -rf $(PKG_DIR) && mkdir -p $(PKG_DIR)/work
	$(BIN)/python -m build --outdir $(PKG_DIR)/dist .
	$(BIN)/twine check --strict $(PKG_DIR)/dist/*
	$(PYTHON) -m venv $(PKG_DIR)/venv
	$(BIN)/uv pip install --quiet --python $(PKG_DIR)/venv/bin/python $(PKG_DIR)/dist/*.whl
	cp -r example_dags tests/packaging/check_installed_wheel.py $(PKG_DIR)/work/
	cd $(PKG_DIR)/work && env -u PYTHONPATH ../venv/bin/python check_installed_wheel.py

demo: $(DEMO_STAMP)
	$(BIN)/python -m example_dags.demo

# The documentation site (mkdocs.yml, docs/) into site/, warnings as errors: a broken link, a
# missing page or an API reference that does not resolve fails the build. The [docs] extra is part
# of [test]; tests/integration/docs/test_docs_site.py (marker `browser`) builds it too and crawls it
# in Chromium.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Airflow's web UI on 127.0.0.1 with the example DAGs running against a live emulator; Ctrl-C stops
# it. Options: make airflow AIRFLOW_ARGS="--port 8090 --days 5" (see --help).
airflow: $(STAMP)
	$(BIN)/python -m example_dags.airflow_ui $(AIRFLOW_ARGS)

# `make bench`: ours against raw clients and HttpOperator (benchmarks.run), then against dlt with the
# plots (benchmarks.peers; dlt in its own .venv-dlt). PEERS_ARGS="--write-results" refreshes RESULTS.md.
# benchmarks.rate_limits: the adaptive limiter under a rate limit, against the engine before it.
bench: $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[test,bench]"
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.rate_limits $(RATE_ARGS)
	$(BIN)/python -m benchmarks.peers $(PEERS_ARGS)

bench-peers: $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[test,bench]"
	$(BIN)/python -m benchmarks.peers $(PEERS_ARGS)

clean:
	rm -rf $(VENV) $(COMPAT_VENV) .venv-dlt .airflow .demo-output .pytest_cache .mypy_cache .ruff_cache site
