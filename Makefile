# Two commands for a fresh machine (see README): `make book` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(or $(H2Q_DATA_DIR),../shared/data/wikitext)
export H2Q_DATA_DIR := $(abspath $(DATA))
export HF_DATASETS_DISABLE_PROGRESS_BARS := 1

.PHONY: setup book test pipeline regression lint clean

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

test: setup
	$(BIN)/ruff check h2q_lib tests benchmarks
	$(BIN)/pytest -q --nbval --nbval-sanitize-with tests/regression/sanitize.cfg tests

# Re-execute notebooks 01-04 with papermill for PROFILE (smoke | cpu | report), then build.
PROFILE ?= smoke
pipeline: setup
	$(BIN)/h2q pipeline --profile $(PROFILE)

# Regenerate the nbval reference notebooks (smoke profile) after an intended change.
regression: setup
	$(BIN)/h2q pipeline --profile smoke --out-dir tests/regression --runs-dir tests/regression/_runs --no-book --restart

lint: setup
	$(BIN)/ruff check h2q_lib tests benchmarks

clean:
	rm -rf _build
