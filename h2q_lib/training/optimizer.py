"""The run's optimizer, AdamW as GPT-2 set it unless the recipe says otherwise, and its
starting weights. Its learning rate at each step is ``readings.lr_at``, the report's
schedule under the recipe's reading."""

from __future__ import annotations

import torch

from h2q_lib.model.gpt import GPT
from h2q_lib.training.profiles import TrainConfig


def build_optimizer(model: GPT, cfg: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (``decay_scope`` "matrices", GPT-2's) or on
    every parameter ("all", torch's), β₂ ``adam_beta2`` (GPT-2's 0.95 by default), fused
    where torch has it."""
    decay = [p for p in model.parameters() if p.dim() >= 2 or cfg.decay_scope == "all"]
    no_decay = [p for p in model.parameters() if p.dim() < 2 and cfg.decay_scope != "all"]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, cfg.adam_beta2), eps=1e-8, fused=device in ("cuda", "cpu"),
    )


def initialize(model: GPT, cfg: TrainConfig) -> GPT:
    """The run's starting weights: ``init`` "gpt2" keeps the model's own (GPT-2's: N(0, 0.02),
    residual projections scaled by 1/√(2·n_layer), zero biases); "pytorch" gives every module
    torch's default instead (``reset_parameters``: ``nn.Embedding`` N(0, 1), ``nn.Linear``
    Kaiming-uniform, LayerNorm ones and zeros). The tied embedding and head take the head's,
    reset last, as a model that ties its weights without an init of its own ends up."""
    if cfg.init == "pytorch":
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return model
