# The few commands people type. `make run` and `make test` work on a fresh machine:
# they create .venv, install the project (llama-cpp-python compiles once; pip caches the wheel),
# and only reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# llama-cpp-python compiles from source. Its multimodal library (tools/mtmd, LLAVA_BUILD) is never
# used here: skip it unless you set CMAKE_ARGS yourself (e.g. for a GPU build, see `playground doctor`).
CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
export CMAKE_ARGS

# pytest exits 5 when it collects no test; that must not read as a failure by accident.
PYTEST = $(BIN)/python -m pytest
NO_TESTS_OK = rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests ran"; rc=0; fi; exit $$rc

.PHONY: setup run ask test test-fast lint bench clean adversarial adversarial-quick

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/playground

ask: setup
	$(BIN)/playground ask "Who is Zyler Vance?"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Everything: lint, then every test (the slow ones run the real default models).
test: lint
	$(PYTEST); $(NO_TESTS_OK)

# The model-free tier, for quick iteration: no test here loads a model.
test-fast: setup
	$(PYTEST) -m "not slow"; $(NO_TESTS_OK)

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache

# Issue 12's adversarial suite: hostile input and conditions against the real CLI (not pytest).
# Prints tried / ok / clear errors / tracebacks / hangs / raw escapes / data lost / wrong / unclear.
adversarial: setup
	PYTHONPATH=. $(BIN)/python tests/adversarial/suite.py --jobs 2 --strict

adversarial-quick: setup
	PYTHONPATH=. $(BIN)/python tests/adversarial/suite.py --quick --jobs 2 --strict
