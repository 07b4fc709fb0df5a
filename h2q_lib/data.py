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
import itertools
import json
import os
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataUnavailableError
from .tokenizers import Tokenizer, encode_stream, smallest_uint_dtype

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
HEADING = re.compile(r"^ = [^=].* = $")  # " = Title = ", not " = = Section = = "


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


def _hub_reachable(timeout: float = 1.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "") or os.environ.get(
        "HF_DATASETS_OFFLINE", "0"
    ) not in ("0", ""):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _no_data_message(config: str, split: str) -> str:
    return (
        f"No WikiText data for config={config!r} split={split!r}: no local folder was given "
        f"and the Hugging Face hub is not reachable (or HF_HUB_OFFLINE is set). Either pass "
        f"data_dir=<folder> (or set {DATA_DIR_ENV}) to a folder laid out like "
        f"<folder>/{config}/wiki.{_FILE_SPLIT[split]}.* , or give this machine network access "
        f"so that datasets.load_dataset({HF_DATASET!r}, {config!r}) can download it."
    )


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
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        origin = f"{path.parent.name}/{path.name}"
        return Split(split, config, lines, origin, is_slice)
    if not _hub_reachable():
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


def article_starts(lines: Sequence[str]) -> list[int]:
    """Indices of article titles: a ``" = Title = "`` line between two empty lines.

    The blank-line condition keeps out the few body lines that merely look like a title
    (e.g. a formula such as ``" = 1 rad / s and a nominal impedance k = "``).
    """
    def blank(i: int) -> bool:
        return i < 0 or i >= len(lines) or not lines[i].strip()

    return [i for i, line in enumerate(lines)
            if HEADING.match(line) and blank(i - 1) and blank(i + 1)]


def documents(lines: Sequence[str]) -> list[str]:
    """Articles, split at their titles (lm-evaluation-harness's document-level WikiText).

    Each document is its lines joined by newlines, title included; text before the first
    title becomes a document of its own unless it is blank (the files' leading empty line).
    """
    cuts = [0, *article_starts(lines), len(lines)]
    docs = [lines[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    return ["\n".join(d).strip("\n") + "\n" for d in docs if any(x.strip() for x in d)]


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
        "articles": len(article_starts(split.lines)),
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


# --- token caches ---------------------------------------------------------------------------


def _chunks(lines: Sequence[str], chunk_chars: int) -> Iterator[str]:
    """Newline-joined pieces of about ``chunk_chars`` characters, cut only between lines.

    A cut is made only between two non-blank lines, so that runs of blank lines (whose
    whitespace byte-level BPE merges across newlines) are never split.
    """
    buf: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        piece = line if i == len(lines) - 1 else line + "\n"
        buf.append(piece)
        size += len(piece)
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if size >= chunk_chars and line.strip() and nxt.strip():
            yield "".join(buf)
            buf, size = [], 0
    if buf:
        yield "".join(buf)


def encode_to_file(
    tokenizer: Tokenizer, lines: Sequence[str], path: Path, chunk_chars: int = 8_000_000
) -> int:
    """Write ``encode_stream(tokenizer, "\\n".join(lines))`` to ``path`` chunk by chunk.

    Memory stays bounded by ``chunk_chars`` (times the cores, for a tokenizer with
    ``encode_batch``, which encodes one chunk a core at a time) whatever the split's size.
    Returns the count.
    """
    dtype = smallest_uint_dtype(tokenizer.vocab_size)
    group = (os.cpu_count() or 1) if hasattr(tokenizer, "encode_batch") else 1
    chunks = _chunks(lines, chunk_chars)
    n = 0
    with open(path, "wb") as f:
        if tokenizer.bos_id is not None:
            f.write(np.asarray([tokenizer.bos_id], dtype=dtype).tobytes())
            n += 1
        while batch := list(itertools.islice(chunks, group)):
            encoded = (tokenizer.encode_batch(batch) if len(batch) > 1
                       else [tokenizer.encode(batch[0])])
            for ids in encoded:
                f.write(ids.astype(dtype, copy=False).tobytes())
                n += len(ids)
        if tokenizer.eos_id is not None:
            f.write(np.asarray([tokenizer.eos_id], dtype=dtype).tobytes())
            n += 1
    return n


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class TokenCache:
    """A memory-mapped token array with the metadata that says what it is."""

    tokens: np.ndarray
    meta: dict
    rebuilt: bool


def cached_tokens(
    split: Split,
    tokenizer: Tokenizer,
    cache_dir: str | os.PathLike,
    chunk_chars: int = 8_000_000,
) -> TokenCache:
    """Encode ``report_text(split.lines)`` once and memory-map it on later calls.

    The cache is rebuilt, never silently reused, when the source text, the tokenizer or the
    token file itself (its checksum) no longer match the metadata.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = f"{split.config}.{split.name}.{tokenizer.name}"
    bin_path, meta_path = cache_dir / f"{key}.bin", cache_dir / f"{key}.json"
    lines = report_lines(split.lines)
    want = {
        "tokenizer": tokenizer.name,
        "tokenizer_fingerprint": tokenizer.fingerprint(),
        "source": split.origin,
        "config": split.config,
        "split": split.name,
        "source_sha256": split.sha256(),
        "is_slice": split.is_slice,
    }
    dtype = smallest_uint_dtype(tokenizer.vocab_size)
    if meta_path.is_file() and bin_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = {}
        if all(meta.get(k) == v for k, v in want.items()) and meta.get(
            "tokens_sha256"
        ) == _file_sha256(bin_path):
            tokens = np.memmap(bin_path, dtype=meta["dtype"], mode="r")
            return TokenCache(tokens, meta, rebuilt=False)
    tmp = bin_path.with_suffix(".bin.tmp")
    n = encode_to_file(tokenizer, lines, tmp, chunk_chars)
    os.replace(tmp, bin_path)
    meta = {
        **want,
        "dtype": dtype.name,
        "num_tokens": n,
        "characters": len("\n".join(lines)),
        "utf8_bytes": sum(len(s.encode("utf-8")) for s in lines) + max(len(lines) - 1, 0),
        "tokens_sha256": _file_sha256(bin_path),
    }
    tmp_meta = meta_path.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, meta_path)
    tokens = np.memmap(bin_path, dtype=dtype, mode="r")
    return TokenCache(tokens, meta, rebuilt=True)
