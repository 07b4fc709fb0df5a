"""One layer's causal attention at the model's shape through each kernel of
``model.attention``, under the precision's autocast as the model runs it; forward alone
(evaluation) and forward and backward (training)."""

from __future__ import annotations

import torch

from h2q_lib.model.attention import KERNELS
from h2q_lib.model.gpt import GPTConfig
from h2q_lib.training.attention_rule import attention_inputs, attention_under_autocast
from h2q_lib.training.timing import best_seconds


def attention_milliseconds(cfg: GPTConfig, device: str, precision: str, batch: int,
                           repeats: int) -> dict[str, float]:
    """One layer's causal attention at the model's shape through each kernel of
    ``model.attention.KERNELS``, in milliseconds (best of ``repeats``).

    ``attention_ms_<kernel>`` is the forward alone (what evaluation runs),
    ``attention_train_ms_<kernel>`` the forward and the backward to q, k and v (what a
    training step runs), both under ``precision``'s autocast.
    """
    q, k, v, grad_out = attention_inputs(cfg, batch, device, precision)

    def kernel(name: str):
        return lambda: attention_under_autocast(q, k, v, name, device, precision)

    kernels = tuple((name, kernel(name)) for name in KERNELS)
    with torch.inference_mode():
        forward = {f"attention_ms_{name}": 1e3 * best_seconds(fn, device, repeats)
                   for name, fn in kernels}
    both = {f"attention_train_ms_{name}": 1e3 * best_seconds(
                lambda fn=fn: torch.autograd.grad(fn(), (q, k, v), grad_out), device, repeats)
            for name, fn in kernels}
    return forward | both
