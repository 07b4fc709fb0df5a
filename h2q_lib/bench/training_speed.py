"""Training throughput: the ladder of settings from a plain fp32 eager loop (the reference)
to the trainer's default and beyond, each rung adding one change, so that each change's gain
is a measured ratio; and one AdamW step on its own, where the optimizer's gain acts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from h2q_lib.model.gpt import GPT, GPTConfig
from h2q_lib.training.hardware import autocast, choose_precision
from h2q_lib.training.timing import best_seconds


@dataclass(frozen=True)
class TrainVariant:
    """One rung of the training ladder; each adds one change to the rung before it."""

    name: str
    precision: str  # "fp32", or "auto" for the trainer's rule (hardware.choose_precision)
    fused_adamw: bool
    compile: bool
    # a kernel of ``model.attention``, or "rule": the attention rule's choice on this machine
    attention: str = "sdpa"


# what ``train()`` does unless told otherwise: autocast, fused AdamW, the attention rule's
# kernel, no compile
TRAINER_DEFAULT = TrainVariant("+ the attention rule (the trainer's default)", "auto", True,
                               False, "rule")

TRAIN_LADDER: tuple[TrainVariant, ...] = (
    TrainVariant("fp32 eager, for-loop AdamW (reference)", "fp32", False, False),
    TrainVariant("+ the precision rule (bf16 autocast where it is faster)", "auto", False,
                 False),
    TrainVariant("+ fused AdamW", "auto", True, False),
    TRAINER_DEFAULT,
    TrainVariant("+ torch.compile (--compile true)", "auto", True, True, "rule"),
)


def train_step(model: nn.Module, opt: torch.optim.Optimizer,
               batches: list[tuple[torch.Tensor, torch.Tensor]], device: str, precision: str,
               clip: float = 1.0) -> None:
    """One optimizer step the way the trainer runs it: the loss of each micro-batch in
    ``batches`` over their count, backward, gradient clipping, the step."""
    for x, y in batches:
        with autocast(device, precision):
            _, loss = model(x, y)
        (loss / len(batches)).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    opt.zero_grad(set_to_none=True)


def training_rate(cfg: GPTConfig, device: str, variant: TrainVariant, batch: int, accum: int,
                  repeats: int, rule_kernel: str = "sdpa") -> float:
    """Tokens/s of one optimizer step over ``accum`` micro-batches of ``batch × T`` tokens
    (attention through ``rule_kernel`` where the variant follows the attention rule)."""
    torch.manual_seed(0)
    model = GPT(cfg).to(device).set_attention(
        rule_kernel if variant.attention == "rule" else variant.attention)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=variant.fused_adamw,
                            foreach=False if not variant.fused_adamw else None)
    step_model = torch.compile(model) if variant.compile else model
    precision = choose_precision(device, variant.precision).precision
    batches = [(torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device),) * 2
               for _ in range(accum)]
    if variant.compile:  # compilation is a one-off cost, not throughput
        train_step(step_model, opt, batches[:1], device, precision)
    secs = best_seconds(lambda: train_step(step_model, opt, batches, device, precision), device,
                        repeats)
    return batch * accum * cfg.block_size / secs


def adamw_step_seconds(cfg: GPTConfig, device: str, fused: bool, repeats: int) -> float:
    """Seconds of one AdamW step over the model's parameters alone (random gradients).

    The optimizer is a small part of a training step, so its gain is measured here, where
    it acts, rather than read off the training ladder, whose rungs differ by a few percent
    from run to run.
    """
    model = GPT(cfg).to(device)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused,
                            foreach=None if fused else False)
    return best_seconds(opt.step, device, max(repeats, 3))
