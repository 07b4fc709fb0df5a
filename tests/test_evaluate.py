"""Tests of h2q_lib.evaluate: windows, de-tokenization, exact metrics, consistency, GPT-2."""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h2q_lib import data
from h2q_lib.evaluate import (
    EvalResult,
    WeightsUnavailableError,
    evaluate_documents,
    gpt2_protocol,
    load_gpt2,
    prefix_id,
    rolling_windows,
    tiny_gpt2,
    wikitext_detokenizer,
)
from h2q_lib.model import GPT, GPTConfig
from h2q_lib.tokenizers import CharTokenizer, GPT2Tokenizer

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get(data.DATA_DIR_ENV) or REPO.parent / "shared" / "data" / "wikitext")

SMALL_DOCS = [
    " = Café au lait = \n \n A naïve @-@ looking résumé , of 1 @,@ 000 words . \n",
    ' = Short = \n Ünïcödé — text ; with " quotes " and ( brackets ) . \n',
    " = Third = \n \n The players ' union said it won 't . \n \n",
]


@pytest.fixture(scope="module")
def test_split() -> data.Split:
    if not DATA_DIR.is_dir():
        pytest.skip(f"WikiText data not found (set {data.DATA_DIR_ENV})")
    return data.load_split("test", data_dir=DATA_DIR)


@pytest.fixture(scope="module")
def test_docs(test_split) -> list[str]:
    return data.documents(test_split.lines)


