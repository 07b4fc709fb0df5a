"""The project's evaluation against the real lm-evaluation-harness, offline.

lm-eval's ``wikitext`` task (its own YAML, detokenizer, word/byte counts and aggregation)
runs on local pages through ``lm_eval.simple_evaluate``; the project's path
(``scores.evaluate_checkpoint``) must give the same word perplexity, byte perplexity and
bits per byte, for a Hugging Face GPT-2 through lm-eval's ``hf`` model and for the project's
char model through the ``h2q`` adapter (``h2q_lib.evaluation.lm_eval_adapter``).
"""

from __future__ import annotations

import importlib.util
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

pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

import lm_eval  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.registry import get_model  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from h2q_lib.core.errors import ConfigError  # noqa: E402
from h2q_lib.data import wikitext as data
from h2q_lib.data.tokenizers import CharTokenizer  # noqa: E402
from h2q_lib.evaluation import lm_eval_adapter as harness  # noqa: E402
from h2q_lib.evaluation.checkpoint_scores import evaluate_checkpoint  # noqa: E402
from h2q_lib.evaluation.documents import evaluate_documents, wikitext_detokenizer  # noqa: E402
from h2q_lib.model.gpt import GPT, GPTConfig  # noqa: E402
from h2q_lib.model.gpt2 import save_gpt2_folder, tiny_gpt2  # noqa: E402
from h2q_lib.training.checkpoint import save_weights  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get(data.DATA_DIR_ENV) or REPO.parent / "shared" / "data" / "wikitext")
RAW_FILES = {"validation": "wiki.valid.raw", "test": "wiki.test.raw"}
# pages, whitespace words and UTF-8 bytes of EleutherAI's wikitext_document_level
# (wikitext-2-raw-v1 = wikitext-103-raw-v1 validation and test), counted by lm-eval's formulas
EXPECTED_TOTALS = {"validation": (60, 214_006, 1_146_785), "test": (62, 241_335, 1_290_527)}
METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")
N_PAGES = 3  # the first three test pages: Robert Boulter, Du Fu (24 kB: several windows), ...


def _raw_path(split: str) -> Path:
    path = DATA_DIR / "wikitext-2-raw-v1" / RAW_FILES[split]
    if not path.is_file():
        pytest.skip(f"WikiText data not found (set {data.DATA_DIR_ENV})")
    return path


def builder_pages(path: Path) -> list[str]:
    """EleutherAI's ``wikitext_document_level`` builder (``_generate_examples``), transcribed.

    The test's oracle, written from the dataset script, independent of ``data.documents``:
    read the whole file, split at "\\n", start a page at every line whose heading markers
    joined and stripped read "= ... =", yield a page only when it has text, always the last.
    """
    pages, current = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        key = line.replace("= = =", "===").replace("= =", "==").strip()
        if key.startswith("= ") and key.endswith(" ="):
            page = "\n".join(current)
            if page.strip():
                pages.append(page)
            current = []
        current.append(line)
    pages.append("\n".join(current))
    return pages


@pytest.fixture(scope="module")
def lm_eval_wikitext():
    """The installed harness's ``preprocess_wikitext`` module (detokenizer, process_results)."""
    path = harness.wikitext_task_yaml().parent / "preprocess_wikitext.py"
    spec = importlib.util.spec_from_file_location("lm_eval_preprocess_wikitext", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages() -> dict[str, list[str]]:
    return {split: data.documents(data.load_split(split, data_dir=_raw_path(split).parents[1])
                                  .lines) for split in RAW_FILES}


@pytest.fixture(scope="module")
def local_task(tmp_path_factory, pages) -> TaskManager:
    """lm-eval's wikitext task reading the first test pages that ``data.documents`` gives."""
    folder = tmp_path_factory.mktemp("task")
    harness.write_wikitext_task(folder, {"test": pages["test"][:N_PAGES]})
    return folder


def _task_manager(folder: Path) -> TaskManager:
    return TaskManager(include_path=str(folder), include_defaults=False)


def _harness_metrics(model, model_args, task_folder: Path) -> dict[str, float]:
    out = lm_eval.simple_evaluate(model=model, model_args=model_args, device="cpu",
                                  batch_size=4, tasks=[harness.WIKITEXT_TASK],
                                  task_manager=_task_manager(task_folder), bootstrap_iters=0,
                                  log_samples=False)
    results = out["results"][harness.WIKITEXT_TASK]
    assert results["sample_len"] == N_PAGES
    return {m: results[f"{m},none"] for m in METRICS}


def _assert_agree(ours: dict, theirs: dict, rel: float = 1e-6) -> None:
    for m in METRICS:
        assert math.isfinite(ours[m]) and ours[m] > 0
        assert abs(ours[m] - theirs[m]) <= rel * abs(theirs[m]), (m, ours[m], theirs[m])


# --- the data: pages, de-tokenizer and counts, byte for byte ---------------------------------


@pytest.mark.parametrize("split", list(RAW_FILES))
def test_documents_are_wikitext_document_level_pages(split, pages):
    assert pages[split] == builder_pages(_raw_path(split))
    assert len(pages[split]) == EXPECTED_TOTALS[split][0]


@pytest.mark.parametrize("split", list(RAW_FILES))
def test_detokenizer_is_lm_evals_on_every_page(split, pages, lm_eval_wikitext):
    for page in pages[split]:
        assert wikitext_detokenizer(page) == lm_eval_wikitext.wikitext_detokenizer({"page": page})


class _Constant(torch.nn.Module):
    """Logits of zeros over two ids: ln 2 nats per token."""

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*idx.shape, 2)


