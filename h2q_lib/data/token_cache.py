"""Token caches: a split encoded once, stored as a memory-mapped array, checked on reuse.

A cache is a ``.bin`` file of token ids in the smallest integer type that holds the
vocabulary and a ``.json`` file that says what it is: the tokenizer and its fingerprint, the
source text's sha256, and the checksum of the ``.bin`` file. It is rebuilt, never silently
reused, when any of them no longer matches, and when the metadata cannot be read.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from h2q_lib.core.run_folder import (
    RunFolderError,
    atomic_write,
    file_sha256,
    read_json,
    shown,
    write_json,
)
from h2q_lib.data.tokenizers import Tokenizer, smallest_uint_dtype
from h2q_lib.data.wikitext import Split, report_lines


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


@dataclass
class TokenCache:
    """A memory-mapped token array with the metadata that says what it is."""

    tokens: np.ndarray
    meta: dict
    rebuilt: bool


def _reusable(meta: dict | None, want: dict, bin_path: Path) -> bool:
    """The metadata describes this text and tokenizer, and the token file is intact."""
    if meta is None or any(meta.get(k) != v for k, v in want.items()):
        return False
    try:
        dtype = np.dtype(meta.get("dtype"))
    except (TypeError, ValueError):  # an edited dtype: "nonsense", {"a": 1}, [1, 2], ...
        return False
    num_tokens = meta.get("num_tokens")
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, int):
        return False
    return (dtype == want_dtype(want)
            and bin_path.is_file()
            and bin_path.stat().st_size == dtype.itemsize * num_tokens
            and meta.get("tokens_sha256") == file_sha256(bin_path))


def want_dtype(want: dict) -> np.dtype:
    return smallest_uint_dtype(want["vocab_size"])


def cached_tokens(
    split: Split,
    tokenizer: Tokenizer,
    cache_dir: str | os.PathLike,
    chunk_chars: int = 8_000_000,
) -> TokenCache:
    """Encode ``report_text(split.lines)`` once and memory-map it on later calls.

    The cache is rebuilt, never silently reused, when the source text, the tokenizer or the
    token file itself (size, checksum) no longer match the metadata, or when the metadata is
    unreadable. Both files are written atomically.
    """
    cache_dir = Path(cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise RunFolderError(f"token cache folder {shown(cache_dir)} is a file; move it away "
                             "and run again")
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = f"{split.config}.{split.name}.{tokenizer.name}"
    bin_path, meta_path = cache_dir / f"{key}.bin", cache_dir / f"{key}.json"
    lines = report_lines(split.lines)
    want = {
        "tokenizer": tokenizer.name,
        "tokenizer_fingerprint": tokenizer.fingerprint(),
        "vocab_size": tokenizer.vocab_size,
        "source": split.origin,
        "config": split.config,
        "split": split.name,
        "source_sha256": split.sha256(),
        "is_slice": split.is_slice,
    }
    meta = read_json(meta_path)
    if _reusable(meta, want, bin_path):
        tokens = np.memmap(bin_path, dtype=meta["dtype"], mode="r")
        return TokenCache(tokens, meta, rebuilt=False)
    counted = {}
    atomic_write(bin_path, lambda tmp: counted.setdefault(
        "n", encode_to_file(tokenizer, lines, tmp, chunk_chars)))
    meta = {
        **want,
        "dtype": want_dtype(want).name,
        "num_tokens": counted["n"],
        "characters": len("\n".join(lines)),
        "utf8_bytes": sum(len(s.encode("utf-8")) for s in lines) + max(len(lines) - 1, 0),
        "tokens_sha256": file_sha256(bin_path),
    }
    write_json(meta_path, meta)
    tokens = np.memmap(bin_path, dtype=meta["dtype"], mode="r")
    return TokenCache(tokens, meta, rebuilt=True)
