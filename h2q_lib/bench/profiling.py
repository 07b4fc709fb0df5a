"""Where a training step and an evaluation batch spend their time (``torch.profiler``).

One step is run under the profiler the way the trainer runs it: ``accum`` micro-batches cut
from a token array (``batches.get_batch``), autocast at the chosen precision, attention
through the attention rule's kernel, backward, gradient clipping and AdamW. Every
operator's *self* time (its own, not its children's) goes to one category; the wall time no
operator accounts for is Python and the framework around them.

The two kinds of work that have a FLOP count are also put against the measured matrix-product
limit: the linear layers' matrix products (the profiler's own FLOP count of ``mm``/``addmm``)
and attention, whichever kernel runs it, at one yardstick: ``4·T²·d`` a layer and sequence
forward and ``2.5×`` that forward + backward, as the flash kernel computes it (recomputing its
scores; the written-out forms do 3× forward, the blocked one three quarters of all that). The
rest moves memory more than it computes, so it has no FLOP ceiling; its share is what it costs.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

from h2q_lib.model.gpt import GPT, GPTConfig
from h2q_lib.training.hardware import autocast

# (category, words any of which in an operator's name puts it there), first match wins;
# "data" and "optimizer" are the record_function ranges of the step, matched on ancestors
# attention is SDPA's kernels or, written out (``model.attention``), its batched products
# (the model's linear layers run ``mm``/``addmm``, never ``bmm``), softmax (not the loss's
# log-softmax), mask and the blocked form's slices and concatenation, forward and backward
OPERATOR_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attention", ("flash_attention", "scaled_dot_product", "efficient_attention",
                   "aten::bmm", "aten::softmax", "aten::_softmax", "masked_fill", "aten::triu",
                   "aten::cat", "slice_backward")),
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
                         "aten::matmul", "aten::linear")),
    ("LayerNorm", ("layer_norm",)),
    ("GELU", ("gelu",)),
    ("casts and copies", ("_to_copy", "aten::copy_", "aten::to", "aten::clone",
                          "aten::contiguous")),
    ("cross-entropy", ("cross_entropy", "log_softmax", "nll_loss")),
)
RANGES = ("data", "optimizer")
OTHER = "other operators (adds, views, embedding, autograd bookkeeping)"
OUTSIDE = "Python and framework outside operators"
CATEGORIES = (*RANGES, *(c for c, _ in OPERATOR_CATEGORIES), OTHER, OUTSIDE)


def category_of(name: str, ranges: tuple[str, ...] = ()) -> str:
    """The category of an operator called ``name`` inside the ``ranges`` it was called in."""
    for r in RANGES:
        if r in ranges:
            return r
    for category, words in OPERATOR_CATEGORIES:
        if any(w in name for w in words):
            return category
    return OTHER


def _ranges_of(event) -> tuple[str, ...]:
    names, parent = [], event
    while parent is not None:
        names.append(parent.name)
        parent = parent.cpu_parent
    return tuple(names)


def breakdown(events, wall_s: float) -> dict[str, dict[str, float]]:
    """``{category: {"seconds", "share", "flops"}}`` of profiled ``events`` over ``wall_s``.

    Shares divide by the wall time; the part of it no operator's self time covers is
    ``OUTSIDE`` (never negative: the profiler's own clock may add a little).
    """
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    flops = dict.fromkeys(CATEGORIES, 0.0)
    for e in events:
        if e.name in RANGES:  # the ranges themselves: their time is their operators'
            continue
        c = category_of(e.name, _ranges_of(e))
        seconds[c] += e.self_cpu_time_total / 1e6
        if c == "matrix products":  # the profiler also counts some elementwise FLOPs
            flops[c] += getattr(e, "flops", 0) or 0
    seconds[OUTSIDE] = max(0.0, wall_s - sum(seconds.values()))
    return {c: {"seconds": seconds[c], "share": seconds[c] / wall_s, "flops": flops[c]}
            for c in CATEGORIES if seconds[c] > 0}


def attention_flops(cfg: GPTConfig, sequences: int, backward: bool) -> float:
    """Scores and weighted values, ``4·T²·d`` a layer and sequence; ×2.5 with backward."""
    forward = 4 * cfg.block_size**2 * cfg.n_embd * cfg.n_layer * sequences
    return forward * (2.5 if backward else 1.0)


def _with_rates(parts: dict, cfg: GPTConfig, sequences: int, backward: bool, limit: float,
                wall_s: float) -> dict:
    """The breakdown plus each FLOP-counted category's achieved rate over ``limit``."""
    if "attention" in parts:
        parts["attention"]["flops"] = attention_flops(cfg, sequences, backward)
    for part in parts.values():
        rate = part["flops"] / part["seconds"] if part["flops"] and part["seconds"] else None
        part["of_limit"] = None if rate is None else rate / limit
    tokens = sequences * cfg.block_size
    return {"wall_s": wall_s, "tokens_per_s": tokens / wall_s, "parts": parts}


def _token_array(cfg: GPTConfig, n: int = 200_000) -> np.ndarray:
    return np.random.default_rng(0).integers(0, cfg.vocab_size, n).astype(np.uint16)


def profile_training_step(cfg: GPTConfig, device: str, precision: str, batch: int, accum: int,
                          limit: float, attention: str = "sdpa") -> dict:
    """One optimizer step of ``accum × batch`` sequences, attention through the kernel
    ``attention``, profiled after two warm-up steps."""
    from h2q_lib.training.batches import get_batch

    torch.manual_seed(0)
    model = GPT(cfg).to(device).set_attention(attention)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    tokens = _token_array(cfg)
    rng = np.random.default_rng(0)

    def step():
        for _ in range(accum):
            with record_function("data"):
                offsets = rng.integers(0, len(tokens) - cfg.block_size - 1, batch)
                x, y = get_batch(tokens, offsets, cfg.block_size, device)
            with autocast(device, precision):
                _, loss = model(x, y)
            (loss / accum).backward()
        with record_function("optimizer"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        t0 = time.perf_counter()
        step()
        wall = time.perf_counter() - t0
    parts = breakdown(prof.events(), wall)
    return _with_rates(parts, cfg, batch * accum, True, limit, wall)


@torch.inference_mode()
def profile_eval_batch(cfg: GPTConfig, device: str, precision: str, batch: int,
                       limit: float, attention: str = "sdpa") -> dict:
    """One evaluation forward of ``batch`` full windows, attention through the kernel
    ``attention``, profiled after two warm-up calls."""
    torch.manual_seed(0)
    model = GPT(cfg).to(device).eval().set_attention(attention)
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device)

    def forward():
        with autocast(device, precision):
            return model(x)

    for _ in range(2):
        forward()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        t0 = time.perf_counter()
        forward()
        wall = time.perf_counter() - t0
    parts = breakdown(prof.events(), wall)
    return _with_rates(parts, cfg, batch, False, limit, wall)
