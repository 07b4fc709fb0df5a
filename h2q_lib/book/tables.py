"""The book's tables: how a cell reads (``format_value``), and ``Table``, a DataFrame as a page
shows it (formatted cells, an optional caption, coloured verdicts, escaped markers).

Every chapter displays its DataFrames through ``table``; nothing here computes a result.
"""

from __future__ import annotations

import hashlib
import html
import math

import numpy as np
import pandas as pd

MISSING = "—"
VERDICT_COLOURS = {"consistent": "#d4edda", "reproduced": "#d4edda",
                   "inconsistent": "#f8d7da", "not reproduced": "#f8d7da",
                   "wrong as stated": "#f8d7da",
                   "not checkable here": "#e2e3e5", "not reached": "#e2e3e5"}


# (from, unit, suffix): a large measured value in thousands, millions or billions
SCALES = ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k"))


def significant(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits, thousands separated, never in e-notation.

    A measured value never prints as a whole number: from 10^(digits-1) up, where ``digits``
    significant digits leave no decimals, it keeps one (``1,855.2``, not ``1,855``); from
    10,000 up it is scaled to thousands, millions or billions (``483.5k``, ``5.667M``), so
    that a perplexity in the hundreds of thousands shows its 4 meaningful digits and not 7.
    A reader then sees a measurement, not a count, and the regression check compares it
    within its tolerance instead of digit for digit (another CPU's kernels move the last
    digits of a perplexity in the millions). A whole number is a count: shown whole.
    """
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    if abs(x) < 1:
        return f"{x:.{digits}g}"
    if not x.is_integer():
        for start, unit, suffix in SCALES:
            if abs(x) >= start:
                scaled = x / unit
                if abs(scaled) < 10 ** digits:  # e.g. 1,234.5B stays in billions
                    decimals = max(digits - 1 - math.floor(math.log10(abs(scaled))), 1)
                    return f"{scaled:,.{decimals}f}{suffix}"
    decimals = max(digits - 1 - math.floor(math.log10(abs(x))), 1 if not x.is_integer() else 0)
    return f"{x:,.{decimals}f}"


def format_value(value: object, name: object = "") -> str:
    """One cell as a reader reads it; ``name`` is its column (or row) label.

    Missing (None, NaN) → "—"; booleans → yes/no; integers (and whole floats) with thousands
    separators; a label with "loss" → 4 decimals; "%" in the label → value already in percent,
    1 decimal; "share" or "fraction" → a fraction shown as a percentage; "(×)" → a ratio, 2
    decimals and ×; "tokens/s" → whole tokens; other floats → 4 significant digits.
    """
    label = str(name).lower()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return MISSING
        if "share" in label or "fraction" in label or label == "relative":
            return f"{value:.1%}"
        if "%" in label:
            return f"{value:.1f}%"
        if "(×)" in label:
            return f"{value:.2f}×"
        if "tokens/s" in label:
            return f"{value:,.0f}"
        if "loss" in label:
            return f"{value:.4f}"
        if value.is_integer():
            return f"{value:,.0f}"
        return significant(value)
    text = str(value)
    return MISSING if text in ("", "nan", "None", "NaN") else text


def formatted(df: pd.DataFrame, by: str = "column", formats: dict | None = None) -> pd.DataFrame:
    """``df`` as strings by ``format_value``; labels of columns (``by="column"``) or of rows
    (``by="row"``, for a table whose rows are quantities) choose each cell's format.
    ``formats`` maps a label to a format string or a function, overriding the rule."""
    formats = formats or {}
    out = pd.DataFrame(index=df.index, columns=df.columns, dtype=object)
    for r, row_label in enumerate(df.index):
        for c, col_label in enumerate(df.columns):
            label = col_label if by == "column" else row_label
            value = df.iat[r, c]
            fmt = formats.get(label)
            if fmt is not None and value is not None and not (
                    isinstance(value, float) and math.isnan(value)):
                out.iat[r, c] = fmt(value) if callable(fmt) else fmt.format(value)
            else:
                out.iat[r, c] = format_value(value, label)
    out.columns = [_label(c) for c in df.columns]
    out.index = df.index.map(_label) if df.index.nlevels == 1 else df.index
    out.index.names = [_label(n) if n is not None else None for n in df.index.names]
    return out


def _label(label):
    """A header as a reader reads it: ``tokens_per_s`` → ``tokens per s``."""
    return label.replace("_", " ") if isinstance(label, str) else label


class Table:
    """A table as the book shows it: formatted cells, no index column unless it is data,
    an optional caption, coloured verdicts, long text wrapped in the text column.

    ``_repr_html_`` is the page's table (a pandas Styler with a fixed id, so executed
    notebooks are reproducible); ``repr`` the same cells as text (what nbval compares too).
    """

    def __init__(self, df: pd.DataFrame, index: bool = False, by: str = "column",
                 formats: dict | None = None, caption: str | None = None,
                 verdict: str | None = None, wide: tuple[str, ...] = (),
                 empty: str = "Nothing to list.") -> None:
        self.data = df
        self.cells = formatted(df, by, formats)
        self.index, self.caption, self.verdict, self.wide = index, caption, verdict, wide
        self.empty = empty  # said instead of a table without rows

    def __repr__(self) -> str:
        if self.data.empty:
            return self.empty
        text = self.cells.to_string(index=self.index)
        return f"{self.caption}\n{text}" if self.caption else text

    def _repr_html_(self) -> str:
        if self.data.empty:  # a header with no rows says nothing: say why instead
            return f'<p class="h2q-empty"><em>{html.escape(self.empty)}</em></p>'
        labels = repr((list(self.cells.columns), list(self.cells.index)))
        styler = self.cells.style.set_uuid(  # from the labels only: numbers vary by machine
            "h2q" + hashlib.sha1(labels.encode()).hexdigest()[:8])
        # cells are text: a marker such as <bos> is shown, not read as a tag
        styler = styler.format(escape="html").format_index(escape="html", axis=0) \
            .format_index(escape="html", axis=1)
        if not self.index:
            styler = styler.hide(axis="index")
        if self.caption:
            styler = styler.set_caption(self.caption)
        if self.verdict in self.cells.columns:
            styler = styler.map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, 'none')}; "
                                          "font-weight: 600", subset=[self.verdict])
        wide = [c for c in self.wide if c in self.cells.columns]
        if wide:
            styler = styler.set_properties(subset=wide, **{"min-width": "16em"})
        styler = styler.set_table_attributes('class="dataframe h2q-table" style="font-size: 0.9em"')
        return styler.to_html(exclude_styles=False)


def table(df: pd.DataFrame | pd.Series, **kwargs) -> Table:
    """``Table`` of a DataFrame, or of a Series as a two-column quantity/value table."""
    if isinstance(df, pd.Series):
        name = df.name or "value"
        df = df.to_frame(name=name)
        kwargs.setdefault("by", "row")
        kwargs.setdefault("index", True)
    return Table(df, **kwargs)
