"""The run's optimizer: AdamW as GPT-2 set it. Its learning rate at each step is
``readings.lr_at``, the report's schedule under the recipe's reading."""

from __future__ import annotations

import torch

from h2q_lib.model.gpt import GPT
from h2q_lib.training.profiles import TrainConfig


def build_optimizer(model: GPT, cfg: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (GPT-2's betas), fused where torch has it."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=device in ("cuda", "cpu"),
    )