class _OneId:
    """Every character to id 0 (its own BOS); enough to count what the evaluator counts."""

    name, vocab_size, bos_id, eos_id = "one-id", 2, 1, None

    def encode(self, text: str) -> np.ndarray:
        return np.zeros(len(text), dtype=np.int64)


@pytest.mark.parametrize("split", list(RAW_FILES))
def test_page_totals_match_the_harness_formulas(split, pages, lm_eval_wikitext):
    split_pages = pages[split]
    per_page = [lm_eval_wikitext.process_results({"page": p}, [0.0]) for p in split_pages]
    words = sum(r["word_perplexity"][1] for r in per_page)
    n_bytes = sum(r["bits_per_byte"][1] for r in per_page)
    assert n_bytes == sum(r["byte_perplexity"][1] for r in per_page)
    assert words == sum(len(re.split(r"\s+", p)) for p in split_pages)
    assert (len(split_pages), words, n_bytes) == EXPECTED_TOTALS[split]
    # one window a page (a context longer than any page): the counts are what matters here
    result = evaluate_documents(_Constant(), _OneId(), split_pages,
                                context=max(map(len, split_pages)) + 1, batch_size=8,
                                detokenize=True, precision="fp32")
    assert (result.documents, result.whitespace_words, result.utf8_bytes) == (
        len(split_pages), words, n_bytes)
    assert result.nll_sum == pytest.approx(result.tokens * math.log(2), rel=1e-6)


# --- scores: the project's path against the harness --------------------------------------------


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory) -> Path:
    return save_gpt2_folder(tiny_gpt2(seed=0), tmp_path_factory.mktemp("gpt2"))


@pytest.mark.slow
def test_tiny_gpt2_matches_lm_evals_hf_model(gpt2_folder, local_task):
    theirs = _harness_metrics("hf", {"pretrained": str(gpt2_folder), "dtype": "float32"},
                              local_task)
    ours = evaluate_checkpoint(gpt2_folder, splits=("test",), protocol="lm-eval",
                               data_dir=DATA_DIR, device="cpu", precision="fp32",
                               batch_size=4, max_documents=N_PAGES)["splits"]["test"]
    assert ours["documents"] == N_PAGES and ours["settings"]["context"] == 1024
    assert ours["tokens"] > 3 * 1024  # several windows, the last with a full context
    _assert_agree(ours["metrics"], theirs)


@pytest.mark.slow
def test_adapter_on_a_gpt2_folder_scores_what_the_project_does(gpt2_folder, pages):
    page = next(p for p in pages["test"] if p.startswith(" = Tatwine = "))  # about 600 tokens
    lm = harness.H2QLM(checkpoint=str(gpt2_folder), device="cpu", precision="fp32")
    (logprob,) = lm.loglikelihood_rolling(
        [Instance("loglikelihood_rolling", {}, (wikitext_detokenizer(page),), 0)])
    ours = evaluate_documents(lm.model, lm.h2q_tokenizer, [page], context=1024,
                              detokenize=True, precision="fp32")
    assert lm.max_length == 1024 and lm.prefix_token_id == 50_256
    assert logprob == pytest.approx(-ours.nll_sum, rel=1e-9)


def _char_checkpoint(path: Path, texts: list[str], block_size: int = 512) -> Path:
    tokenizer = CharTokenizer.train(texts, vocab_size=4 + len(set("".join(texts))))
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=block_size, n_layer=2,
                    n_head=2, n_embd=32, n_ff=64)
    save_weights(path, GPT(cfg), {"tokenizer": tokenizer.to_dict(),
                                  "model_args": cfg.to_dict()})
    return path


@pytest.mark.slow
def test_char_model_through_the_h2q_adapter_matches(tmp_path, pages, local_task):
    weights = _char_checkpoint(tmp_path / "char.safetensors", pages["test"][:N_PAGES])
    theirs = _harness_metrics("h2q", {"checkpoint": str(weights), "precision": "fp32"},
                              local_task)
    ours = evaluate_checkpoint(weights, splits=("test",), protocol="lm-eval",
                               data_dir=DATA_DIR, device="cpu", precision="fp32",
                               batch_size=4, max_documents=N_PAGES)["splits"]["test"]
    assert ours["settings"]["context"] == 512 and ours["tokens"] > 60 * 512  # many windows
    _assert_agree(ours["metrics"], theirs)


# --- the adapter itself -----------------------------------------------------------------------


def test_import_registers_h2q_and_keeps_lm_evals_models():
    assert get_model("h2q") is harness.H2QLM
    assert get_model("hf").__name__ == "HFLM"  # registering first must not hide the rest


