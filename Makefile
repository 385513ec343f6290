# kpipe: `make up` runs the local stack, `make test` runs every test.
# Both create .venv on first use and install the pinned versions from
# requirements.lock (only python3, make and a package index are needed).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kpipe-installed
PYTEST_ARGS ?=

.PHONY: install models up test test-fast lint typecheck bench clean lock

install: $(STAMP) models

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Copies the PP-OCRv4 text detector out of the rapidocr-onnxruntime wheel
# into the Triton model repository (weights are never downloaded or committed).
models: $(STAMP)
	$(BIN)/python -m kpipe.models install-weights

up: install
	$(BIN)/kpipe up

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

# Re-pin after changing dependencies in pyproject.toml.
lock: $(STAMP)
	(echo '# Exact versions of everything kpipe installs (runtime, local stack, tests).'; echo '# Regenerate with `make lock`; installed with --no-deps so this file is the whole truth.'; $(BIN)/python -m pip freeze --all --exclude-editable | grep -vE '^(kpipe|pip)==') > requirements.lock

clean:
	rm -rf $(VENV) .kpipe .pytest_cache .mypy_cache .ruff_cache
