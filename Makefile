# The same targets serve developers and CI (.ci/run calls them).
VENV ?= .venv
PY := $(VENV)/bin/python
# Developers and CI get every stage (the tests train and export tiny models) and the CPU runtime; a
# serving-only install is `pip install 'review-sentiment[cpu]'` (README, "Install").
# torch 2.13.0: the CPU build on this project's machines; on a GPU box with internet, pip picks the CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup quickstart test test-fast test-gpu lint browser-deps

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[cpu,app,train,export,ray]" --group dev
	touch $@

setup: $(VENV)/.installed

quickstart: setup  ## score examples/reviews.csv with the bundled model and print the summary
	$(VENV)/bin/score-csv examples/reviews.csv --overwrite
	@head -n 4 examples/reviews.scored.csv

test: setup  ## the whole suite, browser tests included (needs Debian's chromium: make browser-deps)
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not browser"

# On a GPU machine: swaps the CPU onnxruntime for onnxruntime-gpu (the [gpu] extra; the two share a module)
# and runs the GPU tests with REQUIRE_GPU=1, so a missing GPU or CUDA provider fails them instead of
# skipping. torch comes from PyPI's default Linux wheel, a CUDA build. `make setup` does not swap back.
test-gpu: setup
	$(PY) -m pip uninstall -y -q onnxruntime
	$(PY) -m pip install -q -e ".[gpu,app,train,export]"
	REQUIRE_GPU=1 $(PY) -m pytest -m gpu -rs

lint: setup  ## ruff, and the stages' dependency rules (import-linter contracts in pyproject.toml)
	$(VENV)/bin/ruff check src tests scripts benchmarks
	$(VENV)/bin/ruff format --check src tests scripts benchmarks
	$(VENV)/bin/lint-imports
	$(PY) scripts/lint_function_length.py src benchmarks scripts tests

browser-deps:  ## headless Chromium for the Playwright tests (Debian; needs root)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
