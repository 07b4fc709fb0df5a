"""A built page of the book as a reader sees it: its content (the article, without what a
browser never shows) and its visible text.

The page's HTML is read as a browser does (``<bos>`` in raw HTML is a tag, and its text is
gone), through BeautifulSoup's ``html.parser``. ``book.page_checks`` reads pages through
these; ``book.quantities`` compares the pages' ``visible_text``.
"""

from __future__ import annotations

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


def shorten(text: str, width: int = 70) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis (for a problem's
    message)."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def readable_content(html: str) -> Tag:
    """The page's content as a reader sees it: without invisible elements, each block ending
    its line (what every check reads)."""
    return _drop_invisible(_content(_soup(html)))


def visible_text(html: str) -> str:
    """The text of the page's content as a reader sees it, whitespace collapsed to single spaces
    (table cells and lines become space-separated)."""
    return " ".join(readable_content(html).get_text().split())
