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
