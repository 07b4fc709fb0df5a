"""The sentences of the performance chapter (``notebooks/06_performance.ipynb``): the machines
measured, the verdict on the training ladder and the measurements beside it, what a CPU's
numbers say about the targets, where a profiled step goes, where the targets come from and
the GPU paragraph, filled with the values that ``h2q bench`` wrote and that
``bench.performance``, ``bench.performance_targets`` and ``bench.recipe_time`` computed."""

from __future__ import annotations

from h2q_lib.bench.performance import (
    ladder_verdict_numbers,
    machine_label,
    step_seconds,
    tokens_per_step,
)
from h2q_lib.bench.performance_targets import (
    cpu_target_numbers,
    profile_numbers,
    targets_by_source,
)
from h2q_lib.bench.recipe_time import gpu_recipe_times
from h2q_lib.book.wording import present


def machines_list(results: list[dict]) -> str:
    """Markdown: one bullet a benchmark file (machine, torch, date, batch, precision rule)."""
    return "\n".join(
        f"- `{r['file']}`: {r['device_name']}, torch {r['torch']}, measured "
        f"{r.get('date', 'on an earlier date')}, batch {r['batch']} tokens"
        + (f"; precision {r['train_precision']} ({r['train_precision_reason']})"
           if "train_precision_reason" in r else "")
        + (f"; torch's kernels capped with {', '.join(f'{k}={v}' for k, v in caps.items())} "
           "(this CPU imitating one without AVX-512)" if (caps := r.get("kernel_caps")) else "")
        + ("; a quick run (fewer repetitions, one pass, a few test pages)"
           if r.get("quick") else "")
        for r in results)


# --- the training ladder ----------------------------------------------------------------------


def ladder_verdict(result: dict) -> str:
    """Markdown: whether a rung beats the trainer's default beyond the spread between passes
    (``ladder_verdict_numbers``)."""
    n = ladder_verdict_numbers(result)
    if n.faster:
        how = ("its slowest pass above the default's fastest" if n.best_spread is not None else
               "one measurement a rung: no spread to judge the difference by")
        return f"Faster than the trainer's default: {', '.join(n.faster)} ({how})."
    if n.default_is_fastest:
        return "The trainer's default is the fastest rung."
    return (f"No rung is measurably faster than the trainer's default: the fastest pass, "
            f"{n.best_variant} at {n.best_tokens_per_s:,.0f} tokens/s, is "
            f"{n.best_tokens_per_s / n.default_tokens_per_s - 1:+.0%} on the "
            f"default's, inside that rung's own spread between passes "
            f"({n.best_spread:.2f}×).")


def ladder_notes(result: dict) -> str:
    """Markdown: the optimizer, attention and thread measurements beside the ladder."""
    parts = [ladder_verdict(result)] if result.get("train") else []
    if "adamw_step_s_fused" in result:
        parts.append(
            f"One AdamW step over the {result['parameters'] / 1e6:.1f}M parameters: "
            f"{result['adamw_step_s_for_loop'] * 1e3:.0f} ms as a for-loop, "
            f"{result['adamw_step_s_fused'] * 1e3:.0f} ms fused "
            f"({result['adamw_step_s_for_loop'] / result['adamw_step_s_fused']:.1f}×), against "
            f"{tokens_per_step(result):,} tokens a step at {result['train_tokens_per_s']:,.0f} "
            f"tokens/s, i.e. {step_seconds(result):.2f} s a step.")
    if "attention_ms_sdpa" in result:
        threads = (f"; evaluation with all {result['threads']} threads runs "
                   f"{result['eval_all_threads_over_one']:.2f}× one thread."
                   if "eval_all_threads_over_one" in result else ".")
        parts.append("One layer's causal attention at the model's shape, forward: "
                     + kernel_times(result, "attention_ms_") + threads)
    if "attention_train_ms_sdpa" in result:
        parts.append("Forward and backward, as a training step runs it: "
                     + kernel_times(result, "attention_train_ms_") + ".")
    parts += [probe_reading(result)] if result.get("train_attention_probe_ms") else []
    parts += [layout_reading(result)]
    return "\n\n".join(parts)


# how each attention kernel (``model.attention.KERNELS``) is named in a sentence
KERNEL_WORDS = {
    "sdpa": "through `scaled_dot_product_attention` as the model calls it",
    "sdpa_math": "on its math backend",
    "explicit": "written out",
    "explicit_blocked": "written out over two blocks of queries, the future quarter of the "
                        "scores skipped",
}


def kernel_times(result: dict, prefix: str) -> str:
    """The milliseconds of each attention kernel the result timed (keys ``prefix`` + kernel),
    in ``KERNEL_WORDS``'s order, as one clause."""
    return ", ".join(f"{result[prefix + kernel]:.1f} ms {words}"
                     for kernel, words in KERNEL_WORDS.items() if prefix + kernel in result)


