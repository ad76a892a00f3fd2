# Everyday commands. `make run` and `make test` are the README's quick start.
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install run test dev bench lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: install  ## the main job on embedded defaults: all products, all batches, manifest, linked catalog, report
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/catalog-images run

test: install  ## the whole test suite
	$(BIN)/pytest

dev: install  ## the Dagster web UI and daemon on http://127.0.0.1:3000, same instance as `make run`
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev

lint: install
	$(BIN)/ruff check catalog_assets catalog_assets_tests scripts benchmarks
	$(BIN)/ruff format --check catalog_assets catalog_assets_tests scripts benchmarks
