"""The reader-facing checks of ``h2q_lib.book.page_checks`` and ``h2q_lib.book.quantities``
(issue #34), and what they read (``page_text``, ``page_sources``).

Each check is shown to catch a deliberately broken page and to pass a clean one; the HTML
fragments copy how the book's toolchain (jupyter-book 1.x, myst-nb) renders the same things
(a glued Markdown object printed as a highlighted repr, a pandas Styler table, a
``{glue:figure}``). The last tests apply every check to every page of the built book
(``_build/html``, or ``H2Q_BOOK_HTML``, with ``H2Q_BOOK_TOC`` as in ``tests/test_browser.py``):
slow, skipped when the book is not built.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from h2q_lib.book import page_checks as pc
from h2q_lib.book import publish, quantities
from h2q_lib.book.page_sources import page_sources
from h2q_lib.book.page_text import visible_text

REPO_ROOT = Path(__file__).resolve().parents[1]


def page(body: str, title: str = "Chapter") -> str:
    """A page shaped like the book's: the content in ``article.bd-article``, one section
    under the ``<h1>``, with a sidebar outside the article."""
    return f"""<!DOCTYPE html><html><head><title>{title}</title>
<script>var x = "<IPython.core.display.Markdown object>";</script></head><body>
<nav class="bd-sidebar"><p>Traceback (most recent call last) in a sidebar is not content</p></nav>
<main class="bd-main"><article class="bd-article">
<section id="chapter">
<h1>{title}<a class="headerlink" href="#chapter" title="Link to this heading">#</a></h1>
{body}
</section></article></main></body></html>"""


FINDING = """<div class="admonition finding">
<p class="admonition-title">Finding</p>
<p>The claim's perplexity is per character.</p>
</div>"""

# --- object_reprs ---------------------------------------------------------------------------

# what myst-nb writes for a glued IPython.display.Markdown pasted with {glue} in a .md page
HIGHLIGHTED_MARKDOWN_REPR = """<div class="highlight-default notranslate"><div class="highlight">
<pre><span></span><span class="o">&lt;</span><span class="n">IPython</span><span class="o">.</span><span class="n">core</span><span class="o">.</span><span class="n">display</span><span class="o">.</span><span class="n">Markdown</span> <span class="nb">object</span><span class="o">&gt;</span>
</pre></div></div>"""  # noqa: E501 - one line, as the toolchain writes it


def cell_output(text: str) -> str:
    return f"""<div class="cell tag_remove-input docutils container">
