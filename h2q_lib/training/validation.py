"""The validation loss a run logs at its evaluation steps (the mean over a fixed set of
windows), and its perplexity."""

from __future__ import annotations

import math

import numpy as np
import torch

from h2q_lib.training.batches import batch_offsets, get_batch
from h2q_lib.training.hardware import autocast
from h2q_lib.training.profiles import TrainConfig


@torch.no_grad()
def estimate_val_loss(model, tokens: np.ndarray, cfg: TrainConfig, device: str,
                      precision: str) -> float:
    """Mean loss on a fixed set of ``eval_batches * batch_size`` validation windows."""
    model.eval()
    losses = []
    for b in range(cfg.eval_batches):
        offs = batch_offsets(cfg.seed + 1_000_003, b, cfg.batch_size, len(tokens), cfg.block_size)
        x, y = get_batch(tokens, offs, cfg.block_size, device)
        with autocast(device, precision):
            _, loss = model(x, y)
        losses.append(loss.item())
    model.train()
    return float(np.mean(losses))


def loss_perplexity(loss: float) -> float:
    """PPL = exp(loss), or +inf where it overflows a float (a diverged loss has an infinite
    PPL): ``evaluation.metrics.safe_exp``'s rule, here because training may not import
    evaluation, a higher package."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf
