"""Evaluation throughput: the forward pass alone (no gradients, the evaluator's precision),
all CPU threads against one, the evaluator end to end on a whole split, and the FLOPs of
the linear layers that bound any evaluator (no evaluator beats limit / 2·N_linear)."""

from __future__ import annotations

import time

import torch

from h2q_lib.claims.completion_report import REPORT
from h2q_lib.data.tokenizers import CharTokenizer
from h2q_lib.data.wikitext import Split
from h2q_lib.model.gpt import GPT, GPTConfig
from h2q_lib.training.hardware import autocast
from h2q_lib.training.timing import best_seconds, sync_device


@torch.inference_mode()
def eval_rate(cfg: GPTConfig, device: str, precision: str, batch: int, repeats: int) -> float:
    """Forward tokens/s the way ``evaluate_documents`` runs: one autocast region, no grads."""
    torch.manual_seed(0)
    model = GPT(cfg).to(device).eval()
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device)
    with autocast(device, precision):
        return batch * cfg.block_size / best_seconds(lambda: model(x), device, repeats)


def eval_thread_scaling(cfg: GPTConfig, precision: str, batch: int, repeats: int) -> float:
    """CPU evaluation tokens/s with all threads over one thread (the thread setting's gain)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = eval_rate(cfg, "cpu", precision, batch, repeats)
    finally:
        torch.set_num_threads(threads)
    return eval_rate(cfg, "cpu", precision, batch, repeats) / one


def random_char_model(split: Split, device: str,
                      cfg: GPTConfig | None = None) -> tuple[GPT, CharTokenizer]:
    """``(model, tokenizer)``: a model of shape ``cfg`` (default the report's) with random
    weights and the split's character vocabulary. Evaluation speed does not depend on the
    weights."""
    tokenizer = CharTokenizer.train([split.text()])
    shape = cfg or REPORT.model_config(tokenizer.vocab_size)
    shape = GPTConfig(**{**shape.to_dict(), "vocab_size": tokenizer.vocab_size})
    torch.manual_seed(0)
    return GPT(shape).to(device).eval(), tokenizer


def timed_evaluation(model, tokenizer, split: Split, device: str, precision: str, batch: int,
                     max_documents: int | None = None):
    """``(EvalResult, seconds)`` of ``evaluate_split`` at the model's context, end to end."""
    from h2q_lib.evaluation.documents import evaluate_split

    t0 = time.perf_counter()
    result = evaluate_split(model, tokenizer, split, context=model.config.block_size,
                            batch_size=batch, device=device, precision=precision,
                            max_documents=max_documents)
    sync_device(device)
    return result, time.perf_counter() - t0


def eval_split_rate(device: str, precision: str, batch: int, split: Split,
                    max_documents: int | None = None,
                    cfg: GPTConfig | None = None) -> dict[str, float | int]:
    """The evaluator end to end (``evaluate_split``) on a whole split, random char model.

    Windows, padding, the float64 sum and the counts included.
    """
    model, tokenizer = random_char_model(split, device, cfg)
    result, seconds = timed_evaluation(model, tokenizer, split, device, precision, batch,
                                       max_documents)
    return {"eval_split": split.name, "eval_split_documents": result.documents,
            "eval_split_tokens": result.tokens, "eval_split_seconds": seconds,
            "eval_split_tokens_per_s": result.tokens / seconds}


def linear_flops_per_token(cfg: GPTConfig) -> int:
    """Forward multiply-adds of the weight matrices, 2 FLOPs each: 2·(L·(4d² + 2·d·f) + V·d).

    Attention scores, biases, LayerNorms and GELUs are left out, so this is a lower bound on
    the work of scoring one token.
    """
    d = cfg.n_embd
    return 2 * (cfg.n_layer * (4 * d * d + 2 * d * cfg.n_ff) + cfg.vocab_size * d)
