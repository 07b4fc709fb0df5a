"""Checks of what a reader sees on a built page of the book (issue #34).

Each check is a pure function over a page's built HTML (what ``jupyter-book build`` writes
under ``_build/html``) and returns a list of problems, one readable string each; an empty list
means the page passes. They read the HTML as a browser does (``book.page_text``):

- ``object_reprs``: a Python object's repr (``<IPython.core.display.Markdown object>``,
  ``<... at 0x...>``, ``<Figure size ... with 1 Axes>``) or traceback / error text on the page;
- ``lost_markup``: a marker such as ``<bos>`` that the page's source has but its text lost
  (what the page was built from: ``book.page_sources``);
- ``empty_tables``: a table with a header and no body rows (or no cells with text);
- ``figures_without_caption``: a figure, or an image outside a figure, with no caption;
- ``finding_first``: a chapter whose first block after its title is not its Finding (or, on
  the intro, its Verdict) admonition.

One check reads the whole book rather than a page: ``book.quantities.quantity_values``, a
registered quantity shown with two values across the book's pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bs4 import Tag

from h2q_lib.book.page_text import readable_content, shorten

# --- object reprs and tracebacks -----------------------------------------------------------

# A repr of a Python object: `<IPython.core.display.Markdown object>`, `<Foo object at 0x7f..>`,
# `<function f at 0x7f..>`, `<bound method A.f of ...>`, matplotlib's `<Figure size 640x480 with
# 1 Axes>`, pandas' `<pandas.io.formats.style.Styler at 0x7f..>`.
REPR_PATTERNS = (
    re.compile(r"<[A-Za-z_][\w.]*(?: [\w.]+)* object(?: at 0x[0-9a-fA-F]+)?>"),
    re.compile(r"<[^<>\n]{1,200}? at 0x[0-9a-fA-F]+>"),
    re.compile(r"<bound method [^<>\n]{1,200}>"),
    re.compile(r"<(?:Figure|Axes|AxesSubplot)(?: size)?[^<>\n]{0,80}>"),
)
TRACEBACK_TEXT = re.compile(r"Traceback \(most recent call last\)")
# A line of a cell's output that names an exception or a warning: `KeyError: 'x'`,
# `nbclient.exceptions.DeadKernelError: Kernel died`, `/x/y.py:12: UserWarning: ...`.
ERROR_LINE = re.compile(
    r"(?<![\w.])([A-Za-z_][\w.]*(?:Error|Exception|Warning))(?::(?:\s|$)|\s*$)")


def object_reprs(html: str) -> list[str]:
    """A Python object's repr or traceback text that a reader sees.

    Catches a glued ``IPython.display.Markdown`` that renders as
    ``<IPython.core.display.Markdown object>``, any ``<... object>`` / ``<... at 0x...>`` repr,
    a matplotlib figure printed as ``<Figure size ...>``, ``Traceback (most recent call last)``
    anywhere on the page, and, in cell outputs, a line naming an exception or a warning
    (``KeyError: 'x'``, ``DeadKernelError: Kernel died``, ``UserWarning: ...``) or an error
    output (``div.output.traceback`` / ``.error``).
    """
    root = readable_content(html)
    text = root.get_text()
    problems = []
    seen: set[str] = set()
    for pattern in REPR_PATTERNS:
        for match in pattern.finditer(text):
            if match.group(0) not in seen:
                seen.add(match.group(0))
                problems.append(f"Python object repr on the page: {shorten(match.group(0))}")
    for match in TRACEBACK_TEXT.finditer(text):
        after = text[match.start(): match.start() + 120]
        problems.append(f"traceback on the page: {shorten(after)}")
    outputs = root.select(".cell_output, .output")
    for out in outputs:
        if out.find_parent(class_=["cell_output", "output"]) is not None:
            continue  # nested: read with its outer output
        classes = set(out.get("class") or [])
        if classes & {"traceback", "error"} or out.select_one(".traceback, .error"):
            problems.append(f"error output: {shorten(out.get_text(' '))}")
            continue
        for line in out.get_text().splitlines():
            found = ERROR_LINE.search(line)
            if found:
                problems.append(f"{found.group(1)} in a cell output: {shorten(line)}")
    return problems


# --- markup the source has and the page lost -----------------------------------------------

# Markers that HTML reads as tags when written unescaped, so that the page silently drops them.
MARKERS = ("<bos>", "<eos>", "<unk>", "<pad>")


def lost_markup(html: str, source_texts: Iterable[str] = (),
                markers: Iterable[str] = MARKERS) -> list[str]:
    """Markers (``<bos>``, ``<eos>``, ``<unk>``, ``<pad>``) that the page lost: raw HTML (a
    pandas Styler cell, a glued table, Markdown text outside backticks) made them tags and the
    reader sees ``( + chars + )``.

    Two rules. (1) The page's HTML has an element named after a marker (``<bos>``): every
    such occurrence is a lost marker, whatever else the page shows. (2) A marker that appears
    anywhere in ``source_texts`` (what the page was built from: a notebook's markdown cells
    and displayed outputs, or a Markdown page's text and its glued values; ``page_sources``)
    must appear somewhere in the page's visible text.
    """
    markers = tuple(markers)
    root = readable_content(html)
    problems = []
    for marker in markers:
        eaten = root.find_all(marker.strip("<>"))
        if eaten:
            context = shorten(eaten[0].parent.get_text() if eaten[0].parent else "", 80)
            problems.append(f"{marker} rendered as a tag {len(eaten)} time(s) (escape it or "
                            f"put it in backticks), e.g. in: {context!r}")
    text = " ".join(root.get_text().split())
    sources = list(source_texts)
    for marker in markers:
        if any(marker in source for source in sources) and marker not in text:
            problems.append(f"{marker} is in the page's source but not in its text")
    return problems


# --- empty tables --------------------------------------------------------------------------


def empty_tables(html: str) -> list[str]:
    """Tables that show a header and no data: no row with a ``<td>`` cell, or no cell with
    text (e.g. a checkpoints table rendered from an empty DataFrame)."""
    root = readable_content(html)
    problems = []
    for table in root.find_all("table"):
        body_rows = [row for row in table.find_all("tr") if row.find("td") is not None]
        data = [cell.get_text(strip=True) for row in body_rows for cell in row.find_all("td")]
        if not body_rows or not any(data):
            header = shorten(table.get_text(" "), 60) or "(no text)"
            problems.append(f"empty table (header only): {header!r}")
    return problems


# --- figures without a caption -------------------------------------------------------------


def _caption(figure: Tag) -> str:
    caption = figure.find("figcaption")
    return caption.get_text(" ", strip=True) if isinstance(caption, Tag) else ""


def _describe_image(img: Tag) -> str:
    alt = str(img.get("alt") or "").strip()
    src = str(img.get("src") or "").rsplit("/", 1)[-1]
    return shorten(alt, 60) if alt and alt != src and not alt.startswith("_images/") else src


def figures_without_caption(html: str) -> list[str]:
    """Figures a reader cannot identify: a ``<figure>`` without a non-empty ``<figcaption>``,
    and an ``<img>`` of the page's content outside such a figure.

    The book's rule: ``{glue:figure}`` (or ``{figure}``) renders ``<figure>`` with a numbered
    ``<figcaption>``; a plain matplotlib cell output or a bare ``{glue:}`` of a figure renders
    an ``<img>`` with no caption (an italic paragraph below it is not a caption a figure
    reference or a screen reader can use).
    """
    root = readable_content(html)
    problems = []
    for figure in root.find_all("figure"):
        if not _caption(figure):
            img = figure.find("img")
            what = _describe_image(img) if isinstance(img, Tag) else shorten(figure.get_text())
            problems.append(f"figure without a caption: {what or '(no image)'}")
    for img in root.find_all("img"):
        if img.find_parent("figure") is None:
            where = "cell output" if img.find_parent(class_="cell_output") else "page"
            problems.append(f"image without a caption ({where}, not in a captioned figure): "
                            f"{_describe_image(img)}")
    return problems


# --- the chapter answers first -------------------------------------------------------------

# Admonition titles that state a page's answer: chapters open with "Finding", the intro with
# its "Verdict".
FINDING_TITLES = ("Finding", "Verdict")
# Pages (relative to book/, no extension) that state no finding.
FINDING_EXEMPT = ("reproducibility", "references")


def _is_finding(block: Tag) -> bool:
    classes = set(block.get("class") or [])
    if "admonition" not in classes:
        return False
    title = block.find(class_="admonition-title")
    text = title.get_text(" ", strip=True) if isinstance(title, Tag) else ""
    return text in FINDING_TITLES or "finding" in classes


def _is_blank(block: Tag) -> bool:
    """An anchor target, label or empty container: no text, no image, table or graphic."""
    return not block.get_text(strip=True) and block.find(["img", "table", "svg", "figure",
                                                          "iframe", "video"]) is None


def finding_first(html: str) -> list[str]:
    """A page whose first block after its ``<h1>`` is not its finding: an admonition titled
    ``Finding`` (class ``finding``) or, on the intro, ``Verdict``. Anchor targets and empty
    containers between the title and the admonition are skipped; anything else (a paragraph,
    a table, a list, a section) before the finding fails. Not for ``FINDING_EXEMPT`` pages."""
    root = readable_content(html)
    h1 = root.find("h1")
    if not isinstance(h1, Tag):
        return ["no <h1> title on the page"]
    title = shorten(h1.get_text(" ").replace("#", ""), 50)
    for block in h1.find_next_siblings():
        if _is_blank(block):
            continue
        if _is_finding(block):
            return []
        kind = block.name
        if "admonition" in set(block.get("class") or []):
            heading = block.find(class_="admonition-title")
            what = f"an admonition titled {shorten(heading.get_text(' ') if heading else '')!r}"
        elif kind == "section":
            heading = block.find(re.compile(r"^h[2-6]$"))
            what = f"section {shorten(heading.get_text(' ').replace('#', ''), 50)!r}" \
                if isinstance(heading, Tag) else "a section"
        else:
            what = f"<{kind}> {shorten(block.get_text(' '), 60)!r}"
        return [f"first block after the title {title!r} is {what}, not a "
                f"{' or '.join(FINDING_TITLES)} admonition"]
    return [f"nothing follows the title {title!r}: no {' or '.join(FINDING_TITLES)} admonition"]
