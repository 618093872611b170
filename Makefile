# Everything a newcomer needs: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# The oldest supported Airflow minor, tested by `make test-compat` in its own virtualenv: the unit
# tests, provider registration through Airflow's CLI, the hooks and the trigger against the emulator.
# Tests that go through `dag.test()` run on 3.3 only: on 3.2.2 its in-process execution API starts
# its lifespan on a background loop and races the first request ("'State' object has no attribute
# 'svcs_registry'"), fixed in 3.3.
COMPAT_AIRFLOW ?= 3.2
COMPAT_VENV := .venv-airflow-$(COMPAT_AIRFLOW)
COMPAT_TESTS := tests/unit tests/integration/test_provider_registration.py tests/integration/hooks

.PHONY: install browser test lint typecheck pytest test-compat test-stack package-check demo airflow bench bench-peers clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[test]"
	@rm -f $(VENV)/.installed-*
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

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# Airflow 3.2 leaves FastAPI uncapped and its execution API breaks on FastAPI 0.137+;
# Airflow 3.3 caps it at <0.137, so the same cap is applied here.
test-compat:
	@test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip uv
	$(COMPAT_VENV)/bin/uv pip install --quiet --python $(COMPAT_VENV)/bin/python -e ".[test]" \
		"apache-airflow==$(COMPAT_AIRFLOW).*" "fastapi<0.137"
	AIRFLOW_HOME=$(CURDIR)/.airflow/test-home-$(COMPAT_AIRFLOW) \
		$(COMPAT_VENV)/bin/python -m pytest $(COMPAT_TESTS) $(PYTEST_ARGS)
	AIRFLOW_HOME=$(CURDIR)/.airflow/test-home-$(COMPAT_AIRFLOW) \
		$(COMPAT_VENV)/bin/python -m pytest tests/integration/sensors -k "trigger and not blocks" $(PYTEST_ARGS)

# The production-shaped stack (tests/system/test_celery_stack.py): PostgreSQL and Redis from Debian's
# packages (installed here when missing, with apt-get, as root), the [stack] extra, CeleryExecutor with
# two workers. 7 to 9 minutes on a loaded 2-core machine (docs/scaling.md, "Measured on the stack").
test-stack: $(STAMP)
	@command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
			postgresql redis-server; }
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[test,stack]"
	$(BIN)/python -m pytest tests/system/test_celery_stack.py -m stack -s $(PYTEST_ARGS)

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

demo: $(STAMP)
	$(BIN)/python -m example_dags.demo

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
	rm -rf $(VENV) $(COMPAT_VENV) .venv-dlt .airflow .demo-output .pytest_cache .mypy_cache .ruff_cache
