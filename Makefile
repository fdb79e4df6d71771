VENV ?= .venv
PY := $(VENV)/bin/python
# What running needs, and what testing, linting and measuring need besides.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install run test lint bench migrate clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install: $(STAMP)

## Serve on a local SQLite file with demo data (http://127.0.0.1:8000, docs at /docs), with
## the scheduler running inside the API process.
run: $(STAMP)
	$(VENV)/bin/gridwork migrate
	$(VENV)/bin/gridwork seed-demo --tickets
	GRIDWORK_EMBEDDED_WORKER=true $(VENV)/bin/gridwork serve --host 127.0.0.1 --port 8000

## The whole suite on SQLite, then on PostgreSQL when 127.0.0.1:5432 answers (required when CI=true).
test: $(DEV_STAMP)
	PATH=$(abspath $(VENV))/bin:$$PATH bash scripts/run-tests.sh

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check app tests migrations scripts bench
	$(VENV)/bin/ruff format --check app tests migrations scripts bench
	$(VENV)/bin/mypy app

## The load benchmark: Gridwork on the local PostgreSQL under wrk, beside a reference app
## (needs wrk: apt-get install wrk). Figures in bench/results/.
bench: $(DEV_STAMP)
	$(PY) -m bench.load.run

migrate: $(STAMP)
	$(VENV)/bin/gridwork migrate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache gridwork.db
