"""Checks of what a reader sees on a built page of the book (issue #34).

Each check is a pure function over a page's built HTML (what ``jupyter-book build`` writes
under ``_build/html``) and returns a list of problems, one readable string each; an empty list
means the page passes. They read the HTML as a browser does (``<bos>`` in raw HTML is a tag, and
its text is gone), through BeautifulSoup's ``html.parser``:

- ``object_reprs``: a Python object's repr (``<IPython.core.display.Markdown object>``,
  ``<... at 0x...>``, ``<Figure size ... with 1 Axes>``) or traceback / error text on the page;
- ``lost_markup``: a marker such as ``<bos>`` that the page's source has but its text lost;
- ``empty_tables``: a table with a header and no body rows (or no cells with text);
- ``figures_without_caption``: a figure, or an image outside a figure, with no caption;
- ``finding_first``: a chapter whose first block after its title is not its Finding (or, on
  the intro, its Verdict) admonition;
- ``quantity_values``: a registered quantity (``QUANTITIES``) shown with two values across the
  book's pages.

``page_sources`` collects what a page was built from (a notebook's markdown and displayed
outputs, or a Markdown page's text, plus every value glued into either), for ``lost_markup``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from bs4 import BeautifulSoup, Tag

# Elements whose text a reader never sees.
_INVISIBLE = ("script", "style", "template", "noscript", "head")


def _soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def _content(soup: BeautifulSoup) -> Tag:
    """The page's own content: the article of a Jupyter Book page, else ``main``, else body."""
    for found in (soup.find("article"), soup.find("main"), soup.body):
        if isinstance(found, Tag):
            return found
    return soup


# Elements that end a line of text: their text never runs into the next element's.
_BLOCKS = ("p", "div", "td", "th", "tr", "li", "br", "pre", "section", "table", "caption",
           "figcaption", "figure", "blockquote", "dt", "dd", "ul", "ol", "dl",
           "h1", "h2", "h3", "h4", "h5", "h6")


def _drop_invisible(root: Tag) -> Tag:
    """``root`` without the elements a reader never sees, and with a line break after each
    block, so that ``get_text()`` reads as the page does (inline markup, such as a highlighted
    repr's ``<span>``s, is not split)."""
    for tag in root.find_all(_INVISIBLE):
        tag.decompose()
    for tag in root.find_all(_BLOCKS):
        tag.append("\n")
    return root


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def visible_text(html: str) -> str:
    """The text of the page's content as a reader sees it, whitespace collapsed to single spaces
    (table cells and lines become space-separated)."""
    root = _drop_invisible(_content(_soup(html)))
    return " ".join(root.get_text().split())


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
    root = _drop_invisible(_content(_soup(html)))
    text = root.get_text()
    problems = []
    seen: set[str] = set()
    for pattern in REPR_PATTERNS:
        for match in pattern.finditer(text):
            if match.group(0) not in seen:
                seen.add(match.group(0))
                problems.append(f"Python object repr on the page: {_short(match.group(0))}")
    for match in TRACEBACK_TEXT.finditer(text):
        after = text[match.start(): match.start() + 120]
        problems.append(f"traceback on the page: {_short(after)}")
    outputs = root.select(".cell_output, .output")
    for out in outputs:
        if out.find_parent(class_=["cell_output", "output"]) is not None:
            continue  # nested: read with its outer output
        classes = set(out.get("class") or [])
        if classes & {"traceback", "error"} or out.select_one(".traceback, .error"):
            problems.append(f"error output: {_short(out.get_text(' '))}")
            continue
        for line in out.get_text().splitlines():
            found = ERROR_LINE.search(line)
            if found:
                problems.append(f"{found.group(1)} in a cell output: {_short(line)}")
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
    root = _drop_invisible(_content(_soup(html)))
    problems = []
    for marker in markers:
        eaten = root.find_all(marker.strip("<>"))
        if eaten:
            context = _short(eaten[0].parent.get_text() if eaten[0].parent else "", 80)
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
    root = _drop_invisible(_content(_soup(html)))
    problems = []
    for table in root.find_all("table"):
        body_rows = [row for row in table.find_all("tr") if row.find("td") is not None]
        data = [cell.get_text(strip=True) for row in body_rows for cell in row.find_all("td")]
        if not body_rows or not any(data):
            header = _short(table.get_text(" "), 60) or "(no text)"
            problems.append(f"empty table (header only): {header!r}")
    return problems


