"""transformers' ``GPT2LMHeadModel`` of the project model's shape: the benchmark's peer.

The same architecture written by a library users know (learned positions, pre-LayerNorm,
exact GELU, tied embeddings, no dropout), wrapped so that it is called like ``model.GPT``:
``peer(idx, targets)`` gives ``(logits, loss)`` and ``peer(idx)`` the logits. transformers
shifts the labels itself, so the peer is trained the way its own examples train it,
``labels=input_ids``; a step then scores T - 1 positions instead of T, a difference of
1/T in the work and none in the kernels that run.
"""

from __future__ import annotations

import torch
from torch import nn

from h2q_lib.model.gpt import GPTConfig


def transformers_gpt2(cfg: GPTConfig) -> nn.Module:
    """A randomly initialised ``GPT2LMHeadModel`` with ``cfg``'s shape."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=cfg.n_ff,
        activation_function="gelu",  # exact (erf), as model.GPT; GPT-2's own is "gelu_new"
        layer_norm_epsilon=1e-5, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout, bos_token_id=None, eos_token_id=None, tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


class TransformersPeer(nn.Module):
    """``transformers_gpt2(cfg)`` behind ``model.GPT``'s call signature."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.gpt2 = transformers_gpt2(cfg)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        if targets is None:
            return self.gpt2(input_ids=idx, use_cache=False).logits
        out = self.gpt2(input_ids=idx, labels=idx, use_cache=False)
        return out.logits, out.loss
