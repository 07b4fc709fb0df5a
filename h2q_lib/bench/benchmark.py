"""Throughput benchmark: every number measured in one process, side by side.

- the device's achievable matrix-multiply rate in bf16 and in fp32; the faster of the two is
  the limit (bf16 where the hardware has it, fp32 where bf16 is emulated);
- training tokens/s of the report's architecture at its batch and context, one optimizer step
  over ``grad_accum`` micro-batches the way the trainer runs it, for a ladder of settings that
  starts at a plain fp32 eager loop (the reference) and adds one change at a time (bf16
  autocast, fused AdamW, ``torch.compile``), so each change's gain is a measured ratio;
- model-FLOPs utilisation against the measured limit (FLOPs per token 6·N + 12·L·d·T);
- evaluation tokens/s (no gradients, the evaluator's precision) and its ceiling: the linear
  layers alone need 2·N_linear FLOPs a token, so no evaluator beats limit / 2·N_linear;
  one layer's attention through three kernels (forward, and forward and backward), and
  (CPU) all threads against one;
- transformers' GPT-2 of the same shape, in turns with ours (``peer_comparison``);
- tokenization MB/s for ``char`` and ``gpt2`` (all cores), and peak memory.
A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from h2q_lib.bench.profiling import profile_eval_batch, profile_training_step
from h2q_lib.bench.transformers_peer import TransformersPeer
from h2q_lib.claims.completion_report import REPORT
from h2q_lib.core.run_folder import check_writable
from h2q_lib.data.tokenizers import CHAR_VOCAB_SIZE
from h2q_lib.model.gpt import GPT, GPTConfig, count_parameters, flops_per_token
from h2q_lib.training.hardware import (
    autocast,
    choose_precision,
    cpu_capability,
    peak_rss_gb,
    pick_device,
)


@dataclass(frozen=True)
class TrainVariant:
    """One rung of the training ladder; each adds one change to the rung before it."""

    name: str
    precision: str  # "fp32", or "auto" for the trainer's rule (hardware.choose_precision)
    fused_adamw: bool
    compile: bool


# what ``train()`` does unless told otherwise: autocast, fused AdamW, no compile
TRAINER_DEFAULT = TrainVariant("+ fused AdamW (the trainer's default)", "auto", True, False)

TRAIN_LADDER: tuple[TrainVariant, ...] = (
    TrainVariant("fp32 eager, for-loop AdamW (reference)", "fp32", False, False),
    TrainVariant("+ the precision rule (bf16 autocast where it is faster)", "auto", False,
                 False),
    TRAINER_DEFAULT,
    TrainVariant("+ torch.compile (--compile true)", "auto", True, True),
)


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


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    if device == "mps":
        return "Apple MPS"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{model}, {threads} thread{'' if threads == 1 else 's'}"


def matmul_rate(device: str, dtype: torch.dtype, n: int | None = None, repeats: int = 3,
                shape: tuple[int, int, int] | None = None) -> float:
    """Achievable FLOP/s of an ``m × k`` by ``k × n`` product on random data: 2mkn / seconds.

    ``shape`` is ``(m, k, n)``; without it the product is square, ``n × n``. A type the
    device only emulates (bf16 on an AVX2 CPU, about 50x slower) is timed on one product:
    more would add minutes and no information.
    """
    n = n or (2048 if device == "cpu" else 8192)
    m, k, n = shape or (n, n, n)
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    t0 = time.perf_counter()
    a @ b
    _sync(device)
    once = time.perf_counter() - t0
    if once > 1.0:
        return 2 * m * k * n / once
    reps = 4 if device == "cpu" else 20

    def run():
        for _ in range(reps):
            a @ b

    return 2 * m * k * n * reps / _timed(run, device, repeats)


def model_matmul_shapes(cfg: GPTConfig, rows: int) -> tuple[tuple[int, int, int], ...]:
    """The forward products of the model's weight matrices, ``(rows, in, out)``, one a kind.

    ``rows`` is the tokens of a micro-batch. These are the products a training step spends
    its matrix time in, so the limit is measured on them as well as on a square.
    """
    d, f = cfg.n_embd, cfg.n_ff
    return ((rows, d, 3 * d), (rows, d, d), (rows, d, f), (rows, f, d))


def matmul_limit(device: str, dtype: torch.dtype, cfg: GPTConfig, rows: int,
                 repeats: int = 3) -> float:
    """The fastest FLOP/s measured over a square product and the model's own shapes.

    One square alone can sit far below what the hardware does: on a CPU with AMX, a bf16
    2048² product (power-of-two strides) measured a third of the rate of the model's
    4096 × 512 × 1536. The limit is the best rate this device showed on any of them.
    """
    shapes = ((1024, 1024, 1024), (2048, 2048, 2048), *model_matmul_shapes(cfg, rows))
    if device != "cpu":
        shapes = ((8192, 8192, 8192), *shapes)
    first = matmul_rate(device, dtype, shape=shapes[0], repeats=repeats)
    if 2 * 1024**3 / first > 1.0:  # emulated (bf16 on AVX2): one shape says it all
        return first
    return max(first, *(matmul_rate(device, dtype, shape=s, repeats=repeats)
                        for s in shapes[1:]))


def _train_step(model, opt, batches, device, precision, clip=1.0):
    for x, y in batches:
        with autocast(device, precision):
            _, loss = model(x, y)
        (loss / len(batches)).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    opt.zero_grad(set_to_none=True)


def training_rate(cfg: GPTConfig, device: str, variant: TrainVariant, batch: int, accum: int,
                  repeats: int) -> float:
    """Tokens/s of one optimizer step over ``accum`` micro-batches of ``batch × T`` tokens."""
    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=variant.fused_adamw,
                            foreach=False if not variant.fused_adamw else None)
    step_model = torch.compile(model) if variant.compile else model
    precision = choose_precision(device, variant.precision).precision
    batches = [(torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device),) * 2
               for _ in range(accum)]
    if variant.compile:  # compilation is a one-off cost, not throughput
        _train_step(step_model, opt, batches[:1], device, precision)
    secs = _timed(lambda: _train_step(step_model, opt, batches, device, precision), device,
                  repeats)
    return batch * accum * cfg.block_size / secs


def paired_step_seconds(steps: dict[str, Callable[[], object]], rounds: int,
                        device: str) -> dict[str, list[float]]:
    """Seconds of each named step, run in turns: one call of each a round, the order
    reversed every other round, after one warm-up call each. A slow spell of a shared
    machine then falls on both sides of a round, so ratios within a round are fair."""
    names = list(steps)
    for name in names:
        steps[name]()
    _sync(device)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            steps[name]()
            _sync(device)
            seconds[name].append(time.perf_counter() - t0)
    return seconds


def peer_comparison(cfg: GPTConfig, device: str, precision: str, batch: int, accum: int,
                    rounds: int) -> dict[str, float | list[float] | int]:
    """Ours against transformers' GPT-2 of the same shape, side by side in turns
    (``paired_step_seconds``): a training step (the trainer's settings: ``precision``,
    fused AdamW, ``accum`` micro-batches of ``batch × T``) and an evaluation batch.

    ``train_over_transformers`` is the median over rounds of theirs ÷ ours step time, its
    ``_range`` the lowest and highest round; the tokens/s are each side's median step.
    """
    tokens = batch * cfg.block_size
    out: dict[str, float | list[float] | int] = {}
    torch.manual_seed(0)
    models = {"ours": GPT(cfg).to(device), "transformers": TransformersPeer(cfg).to(device)}
    out["transformers_parameters"] = sum(p.numel() for p in models["transformers"].parameters())
    batches = [(torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device),) * 2
               for _ in range(accum)]
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
                  for name, m in models.items()}
    train = paired_step_seconds(
        {name: (lambda m=m, o=optimizers[name]: _train_step(m, o, batches, device, precision))
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
    return _timed(opt.step, device, max(repeats, 3))


@torch.inference_mode()
def eval_rate(cfg: GPTConfig, device: str, precision: str, batch: int, repeats: int) -> float:
    """Forward tokens/s the way ``evaluate_documents`` runs: one autocast region, no grads."""
    torch.manual_seed(0)
    model = GPT(cfg).to(device).eval()
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device)
    with autocast(device, precision):
        return batch * cfg.block_size / _timed(lambda: model(x), device, repeats)


def explicit_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                              mask: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√d masked to the past)·v, written out (the benchmark's third kernel)."""
    scores = (q @ k.transpose(-1, -2)) * q.size(-1) ** -0.5
    return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v