# --- figures without a caption -------------------------------------------------------------


def _caption(figure: Tag) -> str:
    caption = figure.find("figcaption")
    return caption.get_text(" ", strip=True) if isinstance(caption, Tag) else ""


def _describe_image(img: Tag) -> str:
    alt = str(img.get("alt") or "").strip()
    src = str(img.get("src") or "").rsplit("/", 1)[-1]
    return _short(alt, 60) if alt and alt != src and not alt.startswith("_images/") else src


def figures_without_caption(html: str) -> list[str]:
    """Figures a reader cannot identify: a ``<figure>`` without a non-empty ``<figcaption>``,
    and an ``<img>`` of the page's content outside such a figure.

    The book's rule: ``{glue:figure}`` (or ``{figure}``) renders ``<figure>`` with a numbered
    ``<figcaption>``; a plain matplotlib cell output or a bare ``{glue:}`` of a figure renders
    an ``<img>`` with no caption (an italic paragraph below it is not a caption a figure
    reference or a screen reader can use).
    """
    root = _drop_invisible(_content(_soup(html)))
    problems = []
    for figure in root.find_all("figure"):
        if not _caption(figure):
            img = figure.find("img")
            what = _describe_image(img) if isinstance(img, Tag) else _short(figure.get_text())
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
    root = _drop_invisible(_content(_soup(html)))
    h1 = root.find("h1")
    if not isinstance(h1, Tag):
        return ["no <h1> title on the page"]
    title = _short(h1.get_text(" ").replace("#", ""), 50)
    for block in h1.find_next_siblings():
        if _is_blank(block):
            continue
        if _is_finding(block):
            return []
        kind = block.name
        if "admonition" in set(block.get("class") or []):
            heading = block.find(class_="admonition-title")
            what = f"an admonition titled {_short(heading.get_text(' ') if heading else '')!r}"
        elif kind == "section":
            heading = block.find(re.compile(r"^h[2-6]$"))
            what = f"section {_short(heading.get_text(' ').replace('#', ''), 50)!r}" \
                if isinstance(heading, Tag) else "a section"
        else:
            what = f"<{kind}> {_short(block.get_text(' '), 60)!r}"
        return [f"first block after the title {title!r} is {what}, not a "
                f"{' or '.join(FINDING_TITLES)} admonition"]
    return [f"nothing follows the title {title!r}: no {' or '.join(FINDING_TITLES)} admonition"]


# --- one value for each quantity -----------------------------------------------------------

