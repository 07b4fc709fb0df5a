"""The samples a run writes at its checkpoint steps: continuations of the report's prompts."""

from __future__ import annotations

import torch

from h2q_lib.data.tokenizers import Tokenizer
from h2q_lib.training.profiles import TrainConfig

REPORT_PROMPTS = ("The meaning of life is", "Artificial intelligence will")


@torch.no_grad()
def sample_texts(model, tokenizer: Tokenizer, cfg: TrainConfig, device: str,
                 step: int) -> list[dict]:
    """Continuations of the report's prompts, seeded by (seed, step)."""
    model.eval()
    out = []
    for k, prompt in enumerate(REPORT_PROMPTS):
        ids = list(tokenizer.encode(prompt).tolist())
        if tokenizer.bos_id is not None:
            ids = [tokenizer.bos_id] + ids
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1000 + step * 10 + k)
        idx = torch.tensor([ids], dtype=torch.long, device=device)
        raw = model.generate(idx, cfg.sample_tokens, cfg.temperature, cfg.top_k, gen)
        text = tokenizer.decode(raw[0, len(ids) :].tolist())
        out.append({"step": step, "prompt": prompt, "text": prompt + text,
                    "temperature": cfg.temperature, "top_k": cfg.top_k})
    model.train()
    return out
