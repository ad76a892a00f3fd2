# Everyday commands. `make run` and `make test` are the README's quick start.
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# The end-to-end suites (killed runs, faults, several CLI processes, the web UI in Chromium, the production
# topology, retrieval figures) are what `test-fast` leaves out.
FAST_MARKERS := not resilience and not browser and not topology and not slow

.PHONY: install install-test instance run test test-fast dev lint

# Two stamps: `make run` and `make dev` need the product only; the test tools (pytest, moto, playwright,
# ruff, ...) come with the first `make test` or `make lint`.
install: $(VENV)/.installed-product
install-test: $(VENV)/.installed-test

$(VENV)/.installed-product: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-product
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The shipped instance config (pool, run queue and retry limits) goes into DAGSTER_HOME once; an existing
# dagster.yaml there is the user's and is never overwritten.
instance: $(DAGSTER_HOME)/dagster.yaml

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	cp -n dagster.yaml $@

run: install instance  ## the main job on embedded defaults: all products, all batches, manifest, linked catalog, report
	$(BIN)/catalog-images run

# Two pytest workers (pytest-xdist), each running whole test files: a module's services and fixtures start
# once, and most end-to-end tests wait on subprocesses and services rather than use a core.
# `PYTEST_ARGS="-n 0"` runs everything in one process.
XDIST := -n 2 --dist loadfile --no-loadscope-reorder --durations=25

test: install-test  ## the whole test suite
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

test-fast: install-test  ## the suite without the end-to-end resilience and browser tests
	$(BIN)/pytest $(XDIST) -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

dev: install instance  ## the Dagster web UI and daemon on http://127.0.0.1:3000, same instance as `make run`
	$(BIN)/dagster dev

lint: install-test  ## ruff, at the version pinned in pyproject.toml
	$(BIN)/ruff check catalog_assets catalog_assets_tests scripts benchmarks
	$(BIN)/ruff format --check catalog_assets catalog_assets_tests scripts benchmarks