<div class="cell_output docutils container">
<div class="output stream highlight-myst-ansi notranslate"><div class="highlight"><pre>
<span></span>{text}
</pre></div></div></div></div>"""


CLEAN_TEXT = FINDING + """<p>A reader may compare a &lt; b; an object of study; a dict raises
KeyError: when a key is missing (prose, not an output).</p>""" + cell_output(
    "step 100 loss 2.618\nobject count: 3")


def test_object_reprs_pass_a_clean_page() -> None:
    assert pc.object_reprs(page(CLEAN_TEXT)) == []


@pytest.mark.parametrize("body, expected", [
    (HIGHLIGHTED_MARKDOWN_REPR, "<IPython.core.display.Markdown object>"),
    ("<p>&lt;h2q_lib.claims.completion_report.Report object at 0x7f3a2c1d9e50&gt;</p>",
     "Report object at 0x"),
    (cell_output("&lt;pandas.io.formats.style.Styler at 0x7f00aa&gt;"), "Styler at 0x7f00aa"),
    (cell_output("&lt;Figure size 640x480 with 1 Axes&gt;"), "<Figure size 640x480"),
    (cell_output("&lt;bound method Model.forward of GPT()&gt;"), "<bound method"),
])
def test_object_reprs_catch_a_repr(body: str, expected: str) -> None:
    problems = pc.object_reprs(page(FINDING + body))
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize("body, expected", [
    (cell_output("---------------------------------------------------------------------------\n"
                 "KeyError                                  Traceback (most recent call last)\n"
                 "Cell In[3], line 1\n----&gt; 1 d['x']\n\nKeyError: 'x'"),
     ["traceback on the page", "KeyError in a cell output"]),
    (cell_output("nbclient.exceptions.DeadKernelError: Kernel died"),
     ["DeadKernelError in a cell output"]),
    (cell_output("/x/curves.py:12: UserWarning: no data for step 500"),
     ["UserWarning in a cell output"]),
    (cell_output("FutureWarning"), ["FutureWarning in a cell output"]),
    ('<div class="cell_output docutils container"><div class="output traceback">'
     '<pre>ZeroDivisionError</pre></div></div>', ["error output"]),
])
def test_object_reprs_catch_traceback_and_error_text(body: str, expected: list[str]) -> None:
    problems = pc.object_reprs(page(FINDING + body))
    assert len(problems) == len(expected), problems
    for want in expected:
        assert any(want in problem for problem in problems), (want, problems)


# --- lost_markup ----------------------------------------------------------------------------

# a pandas Styler cell that wrote `<bos>` unescaped (04's audit, the intro's settings table)
STYLER_EATEN = """<table id="T_1"><thead><tr><th class="blank level0">&nbsp;</th>
<th class="col_heading level0 col0">reading</th></tr></thead><tbody>
<tr><th class="row_heading level0 row0">0</th>
<td class="data row0 col0">join with newlines, <bos>…<eos>: the one reading</td></tr>
</tbody></table>"""
STYLER_ESCAPED = STYLER_EATEN.replace("<bos>", "&lt;bos&gt;").replace("<eos>", "&lt;eos&gt;")
CODE_MARKERS = ('<p>The specials <code class="docutils literal notranslate"><span class="pre">'
                '&lt;bos&gt;</span></code> and <code class="docutils literal notranslate">'
                '<span class="pre">&lt;eos&gt;</span></code> wrap each page.</p>')


def test_lost_markup_passes_escaped_markers() -> None:
    sources = ["The specials `<bos>` and `<eos>` wrap each page.", "join with newlines, "
               "&lt;bos&gt;…&lt;eos&gt;"]
    assert pc.lost_markup(page(FINDING + CODE_MARKERS + STYLER_ESCAPED), sources) == []


def test_lost_markup_catches_a_marker_rendered_as_a_tag() -> None:
    problems = pc.lost_markup(page(FINDING + STYLER_EATEN))
    assert [p.split(" ", 1)[0] for p in problems] == ["<bos>", "<eos>"], problems
    assert "rendered as a tag" in problems[0]


def test_lost_markup_catches_an_eaten_marker_beside_a_shown_one() -> None:
    """The intro's case: `<bos>` is shown in backticks and eaten in a glued table; the page's
    text has `<bos>`, so only the tag in the HTML gives the loss away."""
    html = page(FINDING + CODE_MARKERS + STYLER_EATEN)
    assert "<bos>" in visible_text(html)
    problems = pc.lost_markup(html, ["`<bos>` and `<eos>`", "join with newlines, <bos>…<eos>"])
    assert len(problems) == 2 and all("rendered as a tag" in p for p in problems), problems


def test_lost_markup_catches_a_source_marker_missing_from_the_page() -> None:
    """A marker dropped without a trace in the HTML (sanitised away) is caught by its source."""
    html = page(FINDING + "<p>count characters plus /: equality means</p>")
    problems = pc.lost_markup(html, ["count characters plus <bos>/<eos>: equality means"])
    assert problems == ["<bos> is in the page's source but not in its text",
                        "<eos> is in the page's source but not in its text"]
    assert pc.lost_markup(html, ["count characters plus BOS/EOS"]) == []


# --- empty_tables ---------------------------------------------------------------------------

STYLER_TABLE = """<table id="T_2"><thead><tr><th class="blank level0">&nbsp;</th>
<th class="col_heading level0 col0">MB</th><th class="col_heading level0 col1">file</th>
</tr></thead><tbody>
<tr><th class="row_heading level0 row0">500</th><td class="data row0 col0">97.6</td>
<td class="data row0 col1">step_500.pt</td></tr></tbody></table>"""


def test_empty_tables_pass_a_table_with_rows() -> None:
    assert pc.empty_tables(page(FINDING + STYLER_TABLE)) == []


@pytest.mark.parametrize("table", [
    # 02's Checkpoints table: a Styler of an empty DataFrame
    re.sub(r"<tbody>.*</tbody>", "<tbody>\n</tbody>", STYLER_TABLE, flags=re.S),
    re.sub(r"<tbody>.*</tbody>", "", STYLER_TABLE, flags=re.S),
    "<table><tr><th>MB</th><th>file</th></tr></table>",
    STYLER_TABLE.replace("97.6", "").replace("step_500.pt", " "),
])
def test_empty_tables_catch_a_header_only_table(table: str) -> None:
    problems = pc.empty_tables(page(FINDING + table))
    assert len(problems) == 1 and "MB file" in problems[0], problems


# --- figures_without_caption ----------------------------------------------------------------

GLUE_FIGURE = """<figure class="align-default" id="fig-loss">
<div class="cell_output docutils container"><img alt="Loss against tokens."
src="../_images/7b04.png" /></div>
<figcaption><p><span class="caption-number">Fig. 2 </span><span class="caption-text">Loss in
nats per character.</span></p></figcaption></figure>"""
PLAIN_OUTPUT_IMAGE = """<div class="cell tag_remove-input docutils container">
<div class="cell_output docutils container">
<img alt="../_images/01cb.png" src="../_images/01cb.png" /></div></div>"""


def test_figures_pass_a_captioned_glue_figure() -> None:
    assert pc.figures_without_caption(page(FINDING + GLUE_FIGURE)) == []


@pytest.mark.parametrize("body, expected", [
    (PLAIN_OUTPUT_IMAGE, "image without a caption (cell output"),
    ('<img alt="_images/6717.png" src="_images/6717.png" /><p><em>Bits per byte.</em></p>',
     "image without a caption (page"),
    (re.sub(r"<figcaption>.*</figcaption>", "", GLUE_FIGURE, flags=re.S),
     "figure without a caption: Loss against tokens."),
    (re.sub(r"<figcaption>.*</figcaption>", "<figcaption><p> </p></figcaption>", GLUE_FIGURE,
            flags=re.S), "figure without a caption"),
])
def test_figures_catch_a_figure_without_caption(body: str, expected: str) -> None:
    problems = pc.figures_without_caption(page(FINDING + GLUE_FIGURE + body))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


# --- finding_first --------------------------------------------------------------------------

VERDICT = """<div class="important admonition">
<p class="admonition-title">Verdict</p><p>Wrong as stated.</p></div>"""
ANCHORS = '<span id="sec-top"></span><div class="cell docutils container"></div>\n'


@pytest.mark.parametrize("body", [
    FINDING + STYLER_TABLE,
    ANCHORS + FINDING + "<p>Details follow.</p>",
    VERDICT + STYLER_TABLE,
    FINDING.replace("admonition finding", "tip admonition"),  # titled Finding, other class
])
def test_finding_first_passes_a_page_that_answers_first(body: str) -> None:
    assert pc.finding_first(page(body)) == []


@pytest.mark.parametrize("body, expected", [
    ("<p>This chapter loads WikiText.</p>" + FINDING, "is <p> 'This chapter loads WikiText.'"),
    (ANCHORS + STYLER_TABLE + FINDING, "is <table>"),
    ('<ul class="simple"><li><p>lm-eval protocol</p></li></ul>' + FINDING, "is <ul>"),
    ('<section id="measured"><h2>Measured<a class="headerlink" href="#measured">#</a></h2>'
     + FINDING + "</section>", "is section 'Measured'"),
    (FINDING.replace("Finding", "Note").replace("finding", "note"),
     "is an admonition titled 'Note'"),
    ("", "nothing follows the title"),
])
def test_finding_first_catches_a_page_that_does_not(body: str, expected: str) -> None:
    problems = pc.finding_first(page(body))
    assert len(problems) == 1 and expected in problems[0], problems


def test_finding_first_catches_a_page_without_title() -> None:
    assert pc.finding_first("<html><body><article><p>x</p></article></body></html>") == [
        "no <h1> title on the page"]


# --- quantity_values ------------------------------------------------------------------------


def test_registry_is_well_formed() -> None:
    names = [q.name for q in quantities.QUANTITIES]
    assert len(names) == len(set(names))
    for quantity in quantities.QUANTITIES:
        assert quantity.description and quantity.examples, quantity.name
        for pattern in quantity.patterns:
            assert re.compile(pattern).groups == 1, (quantity.name, pattern)


@pytest.mark.parametrize("quantity", quantities.QUANTITIES, ids=lambda q: q.name)
def test_registry_patterns_match_their_phrasings(quantity: quantities.Quantity) -> None:
    """Each example phrasing yields its value, and each pattern is exercised by an example."""
    used = set()
    for phrase, value in quantity.examples:
        found = quantities.find_quantities({"page": phrase}, [quantity])[quantity.name]
        assert list(found) == [value], (phrase, found)
        used |= {p for p in quantity.patterns if re.search(p, " ".join(phrase.split()))}
    assert used == set(quantity.patterns), set(quantity.patterns) - used


INTRO_TEXT = ("own loss is a perplexity of 259 on the WikiText-103 test split, 6.9 times GPT-2 "
              "small\u2019s 37.5: worse, not better. 1.562 bits per character; 259 per test word")
CHAPTER_TEXT = ("per word of the test split (all its WikiText words, GPT-2\u2019s count) the same "
                "loss is 259, 6.9 times GPT-2 small\u2019s 37.5. test (same loss per char): "
                "258.8 per word. loss 1.0828 nats/char = 1.5622 bits/char; validation")


def test_quantity_values_pass_one_value_printed_at_two_precisions() -> None:
    assert quantities.quantity_values({"intro": INTRO_TEXT, "03": CHAPTER_TEXT}) == []


def test_quantity_values_catch_two_values() -> None:
    conclusion = ("the same loss is 264 per test word, 7.0 times GPT-2 small\u2019s (2.95, "
                  "step by step)")
    problems = quantities.quantity_values({"intro": INTRO_TEXT, "03": CHAPTER_TEXT,
                                           "04": conclusion})
    assert problems == [
        "claim_word_ppl_test has 3 values: 259 (intro, 03); 258.8 (03); 264 (04)",
        "claim_ratio_to_gpt2_small has 2 values: 6.9 (intro, 03); 7.0 (04)",
    ]


def test_quantity_values_catch_a_flipped_sign() -> None:
    texts = {"02": "step 100: the report\u2019s 2.7180 against our 2.6179 (+3.8% of ours);",
             "06": "stated (reading stated, 500 steps) reproduces row 100 (2.618 vs 2.718, "
                   "\u22123.8 %);"}
    problems = quantities.quantity_values(texts)
    assert len(problems) == 1 and problems[0].startswith("stated_step100_difference_pct"), problems


def test_quantity_values_use_visible_text() -> None:
    """Values in a glued span and a table cell are read as the reader sees them."""
    html = page(FINDING + '<p>a perplexity of <strong><span class="pasted-text">259</span>'
                '</strong> on the WikiText-103 test\nsplit</p><table><tr><td>mean tokens per s'
                '</td><td>1,684.6</td></tr></table>')
    found = quantities.find_quantities({"p": visible_text(html)})
    assert found["claim_word_ppl_test"] == {"259": ["p"]}
    assert found["rerun_tokens_per_s"] == {"1,684.6": ["p"]}


# --- page_sources ---------------------------------------------------------------------------


def _notebook(cells: list[dict[str, Any]]) -> str:
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_page_sources_read_shown_markdown_outputs_and_glued_values(tmp_path: Path) -> None:
    book = tmp_path / "book"
    (book / "notebooks").mkdir(parents=True)
    glue = {"output_type": "display_data", "metadata": {"scrapbook": {
        "name": "unstated_table", "mime_prefix": "application/papermill.record/"}},
        "data": {"application/papermill.record/text/html": "<td>join, <bos>…<eos></td>"}}
    (book / "notebooks" / "04.ipynb").write_text(_notebook([
        {"cell_type": "markdown", "metadata": {}, "source": ["# 04\n", "plus `<unk>`"]},
        {"cell_type": "markdown", "metadata": {"tags": ["remove-cell"]}, "source": "<x1>"},
        {"cell_type": "code", "metadata": {"tags": ["remove-input"]}, "outputs": [
            glue, {"output_type": "stream", "name": "stdout", "text": "<pad> shown"},
            {"output_type": "stream", "name": "stderr", "text": "<x2>"}],
         "source": "", "execution_count": 1},
        {"cell_type": "code", "metadata": {"tags": ["remove-stderr"]}, "outputs": [
            {"output_type": "stream", "name": "stderr", "text": "<x3>"},
            {"output_type": "execute_result", "metadata": {}, "execution_count": 2,
             "data": {"text/plain": "<x4>", "text/html": "<x5>"}}],
         "source": "", "execution_count": 2},
        {"cell_type": "code", "metadata": {"tags": ["remove-output"]}, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "<x6>"}],
         "source": "", "execution_count": 3},
    ]), encoding="utf-8")
    (book / "intro.md").write_text("# Intro\n\n```{glue} unstated_table\n:doc: "
                                   "notebooks/04.ipynb\n```\n", encoding="utf-8")
    chapter = "\n".join(page_sources(book, "notebooks/04"))
    for shown in ("plus `<unk>`", "<pad> shown", "<x2>", "<x4>", "<x5>"):
        assert shown in chapter
    for hidden in ("<x1>", "<x3>", "<x6>", "<bos>"):  # removed, or glued but not pasted here
        assert hidden not in chapter
    intro = page_sources(book, "intro")
    assert intro[0].startswith("# Intro") and intro[1] == "<td>join, <bos>…<eos></td>"
    assert page_sources(book, "missing") == []


# --- the built book -------------------------------------------------------------------------


def _from_env(name: str, default: str) -> Path:
    path = Path(os.environ.get(name) or default)
    return path if path.is_absolute() else REPO_ROOT / path


HTML_DIR = _from_env("H2Q_BOOK_HTML", "_build/html")
TOC_FILE = _from_env("H2Q_BOOK_TOC", "_toc.yml")
BOOK_DIR = REPO_ROOT / "book"  # the TOC's entries are relative to it


def toc_pages() -> list[str]:
    """The root page and every ``file:`` entry of the TOC, without extension, relative to
    ``book/`` (``publish.toc_pages``); none when the TOC file is absent."""
    return publish.toc_pages(TOC_FILE) if TOC_FILE.is_file() else []


def _built(page_name: str) -> str:
    if not (HTML_DIR / "index.html").is_file():
        pytest.skip(f"book not built ({HTML_DIR} has no index.html): run `make book` first")
    html = HTML_DIR / f"{page_name}.html"
    assert html.is_file(), f"{page_name} is in {TOC_FILE.name} but {html.name} was not built"
    return html.read_text(encoding="utf-8")


CHECKS: dict[str, Callable[[str, str], list[str]]] = {
    "object_reprs": lambda html, name: pc.object_reprs(html),
    "lost_markup": lambda html, name: pc.lost_markup(html, page_sources(BOOK_DIR, name)),
    "empty_tables": lambda html, name: pc.empty_tables(html),
    "figures_without_caption": lambda html, name: pc.figures_without_caption(html),
    "finding_first": lambda html, name: ([] if name in pc.FINDING_EXEMPT
                                         else pc.finding_first(html)),
}


@pytest.mark.slow
@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("page_name", toc_pages())
def test_built_page_passes(page_name: str, check: str) -> None:
    problems = CHECKS[check](_built(page_name), page_name)
    assert not problems, f"{page_name} ({check}):\n  " + "\n  ".join(problems)


@pytest.mark.slow
def test_built_book_has_one_value_per_quantity() -> None:
    pages = toc_pages()
    if not pages:
        pytest.skip(f"no pages in {TOC_FILE}")
    texts = {name: visible_text(_built(name)) for name in pages}
    problems = quantities.quantity_values(texts)
    assert not problems, "quantities with two values:\n  " + "\n  ".join(problems)


# a real built page, each defect injected after its title: every check must catch its defect
# there too (the toolchain's markup around it is real)
INJECTED = {
    "object_reprs": HIGHLIGHTED_MARKDOWN_REPR,
    "lost_markup": STYLER_EATEN,
    "empty_tables": "<table><thead><tr><th>MB</th><th>file</th></tr></thead><tbody></tbody>"
                    "</table>",
    "figures_without_caption": PLAIN_OUTPUT_IMAGE,
    "finding_first": "<p>A paragraph before the finding.</p>",
}


def _after_title(html: str, insert: str) -> str:
    # the article's title: the page's header has headings of its own before it
    end = html.index("</h1>", html.index("<article")) + len("</h1>")
    return html[:end] + "\n" + insert + "\n" + html[end:]


@pytest.mark.slow
@pytest.mark.parametrize("check", list(CHECKS))
def test_checks_catch_a_defect_injected_into_a_built_page(check: str) -> None:
    name = "notebooks/04_evaluate"
    if name not in toc_pages():
        pytest.skip(f"{name} is not in {TOC_FILE}")
    clean = _after_title(_built(name), FINDING)  # answers first, whatever the chapter does
    before = CHECKS[check](clean, name)
    after = CHECKS[check](_after_title(clean, INJECTED[check]), name)
    assert len(after) > len(before), (before, after)
