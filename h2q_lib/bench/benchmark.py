"""Throughput benchmark (``h2q bench``): every number measured in one process, side by side,
printed as a table and written as one JSON file a machine.

- the device's achievable matrix-multiply rate in bf16 and in fp32 (``matmul_speed``); the
  faster of the two is the limit (bf16 where the hardware has it, fp32 where bf16 is
  emulated);
- training tokens/s of the report's architecture at its batch and context, one optimizer step
  over ``grad_accum`` micro-batches the way the trainer runs it, for a ladder of settings that
  starts at a plain fp32 eager loop (the reference) and adds one change at a time (bf16
  autocast, fused AdamW, ``torch.compile``), so each change's gain is a measured ratio
  (``training_speed``);
- model-FLOPs utilisation against the measured limit (FLOPs per token 6·N + 12·L·d·T);
- evaluation tokens/s (no gradients, the evaluator's precision) and its ceiling: the linear
  layers alone need 2·N_linear FLOPs a token, so no evaluator beats limit / 2·N_linear
  (``evaluation_speed``); one layer's attention through every kernel, forward, and forward
  and backward (``attention_speed``), and (CPU) all threads against one;
- transformers' GPT-2 of the same shape, in turns with ours (``peer_speed``);
- tokenization MB/s for ``char`` and ``gpt2`` (all cores; ``tokenization_speed``), and peak
  memory.
This module runs them in order (``run_benchmark``, step by step) and lays out the result.
A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from h2q_lib.bench.attention_speed import attention_milliseconds
from h2q_lib.bench.evaluation_speed import (
    eval_rate,
    eval_split_rate,
    eval_thread_scaling,
    linear_flops_per_token,
)
from h2q_lib.bench.layout_speed import layout_ratios
from h2q_lib.bench.matmul_speed import matmul_limit
from h2q_lib.bench.peer_speed import peer_comparison
from h2q_lib.bench.profiling import profile_eval_batch, profile_training_step
from h2q_lib.bench.tokenization_speed import tokenization_rates
from h2q_lib.bench.training_speed import (
    TRAIN_LADDER,
    TRAINER_DEFAULT,
    TrainVariant,
    adamw_step_seconds,
    training_rate,
)
from h2q_lib.claims.completion_report import REPORT
from h2q_lib.core.run_folder import check_writable
from h2q_lib.data.tokenizers import CHAR_VOCAB_SIZE
from h2q_lib.data.wikitext import Split
from h2q_lib.model.gpt import GPTConfig, count_parameters, flops_per_token
from h2q_lib.training.allocator import keep_freed_memory
from h2q_lib.training.attention_rule import AttentionChoice, choose_attention
from h2q_lib.training.hardware import (
    PrecisionChoice,
    choose_precision,
    cpu_capability,
    peak_rss_gb,
    pick_device,
)


def device_name(device: str) -> str:
    """The machine in words: the GPU's name, or the CPU's model and the threads torch uses."""
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


def _peak_memory_gb(device: str) -> dict[str, float | None]:
    out = {"peak_rss_GB": peak_rss_gb()}
    if device == "cuda":
        out["peak_device_memory_GB"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def _local_split(name: str) -> Split | None:
    """A WikiText-103 split from the local data folder, or None where there is none."""
    from h2q_lib.data.wikitext import load_split

    try:
        return load_split(name, "wikitext-103-v1", source="local")
    except Exception:  # no local data: the measures that need it are left out
        return None


# --- the steps of ``run_benchmark`` ------------------------------------------------------------


@dataclass(frozen=True)
class BenchSetting:
    """What every measurement of one benchmark shares: the device, the precision its rule
    chose, the report's model shape, the micro-batch and how often each thing is timed."""

    device: str
    choice: PrecisionChoice
    attention: AttentionChoice  # the trainer's rule at the benchmark's micro-batch
    cfg: GPTConfig
    batch_size: int
    accum: int  # micro-batches an optimizer step
    repeats: int
    quick: bool

    @property
    def precision(self) -> str:
        return self.choice.precision

    @property
    def rows(self) -> int:
        """Tokens of one micro-batch: the rows of the model's matrix products."""
        return self.batch_size * self.cfg.block_size