def layout_reading(result: dict) -> str:
    """Markdown: whether storing the projection weights as GPT-2's Conv1D does ([in, out])
    would pay on this machine (``bench.layout_speed``): only if a projection's ratio stays
    above 1 over all its passes."""
    ratios = result.get("layout_out_in_over_in_out")
    if not ratios:
        return ("The projection weights' layout ([out, in] as `nn.Linear`, or GPT-2's "
                "[in, out]) was not measured on this machine.")
    shown = ", ".join(f"{name} {r['median']:.2f}× ({r['low']:.2f}–{r['high']:.2f})"
                      for name, r in ratios.items())
    paying = [name for name, r in ratios.items() if r["low"] > 1]
    verdict = (f"GPT-2's layout would pay for {', '.join(paying)}" if paying else
               "GPT-2's layout would not pay here: no projection is slower in the model's "
               "layout over all its passes, so the weights stay as they are")
    return (f"The projection weights' layout, forward and backward at one micro-batch, time "
            f"in the model's [out, in] over GPT-2's [in, out] (median, lowest–highest pass): "
            f"{shown}. {verdict}.")


def probe_reading(result: dict) -> str:
    """Markdown: the attention rule's probe (at the benchmark's start, a fresh process)
    beside the benchmark's own attention timing (after the ladder), and what a gap means."""
    probe, kernel = result["train_attention_probe_ms"], result["train_attention"]
    text = (f"The attention rule, probing at the benchmark's start, chose `{kernel}`: "
            + ", ".join(f"{k} {ms:.1f} ms" for k, ms in probe.items()) + ".")
    later_ms = {k: result.get(f"attention_train_ms_{k}") for k in probe}
    slow = [k for k, ms in probe.items() if later_ms[k] and ms > 1.5 * later_ms[k]]
    if slow:
        later = ", ".join(f"`{k}` {later_ms[k]:.1f} ms" for k in slow)
        text += (f" Timed again after the ladder: {later}. A written-out form's large score "
                 "tensors are mapped fresh from the operating system at every call in a new "
                 "process, and served from the grown heap later, so the probe at a run's start "
                 "measures it at its slowest. Its choice is right for the start of a run and "
                 "may not be for the steps that follow.")
    allocator = result.get("train_allocator")
    if allocator:
        text += f" The C allocator during the benchmark: {allocator}."
    return text


# --- the targets ------------------------------------------------------------------------------


def cpu_reading(result: dict) -> str:
    """Markdown: what a CPU's measurements say about the targets, from the numbers
    (``cpu_target_numbers``)."""
    n = cpu_target_numbers(result)
    text = (
        f"**Reading ({n.label}).** The trainer runs in "
        f"{n.precision} at "
        f"{n.mfu:.0%} of the measured limit, "
        f"{n.speedup_vs_eager:.2f}× the plain fp32 loop. Four times that loop "
        f"would be {n.four_times_eager_tflops:.2f} TFLOP/s of model FLOPs, "
        f"{n.four_times_eager_of_limit:.0%} of what this CPU's fastest matrix product "
        f"({n.limit_type}) reaches ({n.limit_tflops:.2f} "
        "TFLOP/s). Scoring a token takes a third "
        f"of a training token's FLOPs (2·N + 4·L·d·T against 6·N + 12·L·d·T), so evaluation at "
        f"3× the training throughput means evaluating at training's FLOP rate: measured "
        f"{n.eval_over_train:.2f}×.")
    if n.split_tokens:
        what = (f"{n.split_documents} pages of the test split"
                if n.quick else "the whole test split")
        text += (
            f" The evaluator scored {what} ({n.split_tokens:,} tokens) in "
            f"{n.split_seconds:.0f} s; its linear layers alone, at the limit "
            f"with nothing else running, would take {n.split_floor_s:.0f} s; it runs at "
            f"{n.split_of_ceiling:.0%} "
            "of that ceiling, the rest being the attention scores and the element-wise work "
            "(LayerNorm, GELU, casts) that the ceiling leaves out.")
        if n.eval_bound_of_ceiling is not None:
            text += (f" With attention at its fastest forward kernel measured "
                     f"({n.eval_attention_ms:.1f} ms a layer) and all other "
                     "work free, the evaluator could reach at most "
                     f"{n.eval_bound_of_ceiling:.0%} of that ceiling.")
    if n.limit_on_squares_only:
        text += (" This file's limit is the rate of square products only: it predates the "
                 "model's own product shapes in the limit, which ran faster than any square "
                 "on the Xeon measured here, so its MFU and ceilings may be overstated.")
    if n.compile_gain is not None:
        text += (f" torch.compile (`--compile true`, off by default because compiling takes "
                 f"minutes here) changes training throughput by {n.compile_gain - 1:+.0%} in "
                 "this run.")
    return text


