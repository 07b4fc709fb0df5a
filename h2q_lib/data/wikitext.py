"""WikiText loading, the report's preprocessing, corpus statistics and token caches.

Two sources, one result (a list of lines, as the original WikiText files have them):
- ``hf``: Hugging Face ``datasets``, ``Salesforce/wikitext`` (needs the hub);
- ``local``: a folder laid out like the original archives,
  ``<data_dir>/<config>/wiki.<split>.<raw|tokens>`` (train may be a ``.head`` slice).
``source="auto"`` takes the local folder when one is given (``data_dir`` or ``H2Q_DATA_DIR``),
else the hub, and fails in well under 2 s when neither can serve.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from h2q_lib.core.errors import ConfigError, DataUnavailableError
from h2q_lib.core.offline_hub import hub_reachable
from h2q_lib.data.tokenizers import Tokenizer, encode_stream

HF_DATASET = "Salesforce/wikitext"
CONFIGS = ("wikitext-103-raw-v1", "wikitext-103-v1", "wikitext-2-raw-v1", "wikitext-2-v1")
SPLITS = ("train", "validation", "test")
SOURCES = ("auto", "hf", "local")
DATA_DIR_ENV = "H2Q_DATA_DIR"
_FILE_SPLIT = {"train": "train", "validation": "valid", "test": "test"}
# WikiText-2 and WikiText-103 share their validation and test articles (Merity et al. 2016),
# so the raw WikiText-103 valid/test files are exactly the raw WikiText-2 ones.
_SAME_TEXT = {
    "wikitext-103-raw-v1": "wikitext-2-raw-v1",
    "wikitext-2-raw-v1": "wikitext-103-raw-v1",
}
# A page starts at a line whose ``title_key`` reads "= ... =" (starts with "= ", ends with " ="):
# " = Title = " does, " = = Section = = " (key "== Section ==") does not. Use ``fullmatch``.
HEADING = re.compile(r"= (?:.* )?=", re.DOTALL)


@dataclass(frozen=True)
class Split:
    """One loaded split: its lines and where they came from."""

    name: str
    config: str
    lines: list[str]
    origin: str  # "hf:Salesforce/wikitext" or the local file's name under data_dir
    is_slice: bool = False

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def sha256(self) -> str:
        return hashlib.sha256(self.text().encode("utf-8")).hexdigest()


def _check_choice(param: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(param, value, "one of " + ", ".join(allowed))


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """``data_dir`` if given, else ``$H2Q_DATA_DIR``, else None."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    return Path(chosen).expanduser() if chosen is not None else None


def local_split_file(data_dir: Path, config: str, split: str) -> tuple[Path, bool]:
    """The file holding ``split`` of ``config`` under ``data_dir``, and whether it is a slice."""
    ext = "raw" if "raw" in config else "tokens"
    stem = f"wiki.{_FILE_SPLIT[split]}.{ext}"
    folders = [config]
    if split != "train" and config in _SAME_TEXT:
        folders.append(_SAME_TEXT[config])
    tried = []
    for folder in folders:
        for name, is_slice in ((stem, False), (stem + ".head", True)):
            path = data_dir / folder / name
            tried.append(f"{folder}/{name}")
            if path.is_file():
                return path, is_slice
    raise DataUnavailableError(
        f"data_dir={str(data_dir)!r} has no {split} split of {config}: looked for "
        + ", ".join(tried)
        + f". Provide a folder with those files (data_dir or ${DATA_DIR_ENV}), or load "
        f"{HF_DATASET} from the Hugging Face hub with source='hf'."
    )


def _no_data_message(config: str, split: str) -> str:
    return (
        f"No WikiText data for config={config!r} split={split!r}: no local folder was given "
        f"and the Hugging Face hub is not reachable (or HF_HUB_OFFLINE is set). Either pass "
        f"data_dir=<folder> (or set {DATA_DIR_ENV}) to a folder laid out like "
        f"<folder>/{config}/wiki.{_FILE_SPLIT[split]}.* , or give this machine network access "
        f"so that datasets.load_dataset({HF_DATASET!r}, {config!r}) can download it."
    )


def _read_lines(path: Path) -> list[str]:
    """The file's lines; one ``DataUnavailableError`` naming it when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataUnavailableError(
            f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); WikiText files are UTF-8: "
            "replace the file with an intact copy") from None
    except OSError as e:
        raise DataUnavailableError(f"{path} cannot be read: {e.strerror or e}") from None
    return text.split("\n")


def rows_to_lines(rows: Iterable[str]) -> list[str]:
    """Hugging Face rows (``" text \\n"``, empty rows ``""``) to the original file's lines."""
    return [row[:-1] if row.endswith("\n") else (row or " ") for row in rows]


def load_split(
    split: str,
    config: str = "wikitext-103-raw-v1",
    data_dir: str | os.PathLike | None = None,
    source: str = "auto",
) -> Split:
    """Load one WikiText split as lines; see the module docstring for the sources."""
    _check_choice("split", split, SPLITS)
    _check_choice("config", config, CONFIGS)
    _check_choice("source", source, SOURCES)
    folder = resolve_data_dir(data_dir)
    if source == "local" or (source == "auto" and folder is not None):
        if folder is None:
            raise DataUnavailableError(
                f"source='local' needs data_dir or ${DATA_DIR_ENV}; "
                + _no_data_message(config, split)
            )
        if not folder.is_dir():
            raise DataUnavailableError(
                f"data_dir={str(folder)!r} (the data_dir parameter or ${DATA_DIR_ENV}) is not a "
                f"folder: pass a folder laid out like <folder>/{config}/wiki."
                f"{_FILE_SPLIT[split]}.*, or leave both unset to load {HF_DATASET} from the "
                "Hugging Face hub."
            )
        path, is_slice = local_split_file(folder, config, split)
        lines = _read_lines(path)
        if lines and lines[-1] == "":
            lines.pop()
        origin = f"{path.parent.name}/{path.name}"
        return Split(split, config, lines, origin, is_slice)
    if not hub_reachable():
        raise DataUnavailableError(_no_data_message(config, split))
    import datasets

    ds = datasets.load_dataset(HF_DATASET, config, split=split)
    return Split(split, config, rows_to_lines(ds["text"]), f"hf:{HF_DATASET}", False)


