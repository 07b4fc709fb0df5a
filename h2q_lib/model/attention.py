"""Causal self-attention, softmax(q·kᵀ/√d masked to the past)·v, computed four ways.

- ``sdpa``: ``scaled_dot_product_attention`` with the backend PyTorch picks (flash attention
  on CPU and CUDA);
- ``sdpa_math``: the same call forced onto its reference math backend;
- ``explicit``: the formula written out (q·kᵀ, mask, softmax, ·v);
- ``explicit_blocked``: the same formula over ``QUERY_BLOCKS`` blocks of queries, each
  against the keys up to its last query only, so that the blocks of the score matrix that lie
  wholly in the future (a quarter of it, in two blocks) are never computed.

They compute the same function; which is fastest depends on the CPU (the attention rule,
``training.attention_rule``, measures it). None of them is part of the recipe or the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from h2q_lib.core.errors import ConfigError

KERNELS = ("sdpa", "sdpa_math", "explicit", "explicit_blocked")
DEFAULT_KERNEL = "sdpa"
# two blocks measured fastest at the report's shape (8 × 8 heads × 512, bf16, one AVX-512
# EPYC): more blocks skip more of the future but pay a product, a softmax and a copy each
QUERY_BLOCKS = 2


def check_kernel(kernel: str, param: str = "attention") -> str:
    """``kernel`` if it is one of ``KERNELS``, else one clear error naming ``param``."""
    if kernel not in KERNELS:
        raise ConfigError(param, kernel, "one of " + ", ".join(KERNELS))
    return kernel


def explicit_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                              dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q·kᵀ/√d with the future set to -inf)·v, written out; q, k, v are
    (batch, heads, T, head dim)."""
    t = q.size(-2)
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    scores = (q @ k.transpose(-1, -2)) * q.size(-1) ** -0.5
    weights = scores.masked_fill(future, float("-inf")).softmax(-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v


def blocked_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                             dropout_p: float = 0.0, blocks: int = QUERY_BLOCKS) -> torch.Tensor:
    """``explicit_causal_attention`` over ``blocks`` blocks of queries: queries [lo, hi) are
    scored against keys [0, hi) only, the future within that range set to -inf. The query is
    scaled by 1/√d before the product (T·d values instead of T·T scores to scale)."""
    t = q.size(-2)
    q = q * q.size(-1) ** -0.5
    bounds = [t * i // blocks for i in range(blocks + 1)]
    outputs = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi == lo:
            continue
        future = torch.ones(hi - lo, hi, dtype=torch.bool, device=q.device).triu(lo + 1)
        scores = q[..., lo:hi, :] @ k[..., :hi, :].transpose(-1, -2)
        weights = scores.masked_fill(future, float("-inf")).softmax(-1)
        if dropout_p > 0.0:
            weights = F.dropout(weights, dropout_p)
        outputs.append(weights @ v[..., :hi, :])
    return torch.cat(outputs, dim=-2)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: str = "sdpa",
                     dropout_p: float = 0.0) -> torch.Tensor:
    """Causal attention of q, k, v (batch, heads, T, head dim) through ``kernel``."""
    if kernel == "explicit":
        return explicit_causal_attention(q, k, v, dropout_p)
    if kernel == "explicit_blocked":
        return blocked_causal_attention(q, k, v, dropout_p)
    if kernel == "sdpa_math":
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
    check_kernel(kernel)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
