"""One layer's causal attention at the model's shape through three kernels: PyTorch's
``scaled_dot_product_attention`` as the model calls it, the same forced onto its math
backend, and the formula written out; forward alone (evaluation) and forward and backward
(training)."""

from __future__ import annotations

import torch

from h2q_lib.model.attention import KERNELS, causal_attention
from h2q_lib.model.gpt import GPTConfig
from h2q_lib.training.timing import best_seconds


def attention_milliseconds(cfg: GPTConfig, device: str, precision: str, batch: int,
                           repeats: int) -> dict[str, float]:
    """One layer's causal attention at the model's shape, three ways, in milliseconds.

    ``sdpa``: ``scaled_dot_product_attention`` as the model calls it (the backend PyTorch
    picks: flash attention on CPU and CUDA); ``sdpa_math``: the same call forced onto its
    reference math backend; ``explicit``: q·kᵀ, mask, softmax, ·v written out.
    ``attention_ms_*`` is the forward alone (what evaluation runs), ``attention_train_ms_*``
    the forward and the backward to q, k and v (what a training step runs).
    """
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    h, t, hd = cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head
    q, k, v = (torch.randn(batch, h, t, hd, device=device, dtype=dtype, requires_grad=True)
               for _ in range(3))
    grad_out = torch.randn(batch, h, t, hd, device=device, dtype=dtype)

    def kernel(name: str):
        return lambda: causal_attention(q, k, v, name)

    kernels = tuple((name, kernel(name)) for name in KERNELS)
    with torch.inference_mode():
        forward = {f"attention_ms_{name}": 1e3 * best_seconds(fn, device, repeats)
                   for name, fn in kernels}
    both = {f"attention_train_ms_{name}": 1e3 * best_seconds(
                lambda fn=fn: torch.autograd.grad(fn(), (q, k, v), grad_out), device, repeats)
            for name, fn in kernels}
    return forward | both
