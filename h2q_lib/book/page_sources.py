"""What a page of the book was built from (``page_sources``): a notebook's markdown and
displayed outputs, or a Markdown page's text, plus every value glued into either; what
``book.page_checks.lost_markup`` compares the page's text with."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

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
