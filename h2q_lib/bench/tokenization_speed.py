"""Tokenization throughput: MB/s of UTF-8 text through the ``char`` tokenizer and through
``gpt2``'s on one thread and on all cores."""

from __future__ import annotations

import os
import time

from h2q_lib.data.tokenizers import CharTokenizer, GPT2Tokenizer


def _line_chunks(text: str, pieces: int) -> list[str]:
    """``text`` cut at line ends into about ``pieces`` chunks of similar size."""
    lines = text.splitlines(keepends=True)
    size = max(1, len(lines) // pieces)
    return ["".join(lines[i : i + size]) for i in range(0, len(lines), size)]


def tokenization_rates(text: str) -> dict[str, float | int]:
    """MB/s of UTF-8 text encoded by ``char`` (one pass) and ``gpt2`` (one thread, all cores).

    For ``gpt2`` the text is cut at line ends into four chunks a core, so that every thread
    gets large pieces of work (a task a line costs more in scheduling than in encoding).
    """
    mb = len(text.encode("utf-8")) / 1e6
    char = CharTokenizer.train([text])
    t0 = time.perf_counter()
    char.encode(text)
    out: dict[str, float | int] = {"char_MB_per_s": mb / (time.perf_counter() - t0)}
    gpt2 = GPT2Tokenizer()
    threads = os.cpu_count() or 1
    chunks = _line_chunks(text, 4 * threads)
    gpt2.encode_batch(chunks[:1], num_threads=1)  # warm-up
    for key, n in (("gpt2_1_thread_MB_per_s", 1), ("gpt2_MB_per_s", threads)):
        t0 = time.perf_counter()
        gpt2.encode_batch(chunks, num_threads=n)
        out[key] = mb / (time.perf_counter() - t0)
    out["gpt2_threads"] = threads
    return out
