# Calib — every entry point. `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
# uv from PATH, else bootstrapped into .tools/ with the machine's Python 3.11
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_LINK_MODE := copy

.PHONY: setup system-deps run test test-unit test-integration bench lint clean

.tools/bin/uv:
	python3 -m venv .tools && .tools/bin/pip install --quiet uv

setup: | $(UV)
	$(UV) sync --frozen --quiet

run: setup
	$(UV) run --frozen calib run

# two workers sharing out the tests (an idle one takes queued tests from the other), each
# starting the shared running system when it first needs it; a hung run fails after 30
# minutes instead of holding CI, and every server and service it started dies with it
PYTEST_WORKERS := -n 2 --dist worksteal
test: setup system-deps
	timeout --kill-after=30s 30m $(UV) run --frozen pytest -q -p no:cacheprovider $(PYTEST_WORKERS) --durations=25 tests

test-unit: setup
	$(UV) run --frozen pytest -q $(PYTEST_WORKERS) tests/unit

system-deps:
	deploy/install-system-deps.sh

bench: setup
	$(UV) run --frozen python bench/run.py

PY_SOURCES := libs services tools tests bench repro examples

lint: setup
	$(UV) run --frozen ruff format --check $(PY_SOURCES)
	$(UV) run --frozen ruff check $(PY_SOURCES)

clean:
	rm -rf .data .pytest_cache bench/results.json
