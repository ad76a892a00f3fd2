# Everyday commands. `make run` and `make test` are the README's quick start.
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install instance run test dev lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
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

test: install  ## the whole test suite
	$(BIN)/pytest

dev: install instance  ## the Dagster web UI and daemon on http://127.0.0.1:3000, same instance as `make run`
	$(BIN)/dagster dev

lint: install
	$(BIN)/ruff check catalog_assets catalog_assets_tests scripts benchmarks
	$(BIN)/ruff format --check catalog_assets catalog_assets_tests scripts benchmarks
