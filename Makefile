# Verbund: `make run` starts the whole stack with a demo alliance, `make test` runs every test.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench-ingest bench-solve bench-latency schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/verbund up --demo

test: $(STAMP)
	sh scripts/install-test-deps.sh prometheus chromium
	$(PY) -m ruff check .
	$(PY) -m mypy schemas protocols services
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy schemas protocols services

schemas: $(STAMP)
	$(VENV)/bin/verbund schemas generate

bench-ingest: $(STAMP)
	$(PY) benchmarks/ingest.py

bench-solve: $(STAMP)
	$(PY) benchmarks/solve.py

bench-latency: $(STAMP)
	$(PY) benchmarks/decision_latency.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
