"""The notebooks' set-up and glue: the book's display settings (``setup_notebook``), and
``myst_nb.glue`` of the values and figures that its pages cite."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def setup_notebook() -> None:
    """The book's display settings: 4-decimal floats, wide text columns, quiet warnings."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="IProgress not found")
    pd.options.display.float_format = "{:,.4f}".format
    pd.options.display.max_colwidth = 160


def glue_figure(key: str, fig: Figure) -> None:
    """``myst_nb.glue`` a figure for a ``glue:figure`` directive (caption, alt text) and close
    it, so that the notebook does not show it a second time without them."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(key, fig, display=False)
    plt.close(fig)


def glue_values(values: dict) -> None:
    """``myst_nb.glue`` each value under its key, for the book's pages to cite."""
    from myst_nb import glue

    for key, value in values.items():
        glue(key, value, display=False)