def attention_milliseconds(cfg: GPTConfig, device: str, precision: str, batch: int,
                           repeats: int) -> dict[str, float]:
    """One layer's causal attention at the model's shape, three ways, in milliseconds.

    ``sdpa``: ``scaled_dot_product_attention`` as the model calls it (the backend PyTorch
    picks: flash attention on CPU and CUDA); ``sdpa_math``: the same call forced onto its
    reference math backend; ``explicit``: q·kᵀ, mask, softmax, ·v written out.
    ``attention_ms_*`` is the forward alone (what evaluation runs), ``attention_train_ms_*``
    the forward and the backward to q, k and v (what a training step runs).
    """
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    h, t, hd = cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head
    q, k, v = (torch.randn(batch, h, t, hd, device=device, dtype=dtype, requires_grad=True)
               for _ in range(3))
    grad_out = torch.randn(batch, h, t, hd, device=device, dtype=dtype)
    mask = torch.ones(t, t, dtype=torch.bool, device=device).tril()

    def explicit():
        return explicit_causal_attention(q, k, v, mask)

    def sdpa():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def sdpa_math():
        with sdpa_kernel(SDPBackend.MATH):
            return sdpa()

    kernels = (("sdpa", sdpa), ("sdpa_math", sdpa_math), ("explicit", explicit))
    with torch.inference_mode():
        forward = {f"attention_ms_{name}": 1e3 * _timed(fn, device, repeats)
                   for name, fn in kernels}
    both = {f"attention_train_ms_{name}": 1e3 * _timed(
                lambda fn=fn: torch.autograd.grad(fn(), (q, k, v), grad_out), device, repeats)
            for name, fn in kernels}
    return forward | both