# a number as the book prints it: 259, 1,684.6, -3.7, \u22123.7 (not the comma after it: "259, 6.9")
_NUMBER = r"[+\-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_APOS = "['\u2019]"


@dataclass(frozen=True)
class Quantity:
    """A number that must read the same on every page of the book.

    ``patterns`` are regular expressions over a page's visible text (whitespace collapsed to
    single spaces), each with one capture group: the value as printed. ``examples`` are the
    phrasings each pattern was written for, with the value it must capture (a test checks
    them). Values that are numbers agree when one is the other rounded (259 and 258.8);
    other values (a range, ``7.0 to 8.3``) must be equal as text.
    """

    name: str
    description: str
    patterns: tuple[str, ...]
    examples: tuple[tuple[str, str], ...]


QUANTITIES: tuple[Quantity, ...] = (
    Quantity(
        name="claim_word_ppl_test",
        description="the report's loss (1.0828 nats/char) as a perplexity per WikiText-103 test "
                    "word, GPT-2's scale (all words of the split)",
        patterns=(
            r"perplexity of (" + _NUMBER + r") on the WikiText-103 test split",
            r"(" + _NUMBER + r") per test word",
            r"per word of the test split \([^)]*\) the same loss is (" + _NUMBER + r")",
            r"On the test split" + _APOS + r"s words the report" + _APOS + r"s loss is ("
            + _NUMBER + r") per word",
            r"test \(same loss per char\): (" + _NUMBER + r") per word",
        ),
        examples=(
            ("own loss is a perplexity of 259 on the WikiText-103 test split", "259"),
            ("1.562 bits per character; 259 per test word (The report\u2019s claim", "259"),
            ("per word of the test split (all its WikiText words, GPT-2\u2019s count) the same "
             "loss is 259, 6.9 times", "259"),
            ("On the test split\u2019s words the report\u2019s loss is 259 per word", "259"),
            ("= 263.6 per word; test (same loss per char): 258.8 per word.", "258.8"),
        ),
    ),
    Quantity(
        name="claim_ratio_to_gpt2_small",
        description="the claim's test word perplexity over GPT-2 small's published 37.5",
        patterns=(
            r"(\d+(?:\.\d+)?(?: to \d+(?:\.\d+)?)?) times GPT-2 [Ss]mall" + _APOS + r"s",
        ),
        examples=(
            ("split, 6.9 times GPT-2 small\u2019s 37.5: worse, not better", "6.9"),
            ("259 per word, 6.9 times GPT-2 Small\u2019s 37.5.", "6.9"),
            ("a word perplexity of 264, 7.0 times GPT-2 small\u2019s (2.95", "7.0"),
            ("the report\u2019s model has 7.0 to 8.3 times GPT-2 small\u2019s word perplexity",
             "7.0 to 8.3"),
        ),
    ),
    Quantity(
        name="claim_bits_per_character",
        description="the report's best validation loss in bits per character (loss / ln 2)",
        patterns=(
            r"(\d\.\d+) bits per character;",
            r"loss 1\.0828 nats/char = (\d\.\d+) bits/char",
            r"On characters its (\d\.\d+) bits/char",
            r"exp\(1\.0828\) = 2\.95; (\d\.\d+) bits per character",
        ),
        examples=(
            ("exp(1.0828) = 2.95; 1.562 bits per character better than", "1.562"),
            ("perplexity per character 1.562 bits per character; 259 per test word", "1.562"),
            ("loss 1.0828 nats/char = 1.5622 bits/char; validation", "1.5622"),
            ("On characters its 1.56 bits/char compares with 1.11 (enwik8)", "1.56"),
        ),
    ),
    # The bf16 / fp32 speed-up is not registered: every process (a training session, a
    # notebook's execution, a benchmark) times its own probe and prints it as its own
    # "precision reason", so the values differ by design and each is labelled as its process's.
    Quantity(
        name="stated_step100_difference_pct",
        description="the stated recipe's run against the report's Loss at step 100, in percent "
                    "(a sign convention and a reference value: one of them, everywhere)",
        patterns=(
            r"step 100: the report" + _APOS + r"s [\d.]+ against our [\d.]+ \((" + _NUMBER
            + r") ?% of ours\)",
            r"stated: step 100: report [\d.]+ vs ours [\d.]+ \((" + _NUMBER + r") ?%\)",
            r"stated \(reading stated,[^)]*\) (?:reproduces|misses) row 100 \([\d.]+ vs "
            r"[\d.]+, (" + _NUMBER + r") ?%\)",
        ),
        examples=(
            ("step 100: the report\u2019s 2.7180 against our 2.6179 (+3.8% of ours);", "+3.8"),
            ("Found: stated: step 100: report 2.7180 vs ours 2.6179 (-3.7%); step 500", "-3.7"),
            ("stated (reading stated, the report\u2019s schedule, 500 steps trained, 0.78 passes "
             "over its training text) reproduces row 100 (2.618 vs 2.718, -3.7 %);", "-3.7"),
        ),
    ),
    Quantity(
        name="stated_step500_difference_pct",
        description="the stated recipe's run against the report's Loss at step 500, in percent",
        patterns=(
            r"step 500: the report" + _APOS + r"s [\d.]+ against our [\d.]+ \((" + _NUMBER
            + r") ?% of ours\)",
            r"stated: step 100: report [\d.]+ vs ours [\d.]+ \([^)]*\); step 500: report "
            r"[\d.]+ vs ours [\d.]+ \((" + _NUMBER + r") ?%\)",
            r"stated \(reading stated,[^)]*\) (?:reproduces|misses) row 100 \([^)]*\); "
            r"(?:reproduces|misses) row 500 \([\d.]+ vs [\d.]+, (" + _NUMBER + r") ?%\)",
        ),
        examples=(
            ("step 500: the report\u2019s 1.5178 against our 2.2946 (-33.9% of ours).",
             "-33.9"),
            ("stated: step 100: report 2.7180 vs ours 2.6179 (-3.7%); step 500: report 1.5178 "
             "vs ours 2.2946 (+51.2%) |", "+51.2"),
            ("stated (reading stated, the report\u2019s schedule, 500 steps trained) reproduces "
             "row 100 (2.618 vs 2.718, -3.7 %); misses row 500 (2.295 vs 1.518, +51.2 %);",
             "+51.2"),
        ),
    ),
    Quantity(
        name="rerun_wall_minutes",
        description="the wall time of the stated recipe's rerun (the prefix run), in minutes",
        patterns=(
            r"(\d[\d,]*(?:\.\d+)?) minutes of wall time",
        ),
        examples=(
            ("one shared 2-core CPU; 81 minutes of wall time for the rerun.", "81"),
            ("The run processed 8,192,000 tokens in 81 minutes of wall time, an average", "81"),
        ),
    ),
    Quantity(
        name="rerun_tokens_per_s",
        description="the rerun's mean training rate over its wall time, tokens/s",
        patterns=(
            r"an average of (" + _NUMBER + r") tokens/s over the wall time",
            r"mean tokens per s (" + _NUMBER + r")",
        ),
        examples=(
            ("in 81 minutes of wall time, an average of 1,685 tokens/s over the wall time on",
             "1,685"),
            ("elapsed s 4,863.0 mean tokens per s 1,684.6 peak rss GB 1.928", "1,684.6"),
        ),
    ),
    Quantity(
        name="recipe_hours_fastest",
        description="hours the report's whole recipe (6,350 steps) takes at the fastest "
                    "training rate measured here",
        patterns=(
            r"at the fastest rate measured here, (\d+(?:\.\d+)?) hours",
            r"the report" + _APOS + r"s whole recipe would take (\d+(?:\.\d+)?) hours",
        ),
        examples=(
            ("the report\u2019s full 6,350 steps (at the fastest rate measured here, 9.9 hours)",
             "9.9"),
            ("fastest setting) the report\u2019s whole recipe would take 9.9 hours (The", "9.9"),
        ),
    ),
)


def _as_number(value: str) -> Decimal | None:
    try:
        return Decimal(value.replace(",", "").replace("\u2212", "-"))
    except InvalidOperation:
        return None


def _agree(a: str, b: str) -> bool:
    """Whether two printed values are one value: equal numbers, or one the other rounded
    (259 and 258.8; 1.56 and 1.5622); otherwise equal text."""
    x, y = _as_number(a), _as_number(b)
    if x is None or y is None:
        return " ".join(a.split()) == " ".join(b.split())
    coarsest = max(int(x.as_tuple().exponent), int(y.as_tuple().exponent))
    return abs(x - y) <= Decimal(5) * Decimal(10) ** (coarsest - 1)


def find_quantities(pages_text: Mapping[str, str],
                    registry: Iterable[Quantity] = QUANTITIES) -> dict[str, dict[str, list[str]]]:
    """For each quantity, each value found and the pages it was found on (in page order)."""
    found: dict[str, dict[str, list[str]]] = {}
    for quantity in registry:
        values: dict[str, list[str]] = {}
        for page, text in pages_text.items():
            flat = " ".join(text.split())
            for pattern in quantity.patterns:
                for match in re.finditer(pattern, flat):
                    pages = values.setdefault(match.group(1), [])
                    if page not in pages:
                        pages.append(page)
        found[quantity.name] = values
    return found


def quantity_values(pages_text: Mapping[str, str],
                    registry: Iterable[Quantity] = QUANTITIES) -> list[str]:
    """Registered quantities that read two ways across the book: one problem per quantity,
    listing each value with its pages. ``pages_text`` maps a page name to its visible text
    (``visible_text``). Values agree when one is the other rounded."""
    problems = []
    for name, values in find_quantities(pages_text, registry).items():
        printed = list(values)
        if all(_agree(a, b) for i, a in enumerate(printed) for b in printed[i + 1:]):
            continue
        listed = "; ".join(f"{value} ({', '.join(pages)})" for value, pages in values.items())
        problems.append(f"{name} has {len(values)} values: {listed}")
    return problems


# --- what a page was built from ------------------------------------------------------------

_GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`]+)`")
_GLUE_DIRECTIVE = re.compile(r"^\s*(?:`{3,}|:{3,})\{glue(?::[a-z]+)?\}\s+(\S+)", re.MULTILINE)
_SHOWN_MIMES = ("text/html", "text/markdown", "text/latex", "text/plain")


def _glue_keys(markdown: str) -> set[str]:
    keys = set()
    for match in _GLUE_ROLE.finditer(markdown):
        key = match.group(1).rsplit("::", 1)[-1]
        keys.add(key.split(":", 1)[0].strip())
    keys.update(match.group(1) for match in _GLUE_DIRECTIVE.finditer(markdown))
    return keys


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _shown_outputs(cell: dict) -> list[str]:
    """The text of a code cell's outputs that the page displays (tags respected; glued values,
    which only show where they are pasted, are left out)."""
    tags = set(cell.get("metadata", {}).get("tags") or [])
    if tags & {"remove-cell", "remove-output"}:
        return []
    texts = []
    for output in cell.get("outputs") or []:
        if output.get("output_type") == "stream":
            if f"remove-{output.get('name')}" not in tags:
                texts.append(_text(output.get("text", "")))
        elif output.get("output_type") == "error":
            texts.append("\n".join(output.get("traceback") or []))
        elif "scrapbook" not in (output.get("metadata") or {}):
            data = output.get("data") or {}
            texts += [_text(data[mime]) for mime in _SHOWN_MIMES if mime in data]
    return texts


def _glued_values(notebooks: Iterable[dict]) -> dict[str, list[str]]:
    """Each glued key's text (every text mime) across the book's notebooks."""
    glued: dict[str, list[str]] = {}
    for notebook in notebooks:
        for cell in notebook.get("cells", []):
            for output in cell.get("outputs") or []:
                record = (output.get("metadata") or {}).get("scrapbook") or {}
                if "name" not in record:
                    continue
                prefix = record.get("mime_prefix", "")
                data = output.get("data") or {}
                glued.setdefault(record["name"], []).extend(
                    _text(data[prefix + mime]) for mime in _SHOWN_MIMES if prefix + mime in data)
    return glued


def page_sources(book_dir: Path, page: str) -> list[str]:
    """What ``page`` (relative to ``book_dir``, no extension) was built from: a notebook's
    markdown cells and displayed outputs, or a Markdown page's text; plus the text of every
    value glued into it (found in any notebook under ``book_dir``)."""
    notebook_path = book_dir / f"{page}.ipynb"
    markdown: list[str] = []
    texts: list[str] = []
    if notebook_path.is_file():
        notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
        for cell in notebook.get("cells", []):
            tags = set(cell.get("metadata", {}).get("tags") or [])
            if cell.get("cell_type") == "markdown" and "remove-cell" not in tags:
                markdown.append(_text(cell.get("source", "")))
            elif cell.get("cell_type") == "code":
                texts += _shown_outputs(cell)
    else:
        for suffix in (".md", ".rst"):
            path = book_dir / f"{page}{suffix}"
            if path.is_file():
                markdown.append(path.read_text(encoding="utf-8"))
                break
    keys = set().union(*(_glue_keys(text) for text in markdown)) if markdown else set()
    if keys:
        notebooks = [json.loads(path.read_text(encoding="utf-8"))
                     for path in sorted(book_dir.rglob("*.ipynb"))
                     if ".ipynb_checkpoints" not in path.parts and "_build" not in path.parts]
        glued = _glued_values(notebooks)
        for key in sorted(keys):
            texts += glued.get(key, [])
    return markdown + texts