# --- the report's preprocessing -------------------------------------------------------------


def report_lines(lines: Iterable[str]) -> list[str]:
    """The report's line filter: drop empty lines and ``=`` headings, strip the rest.

    With ``report_text`` and the char tokenizer's ``<bos>``/``<eos>`` this gives the
    WikiText-103 validation split exactly the report's 1,120,496 tokens.
    """
    kept = []
    for line in lines:
        s = line.strip()
        if s and not s.startswith("="):
            kept.append(s)
    return kept


def report_text(lines: Iterable[str]) -> str:
    """Kept lines joined by a newline: the text the report's model was trained on."""
    return "\n".join(report_lines(lines))


def report_char_tokens(lines: Iterable[str]) -> int:
    """Character tokens of the report's text: ``<bos>`` + its characters + ``<eos>``.

    The count the report's 1,120,496 validation tokens are compared with.
    """
    return len(report_text(lines)) + 2


def title_key(line: str) -> str:
    """``line.replace("= = =", "===").replace("= =", "==").strip()``: the line as the page
    split reads it, section markers joined so that ``" = = Section = = "`` is no title."""
    return line.replace("= = =", "===").replace("= =", "==").strip()


def is_article_title(line: str) -> bool:
    """Whether ``line`` starts a page: ``title_key(line)`` starts with ``"= "`` and ends
    with ``" ="`` (``HEADING``)."""
    return HEADING.fullmatch(title_key(line)) is not None


def article_starts(lines: Sequence[str]) -> list[int]:
    """Indices of the lines that start a page (``is_article_title``).

    As in EleutherAI's ``wikitext_document_level``, which lm-evaluation-harness's ``wikitext``
    task reads, the rule looks at the line alone: a title-like line inside an article (the
    test split's ``" = 1 rad / s and a nominal impedance k = "``) starts a page too. That is
    why the test split has 62 pages, not its 60 articles.
    """
    return [i for i, line in enumerate(lines) if is_article_title(line)]


def documents(lines: Sequence[str]) -> list[str]:
    """The pages of EleutherAI's ``wikitext_document_level`` (lm-eval's ``wikitext``), exactly.

    ``lines`` are a file's lines as ``load_split`` returns them (without the empty string
    after the file's final newline). The dataset's builder splits the whole file,
    ``text.split("\\n")``, so that string is put back here. Then

    - a page is a title line and every line up to the next title, joined with ``"\\n"``:
      it keeps the blank lines (``" "``) that end it and has no trailing newline, except
      the last page, which ends with the file's final newline;
    - a blank page is dropped (the files' leading ``" "`` line, before the first title),
      except the last page, which is always kept; text before the first title that is not
      blank is a page of its own.
    """
    file_lines = [*lines, ""]
    cuts = [0, *article_starts(file_lines), len(file_lines)]
    pages = ["\n".join(file_lines[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    return [page for page in pages[:-1] if page.strip()] + pages[-1:]


def report_documents(lines: Sequence[str]) -> list[str]:
    """Each article's text after the report's preprocessing (headings dropped, lines stripped).

    The text our models are trained on, cut at article boundaries for document-level scoring.
    """
    docs = [report_text(d.split("\n")) for d in documents(lines)]
    return [d for d in docs if d]


# --- statistics -----------------------------------------------------------------------------


def wikitext_words(lines: Iterable[str]) -> int:
    """WikiText's own word count: whitespace tokens plus one end-of-line token per line."""
    return sum(len(line.split()) + 1 for line in lines)


def whitespace_words(text: str) -> int:
    """``len(re.split(r"\\s+", text))``, the count lm-evaluation-harness uses per document."""
    return len(re.split(r"\s+", text))


def corpus_stats(split: Split, tokenizers: Sequence[Tokenizer] = ()) -> dict:
    """Counts for one split; ``tokens_<name>`` etc. for each tokenizer on the report's text."""
    text = split.text()
    docs = documents(split.lines)
    stats = {
        "split": split.name,
        "config": split.config,
        "origin": split.origin,
        "is_slice": split.is_slice,
        "lines": len(split.lines),
        "non_empty_lines": sum(1 for line in split.lines if line.strip()),
        "pages": len(article_starts(split.lines)),  # lm-eval's pages (articles, see documents)
        "characters": len(text),
        "utf8_bytes": len(text.encode("utf-8")),
        "whitespace_words": sum(whitespace_words(d) for d in docs),
        "wikitext_words": wikitext_words(split.lines),
        "unique_characters": len(set(text)),
    }
    rtext = report_text(split.lines)
    stats["report_text_characters"] = len(rtext)
    rbytes = len(rtext.encode("utf-8"))
    rwords = len(rtext.split())
    for tok in tokenizers:
        n = len(encode_stream(tok, rtext))
        stats[f"tokens_{tok.name}"] = n
        stats[f"tokens_per_word_{tok.name}"] = n / rwords
        stats[f"tokens_per_byte_{tok.name}"] = n / rbytes
    return stats
