"""One layer's causal attention at the model's shape through three kernels: PyTorch's
``scaled_dot_product_attention`` as the model calls it, the same forced onto its math
backend, and the formula written out; forward alone (evaluation) and forward and backward
(training)."""

from __future__ import annotations

import torch

from h2q_lib.model.attention import KERNELS, causal_attention
from h2q_lib.model.gpt import GPTConfig
from h2q_lib.training.attention_rule import attention_inputs
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
    q, k, v, grad_out = attention_inputs(cfg, batch, device, precision)

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
