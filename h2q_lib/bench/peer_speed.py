"""Ours against transformers' GPT-2 of the same shape (``transformers_peer``), side by side in
the same process: a training step and an evaluation batch each, the two taking turns."""

from __future__ import annotations

import statistics

import torch
from torch import nn

from h2q_lib.bench.training_speed import train_step
from h2q_lib.bench.transformers_peer import TransformersPeer
from h2q_lib.model.gpt import GPT, GPTConfig
from h2q_lib.training.hardware import autocast
from h2q_lib.training.timing import paired_step_seconds


def peer_comparison(cfg: GPTConfig, device: str, precision: str, batch: int, accum: int,
                    rounds: int, attention: str = "sdpa") -> dict[str, float | list[float] | int]:
    """Ours against transformers' GPT-2 of the same shape, side by side in turns
    (``paired_step_seconds``): a training step (the trainer's settings: ``precision``,
    fused AdamW, ``accum`` micro-batches of ``batch × T``, attention through ``attention``,
    the kernel the attention rule chose) and an evaluation batch.

    ``train_over_transformers`` is the median over rounds of theirs ÷ ours step time, its
    ``_range`` the lowest and highest round; the tokens/s are each side's median step.
    """
    tokens = batch * cfg.block_size
    out: dict[str, float | list[float] | int] = {}
    torch.manual_seed(0)
    models = {"ours": GPT(cfg).to(device).set_attention(attention),
              "transformers": TransformersPeer(cfg).to(device)}
    out["transformers_parameters"] = sum(p.numel() for p in models["transformers"].parameters())
    batches = [(torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device),) * 2
               for _ in range(accum)]
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
                  for name, m in models.items()}
    train = paired_step_seconds(
        {name: (lambda m=m, o=optimizers[name]: train_step(m, o, batches, device, precision))
         for name, m in models.items()}, rounds, device)
    x = batches[0][0]

    def forward(model: nn.Module) -> None:
        with torch.inference_mode(), autocast(device, precision):
            model(x)

    for m in models.values():
        m.eval()
    evaluation = paired_step_seconds({name: (lambda m=m: forward(m))
                                      for name, m in models.items()}, 2 * rounds, device)
    for work, seconds, work_tokens in (("train", train, tokens * accum),
                                       ("eval", evaluation, tokens)):
        ratios = [theirs / ours for ours, theirs in zip(seconds["ours"],
                                                         seconds["transformers"], strict=True)]
        out[f"ours_{work}_tokens_per_s_paired"] = work_tokens / statistics.median(seconds["ours"])
        out[f"transformers_{work}_tokens_per_s"] = work_tokens / statistics.median(
            seconds["transformers"])
        out[f"{work}_over_transformers"] = statistics.median(ratios)
        out[f"{work}_over_transformers_range"] = [min(ratios), max(ratios)]
    return out