def _small_char_lm(text: str, block_size: int = 16) -> harness.H2QLM:
    tokenizer = CharTokenizer.train([text], vocab_size=4 + len(set(text)))
    torch.manual_seed(1)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=block_size, n_layer=1,
                    n_head=2, n_embd=16, n_ff=32)
    return harness.H2QLM(model=GPT(cfg), tokenizer=tokenizer, context=block_size,
                         device="cpu", precision="fp32", batch_size=3)


def _direct_logprob(lm: harness.H2QLM, ids: list[int], n_scored: int) -> tuple[float, bool]:
    """ln p of the last ``n_scored`` ids given the ones before (one forward pass, float64)."""
    ids = ids[-(lm.max_length + 1):]
    x = torch.tensor([ids[:-1]])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(x)[0].double(), -1)
    targets = torch.tensor(ids[1:])
    picked = logp[torch.arange(len(targets)), targets][-n_scored:]
    greedy = bool((logp.argmax(-1) == targets)[-n_scored:].all())
    return float(picked.sum()), greedy


def test_loglikelihood_scores_the_continuation_after_its_context():
    text = "the cat sat on the mat; the dog sat on the log."
    lm = _small_char_lm(text)
    pairs = [("the cat", " sat"), ("", "the"), (text, " end")]  # the last is cut to 16 ids
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    got = lm.loglikelihood(requests)
    for (context, continuation), (logprob, greedy) in zip(pairs, got, strict=True):
        context_ids = lm.tok_encode(context) or [lm.prefix_token_id]
        continuation_ids = lm.tok_encode(continuation)
        want, want_greedy = _direct_logprob(lm, context_ids + continuation_ids,
                                            len(continuation_ids))
        assert logprob == pytest.approx(want, rel=1e-5) and greedy == want_greedy


def test_loglikelihood_rolling_is_the_projects_evaluator():
    text = "a longer text than the sixteen-character context, scored in windows.\n"
    lm = _small_char_lm(text)
    (logprob,) = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)])
    ours = evaluate_documents(lm.model, lm.h2q_tokenizer, [text], context=16, precision="fp32")
    assert logprob == pytest.approx(-ours.nll_sum, rel=1e-12)
    assert ours.tokens == len(text) > 3 * 16


def test_generate_until_is_greedy_and_stops_at_until():
    text = "abcabcabd xyz.\n"
    lm = _small_char_lm(text)
    ids = lm.tok_encode("abc")
    with torch.no_grad():
        for _ in range(12):
            ids.append(int(lm.model(torch.tensor([ids[-16:]]))[0, -1].argmax()))
    free = lm.tok_decode(ids[3:])
    stop = free[4]
    want = free[: free.index(stop)]
    requests = [Instance("generate_until", {}, ("abc", {"until": [stop], "max_gen_toks": 12}), 0),
                Instance("generate_until", {}, ("abc", {"until": [], "max_gen_toks": 5}), 1)]
    got = lm.generate_until(requests)
    assert got[0] == want and stop not in got[0]
    assert got[1] == free[:5]


@pytest.mark.slow
def test_python_m_runs_lm_evals_command_line(tmp_path, pages):
    weights = _char_checkpoint(tmp_path / "char.safetensors", pages["test"][:1])
    task = tmp_path / "task"
    harness.write_wikitext_task(task, {"test": pages["test"][:1]})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    # as HARNESS.md documents it; device=cpu in model_args beside lm-eval's own --device
    # default (cuda:0) must not be an argument given twice
    cmd = [sys.executable, "-m", "h2q_lib.evaluation.lm_eval_adapter", "--model", "h2q",
           "--model_args",
           f"checkpoint={weights},device=cpu,precision=fp32", "--tasks", harness.WIKITEXT_TASK,
           "--include_path", str(task), "--output_path", str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    theirs = json.loads(results_file.read_text())["results"][harness.WIKITEXT_TASK]
    ours = evaluate_checkpoint(weights, splits=("test",), data_dir=DATA_DIR, device="cpu",
                               precision="fp32", max_documents=1)["splits"]["test"]["metrics"]
    _assert_agree(ours, {m: theirs[f"{m},none"] for m in METRICS})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback without CUDA")
def test_model_args_win_over_lm_evals_device_default(tmp_path):
    weights = _char_checkpoint(tmp_path / "char.safetensors", ["some text"], block_size=16)
    # lm-eval's command line passes --device (default cuda:0) and --batch_size beside them
    lm = harness.H2QLM.create_from_arg_string(f"checkpoint={weights},device=cpu,batch_size=3",
                                              {"device": "cuda:0", "batch_size": 1})
    assert lm.device.type == "cpu" and lm.batch_size == 3
    lm = harness.H2QLM.create_from_arg_obj({"checkpoint": str(weights)},
                                           {"device": "cuda:0", "batch_size": 2})
    assert lm.device.type == "cpu" and lm.batch_size == 2  # lm-eval's default falls back
    with pytest.raises(ConfigError, match="device='cuda'.*available here"):
        harness.H2QLM(checkpoint=str(weights), device="cuda")
