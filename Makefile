# Two commands for a fresh machine (see README): `make book` and `make test` (CI: test-all).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(or $(H2Q_DATA_DIR),../shared/data/wikitext)
export H2Q_DATA_DIR := $(abspath $(DATA))
export HF_DATASETS_DISABLE_PROGRESS_BARS := 1

.PHONY: setup book test test-all pipeline regression publish lint clean

$(BIN)/h2q: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: an unpinned install pulls a multi-GB CUDA build on CPU machines
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/h2q

# Render the committed, executed notebooks into HTML at _build/html/index.html
book: setup
	$(BIN)/jupyter-book build book -W --keep-going

NBVAL := --nbval --nbval-sanitize-with tests/regression/sanitize.cfg

# Fast tests and the nbval regression notebooks (minutes on 2 cores, any x86-64 CPU).
test: setup
	$(BIN)/ruff check h2q_lib tests benchmarks
	$(BIN)/pytest -q -m "not slow" $(NBVAL) --durations=15 tests

# Everything: the fast tests, nbval, the slow tests and the real-browser check of the book.
test-all: setup
	$(BIN)/ruff check h2q_lib tests benchmarks
	$(BIN)/pytest -q $(NBVAL) --durations=15 tests

# Re-execute notebooks 01-05 with papermill for PROFILE (smoke | prefix | report), then build.
PROFILE ?= prefix
pipeline: setup
	$(BIN)/h2q pipeline --profile $(PROFILE)

# Regenerate the nbval reference notebooks (smoke profile) after an intended change.
regression: setup
	$(BIN)/h2q pipeline --profile smoke --out-dir tests/regression --runs-dir tests/regression/_runs --no-book --restart --precision fp32

# Copy _build/html (after `make book`) to the gh-pages branch with ghp-import, with .nojekyll;
# PUSH=1 also pushes the branch to REMOTE (default origin). The workflow deploys without it.
HTML ?= _build/html
REMOTE ?= origin
publish: setup
	$(BIN)/python -m h2q_lib.book.publish $(HTML)$(if $(PUSH), --push --remote $(REMOTE))

lint: setup
	$(BIN)/ruff check h2q_lib tests benchmarks

clean:
	rm -rf _build