def notes_and_readings(results: list[dict]) -> str:
    """Markdown: each machine's ladder notes and, for CPUs, the reading of its targets."""
    parts = []
    for r in results:
        parts.append(f"**{machine_label(r)}.** " + ladder_notes(r))
        if r["device"] == "cpu":
            parts.append(cpu_reading(r))
    return "\n\n".join(parts)


def target_sources() -> str:
    """Markdown: where each target comes from, the targets grouped by source."""
    return "Where the targets come from: " + "; ".join(
        f"*{source}*: {', '.join(names)}" for source, names in targets_by_source().items()) + "."


# --- where a step goes ------------------------------------------------------------------------


def mfu_target_words(bound: float | None) -> str:
    """"its 75 % target": the training-MFU target that applies (``mfu_target``), or "the
    limit" where none does (a GPU)."""
    return "the limit" if bound is None else f"its {bound:.0%} target"


def profile_reading(result: dict) -> str:
    """Markdown: what the profile says about the trainer's distance from its target
    (``profile_numbers``)."""
    n = profile_numbers(result)
    text = (f"**Where a step goes ({n.label}).** Matrix products take "
            f"{n.matmul_share:.0%} of a training step and run at {n.matmul_of_limit:.0%} of the "
            "limit")
    if n.attention_share is not None:
        text += (f"; attention takes {n.attention_share:.0%} at {n.attention_of_limit:.0%} "
                 "of it")
    text += (f"; everything else (LayerNorm, GELU, casts, the optimizer, Python) "
             f"{n.rest_share:.0%}. Were every matrix product at the limit and nothing else "
             f"faster, the trainer would reach {n.matmul_bound_mfu:.0%} of the limit")
    if n.mfu_target is not None and n.matmul_bound_mfu >= n.mfu_target:
        text += (f", enough for {mfu_target_words(n.mfu_target)}: what is left of the distance "
                 "lies in the matrix products as well as in attention and the memory-bound "
                 "work.")
    else:
        text += (f": the remaining distance to {mfu_target_words(n.mfu_target)} lies in "
                 "attention and the memory-bound work, not in the matrix products.")
    if n.attention_bound_of_limit is not None:
        text += (f" Attention itself does not run near the limit with any kernel measured: "
                 f"at the fastest ({n.attention_ms:.0f} ms a layer, "
                 f"forward and backward, against "
                 f"{n.attention_ms_at_limit:.0f} ms were its FLOPs at the limit), with "
                 "every matrix product at the limit and all other work free, the trainer "
                 f"would reach {n.attention_bound_of_limit:.0%} of the "
                 "limit. That is the most this machine allows with the attention kernels "
                 "timed here; above it lies only a faster attention kernel.")
    return text


def profile_readings(results: list[dict]) -> list[str]:
    """``profile_reading`` of every profiled machine."""
    return [profile_reading(r) for r in results if "profile_train" in r]


# --- the GPU ----------------------------------------------------------------------------------


def gpu_paragraph(results: list[dict]) -> str:
    """Markdown: each CUDA result's speed and recipe time (``gpu_recipe_times``), or that none
    was measured."""
    gpus = gpu_recipe_times(results)
    if not gpus:
        return ("**GPU.** No CUDA machine has been measured for this book yet: the figures "
                "above are CPU figures only. `benchmarks/gpu_check.sh` is the one prepared run "
                "for such a machine; its `results-cuda.json` lands in `benchmarks/` and "
                "appears here.")
    return "**GPU.** " + "; ".join(
        f"{name}: {tokens_per_s:,.0f} tokens/s, the recipe in {minutes:.1f} min"
        for name, tokens_per_s, minutes in gpus) + "."


def performance_finding(values: dict) -> str:
    """The performance chapter's finding: the recipe's hours, MFU and the peer ratio."""
    if not present(values, "perf_recipe_hours"):
        return "No benchmark result is committed: nothing is measured on this page."
    text = (f"On the fastest machine measured ({values['perf_machine']}), the report's "
            f"104,038,400-token recipe takes {values['perf_recipe_hours']:.1f} hours")
    if present(values, "perf_mfu"):
        text += f", the trainer running at {values['perf_mfu']:.0%} of the measured matrix limit"
    if present(values, "perf_over_transformers"):
        text += (f" and {values['perf_over_transformers']:.2f}× the training speed of "
                 "transformers' GPT-2 of the same shape")
    return text + ". The report states 5 h 2 min on an Apple MPS GPU."
