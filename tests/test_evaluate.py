"""Tests of h2q_lib.evaluation.documents: windows, de-tokenization, exact metrics,
consistency, GPT-2,
checkpoints, stored evaluations and ``h2q evaluate``."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h2q_lib.cli import main as h2q_main
from h2q_lib.core import offline_hub as hub
from h2q_lib.core import provenance
from h2q_lib.core.errors import CheckpointError
from h2q_lib.core.run_folder import prepare_run_folder
from h2q_lib.data import wikitext as data
from h2q_lib.data.tokenizers import CharTokenizer, GPT2Tokenizer
from h2q_lib.evaluation import checkpoint_scores as scores
from h2q_lib.evaluation import documents as evaluate_module
from h2q_lib.evaluation import evaluate_command as command
from h2q_lib.evaluation.checkpoint_identity import checkpoint_identity
from h2q_lib.evaluation.checkpoint_scores import EVAL_MODULES, evaluate_checkpoint, evaluate_run
from h2q_lib.evaluation.documents import (
    EvalResult,
    evaluate_documents,
    gpt2_protocol,
    prefix_id,
    rolling_windows,
    wikitext_detokenizer,
)
from h2q_lib.model import gpt2
from h2q_lib.model.gpt import GPT, GPTConfig
from h2q_lib.model.gpt2 import WeightsUnavailableError, load_gpt2, tiny_gpt2
from h2q_lib.training import hardware
from h2q_lib.training.checkpoint import save_weights

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


def page_lines(page: str) -> list[str]:
    """A page's lines (the last page of a split ends with the file's final newline)."""
    return (page[:-1] if page.endswith("\n") else page).split("\n")


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


def test_lm_eval_pages_of_the_test_split(test_split, test_docs):
    # EleutherAI's wikitext_document_level: 62 pages, joined they are the file but its " \n"
    assert len(test_docs) == 62
    assert " \n" + "\n".join(test_docs) == test_split.text()
    starts = data.article_starts(test_split.lines)
    inside = [test_split.lines[i] for i in starts if test_split.lines[i - 1].strip()]
    assert inside == [" = 1 rad / s and a nominal impedance k = ",
                      " = 1 henry and capacitance C = "]  # formula lines that read like titles


def test_detokenizer_examples():
    # lm-evaluation-harness's wikitext_detokenizer, rule by rule (tests/test_harness.py checks
    # every page of the validation and test splits against the installed harness)
    line = ' He had a guest @-@ starring role , as " Craig " in " Teddy \'s Story " ( 2004 ) . \n'
    assert wikitext_detokenizer(line) == (
        ' He had a guest-starring role, as "Craig" in "Teddy\'s Story" (2004).\n'
    )
    assert wikitext_detokenizer(" 1 @,@ 000 and 2 @.@ 5 ° C \n") == " 1,000 and 2.5°C\n"
    assert wikitext_detokenizer(" = = Career = = \n") == " == Career ==\n"
    assert wikitext_detokenizer(" = = = Early = = = \n") == " === Early ===\n"
    assert wikitext_detokenizer(" = = = = Deep = = = = \n") == " ==== Deep ====\n"
    # no rule for "n 't"; "s '" closes a plural possessive
    assert wikitext_detokenizer("we don 't ; the players ' union") == (
        "we don 't; the players' union")
    # apostrophes pair like quotes, across clauses: here Chang 'an becomes Chang'an
    assert wikitext_detokenizer(" Du Fu 's home , the city of Chang 'an . \n") == (
        " Du Fu's home, the city of Chang'an.\n")
    assert wikitext_detokenizer(" N of them , N years \n") == " 1 of them, 1 years\n"
    assert wikitext_detokenizer(" ( a \n b ) [ c ] { d } \n") == " (a\nb) [c] {d}\n"
    assert wikitext_detokenizer("in 5 /' 7/ c") == "in 5 /'[0-9]/ c"  # lm-eval's literal rule


def test_detokenizer_on_the_test_split(test_docs):
    detok = [wikitext_detokenizer(d) for d in test_docs]
    for artefact in (" @-@ ", " @,@ ", " @.@ ", " = = ", " ; ", " : ", " N ", " \n"):
        assert sum(d.count(artefact) for d in detok) == 0, artefact
    commas_before = sum(d.count(" , ") for d in test_docs)
    commas_after = sum(d.count(" , ") for d in detok)
    assert commas_before > 10_000 and commas_after < commas_before / 100
    assert sum(d.count(" 's") for d in detok) < sum(d.count(" 's") for d in test_docs) / 100
    assert sum(map(len, detok)) < 0.97 * sum(map(len, test_docs))
    # words are not lost, only re-attached: the letters are all still there (but N, which
    # " N " -> " 1 " turns into a digit)
    letters = re.compile(r"[^\W\dN_]")
    assert all(letters.findall(a) == letters.findall(b)
               for a, b in zip(test_docs, detok, strict=True))


def test_counts_come_from_the_original_pages(test_docs):
    docs = test_docs[:3]
    tok = char_tokenizer(docs)
    plain = evaluate_documents(Uniform(tok.vocab_size), tok, docs, context=512)
    detok = evaluate_documents(Uniform(tok.vocab_size), tok, docs, context=512, detokenize=True)
    for r in (plain, detok):
        assert r.whitespace_words == sum(data.whitespace_words(d) for d in docs)
        assert r.wikitext_words == sum(data.wikitext_words(page_lines(d)) for d in docs)
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
    lines = [line for page in pages for line in page_lines(page)]
    split = data.Split("test", test_split.config, lines, test_split.origin)
    r = gpt2_protocol(model, tok, split, batch_size=2)
    assert r.documents == 2 and r.tokens > 500
    assert r.wikitext_words == sum(data.wikitext_words(page_lines(p)) for p in pages)
    assert r.settings["detokenize"] and r.settings["context"] == 1024
    assert r.settings["prefix_id"] == 50_256
    for value in r.metrics.values():
        assert math.isfinite(value)
    assert 1e3 < r.metrics["token_perplexity"] < 2e5
    assert r.metrics["wikitext_word_perplexity"] > r.metrics["token_perplexity"]


def _no_connection(*a, **k):
    raise AssertionError("offline: no connection may be tried (failing fast means not waiting)")


def test_load_gpt2_offline_fails_fast(monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub.socket, "create_connection", _no_connection)
    with pytest.raises(WeightsUnavailableError, match="gpt2") as info:
        load_gpt2("gpt2")
    assert "published" in str(info.value) and "hub" in str(info.value)


def test_pickle_only_gpt2_folder_is_refused_in_one_line(tmp_path):
    pytest.importorskip("transformers")
    model = tiny_gpt2(seed=0)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # a pickle, as old exports
    for call in (lambda: load_gpt2(tmp_path), lambda: checkpoint_identity(tmp_path)):
        with pytest.raises(WeightsUnavailableError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and "pytorch_model.bin" in message
        assert str(tmp_path) in message and "safetensors" in message


def test_gpt2_folder_is_loaded_from_safetensors(tmp_path):
    pytest.importorskip("transformers")
    folder = gpt2.save_gpt2_folder(tiny_gpt2(seed=3), tmp_path / "gpt2")
    model, tok = load_gpt2(folder)
    ids = torch.tensor([[50_256, 464, 3290]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, tiny_gpt2(seed=3)(ids).logits)
    identity = checkpoint_identity(folder)
    assert identity["kind"] == "gpt2" and identity["context"] == 1024
    assert isinstance(tok, GPT2Tokenizer)


# --- (8) scoring is in fp32 unless another precision is asked for (issue #38 row 21) ---------


@pytest.mark.parametrize("speedup", [3.0, 0.02])
def test_auto_precision_scores_in_fp32_whatever_the_hardware_rule_says(monkeypatch, speedup):
    rule = functools.partial(hardware.choose_precision, speedup=lambda: speedup)
    monkeypatch.setattr(evaluate_module, "choose_precision", rule)
    tok = char_tokenizer(SMALL_DOCS)
    r = evaluate_documents(Uniform(tok.vocab_size), tok, SMALL_DOCS, context=16)  # auto
    assert r.settings["precision"] == "fp32"
    assert "lm-evaluation-harness" in r.settings["precision_reason"]
    asked = evaluate_documents(Uniform(tok.vocab_size), tok, SMALL_DOCS, context=16,
                               precision="bf16")
    assert asked.settings["precision"] == "bf16"
    assert asked.settings["precision_reason"] == "asked for"


# --- (9) checkpoints, stored evaluations, `h2q evaluate` ------------------------------------


def save_char_checkpoint(path: Path, texts: list[str], seed: int = 0, block_size: int = 512):
    tok = char_tokenizer(texts)
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=2,
                    n_embd=16, n_ff=32)
    torch.manual_seed(seed)
    save_weights(path, GPT(cfg), {"tokenizer": tok.to_dict(), "model_args": cfg.to_dict()})
    return path


@pytest.fixture
def run_dir(tmp_path, test_split) -> Path:
    folder = prepare_run_folder(tmp_path / "run")
    save_char_checkpoint(folder / "final_model.safetensors", [test_split.text()])
    return folder


SCORE = {"splits": ("test",), "max_documents": 1, "data_dir": DATA_DIR, "device": "cpu",
         "precision": "fp32"}


def header_sha256(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()["sha256"]


def test_evaluate_checkpoint_scores_both_protocols(run_dir, test_docs):
    weights = run_dir / "final_model.safetensors"
    lm = evaluate_checkpoint(weights, protocol="lm-eval", **SCORE)
    report = evaluate_checkpoint(weights, protocol="report", **SCORE)
    json.dumps(lm)  # JSON-able
    assert lm["weights_sha256"] == header_sha256(weights) and lm["context"] == 512
    assert lm["precision"] == "fp32" and lm["precision_reason"] == "asked for"
    first = test_docs[0]
    r = lm["splits"]["test"]
    assert r["documents"] == 1 and r["settings"]["detokenize"] is True
    assert r["utf8_bytes"] == len(first.encode("utf-8"))  # counted on the original page
    assert r["tokens"] == len(wikitext_detokenizer(first))  # one id a character
    q = report["splits"]["test"]
    assert q["settings"]["detokenize"] is False and q["settings"]["protocol"] == "report"
    assert q["characters"] == q["tokens"] == len(data.report_documents(page_lines(first))[0])


def test_the_context_scored_is_the_checkpoints_own_block_size(tmp_path, test_split):
    # What 03 scores follows the weights 02 wrote: an override of block_size given to
    # training reaches scoring through the checkpoint's model_args, with no other setting.
    results = {}
    for block_size in (16, 64):
        weights = save_char_checkpoint(tmp_path / f"b{block_size}.safetensors",
                                       [test_split.text()], block_size=block_size)
        results[block_size] = evaluate_checkpoint(weights, protocol="report", **SCORE)
    assert [results[b]["context"] for b in (16, 64)] == [16, 64]
    short, long = (results[b]["splits"]["test"] for b in (16, 64))
    assert short["tokens"] == long["tokens"] and short["nll_sum"] != long["nll_sum"]


def test_evaluate_checkpoint_refuses_bad_options(run_dir):
    weights = run_dir / "final_model.safetensors"
    for kwargs, param in [({"protocol": "gpt2"}, "protocol"), ({"splits": ("dev",)}, "splits"),
                          ({"batch_size": 0}, "batch_size"), ({"precision": "fp8"}, "precision"),
                          ({"max_documents": -1}, "max_documents")]:
        with pytest.raises(ValueError, match=param):
            evaluate_checkpoint(weights, **{**SCORE, **kwargs})
    with pytest.raises(CheckpointError, match="does not exist"):
        evaluate_checkpoint(run_dir / "missing.safetensors", **SCORE)


@pytest.mark.slow
def test_evaluate_run_stores_by_protocol_and_split_and_reuses_by_key(run_dir, monkeypatch):
    messages: list[str] = []
    first = evaluate_run(run_dir, announce=messages.append, **SCORE)
    stored = json.loads((run_dir / "evaluation.json").read_text())
    assert stored == first and set(stored) == {"lm-eval", "report"}
    key = stored["lm-eval"]["test"]["key"]
    assert key["weights_sha256"] == header_sha256(run_dir / "final_model.safetensors")
    assert key["library_fingerprint"] == provenance.library_fingerprint(EVAL_MODULES)
    assert (key["protocol"], key["split"], key["max_documents"], key["context"],
            key["precision"]) == ("lm-eval", "test", 1, 512, "fp32")
    assert stored["report"]["test"]["result"]["settings"]["protocol"] == "report"

    calls = []
    real = scores.score_split

    def counted(*args, **kwargs):
        calls.append(args[2])  # the protocol
        return real(*args, **kwargs)

    monkeypatch.setattr(scores, "score_split", counted)
    assert evaluate_run(run_dir, announce=messages.append, **SCORE) == first
    assert calls == [] and sum("reused" in m for m in messages) == 2
    # a different setting, new weights, new evaluation code: scored again, the rest kept
    evaluate_run(run_dir, protocols=("report",), **{**SCORE, "max_documents": 2})
    assert calls == ["report"]
    after = json.loads((run_dir / "evaluation.json").read_text())
    assert after["lm-eval"] == first["lm-eval"]
    assert after["report"]["test"]["result"]["documents"] == 2
    save_char_checkpoint(run_dir / "final_model.safetensors", ["other text"], seed=1)
    evaluate_run(run_dir, protocols=("report",), **{**SCORE, "max_documents": 2})
    assert calls == ["report", "report"]
    monkeypatch.setattr(provenance, "library_fingerprint", lambda *a, **k: "changed")
    evaluate_run(run_dir, protocols=("report",), **{**SCORE, "max_documents": 2})
    assert calls == ["report"] * 3


def test_evaluate_run_needs_a_final_model(tmp_path):
    with pytest.raises(CheckpointError, match="final_model.safetensors"):
        evaluate_run(prepare_run_folder(tmp_path / "empty"), **SCORE)


def test_a_committed_run_folder_shows_its_stored_evaluation_without_weights(tmp_path):
    """Weights are never committed: the stored scores are shown, and said to be stored."""
    committed = prepare_run_folder(tmp_path / "committed")
    entry = {"key": {"max_documents": None, "weights_sha256": "ab" * 32},
             "result": {"metrics": {"bits_per_byte": 3.5}}}
    stored = {p: {s: entry for s in ("validation", "test")} for p in ("lm-eval", "report")}
    (committed / "evaluation.json").write_text(json.dumps(stored))
    said: list[str] = []
    assert evaluate_run(committed, announce=said.append, **{**SCORE, "max_documents": None}) \
        == stored
    assert "keeps no weights" in said[0]
    # stored on other pages, or a split missing: not shown as if it answered the question
    with pytest.raises(CheckpointError, match="final_model.safetensors"):
        evaluate_run(committed, **{**SCORE, "max_documents": 3})
    del stored["report"]["test"]
    (committed / "evaluation.json").write_text(json.dumps(stored))
    with pytest.raises(CheckpointError, match="final_model.safetensors"):
        evaluate_run(committed, **{**SCORE, "max_documents": None})


FLAGS = ["--splits", "test", "--max-documents", "1", "--device", "cpu", "--precision", "fp32",
         "--data-dir", str(DATA_DIR)]


def test_cli_evaluate_a_run_folder(run_dir, capsys):
    assert h2q_main(["evaluate", str(run_dir), "--protocol", "report", *FLAGS]) == 0
    out = capsys.readouterr().out
    assert "bits/byte" in out and "report" in out and "evaluation.json" in out
    stored = json.loads((run_dir / "evaluation.json").read_text())
    assert stored["report"]["test"]["result"]["documents"] == 1
    assert "lm-eval" not in stored


def test_cli_evaluate_a_file_writes_evaluation_json_here(tmp_path, monkeypatch, test_split):
    weights = save_char_checkpoint(tmp_path / "model.safetensors", [test_split.text()])
    monkeypatch.chdir(tmp_path)
    assert h2q_main(["evaluate", str(weights), *FLAGS]) == 0
    stored = json.loads((tmp_path / "evaluation.json").read_text())
    assert stored["lm-eval"]["test"]["result"]["settings"]["detokenize"] is True


@pytest.mark.parametrize("args,flag,allowed", [
    (["--protocol", "harness"], "--protocol='harness'", "lm-eval, report"),
    (["--splits", "dev"], "--splits='dev'", "validation"),
    (["--max-documents", "0"], "--max-documents='0'", "positive integer"),
    (["--max-documents", "two"], "--max-documents='two'", "positive integer"),
    (["--batch-size", "-1"], "--batch-size='-1'", "positive integer"),
    (["--device", "tpu"], "--device='tpu'", "cpu"),
    (["--precision", "fp8"], "--precision='fp8'", "bf16"),
    (["--device", "cpu", "--precision", "fp16"], "--precision='fp16'", "on the CPU"),
    (["--data-dir", "/no/such/folder"], "--data-dir='/no/such/folder'", "folder"),
    (["--out", "/no/such/folder/e.json"], "--out='/no/such/folder/e.json'", "folder"),
])
def test_cli_evaluate_bad_flags_end_with_one_line(run_dir, capsys, monkeypatch, args, flag,
                                                  allowed):
    def never(*a, **k):
        raise AssertionError("scoring must not start on bad flags")

    monkeypatch.setattr(scores, "evaluate_to_file", never)  # a run folder's evaluate_run
    monkeypatch.setattr(command, "evaluate_to_file", never)  # --out
    assert h2q_main(["evaluate", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("h2q: error: ") and "\n" not in err
    assert flag in err and allowed in err


def test_cli_evaluate_a_missing_checkpoint(tmp_path, capsys):
    assert h2q_main(["evaluate", str(tmp_path / "nope.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "checkpoint=" in err and "run folder" in err


# --- (10) lm-eval stays optional ----------------------------------------------------------


def test_the_library_works_without_lm_eval():
    code = (
        "import sys; sys.modules['lm_eval'] = None\n"  # import lm_eval now fails
        "import h2q_lib, h2q_lib.evaluation.documents, h2q_lib.model.gpt2\n"
        "import h2q_lib.data.wikitext, h2q_lib.cli\n"
        "try:\n"
        "    import h2q_lib.evaluation.lm_eval_adapter\n"
        "except ImportError as e:\n"
        "    print('harness:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "harness: h2q_lib.evaluation.lm_eval_adapter needs lm-evaluation-harness" in done.stdout
    assert "lm-eval==0.4.13" in done.stdout


def test_a_gpt2_hub_name_offline_fails_fast_in_one_line(monkeypatch, capsys, tmp_path):
    pytest.importorskip("transformers")
    if gpt2._cached_on_disk("gpt2"):
        pytest.skip("gpt2 is in the Hugging Face cache here")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hub.socket, "create_connection", _no_connection)
    with pytest.raises(WeightsUnavailableError, match="gpt2"):
        evaluate_checkpoint("gpt2", **SCORE)
    assert h2q_main(["evaluate", "gpt2", "--splits", "test"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("h2q: error: GPT-2 weights for 'gpt2'") and "\n" not in err
    assert not (tmp_path / "evaluation.json").exists()