class Uniform(torch.nn.Module):
    """p(x) = 1/V for every symbol: logits of zeros."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*idx.shape, self.vocab_size)


def small_gpt(vocab_size: int, block_size: int = 32, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    cfg = GPTConfig(
        vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=32, n_ff=64
    )
    return GPT(cfg).eval()


def char_tokenizer(docs: list[str]) -> CharTokenizer:
    return CharTokenizer.train(docs, vocab_size=4 + len(set("".join(docs))))


# --- (3) windows ----------------------------------------------------------------------------


def scored_positions(windows, n: int, context: int) -> list[int]:
    out = []
    for s, e, k in windows:
        assert 0 <= s < e <= n - 1 and e - s <= context and 0 <= k < e - s
        out.extend(range(s + k + 1, e + 1))
    return out


def test_rolling_windows_example():
    # n=10 ids, context 4: [bos] t1..t9; the last window keeps a full 4-id context.
    assert rolling_windows(10, 4) == [(0, 4, 0), (4, 8, 0), (5, 9, 3)]
    assert rolling_windows(10, 4, stride=2) == [
        (0, 2, 0),
        (0, 4, 2),
        (2, 6, 2),
        (4, 8, 2),
        (5, 9, 3),
    ]
    assert rolling_windows(1, 4) == [] and rolling_windows(0, 4) == []


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 3000),
    context=st.integers(1, 600),
    stride_fraction=st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_windows_score_every_token_once(n, context, stride_fraction):
    stride = None if stride_fraction is None else max(1, round(stride_fraction * context))
    windows = rolling_windows(n, context, stride)
    assert scored_positions(windows, n, context) == list(range(1, n))
    for s, e, _ in windows:  # every window sees the longest context available
        assert e - s == min(context, e)
    if stride is None:
        assert len(windows) == math.ceil(max(n - 1, 0) / context)


def test_windows_reject_bad_options():
    with pytest.raises(ValueError):
        rolling_windows(10, 0)
    with pytest.raises(ValueError):
        rolling_windows(10, 4, stride=5)


# --- (1), (2) exact metrics ---------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("context,stride", [(4, None), (7, 3), (64, None)])
def test_uniform_model_gives_exact_metrics(precision, context, stride):
    tok = char_tokenizer(SMALL_DOCS)
    V = tok.vocab_size
    r = evaluate_documents(
        Uniform(V), tok, SMALL_DOCS, context=context, stride=stride, precision=precision
    )
    n_scored = sum(len(d) for d in SMALL_DOCS)  # one id per character; the prefix is unscored
    n_bytes = sum(len(d.encode("utf-8")) for d in SMALL_DOCS)
    assert r.tokens == n_scored and r.documents == 3
    assert r.characters == n_scored and r.utf8_bytes == n_bytes > r.characters
    assert r.nll_sum == pytest.approx(n_scored * math.log(V), rel=1e-6)
    assert r.metrics["token_perplexity"] == pytest.approx(V, rel=1e-6)
    assert r.metrics["bits_per_byte"] == pytest.approx(
        n_scored * math.log(V) / (n_bytes * math.log(2)), rel=1e-6
    )
    assert r.metrics["bits_per_character"] == pytest.approx(math.log2(V), rel=1e-6)


def test_word_perplexities_are_direct_computations():
    tok = char_tokenizer(SMALL_DOCS)
    r = evaluate_documents(small_gpt(tok.vocab_size), tok, SMALL_DOCS, context=32, precision="fp32")
    ws_words = sum(len(re.split(r"\s+", d)) for d in SMALL_DOCS)
    wt_words = sum(sum(len(line.split()) + 1 for line in d[:-1].split("\n")) for d in SMALL_DOCS)
    assert r.whitespace_words == ws_words and r.wikitext_words == wt_words
    assert r.metrics["word_perplexity"] == pytest.approx(math.exp(r.nll_sum / ws_words), rel=1e-12)
    assert r.metrics["wikitext_word_perplexity"] == pytest.approx(
        math.exp(r.nll_sum / wt_words), rel=1e-12
    )
    d = r.to_dict()
    assert isinstance(r, EvalResult) and d["nll_sum"] == r.nll_sum and "metrics" in d


# --- (4) consistency ------------------------------------------------------------------------


def token_by_token_nll(model: GPT, seq: np.ndarray, context: int) -> float:
    """-sum_t ln p(seq[t] | seq[max(0, t - context):t]), one forward pass per token."""
    total = 0.0
    ids = torch.as_tensor(seq, dtype=torch.long)
    with torch.no_grad():
        for t in range(1, len(seq)):
            logits = model(ids[max(0, t - context) : t][None])[0, -1].double()
            total -= torch.log_softmax(logits, -1)[ids[t]].item()
    return total


def test_windows_match_token_by_token_scoring():
    doc = "A short document, fits.\n"
    tok = char_tokenizer([doc])
    model = small_gpt(tok.vocab_size, block_size=32)
    seq = np.concatenate([[tok.bos_id], tok.encode(doc)])
    assert len(seq) <= 32
    r = evaluate_documents(model, tok, [doc], context=32, precision="fp32")
    assert r.nll_sum == pytest.approx(token_by_token_nll(model, seq, 32), rel=1e-5)


def test_sliding_window_matches_token_by_token_on_a_long_document():
    doc = "Longer than the context: the quick brown fox jumps over the lazy dog.\n"
    tok = char_tokenizer([doc])
    model = small_gpt(tok.vocab_size, block_size=16)
    seq = np.concatenate([[tok.bos_id], tok.encode(doc)])
    r = evaluate_documents(model, tok, [doc], context=16, stride=1, precision="fp32")
    assert r.nll_sum == pytest.approx(token_by_token_nll(model, seq, 16), rel=1e-5)
    full = evaluate_documents(model, tok, [doc], context=16, precision="fp32")
    same = evaluate_documents(model, tok, [doc], context=16, stride=16, precision="fp32")
    assert full.nll_sum == pytest.approx(same.nll_sum, rel=1e-12)


def test_batched_equals_unbatched_and_bf16_is_close():
    docs = [SMALL_DOCS[0] * 3, SMALL_DOCS[1], SMALL_DOCS[2] * 2, "x\n"]
    tok = char_tokenizer(docs)
    model = small_gpt(tok.vocab_size, block_size=32)
    one = evaluate_documents(model, tok, docs, context=32, batch_size=1, precision="fp32")
    many = evaluate_documents(model, tok, docs, context=32, batch_size=8, precision="fp32")
    assert many.nll_sum == pytest.approx(one.nll_sum, rel=1e-5)
    assert many.tokens == one.tokens == sum(len(d) for d in docs)
    bf16 = evaluate_documents(model, tok, docs, context=32, batch_size=8, precision="bf16")
    assert bf16.nll_sum == pytest.approx(one.nll_sum, rel=2e-2)
    assert not model.training


def test_prefix_id_falls_back_to_eos_then_zero():
    class Tok:
        bos_id = None
        eos_id = 7

    assert prefix_id(Tok()) == 7
    Tok.eos_id = None
    assert prefix_id(Tok()) == 0
    assert prefix_id(GPT2Tokenizer()) == 50_256


def test_bad_precision_is_refused():
    tok = char_tokenizer(SMALL_DOCS)
    with pytest.raises(ValueError, match="precision"):
        evaluate_documents(Uniform(tok.vocab_size), tok, SMALL_DOCS, context=8, precision="fp16")


# --- (5) de-tokenizer on real WikiText ------------------------------------------------------


def test_detokenizer_examples():
    line = ' He had a guest @-@ starring role , as " Craig " in " Teddy \'s Story " ( 2004 ) . \n'
    assert wikitext_detokenizer(line) == (
        ' He had a guest-starring role, as "Craig" in "Teddy\'s Story" (2004).\n'
    )
    assert wikitext_detokenizer(" 1 @,@ 000 and 2 @.@ 5 ° C \n") == " 1,000 and 2.5°C\n"
    assert wikitext_detokenizer(" = = Career = = \n") == " == Career ==\n"
    assert wikitext_detokenizer(" = = = Early = = = \n") == " === Early ===\n"
    assert wikitext_detokenizer("we don 't ; the players ' union") == "we don't; the players' union"


def test_detokenizer_on_the_test_split(test_docs):
    detok = [wikitext_detokenizer(d) for d in test_docs]
    for artefact in (" @-@ ", " @,@ ", " @.@ ", " = = ", " ( ", " ) ", " ; ", " . \n"):
        assert sum(d.count(artefact) for d in detok) == 0, artefact
    commas_before = sum(d.count(" , ") for d in test_docs)
    commas_after = sum(d.count(" , ") for d in detok)
    assert commas_before > 10_000 and commas_after < commas_before / 100
    assert sum(d.count(" 's") for d in detok) < sum(d.count(" 's") for d in test_docs) / 100
    assert all(wikitext_detokenizer(d) == d for d in detok)  # a second pass changes nothing
    assert sum(map(len, detok)) < 0.97 * sum(map(len, test_docs))
    # words are not lost, only re-attached: the letters and digits are all still there
    letters = re.compile(r"[^\W_]")
    assert all(
        letters.findall(a) == letters.findall(b) for a, b in zip(test_docs, detok, strict=True)
    )


def test_counts_come_from_the_original_pages(test_docs):
    docs = test_docs[:3]
    tok = char_tokenizer(docs)
    plain = evaluate_documents(Uniform(tok.vocab_size), tok, docs, context=512)
    detok = evaluate_documents(Uniform(tok.vocab_size), tok, docs, context=512, detokenize=True)
    for r in (plain, detok):
        assert r.whitespace_words == sum(data.whitespace_words(d) for d in docs)
        assert r.wikitext_words == sum(data.wikitext_words(d[:-1].split("\n")) for d in docs)
        assert r.characters == sum(map(len, docs))
        assert r.utf8_bytes == sum(len(d.encode("utf-8")) for d in docs)
    assert detok.tokens < plain.tokens  # the model was fed the shorter de-tokenized text
    assert detok.metrics["word_perplexity"] < plain.metrics["word_perplexity"]


# --- (6), (7) GPT-2 -------------------------------------------------------------------------


def test_tiny_gpt2_end_to_end(test_split, test_docs):
    pytest.importorskip("transformers")
    model, tok = tiny_gpt2(seed=0), GPT2Tokenizer()
    # two short real articles (NY State Route 31B, Tatwine: about 500 GPT-2 tokens each)
    pages = sorted(test_docs, key=len)[2:4]
    lines = [line for page in pages for line in page[:-1].split("\n")]
    split = data.Split("test", test_split.config, lines, test_split.origin)
    r = gpt2_protocol(model, tok, split, batch_size=2)
    assert r.documents == 2 and r.tokens > 500
    assert r.wikitext_words == sum(data.wikitext_words(p[:-1].split("\n")) for p in pages)
    assert r.settings["detokenize"] and r.settings["context"] == 1024
    assert r.settings["prefix_id"] == 50_256
    for value in r.metrics.values():
        assert math.isfinite(value)
    assert 1e3 < r.metrics["token_perplexity"] < 2e5
    assert r.metrics["wikitext_word_perplexity"] > r.metrics["token_perplexity"]


def test_load_gpt2_offline_fails_fast(monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="gpt2") as info:
        load_gpt2("gpt2")
    assert time.perf_counter() - start < 5
    assert "published" in str(info.value) and "hub" in str(info.value)