def bench_setting(device: str, quick: bool, batch_size: int, grad_accum: int) -> BenchSetting:
    """The setting on ``device`` (``"auto"`` picks one); a quick run times each thing once and
    steps over one micro-batch."""
    device = pick_device(device)
    keep_freed_memory(device)  # as the trainer runs, before anything is measured
    choice, cfg = choose_precision(device), REPORT.model_config(CHAR_VOCAB_SIZE)
    return BenchSetting(device=device, choice=choice,
                        attention=choose_attention(cfg, batch_size, device, choice.precision),
                        cfg=cfg, batch_size=batch_size,
                        accum=1 if quick else grad_accum, repeats=1 if quick else 3, quick=quick)


def _check_out(out: str | os.PathLike) -> None:
    """Make ``out``'s folder and check it can be written, before anything is measured."""
    with contextlib.suppress(OSError):  # a missing folder is made; check_writable judges
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    check_writable(out)


def _evaluation_split(name: str | None) -> Split | None:
    """The local split ``name`` the evaluator is timed on; where there is none, said at once
    (not after the benchmark) that the whole-split evaluation is left out."""
    split = _local_split(name) if name else None
    if name and split is None:
        print(f"h2q bench: no local WikiText {name} split (set H2Q_DATA_DIR to the "
              "WikiText folder): the whole-split evaluation is left out of the results",
              file=sys.stderr, flush=True)
    return split


def matmul_limits(s: BenchSetting) -> tuple[float, float]:
    """``(bf16, fp32)`` FLOP/s, each the best of a square and the model's shapes."""
    return (matmul_limit(s.device, torch.bfloat16, s.cfg, s.rows, s.repeats),
            matmul_limit(s.device, torch.float32, s.cfg, s.rows, s.repeats))


def limit_and_type(bf16: float, fp32: float) -> tuple[float, str]:
    """The limit, the faster of the two rates, and its type (``"bf16"`` or ``"fp32"``)."""
    return max((bf16, "bf16"), (fp32, "fp32"))


@dataclass
class LadderRates:
    """Training tokens/s of each rung (its best and its worst pass) and of each other
    micro-batch cut, and evaluation tokens/s, measured over the same passes."""

    best: dict[str, float] = field(default_factory=dict)
    worst: dict[str, float] = field(default_factory=dict)
    cuts: dict[str, float] = field(default_factory=dict)
    eval_tokens_per_s: float = 0.0