def eval_thread_scaling(cfg: GPTConfig, precision: str, batch: int, repeats: int) -> float:
    """CPU evaluation tokens/s with all threads over one thread (the thread setting's gain)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = eval_rate(cfg, "cpu", precision, batch, repeats)
    finally:
        torch.set_num_threads(threads)
    return eval_rate(cfg, "cpu", precision, batch, repeats) / one


def random_char_model(split, device: str, cfg: GPTConfig | None = None):
    """``(model, tokenizer)``: a model of shape ``cfg`` (default the report's) with random
    weights and the split's character vocabulary. Evaluation speed does not depend on the
    weights."""
    from h2q_lib.data.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train([split.text()])
    shape = cfg or REPORT.model_config(tokenizer.vocab_size)
    shape = GPTConfig(**{**shape.to_dict(), "vocab_size": tokenizer.vocab_size})
    torch.manual_seed(0)
    return GPT(shape).to(device).eval(), tokenizer


def timed_evaluation(model, tokenizer, split, device: str, precision: str, batch: int,
                     max_documents: int | None = None):
    """``(EvalResult, seconds)`` of ``evaluate_split`` at the model's context, end to end."""
    from h2q_lib.evaluation.documents import evaluate_split

    t0 = time.perf_counter()
    result = evaluate_split(model, tokenizer, split, context=model.config.block_size,
                            batch_size=batch, device=device, precision=precision,
                            max_documents=max_documents)
    _sync(device)
    return result, time.perf_counter() - t0


def eval_split_rate(device: str, precision: str, batch: int, split,
                    max_documents: int | None = None,
                    cfg: GPTConfig | None = None) -> dict[str, float | int]:
    """The evaluator end to end (``evaluate_split``) on a whole split, random char model.

    Windows, padding, the float64 sum and the counts included.
    """
    model, tokenizer = random_char_model(split, device, cfg)
    result, seconds = timed_evaluation(model, tokenizer, split, device, precision, batch,
                                       max_documents)
    return {"eval_split": split.name, "eval_split_documents": result.documents,
            "eval_split_tokens": result.tokens, "eval_split_seconds": seconds,
            "eval_split_tokens_per_s": result.tokens / seconds}


def linear_flops_per_token(cfg: GPTConfig) -> int:
    """Forward multiply-adds of the weight matrices, 2 FLOPs each: 2·(L·(4d² + 2·d·f) + V·d).

    Attention scores, biases, LayerNorms and GELUs are left out, so this is a lower bound on
    the work of scoring one token.
    """
    d = cfg.n_embd
    return 2 * (cfg.n_layer * (4 * d * d + 2 * d * cfg.n_ff) + cfg.vocab_size * d)


def _line_chunks(text: str, pieces: int) -> list[str]:
    """``text`` cut at line ends into about ``pieces`` chunks of similar size."""
    lines = text.splitlines(keepends=True)
    size = max(1, len(lines) // pieces)
    return ["".join(lines[i : i + size]) for i in range(0, len(lines), size)]


def tokenization_rates(text: str) -> dict[str, float | int]:
    """MB/s of UTF-8 text encoded by ``char`` (one pass) and ``gpt2`` (one thread, all cores).

    For ``gpt2`` the text is cut at line ends into four chunks a core, so that every thread
    gets large pieces of work (a task a line costs more in scheduling than in encoding).
    """
    from h2q_lib.data.tokenizers import CharTokenizer, GPT2Tokenizer

    mb = len(text.encode("utf-8")) / 1e6
    char = CharTokenizer.train([text])
    t0 = time.perf_counter()
    char.encode(text)
    out: dict[str, float | int] = {"char_MB_per_s": mb / (time.perf_counter() - t0)}
    gpt2 = GPT2Tokenizer()
    threads = os.cpu_count() or 1
    chunks = _line_chunks(text, 4 * threads)
    gpt2.encode_batch(chunks[:1], num_threads=1)  # warm-up
    for key, n in (("gpt2_1_thread_MB_per_s", 1), ("gpt2_MB_per_s", threads)):
        t0 = time.perf_counter()
        gpt2.encode_batch(chunks, num_threads=n)
        out[key] = mb / (time.perf_counter() - t0)
    out["gpt2_threads"] = threads
    return out


def _peak_memory_gb(device: str) -> dict[str, float | None]:
    out = {"peak_rss_GB": peak_rss_gb()}
    if device == "cuda":
        out["peak_device_memory_GB"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def _local_split(name: str):
    """A WikiText-103 split from the local data folder, or None where there is none."""
    from h2q_lib.data.wikitext import load_split

    try:
        return load_split(name, "wikitext-103-v1", source="local")
    except Exception:  # no local data: the measures that need it are left out
        return None


def run_benchmark(out: str | os.PathLike = "benchmarks/results.json", quick: bool = False,
                  device: str = "auto", batch_size: int = 8, grad_accum: int = 4,
                  ladder: tuple[TrainVariant, ...] = TRAIN_LADDER,
                  text: str | None = None, eval_split: str | None = "test",
                  with_peer: bool = True, with_profile: bool = True) -> dict:
    """Measure everything, print a table and write JSON to ``out``.

    ``out`` is checked (its folder made and written to) before anything is measured, so a
    bad path fails at once instead of after the benchmark.
    """
    with contextlib.suppress(OSError):  # a missing folder is made; check_writable judges
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    check_writable(out)
    # the data first: told at once, not after the benchmark, what a missing folder leaves out
    split = _local_split(eval_split) if eval_split else None
    if eval_split and split is None:
        print(f"h2q bench: no local WikiText {eval_split} split (set H2Q_DATA_DIR to the "
              "WikiText folder): the whole-split evaluation is left out of the results",
              file=sys.stderr, flush=True)
    device = pick_device(device)
    choice = choose_precision(device)
    precision = choice.precision
    cfg = REPORT.model_config(CHAR_VOCAB_SIZE)
    repeats = 1 if quick else 3
    accum = 1 if quick else grad_accum
    rows = batch_size * cfg.block_size
    bf16 = matmul_limit(device, torch.bfloat16, cfg, rows, repeats)
    fp32 = matmul_limit(device, torch.float32, cfg, rows, repeats)
    fpt = flops_per_token(cfg)
    # Two passes over the ladder, the second in reverse order, best of both per rung: a
    # slow spell of a shared machine then hurts one pass of a rung, not the comparison.
    passes = 1 if quick else 2
    rates: dict[str, float] = {}
    worst: dict[str, float] = {}
    # the same step's sequences cut in fewer, larger micro-batches (the default's own cut is
    # its ladder rung)
    total = batch_size * accum
    splits = list(dict.fromkeys((b, total // b) for b in (2 * batch_size, total)
                                if b != batch_size and total % b == 0))
    split_rates: dict[str, float] = {}
    eval_tps = 0.0
    for p in range(passes):
        for variant in ladder if p % 2 == 0 else reversed(ladder):
            tps = training_rate(cfg, device, variant, batch_size, accum, max(1, repeats - 1))
            rates[variant.name] = max(rates.get(variant.name, 0.0), tps)
            worst[variant.name] = min(worst.get(variant.name, tps), tps)
        for b, a in splits:
            key = f"{b} x {a}"
            split_rates[key] = max(split_rates.get(key, 0.0), training_rate(
                cfg, device, TRAINER_DEFAULT, b, a, max(1, repeats - 1)))
        # evaluation in every pass too, so that its ratio to training is taken side by side
        eval_tps = max(eval_tps, eval_rate(cfg, device, precision, batch_size, 2 * repeats))
    # the limit is the best the machine achieved: measured again at the end, the higher kept,
    # in whichever type is faster here
    bf16 = max(bf16, matmul_limit(device, torch.bfloat16, cfg, rows, repeats))
    fp32 = max(fp32, matmul_limit(device, torch.float32, cfg, rows, repeats))
    limit, limit_type = max((bf16, "bf16"), (fp32, "fp32"))
    train = [{"variant": v.name, "tokens_per_s": rates[v.name],
              "MFU_vs_measured_limit": rates[v.name] * fpt / limit,
              # best over worst pass: how far two measurements of one setting fell apart
              "pass_spread": rates[v.name] / worst[v.name]} for v in ladder]
    for row in train:
        row["speedup_vs_reference"] = row["tokens_per_s"] / train[0]["tokens_per_s"]
    best = max(train, key=lambda r: r["tokens_per_s"])
    adamw = {f"adamw_step_s_{name}": adamw_step_seconds(cfg, device, fused, repeats)
             for name, fused in (("for_loop", False), ("fused", True))}
    trainer = next((r for v, r in zip(ladder, train, strict=True) if v == TRAINER_DEFAULT),
                   best)
    attention = attention_milliseconds(cfg, device, precision, batch_size, repeats)
    if device == "cpu" and torch.get_num_threads() > 1:
        attention["eval_all_threads_over_one"] = eval_thread_scaling(cfg, precision, batch_size,
                                                                     repeats)
    lfpt = linear_flops_per_token(cfg)
    # the peer in turns with the trainer's own step, so that a slow spell hits both sides
    peer = (peer_comparison(cfg, device, precision, batch_size, accum, 2 if quick else 5)
            if with_peer else {})
    profiles = ({"profile_train": profile_training_step(cfg, device, precision, batch_size,
                                                        accum, limit),
                 "profile_eval": profile_eval_batch(cfg, device, precision, batch_size, limit)}
                if with_profile else {})
    whole_split = (eval_split_rate(device, precision, batch_size, split, 4 if quick else None)
                   if split is not None else {})
    if text is None:
        validation = _local_split("validation")
        text = (validation.text() if validation is not None
                else "The meaning of life is a question. " * 30_000)
    result = {
        "device": device,
        "device_name": device_name(device),
        "cpu_capability": cpu_capability(),
        # set when torch's kernels are capped below the CPU's (imitating an older CPU)
        "kernel_caps": {v: os.environ[v] for v in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
                        if os.environ.get(v)},
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "parameters": count_parameters(cfg),
        "flops_per_token": fpt,
        "batch": f"{batch_size} x {accum} x {cfg.block_size}",
        "matmul_bf16_TFLOPs": bf16 / 1e12,
        "matmul_fp32_TFLOPs": fp32 / 1e12,
        "matmul_limit_TFLOPs": limit / 1e12,
        "matmul_limit_type": limit_type,
        "matmul_limit_shapes": "best of 1024², 2048² and the model's four product shapes",
        "train": train,
        "train_split_tokens_per_s": {f"{batch_size} x {accum}": trainer["tokens_per_s"],
                                     **split_rates},
        "train_precision": precision,
        "train_precision_reason": choice.reason,
        "train_tokens_per_s": trainer["tokens_per_s"],
        "train_MFU_vs_measured_limit": trainer["MFU_vs_measured_limit"],
        "eager_fp32_tokens_per_s": train[0]["tokens_per_s"],
        "speedup_vs_eager_fp32": trainer["tokens_per_s"] / train[0]["tokens_per_s"],
        **adamw,
        "best_variant": best["variant"],
        "best_tokens_per_s": best["tokens_per_s"],
        # the most any setting could give: all training FLOPs at the measured limit
        "train_ceiling_tokens_per_s": limit / fpt,
        "eval_tokens_per_s": eval_tps,
        **attention,
        **peer,
        "eval_over_train": eval_tps / trainer["tokens_per_s"],
        "eval_linear_flops_per_token": lfpt,
        "eval_ceiling_tokens_per_s": limit / lfpt,
        **whole_split,
        **profiles,
        **tokenization_rates(text),
        **_peak_memory_gb(device),
        "report_tokens_per_s": REPORT.avg_tokens_per_s,
        "report_duration_s": REPORT.duration_stated_s,
        "full_recipe_hours_at_best_rate": REPORT.tokens_processed / best["tokens_per_s"] / 3600,
        "speedup_vs_report": best["tokens_per_s"] / REPORT.avg_tokens_per_s,
        "quick": quick,
    }
    print(format_table(result))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1))
    return result


def format_table(result: dict) -> str:
    """The result as aligned ``key  value`` lines, the training ladder as rows."""
    width = max(len(k) for k in result)
    lines = []
    for k, v in result.items():
        if k == "train":
            for row in v:
                lines.append(f"  {row['variant']:<42} {row['tokens_per_s']:>12,.0f} tok/s  "
                             f"{row['speedup_vs_reference']:5.2f}x  "
                             f"MFU {row['MFU_vs_measured_limit']:6.1%}")
        elif isinstance(v, float):
            lines.append(f"{k:<{width}}  {v:,.4g}")
        else:
            lines.append(f"{k:<{width}}  {v}")
    return "\n".join(lines)
