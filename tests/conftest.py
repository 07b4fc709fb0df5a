"""Shared fixtures: where the local WikiText files are, and the validation split loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from h2q_lib.data import wikitext as data


def pytest_configure(config):
    """Numbers in nbval's comparisons agree at a stated tolerance (``nbval_tolerance``)."""
    if config.pluginmanager.hasplugin("nbval"):
        from nbval_tolerance import install

        install()


def pytest_collection_modifyitems(session, config, items):
    """nbval runs the regression notebooks in the pipeline's order, not the file names': the
    readings chapter (03) shows the scores that the evaluation chapter (04) stores in the
    smoke run folder, so it runs after 04 as ``h2q pipeline`` ran it."""
    from h2q_lib.book.pipeline import NOTEBOOKS

    def notebook_place(item) -> int:
        stem = Path(str(item.fspath)).stem
        return NOTEBOOKS.index(stem) if str(item.fspath).endswith(".ipynb") and (
            stem in NOTEBOOKS) else -1

    notebooks = sorted((i for i in items if notebook_place(i) >= 0), key=notebook_place)
    slots = iter(notebooks)  # the notebooks' cells keep their slots, reordered among them
    items[:] = [next(slots) if notebook_place(i) >= 0 else i for i in items]

# <repo>/../shared/data/wikitext, computed from this file's location (tests/ -> repo -> parent).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wikitext"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``$H2Q_DATA_DIR`` if set, else ``<repo>/../shared/data/wikitext``; skip if absent."""
    chosen = os.environ.get(data.DATA_DIR_ENV)
    folder = Path(chosen).expanduser() if chosen else DEFAULT_DATA_DIR
    if not folder.is_dir():
        source = f"${data.DATA_DIR_ENV}" if chosen else "the default location"
        pytest.skip(
            f"local WikiText data folder not found: {folder} (from {source}); set "
            f"{data.DATA_DIR_ENV} to a folder holding wikitext-2-raw-v1/ and wikitext-103-v1/"
        )
    return folder


@pytest.fixture(scope="session")
def valid_split(data_dir: Path) -> data.Split:
    """The WikiText-103 raw validation split (the same text as WikiText-2 raw validation)."""
    return data.load_split("validation", data_dir=data_dir)
