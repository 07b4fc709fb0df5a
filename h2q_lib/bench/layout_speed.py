"""The projection weights' layout: ``nn.Linear``'s [out, in] (the model's, ``x @ Wᵀ``)
against GPT-2's ``Conv1D`` [in, out] (``x @ W``), forward and backward at one micro-batch,
for each of the model's four projection shapes, in turns (issue #39: on an AMX Xeon the
[in, out] layout was about 10 % faster in bf16 for the 2048 → 512 projection).

A ratio above 1 means the model's own layout is slower; storing weights the other way would
pay only where some shape's ratio stays above 1 beyond its spread between passes.
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from h2q_lib.model.gpt import GPTConfig
from h2q_lib.training.hardware import autocast
from h2q_lib.training.timing import paired_step_seconds


def projection_shapes(cfg: GPTConfig) -> dict[str, tuple[int, int]]:
    """(in, out) of the model's projections: attention's q, k, v, its output, the MLP's two."""
    d, ff = cfg.n_embd, cfg.n_ff
    return {"qkv": (d, 3 * d), "attention out": (d, d), "mlp up": (d, ff), "mlp down": (ff, d)}


def _one_shape(rows: int, fan_in: int, fan_out: int, device: str, precision: str,
               passes: int, gen: torch.Generator) -> dict[str, float]:
    """The ratio of one projection's two layouts, as ``layout_ratios`` says."""
    x = torch.randn(rows, fan_in, generator=gen).to(device).requires_grad_()
    w_out_in = torch.randn(fan_out, fan_in, generator=gen).to(device).requires_grad_()
    w_in_out = w_out_in.detach().t().contiguous().requires_grad_()
    bias = torch.zeros(fan_out, device=device, requires_grad=True)
    grad = torch.randn(rows, fan_out, generator=gen).to(device)

    def linear() -> None:
        with autocast(device, precision):
            y = F.linear(x, w_out_in, bias)
        torch.autograd.grad(y, (x, w_out_in, bias), grad.to(y.dtype))

    def conv1d() -> None:
        with autocast(device, precision):
            y = torch.addmm(bias, x, w_in_out)
        torch.autograd.grad(y, (x, w_in_out, bias), grad.to(y.dtype))

    seconds = paired_step_seconds({"linear": linear, "conv1d": conv1d}, passes, device)
    ratios = [a / b for a, b in zip(seconds["linear"], seconds["conv1d"], strict=True)]
    return {"median": statistics.median(ratios), "low": min(ratios), "high": max(ratios)}


def layout_ratios(cfg: GPTConfig, device: str, precision: str, batch: int,
                  passes: int) -> dict[str, dict[str, float]]:
    """Per projection: the median over ``passes`` paired passes of (time with [out, in]) /
    (time with [in, out]), and the lowest and highest pass's ratio."""
    gen = torch.Generator().manual_seed(0)
    return {name: _one_shape(batch * cfg.block_size, fan_in, fan_out, device, precision,
                             passes, gen)
            for name, (fan_in, fan_out) in projection_shapes(cfg).items()}
