"""Throughput benchmark: every number measured in one process, side by side.

- the device's achievable matrix-multiply rate (bf16, fp32): the limit;
- training tokens/s of the report's architecture at its batch and context, run the way the
  trainer runs it (autocast, accumulation, clipping, fused AdamW), and its model-FLOPs
  utilisation against the measured bf16 rate (FLOPs per token 6·N + 12·L·d·T);
- the same step as a plain fp32 eager loop (the reference), so the speed-up is a ratio;
- evaluation tokens/s (no gradients) and tokenization MB/s for ``char`` and ``gpt2``;
- peak memory (resident set).
A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import torch

from .model import GPT, GPTConfig, count_parameters, flops_per_token
from .train import autocast, pick_device, pick_precision


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: str, repeats: int) -> float:
    """Best-of-``repeats`` seconds of ``fn()`` after one warm-up call."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_rate(device: str, dtype: torch.dtype, n: int = 2048, repeats: int = 3) -> float:
    """Achievable FLOP/s of an ``n × n`` matrix product: 2n³ / seconds."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 4 if device == "cpu" else 50

    def run():
        for _ in range(reps):
            a @ b

    return 2 * n**3 * reps / _timed(run, device, repeats)


def _train_step(model, opt, batches, device, precision, clip=1.0, scaler=None):
    for x, y in batches:
        with autocast(device, precision):
            _, loss = model(x, y)
        (loss / len(batches)).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    opt.zero_grad(set_to_none=True)


def training_rate(cfg: GPTConfig, device: str, precision: str, batch: int, accum: int,
                  repeats: int, fused: bool) -> float:
    """Tokens/s of one optimizer step over ``accum`` micro-batches of ``batch × T`` tokens."""
    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
    batches = [(torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device),) * 2
               for _ in range(accum)]
    secs = _timed(lambda: _train_step(model, opt, batches, device, precision), device, repeats)
    return batch * accum * cfg.block_size / secs


@torch.inference_mode()
def eval_rate(cfg: GPTConfig, device: str, precision: str, batch: int, repeats: int) -> float:
    model = GPT(cfg).to(device).eval()
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device)

    def run():
        with autocast(device, precision):
            model(x)

    return batch * cfg.block_size / _timed(run, device, repeats)


def tokenization_rates(text: str) -> dict[str, float]:
    """MB/s of UTF-8 text encoded by ``char`` (one pass) and ``gpt2`` (all cores)."""
    from .tokenizers import CharTokenizer, GPT2Tokenizer

    mb = len(text.encode("utf-8")) / 1e6
    char = CharTokenizer.train([text])
    t0 = time.perf_counter()
    char.encode(text)
    out = {"char_MB_per_s": mb / (time.perf_counter() - t0)}
    gpt2 = GPT2Tokenizer()
    pieces = text.split("\n")
    t0 = time.perf_counter()
    gpt2.encode_batch(pieces)
    out["gpt2_MB_per_s"] = mb / (time.perf_counter() - t0)
    out["gpt2_threads"] = os.cpu_count() or 1
    return out


def run_benchmark(out: str | os.PathLike = "benchmarks/results.json", quick: bool = False,
                  device: str = "auto", text: str | None = None) -> dict:
    """Measure everything, print a table and write JSON to ``out``."""
    device = pick_device(device)
    precision = pick_precision(device)
    cfg = GPTConfig(vocab_size=127)
    repeats = 1 if quick else 3
    accum = 1 if quick else 4
    bf16 = matmul_rate(device, torch.bfloat16, repeats=repeats)
    fp32 = matmul_rate(device, torch.float32, repeats=repeats)
    train_tps = training_rate(cfg, device, precision, 8, accum, repeats, fused=True)
    eager_tps = training_rate(cfg, device, "fp32", 8, accum, repeats, fused=False)
    eval_tps = eval_rate(cfg, device, precision, 8, repeats)
    if text is None:
        from .data import load_split, report_text

        try:
            text = report_text(load_split("validation").lines)
        except Exception:  # no data here: tokenization is measured on generated text
            text = "The meaning of life is a question. " * 30_000
    fpt = flops_per_token(cfg)
    result = {
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "parameters": count_parameters(cfg),
        "flops_per_token": fpt,
        "matmul_bf16_TFLOPs": bf16 / 1e12,
        "matmul_fp32_TFLOPs": fp32 / 1e12,
        "train_tokens_per_s": train_tps,
        "train_precision": precision,
        "train_MFU_vs_measured_bf16": train_tps * fpt / bf16,
        "eager_fp32_tokens_per_s": eager_tps,
        "speedup_vs_eager_fp32": train_tps / eager_tps,
        "eval_tokens_per_s": eval_tps,
        "eval_over_train": eval_tps / train_tps,
        **tokenization_rates(text),
        "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "report_tokens_per_s": 5_500,
        "full_recipe_hours_at_train_rate": 104_038_400 / train_tps / 3600,
        "quick": quick,
    }
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v:,.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1))
    return result