def micro_batch_cuts(batch_size: int, accum: int) -> list[tuple[int, int]]:
    """``(batch, accum)``: the same step's sequences cut in fewer, larger micro-batches (the
    default's own cut is its ladder rung)."""
    total = batch_size * accum
    return list(dict.fromkeys((b, total // b) for b in (2 * batch_size, total)
                              if b != batch_size and total % b == 0))


def measure_ladder(s: BenchSetting, ladder: tuple[TrainVariant, ...]) -> LadderRates:
    """Two passes over the ladder, the second in reverse order, best of both per rung: a slow
    spell of a shared machine then hurts one pass of a rung, not the comparison."""
    passes = 1 if s.quick else 2
    rates = LadderRates()
    cuts = micro_batch_cuts(s.batch_size, s.accum)
    for p in range(passes):
        for variant in ladder if p % 2 == 0 else reversed(ladder):
            tps = training_rate(s.cfg, s.device, variant, s.batch_size, s.accum,
                                max(1, s.repeats - 1), s.attention.kernel)
            rates.best[variant.name] = max(rates.best.get(variant.name, 0.0), tps)
            rates.worst[variant.name] = min(rates.worst.get(variant.name, tps), tps)
        for b, a in cuts:
            key = f"{b} x {a}"
            rates.cuts[key] = max(rates.cuts.get(key, 0.0), training_rate(
                s.cfg, s.device, TRAINER_DEFAULT, b, a, max(1, s.repeats - 1),
                s.attention.kernel))
        # evaluation in every pass too, so that its ratio to training is taken side by side
        rates.eval_tokens_per_s = max(rates.eval_tokens_per_s, eval_rate(
            s.cfg, s.device, s.precision, s.batch_size, 2 * s.repeats))
    return rates


def ladder_rows(ladder: tuple[TrainVariant, ...], rates: LadderRates, flops: int,
                limit: float) -> list[dict]:
    """One row a rung: tokens/s, MFU against ``limit`` (``flops`` a token), the spread
    between passes and the speed-up over the first rung (the reference)."""
    train = [{"variant": v.name, "tokens_per_s": rates.best[v.name],
              "MFU_vs_measured_limit": rates.best[v.name] * flops / limit,
              # best over worst pass: how far two measurements of one setting fell apart
              "pass_spread": rates.best[v.name] / rates.worst[v.name]} for v in ladder]
    for row in train:
        row["speedup_vs_reference"] = row["tokens_per_s"] / train[0]["tokens_per_s"]
    return train


def measure_beside_ladder(s: BenchSetting, limit: float, split: Split | None,
                          with_peer: bool, with_profile: bool) -> dict[str, dict]:
    """The measures beside the ladder, each a dict of result entries: ``adamw``,
    ``attention`` (with the CPU's thread scaling), ``peer``, ``profiles``, ``whole_split``,
    ``layout`` (the projection weights' two layouts)."""
    adamw = {f"adamw_step_s_{name}": adamw_step_seconds(s.cfg, s.device, fused, s.repeats)
             for name, fused in (("for_loop", False), ("fused", True))}
    attention = attention_milliseconds(s.cfg, s.device, s.precision, s.batch_size, s.repeats)
    if s.device == "cpu" and torch.get_num_threads() > 1:
        attention["eval_all_threads_over_one"] = eval_thread_scaling(
            s.cfg, s.precision, s.batch_size, s.repeats)
    # the peer in turns with the trainer's own step, so that a slow spell hits both sides
    peer = (peer_comparison(s.cfg, s.device, s.precision, s.batch_size, s.accum,
                            2 if s.quick else 5, s.attention.kernel) if with_peer else {})
    # the step with the trainer's kernel; evaluation keeps SDPA, as the evaluator does
    profiles = ({"profile_train": profile_training_step(s.cfg, s.device, s.precision,
                                                        s.batch_size, s.accum, limit,
                                                        s.attention.kernel),
                 "profile_eval": profile_eval_batch(s.cfg, s.device, s.precision,
                                                    s.batch_size, limit)}
                if with_profile else {})
    whole_split = (eval_split_rate(s.device, s.precision, s.batch_size, split,
                                   4 if s.quick else None) if split is not None else {})
    layout = {"layout_out_in_over_in_out": layout_ratios(
        s.cfg, s.device, s.precision, s.batch_size, 3 if s.quick else 7)}
    return {"adamw": adamw, "attention": attention, "peer": peer, "profiles": profiles,
            "whole_split": whole_split, "layout": layout}


def _tokenization_text(text: str | None) -> str:
    """``text``, else the local validation split's, else a repeated sentence."""
    if text is not None:
        return text
    validation = _local_split("validation")
    return (validation.text() if validation is not None
            else "The meaning of life is a question. " * 30_000)


@dataclass
class Measured:
    """Everything one benchmark measured, before it is laid out as the JSON result."""

    bf16: float  # FLOP/s, the best of both measurements of the limit
    fp32: float
    ladder: LadderRates
    train: list[dict]  # ``ladder_rows``
    beside: dict[str, dict]  # ``measure_beside_ladder``
    tokenization: dict[str, float | int]
    memory: dict[str, float | None]

    @property
    def limit(self) -> tuple[float, str]:
        return limit_and_type(self.bf16, self.fp32)


def benchmark_result(s: BenchSetting, ladder: tuple[TrainVariant, ...], m: Measured) -> dict:
    """The JSON result: the machine, the setting, the limit, the ladder and every other
    measure, with the ratios and ceilings read from them."""
    cfg, train = s.cfg, m.train
    fpt, lfpt = flops_per_token(cfg), linear_flops_per_token(cfg)
    limit, limit_type = m.limit
    best = max(train, key=lambda r: r["tokens_per_s"])
    trainer = next((r for v, r in zip(ladder, train, strict=True) if v == TRAINER_DEFAULT),
                   best)
    return {
        "device": s.device,
        "device_name": device_name(s.device),
        "cpu_capability": cpu_capability(),
        # set when torch's kernels are capped below the CPU's (imitating an older CPU)
        "kernel_caps": {v: os.environ[v] for v in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
                        if os.environ.get(v)},
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "parameters": count_parameters(cfg),
        "flops_per_token": fpt,
        "batch": f"{s.batch_size} x {s.accum} x {cfg.block_size}",
        "matmul_bf16_TFLOPs": m.bf16 / 1e12,
        "matmul_fp32_TFLOPs": m.fp32 / 1e12,
        "matmul_limit_TFLOPs": limit / 1e12,
        "matmul_limit_type": limit_type,
        "matmul_limit_shapes": "best of 1024², 2048² and the model's four product shapes",
        "train": train,
        "train_split_tokens_per_s": {f"{s.batch_size} x {s.accum}": trainer["tokens_per_s"],
                                     **m.ladder.cuts},
        "train_precision": s.precision,
        "train_precision_reason": s.choice.reason,
        "train_allocator": keep_freed_memory(s.device),
        "train_attention": s.attention.kernel,
        "train_attention_reason": s.attention.reason,
        "train_attention_probe_ms": s.attention.probe_ms,
        "train_tokens_per_s": trainer["tokens_per_s"],
        "train_MFU_vs_measured_limit": trainer["MFU_vs_measured_limit"],
        "eager_fp32_tokens_per_s": train[0]["tokens_per_s"],
        "speedup_vs_eager_fp32": trainer["tokens_per_s"] / train[0]["tokens_per_s"],
        **m.beside["adamw"],
        "best_variant": best["variant"],
        "best_tokens_per_s": best["tokens_per_s"],
        # the most any setting could give: all training FLOPs at the measured limit
        "train_ceiling_tokens_per_s": limit / fpt,
        "eval_tokens_per_s": m.ladder.eval_tokens_per_s,
        **m.beside["attention"],
        **m.beside["peer"],
        **m.beside["layout"],
        "eval_over_train": m.ladder.eval_tokens_per_s / trainer["tokens_per_s"],
        "eval_linear_flops_per_token": lfpt,
        "eval_ceiling_tokens_per_s": limit / lfpt,
        **m.beside["whole_split"],
        **m.beside["profiles"],
        **m.tokenization,
        **m.memory,
        "report_tokens_per_s": REPORT.avg_tokens_per_s,
        "report_duration_s": REPORT.duration_stated_s,
        "full_recipe_hours_at_best_rate": REPORT.tokens_processed / best["tokens_per_s"] / 3600,
        "speedup_vs_report": best["tokens_per_s"] / REPORT.avg_tokens_per_s,
        "quick": s.quick,
    }


def run_benchmark(out: str | os.PathLike = "benchmarks/results.json", quick: bool = False,
                  device: str = "auto", batch_size: int = 8, grad_accum: int = 4,
                  ladder: tuple[TrainVariant, ...] = TRAIN_LADDER,
                  text: str | None = None, eval_split: str | None = "test",
                  with_peer: bool = True, with_profile: bool = True) -> dict:
    """Measure everything, print a table and write JSON to ``out``.

    ``out`` is checked (its folder made and written to) before anything is measured, so a
    bad path fails at once instead of after the benchmark.
    """
    _check_out(out)
    # the data first: told at once, not after the benchmark, what a missing folder leaves out
    split = _evaluation_split(eval_split)
    s = bench_setting(device, quick, batch_size, grad_accum)
    first = matmul_limits(s)
    rates = measure_ladder(s, ladder)
    # the limit is the best the machine achieved: measured again at the end, the higher kept,
    # in whichever type is faster here
    again = matmul_limits(s)
    bf16, fp32 = max(first[0], again[0]), max(first[1], again[1])
    limit, _ = limit_and_type(bf16, fp32)
    train = ladder_rows(ladder, rates, flops_per_token(s.cfg), limit)
    beside = measure_beside_ladder(s, limit, split, with_peer, with_profile)
    tokenization = tokenization_rates(_tokenization_text(text))
    measured = Measured(bf16, fp32, rates, train, beside, tokenization, _peak_memory_gb(s.device))
    result = benchmark_result(s, ladder, measured)
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
