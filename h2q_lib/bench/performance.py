"""The book's performance chapter: benchmark results against targets, ceilings and the report.

``h2q bench`` writes one JSON file a machine (``benchmarks/results*.json``); these functions
turn those files into tables. Each target says where it comes from, and each is paired with
the best any implementation could do on that machine (the ceiling from its measured
matrix-multiply rate), so a missed target reads as "not reached" or "not reachable here".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from h2q_lib.claims.completion_report import REPORT


def load_benchmarks(folder: str | os.PathLike) -> list[dict]:
    """Every ``results*.json`` in ``folder`` (CPU results first), each with its file name."""
    results = []
    for path in sorted(Path(folder).glob("results*.json")):
        result = json.loads(path.read_text())
        result["file"] = path.name
        if result.get("train"):
            result["rungs_faster_than_default"] = len(rungs_faster_than_default(result))
        if result.get("eval_split_tokens_per_s") and result.get("eval_ceiling_tokens_per_s"):
            result["eval_split_of_ceiling"] = (result["eval_split_tokens_per_s"]
                                               / result["eval_ceiling_tokens_per_s"])
        results.append(result)
    return sorted(results, key=lambda r: (r.get("device") != "cpu", r["file"]))


def _label(result: dict) -> str:
    """The machine's name, its device, and for a CPU the kernel level torch used."""
    level = result.get("cpu_capability", "").split(" ")[0] if result["device"] == "cpu" else ""
    # results written before ``device_name`` said "1 thread" read "1 threads"
    name = result.get("device_name", result["device"]).replace(", 1 threads", ", 1 thread")
    return f"{name} ({result['device']}" + (
        f", {level})" if level else ")")


MEASURES: tuple[tuple[str, str, str], ...] = (
    ("cpu_capability", "CPU capability (torch kernels; bf16 flags)", ""),
    ("train_precision", "precision chosen by the rule (precision=auto)", ""),
    ("train_precision_reason", "  why", ""),
    ("matmul_bf16_TFLOPs", "bf16 matrix product, achievable", "TFLOP/s"),
    ("matmul_fp32_TFLOPs", "fp32 matrix product, achievable", "TFLOP/s"),
    ("matmul_limit_type", "the limit: the faster of the two", ""),
    ("train_tokens_per_s", "training, the trainer's default settings", "tokens/s"),
    ("train_MFU_vs_measured_limit", "  model-FLOPs utilisation (of the limit)", "fraction"),
    ("eager_fp32_tokens_per_s", "training, plain fp32 eager loop (reference)", "tokens/s"),
    ("speedup_vs_eager_fp32", "  trainer over the reference", "×"),
    ("adamw_step_s_for_loop", "one AdamW step, for-loop", "s"),
    ("adamw_step_s_fused", "one AdamW step, fused", "s"),
    ("best_tokens_per_s", "training, fastest setting measured", "tokens/s"),
    ("train_ceiling_tokens_per_s", "training ceiling: every FLOP at the limit", "tokens/s"),
    ("eval_tokens_per_s", "evaluation forward, no gradients", "tokens/s"),
    ("eval_over_train", "  evaluation over training", "×"),
    ("attention_ms_sdpa", "one layer's attention, SDPA as the model calls it", "ms"),
    ("attention_ms_sdpa_math", "  SDPA forced onto its math backend", "ms"),
    ("attention_ms_explicit", "  written out: q·kᵀ, mask, softmax, ·v", "ms"),
    ("attention_train_ms_sdpa", "the same, forward and backward: SDPA", "ms"),
    ("attention_train_ms_sdpa_math", "  SDPA's math backend", "ms"),
    ("attention_train_ms_explicit", "  written out", "ms"),
    ("eval_all_threads_over_one", "evaluation, all threads over one", "×"),
    ("eval_split_documents", "test pages the evaluator scored (62: the whole split)", "pages"),
    ("eval_split_seconds", "evaluator on those test pages", "s"),
    ("eval_split_tokens_per_s", "  its throughput, end to end", "tokens/s"),
    ("eval_ceiling_tokens_per_s", "evaluation ceiling: linear layers at the limit", "tokens/s"),
    ("char_MB_per_s", "char tokenization", "MB/s"),
    ("gpt2_1_thread_MB_per_s", "gpt2 tokenization, one thread", "MB/s"),
    ("gpt2_MB_per_s", "gpt2 tokenization, all cores", "MB/s"),
    ("gpt2_threads", "  threads used (= the machine's cores)", "threads"),
    ("peak_rss_GB", "peak resident memory of the benchmark", "GB"),
    ("peak_device_memory_GB", "peak GPU memory", "GB"),
)


def _rounded(value: float) -> str:
    """A rate or a time to the digits a reader compares: three significant, no exponent."""
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def format_measure(value, unit: str, suffix: bool = False) -> str:
    """One measure as the chapter prints it: a fraction as a percentage, a ratio with ×,
    tokens/s and counts whole, TFLOP/s to three digits, other rates and times by
    ``_rounded``; text as it is; with ``suffix`` the unit follows the number."""
    if value is None or isinstance(value, str):
        return "—" if value is None else value
    if unit == "fraction":
        return f"{value:.0%}"
    if unit == "×":
        return f"{value:.2f}×"
    if unit in ("tokens/s", "pages", "threads", ""):
        number = f"{value:,.0f}"
    elif unit == "TFLOP/s":
        number = f"{value:.3g}"
    else:
        number = _rounded(value)
    return f"{number} {unit}" if suffix and unit else number


def measures_table(results: list[dict]) -> pd.DataFrame:
    """One row a measure, one column a machine, each cell formatted for its unit
    (``format_measure``); measures a machine lacks are blank."""
    rows = []
    for key, name, unit in MEASURES:
        if not any(key in r for r in results):
            continue
        rows.append({"measure": name, "unit": "%" if unit == "fraction" else unit,
                     **{_label(r): format_measure(r.get(key), unit) for r in results}})
    return pd.DataFrame(rows).set_index("measure")


def tokens_per_step(result: dict) -> int:
    """Tokens of one optimizer step, from the result's ``"batch"`` (``"8 x 4 x 512"``)."""
    count = 1
    for part in result["batch"].split("x"):
        count *= int(part)
    return count


def step_seconds(result: dict) -> float:
    """Seconds of one optimizer step at the trainer's measured throughput."""
    return tokens_per_step(result) / result["train_tokens_per_s"]


def ladder_table(result: dict) -> pd.DataFrame:
    """The training ladder of one machine: each setting adds one change to the one above."""
    table = pd.DataFrame(result["train"]).set_index("variant").rename(columns={
        "tokens_per_s": "tokens/s", "speedup_vs_reference": "over the reference (×)",
        "MFU_vs_measured_limit": "MFU (share of the limit)",
        # best pass over worst: what a repeat of one setting moved
        "pass_spread": "spread between passes (×)"})
    columns = ["tokens/s", "over the reference (×)", "MFU (share of the limit)"]
    return table[columns + [c for c in ("spread between passes (×)",) if c in table]]


def rungs_faster_than_default(result: dict) -> list[str]:
    """The ladder rungs measurably faster than the trainer's default: whose slowest pass
    (best rate ÷ spread between passes) beats the default's fastest. Without a recorded
    spread a rung's one rate is both, so any higher rate counts."""
    default = result["train_tokens_per_s"]  # the default rung's rate (``h2q bench``)
    return [r["variant"] for r in result["train"] if "trainer's default" not in r["variant"]
            and r["tokens_per_s"] / r.get("pass_spread", 1.0) > default]


def ladder_verdict(result: dict) -> str:
    """Markdown: whether a rung beats the trainer's default beyond the spread between passes."""
    faster = rungs_faster_than_default(result)
    best = max(result["train"], key=lambda r: r["tokens_per_s"])
    if faster:
        how = ("its slowest pass above the default's fastest" if "pass_spread" in best else
               "one measurement a rung: no spread to judge the difference by")
        return f"Faster than the trainer's default: {', '.join(faster)} ({how})."
    if best["tokens_per_s"] <= result["train_tokens_per_s"]:
        return "The trainer's default is the fastest rung."
    return (f"No rung is measurably faster than the trainer's default: the fastest pass, "
            f"{best['variant']} at {best['tokens_per_s']:,.0f} tokens/s, is "
            f"{best['tokens_per_s'] / result['train_tokens_per_s'] - 1:+.0%} on the "
            f"default's, inside that rung's own spread between passes "
            f"({best['pass_spread']:.2f}×).")


def gain_over_trainer(result: dict, word: str) -> float | None:
    """Throughput of the ladder rung whose name contains ``word``, over the trainer's default."""
    for row in result["train"]:
        if word in row["variant"]:
            return row["tokens_per_s"] / result["train_tokens_per_s"]
    return None


@dataclass(frozen=True)
class Target:
    """A performance target: ``key`` of a benchmark result must reach ``bound``."""

    name: str
    key: str
    bound: float
    higher_is_better: bool
    source: str
    devices: tuple[str, ...] = ("cpu",)
    limit_types: tuple[str, ...] = ("bf16", "fp32")  # which measured limit it is judged on

    def applies(self, result: dict) -> bool:
        return (result["device"] in self.devices and self.key in result
                and result.get("matmul_limit_type", "bf16") in self.limit_types)

    def met(self, value: float) -> bool:
        return value >= self.bound if self.higher_is_better else value <= self.bound


GPU_RECIPE_SPEEDUP = 60  # "the report's full 104M-token recipe in under 5 minutes"
# Where the targets come from: this project's own reviews (not a public tracker).
PERFORMANCE_REVIEW = "project target (performance review)"
EVALUATION_REVIEW = "project target (evaluation review)"
SPEED_REVIEW = "project target (speed review, side by side with transformers)"

TARGETS: tuple[Target, ...] = (
    Target("training MFU against a bf16 limit", "train_MFU_vs_measured_limit", 0.75,
           True, SPEED_REVIEW, limit_types=("bf16",)),
    Target("training MFU against an fp32 limit", "train_MFU_vs_measured_limit", 0.80,
           True, SPEED_REVIEW, limit_types=("fp32",)),
    Target("whole test split: fraction of the evaluation ceiling", "eval_split_of_ceiling",
           0.70, True, SPEED_REVIEW),
    Target("training over transformers' GPT-2 (×)", "train_over_transformers", 1.15, True,
           SPEED_REVIEW),
    Target("evaluation over transformers' GPT-2 (×)", "eval_over_transformers", 1.3, True,
           SPEED_REVIEW),
    Target("ladder rungs measurably faster than the trainer's default",
           "rungs_faster_than_default", 0, False, SPEED_REVIEW, ("cpu", "cuda")),
    Target("trainer over the plain fp32 eager loop", "speedup_vs_eager_fp32", 4.0, True,
           PERFORMANCE_REVIEW),
    Target("evaluation over training throughput", "eval_over_train", 3.0, True,
           PERFORMANCE_REVIEW),
    Target("char tokenization, MB/s", "char_MB_per_s", 50.0, True, PERFORMANCE_REVIEW),
    Target("peak memory of report-model training, GB", "peak_rss_GB", 4.0, False,
           PERFORMANCE_REVIEW),
    Target("whole test split through the evaluator, s", "eval_split_seconds", 150.0, False,
           EVALUATION_REVIEW),
    Target("training tokens/s on one H100-class GPU", "best_tokens_per_s",
           GPU_RECIPE_SPEEDUP * REPORT.avg_tokens_per_s, True, PERFORMANCE_REVIEW, ("cuda",)),
)


def fastest_attention_ms(result: dict, work: str) -> float | None:
    """The fastest measured kernel's milliseconds for one layer's attention over one
    micro-batch: ``work="train"`` forward and backward, ``"eval"`` forward alone."""
    prefix = "attention_train_ms_" if work == "train" else "attention_ms_"
    times = [v for k, v in result.items() if k.startswith(prefix)]
    return min(times) if times else None


def attention_bound_tokens_per_s(result: dict, work: str) -> float | None:
    """Tokens/s of an implementation whose linear layers run at the measured limit L, whose
    attention takes the fastest kernel measured, and whose other work is free.

    A micro-batch of b·T tokens then takes t = b·T·F / L + n_layer·a, with F the FLOPs a
    token outside attention (training 6·N, evaluation 2·N_linear) and a one layer's fastest
    attention (forward and backward for training, forward for evaluation); the bound is
    b·T / t. None where the result has no attention timings of that kind.
    """
    attention_ms = fastest_attention_ms(result, work)
    if work == "train":
        flops = 6 * result["parameters"] if "parameters" in result else None
    else:
        flops = result.get("eval_linear_flops_per_token")
    if attention_ms is None or flops is None:
        return None
    b, _, t = (int(x) for x in result["batch"].split("x"))
    limit = result["matmul_limit_TFLOPs"] * 1e12
    seconds = b * t * flops / limit + REPORT.n_layer * attention_ms / 1e3
    return b * t / seconds


def best_possible(key: str, result: dict) -> float | None:
    """The best value ``key`` could take on this machine, from its measured limit.

    Training cannot beat ``train_ceiling_tokens_per_s`` (all its FLOPs at the limit), nor
    the evaluator the linear layers alone at that rate. Where the result times attention
    forward and backward, the tighter ``attention_bound_tokens_per_s`` applies: attention
    at the fastest kernel measured, not at the limit. Other measures have no such bound.
    """
    train = attention_bound_tokens_per_s(result, "train") or result.get(
        "train_ceiling_tokens_per_s")
    evaluation = attention_bound_tokens_per_s(result, "eval") or result.get(
        "eval_ceiling_tokens_per_s")
    bounds = {
        "train_MFU_vs_measured_limit": lambda: train / result["train_ceiling_tokens_per_s"],
        "eval_split_of_ceiling": lambda: evaluation / result["eval_ceiling_tokens_per_s"],
        "speedup_vs_eager_fp32": lambda: train / result["eager_fp32_tokens_per_s"],
        "eval_split_seconds": lambda: result["eval_split_tokens"] / evaluation,
        "best_tokens_per_s": lambda: train,
        "train_over_transformers": lambda: train / result["transformers_train_tokens_per_s"],
        "eval_over_transformers": lambda: evaluation / result["transformers_eval_tokens_per_s"],
    }
    try:
        return bounds[key]() if key in bounds else None
    except (KeyError, TypeError, ZeroDivisionError):  # a measure this result lacks
        return None


def target_table(result: dict) -> pd.DataFrame:
    """Each target for this machine: measured, required, met, and the best reachable here."""
    rows = []
    for t in TARGETS:
        if not t.applies(result):
            continue
        if t.key in ("eval_split_seconds", "eval_split_of_ceiling") and result.get("quick"):
            continue  # a quick run scores a few articles, not the whole split
        value = result[t.key]
        bound = best_possible(t.key, result)
        reachable = None if bound is None else t.met(bound)
        rows.append({"target": t.name, "source": t.source, "required": t.bound,
                     "measured": value, "met": t.met(value),
                     "best reachable on this machine": bound, "reachable": reachable})
    return pd.DataFrame(rows).set_index("target")


REPORT_ARCHITECTURE = {"n_layer": REPORT.n_layer, "n_head": REPORT.n_head,
                       "n_embd": REPORT.n_embd, "n_ff": REPORT.n_ff, "block_size": REPORT.seq_len,
                       "batch_size": REPORT.batch_size, "grad_accum": REPORT.grad_accum}


def trains_report_model(config: dict) -> bool:
    """Whether a run's ``config.json`` is the report's architecture at the report's batch.

    Only such a run's throughput says how long the report's recipe would take.
    """
    return all(config.get(k) == v for k, v in REPORT_ARCHITECTURE.items())


def run_tokens_per_s(log: list[dict]) -> float | None:
    """Median logged training throughput of a run (robust to steps slowed by other work)."""
    rates = sorted(r["tokens_per_s"] for r in log if r.get("tokens_per_s"))
    if not rates:
        return None
    mid = len(rates) // 2
    return rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2


def _hms(seconds: int) -> str:
    """``18133`` → ``5 h 02 min 13 s``."""
    h, rest = divmod(int(seconds), 3600)
    return f"{h} h {rest // 60:02d} min {rest % 60:02d} s"


def recipe_table(results: list[dict], run_tokens_per_s: float | None = None,
                 run_label: str = "this project's run, median logged step rate",
                 run_source: str = "the run's log.jsonl") -> pd.DataFrame:
    """How long the report's 104,038,400 training tokens take at each measured rate."""
    rows = [{"machine": "the report: Apple MPS (its stated average)",
             "tokens/s": float(REPORT.avg_tokens_per_s), "source": "report"},
            {"machine": "the report: Apple MPS (its start and end times, "
                        f"{_hms(REPORT.duration_s())})",
             "tokens/s": REPORT.tokens_processed / REPORT.duration_s(),
             "source": "report"}]
    for r in results:
        rows.append({"machine": _label(r) + ", fastest setting", "tokens/s": r["best_tokens_per_s"],
                     "source": f"benchmarks/{r.get('file', 'results.json')}"})
    if run_tokens_per_s:
        rows.append({"machine": run_label, "tokens/s": run_tokens_per_s,
                     "source": run_source})
    table = pd.DataFrame(rows)
    table["hours for 104M tokens"] = REPORT.tokens_processed / table["tokens/s"] / 3600
    table["× the report's speed"] = table["tokens/s"] / REPORT.avg_tokens_per_s
    return table.set_index("machine")


def run_rate_for_recipe(run: dict | None) -> float | None:
    """A run's median logged throughput, when it trained the report's model at its batch."""
    if run is None or not trains_report_model(run["config"]):
        return None
    return run_tokens_per_s(run["log"])


def fastest(recipe: pd.DataFrame) -> tuple[str, float]:
    """The machine (not the report's rows) with the fewest hours for the report's tokens."""
    ours = recipe.drop(index=[i for i in recipe.index if i.startswith("the report")])
    hours = ours["hours for 104M tokens"]
    return str(hours.idxmin()), float(hours.min())


def plot_recipe_times(recipe: pd.DataFrame):
    """Hours for the report's tokens at each rate (bars from zero; the report's rows in red)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(recipe)))
    colors = ["tab:red" if i.startswith("the report") else "tab:blue" for i in recipe.index]
    ax.barh(recipe.index, recipe["hours for 104M tokens"], color=colors)
    ax.set_xlabel(f"hours to train the report's {REPORT.tokens_processed:,} tokens "
                  "(lower is faster)", fontsize=11)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


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
        parts.append(
            f"One layer's causal attention at the model's shape, forward: "
            f"{result['attention_ms_sdpa']:.1f} ms through `scaled_dot_product_attention` as "
            f"the model calls it, {result['attention_ms_sdpa_math']:.1f} ms on its math "
            f"backend, {result['attention_ms_explicit']:.1f} ms written out" + threads)
    if "attention_train_ms_sdpa" in result:
        parts.append(
            "Forward and backward, as a training step runs it: "
            f"{result['attention_train_ms_sdpa']:.1f} ms through SDPA, "
            f"{result['attention_train_ms_sdpa_math']:.1f} ms on its math backend, "
            f"{result['attention_train_ms_explicit']:.1f} ms written out.")
    return "\n\n".join(parts)


def cpu_reading(result: dict) -> str:
    """Markdown: what a CPU's measurements say about the targets, from the numbers."""
    need = 4 * result["eager_fp32_tokens_per_s"] * result["flops_per_token"] / 1e12
    split_tokens = result.get("eval_split_tokens", 0)
    floor_s = split_tokens / result["eval_ceiling_tokens_per_s"]
    compile_gain = gain_over_trainer(result, "torch.compile")
    text = (
        f"**Reading ({_label(result)}).** The trainer runs in "
        f"{result.get('train_precision', 'its precision')} at "
        f"{result['train_MFU_vs_measured_limit']:.0%} of the measured limit, "
        f"{result['speedup_vs_eager_fp32']:.2f}× the plain fp32 loop. Four times that loop "
        f"would be {need:.2f} TFLOP/s of model FLOPs, "
        f"{need / result['matmul_limit_TFLOPs']:.0%} of what this CPU's fastest matrix product "
        f"({result['matmul_limit_type']}) reaches ({result['matmul_limit_TFLOPs']:.2f} "
        "TFLOP/s). Scoring a token takes a third "
        f"of a training token's FLOPs (2·N + 4·L·d·T against 6·N + 12·L·d·T), so evaluation at "
        f"3× the training throughput means evaluating at training's FLOP rate: measured "
        f"{result['eval_over_train']:.2f}×.")
    if split_tokens:
        what = (f"{result['eval_split_documents']} pages of the test split"
                if result.get("quick") else "the whole test split")
        text += (
            f" The evaluator scored {what} ({split_tokens:,} tokens) in "
            f"{result['eval_split_seconds']:.0f} s; its linear layers alone, at the limit "
            f"with nothing else running, would take {floor_s:.0f} s; it runs at "
            f"{result['eval_split_tokens_per_s'] / result['eval_ceiling_tokens_per_s']:.0%} "
            "of that ceiling, the rest being the attention scores and the element-wise work "
            "(LayerNorm, GELU, casts) that the ceiling leaves out.")
        bound = attention_bound_tokens_per_s(result, "eval")
        if bound is not None:
            text += (f" With attention at its fastest forward kernel measured "
                     f"({fastest_attention_ms(result, 'eval'):.1f} ms a layer) and all other "
                     "work free, the evaluator could reach at most "
                     f"{bound / result['eval_ceiling_tokens_per_s']:.0%} of that ceiling.")
    if "matmul_limit_shapes" not in result:
        text += (" This file's limit is the rate of square products only: it predates the "
                 "model's own product shapes in the limit, which ran faster than any square "
                 "on the Xeon measured here, so its MFU and ceilings may be overstated.")
    if compile_gain is not None:
        text += (f" torch.compile (`--compile true`, off by default because compiling takes "
                 f"minutes here) changes training throughput by {compile_gain - 1:+.0%} in "
                 "this run.")
    return text


def gpu_paragraph(results: list[dict]) -> str:
    """Markdown: each CUDA result's speed and recipe time, or that none was measured."""
    gpus = [r for r in results if r["device"] == "cuda"]
    if not gpus:
        return ("**GPU.** No CUDA machine has been measured for this book yet: the figures "
                "above are CPU figures only. `benchmarks/gpu_check.sh` is the one prepared run "
                "for such a machine; its `results-cuda.json` lands in `benchmarks/` and "
                "appears here.")
    return "**GPU.** " + "; ".join(
        f"{r['device_name']}: {r['best_tokens_per_s']:,.0f} tokens/s, the recipe in "
        f"{REPORT.tokens_processed / r['best_tokens_per_s'] / 60:.1f} min" for r in gpus) + "."


def ladder_tables(results: list[dict]) -> pd.DataFrame:
    """Every machine's training ladder in one table, the machine as the outer index."""
    return pd.concat({_label(r): ladder_table(r) for r in results}, names=["machine", "variant"])


# the unit of each target's measure (``format_measure``)
TARGET_UNITS = {"train_MFU_vs_measured_limit": "fraction", "eval_split_of_ceiling": "fraction",
                "train_over_transformers": "×", "eval_over_transformers": "×",
                "speedup_vs_eager_fp32": "×", "eval_over_train": "×", "char_MB_per_s": "MB/s",
                "peak_rss_GB": "GB", "eval_split_seconds": "s", "best_tokens_per_s": "tokens/s"}


def show_measure(value: float, key: str) -> str:
    """``value`` of the target measure ``key`` with its unit, as the targets overview prints it."""
    return format_measure(value, TARGET_UNITS.get(key, ""), suffix=True)


def target_overview(results: list[dict]) -> pd.DataFrame:
    """One row a target, one column a machine: ✓ or ✗, the measured value and, for a missed
    target the machine bounds, the best reachable there ("out of reach" where even that
    misses). A target that does not apply to a machine leaves its cell empty."""
    targets = {t.name: t for t in TARGETS}
    cells: dict[str, dict[str, str]] = {}
    for result in results:
        for name, row in target_table(result).iterrows():
            key = targets[name].key
            cell = f"{'✓' if row['met'] else '✗'} {show_measure(row['measured'], key)}"
            best = row["best reachable on this machine"]
            if not row["met"] and best is not None and not pd.isna(best):
                cell += (f" (best {show_measure(best, key)}"
                         + ("" if row["reachable"] else ": out of reach") + ")")
            cells.setdefault(name, {})[_label(result)] = cell
    rows = [{"target": t.name,
             "required": f"{'≥' if t.higher_is_better else '≤'} {show_measure(t.bound, t.key)}",
             **{_label(r): cells[t.name].get(_label(r), "") for r in results}}
            for t in TARGETS if t.name in cells]
    return pd.DataFrame(rows).set_index("target")


def target_sources() -> str:
    """Markdown: where each target comes from, the targets grouped by source."""
    sources: dict[str, list[str]] = {}
    for t in TARGETS:
        sources.setdefault(t.source, []).append(t.name)
    return "Where the targets come from: " + "; ".join(
        f"*{source}*: {', '.join(names)}" for source, names in sources.items()) + "."


def notes_and_readings(results: list[dict]) -> str:
    """Markdown: each machine's ladder notes and, for CPUs, the reading of its targets."""
    parts = []
    for r in results:
        parts.append(f"**{_label(r)}.** " + ladder_notes(r))
        if r["device"] == "cpu":
            parts.append(cpu_reading(r))
    return "\n\n".join(parts)


# --- where the time goes, and the peer ------------------------------------------------------

PROFILES = (("profile_train", "training step"), ("profile_eval", "evaluation batch"))


def profile_table(result: dict) -> pd.DataFrame:
    """One row a part of the work: its share of a profiled training step's and evaluation
    batch's time and, for matrix products and attention, the fraction of the measured limit
    they ran at (the other parts move memory more than they compute: no FLOP ceiling)."""
    from h2q_lib.bench.profiling import CATEGORIES

    rows = {c: {"part": c} for c in CATEGORIES}
    for key, what in PROFILES:
        for part, v in result[key]["parts"].items():
            rows[part][f"{what}: share of its time"] = v["share"]
            rows[part][f"{what}: fraction of the limit"] = v["of_limit"]
    present = [r for r in rows.values() if len(r) > 1]
    return pd.DataFrame(present).set_index("part")


def profile_tables(results: list[dict]) -> pd.DataFrame:
    """Every profiled machine's ``profile_table``, the machine as the outer index."""
    return pd.concat({_label(r): profile_table(r) for r in results if "profile_train" in r},
                     names=["machine", "part"])


def matmul_bound_mfu(result: dict) -> float:
    """The trainer's MFU if its matrix products ran at the limit and nothing else changed.

    Profiled step: wall time W, matrix time M carrying F FLOPs. At the limit L the products
    would take F / L, so the step W - M + F / L; MFU = model FLOPs / (that time · L).
    """
    profile = result["profile_train"]
    mm = profile["parts"]["matrix products"]
    limit = result["matmul_limit_TFLOPs"] * 1e12
    wall = profile["wall_s"] - mm["seconds"] + mm["flops"] / limit
    tokens = profile["tokens_per_s"] * profile["wall_s"]
    return tokens * result["flops_per_token"] / (wall * limit)


def profile_reading(result: dict) -> str:
    """Markdown: what the profile says about the trainer's distance from its target."""
    parts = result["profile_train"]["parts"]
    mm, attention = parts["matrix products"], parts.get("attention")
    rest = 1 - mm["share"] - (attention["share"] if attention else 0)
    text = (f"**Where a step goes ({_label(result)}).** Matrix products take "
            f"{mm['share']:.0%} of a training step and run at {mm['of_limit']:.0%} of the "
            "limit")
    if attention:
        text += (f"; attention takes {attention['share']:.0%} at {attention['of_limit']:.0%} "
                 "of it")
    text += (f"; everything else (LayerNorm, GELU, casts, the optimizer, Python) "
             f"{rest:.0%}. Were every matrix product at the limit and nothing else faster, the "
             f"trainer would reach {matmul_bound_mfu(result):.0%} of the limit: the "
             f"remaining distance to {_mfu_target_words(result)} lies in attention and the "
             "memory-bound work, not in the matrix products.")
    bound = attention_bound_tokens_per_s(result, "train")
    if bound is not None:
        text += (f" Attention itself does not run near the limit with any kernel measured: "
                 f"at the fastest ({fastest_attention_ms(result, 'train'):.0f} ms a layer, "
                 f"forward and backward, against "
                 f"{_attention_ms_at_limit(result):.0f} ms were its FLOPs at the limit), with "
                 "every matrix product at the limit and all other work free, the trainer "
                 f"would reach {bound / result['train_ceiling_tokens_per_s']:.0%} of the "
                 "limit. That is the most this machine allows with PyTorch's attention "
                 "kernels; above it lies only a faster attention kernel.")
    return text


def _mfu_target_words(result: dict) -> str:
    """"its 75 % target": the training-MFU target that applies to ``result`` (it depends on
    the limit's type), or "the limit" where none does (a GPU)."""
    bound = next((t.bound for t in TARGETS
                  if t.key == "train_MFU_vs_measured_limit" and t.applies(result)), None)
    return "the limit" if bound is None else f"its {bound:.0%} target"


def _attention_ms_at_limit(result: dict) -> float:
    """One layer's attention FLOPs over one micro-batch (12·d·T a token, forward and
    backward), at the measured limit, in milliseconds."""
    b, _, t = (int(x) for x in result["batch"].split("x"))
    flops = b * t * 12 * REPORT.n_embd * t
    return flops / (result["matmul_limit_TFLOPs"] * 1e12) * 1e3


def peer_table(results: list[dict]) -> pd.DataFrame:
    """Ours against transformers' ``GPT2LMHeadModel`` of the same shape, same process,
    precision and optimizer: one row a machine and kind of work, each side's tokens/s, the
    ratio and, where the two ran in turns, the lowest and highest round's ratio."""
    rows = []
    for r in results:
        if "train_over_transformers" not in r:
            continue
        for work, name, ours_key in (("train", "training", "train_tokens_per_s"),
                                     ("eval", "evaluation", "eval_tokens_per_s")):
            rounds = r.get(f"{work}_over_transformers_range")
            rows.append({
                "machine": _label(r), "work": name,
                "ours (tokens/s)": r.get(f"ours_{work}_tokens_per_s_paired", r[ours_key]),
                "transformers (tokens/s)": r[f"transformers_{work}_tokens_per_s"],
                "ours over theirs (×)": r[f"{work}_over_transformers"],
                "rounds: lowest–highest": (f"{rounds[0]:.2f}–{rounds[1]:.2f}×" if rounds
                                           else "one measurement each")})
    return pd.DataFrame(rows).set_index(["machine", "work"]) if rows else pd.DataFrame()


def split_table(results: list[dict]) -> pd.DataFrame:
    """Training tokens/s of the same 32 sequences a step cut into different micro-batches."""
    rows = [{"machine": _label(r), **{f"{cut.replace(' x ', ' × ')} (tokens/s)": rate
                                      for cut, rate in r["train_split_tokens_per_s"].items()}}
            for r in results if "train_split_tokens_per_s" in r]
    return pd.DataFrame(rows).set_index("machine") if rows else pd.DataFrame()


def profile_readings(results: list[dict]) -> list[str]:
    """``profile_reading`` of every profiled machine."""
    return [profile_reading(r) for r in results if "profile_train" in r]


def headline_values(results: list[dict]) -> dict[str, float | str]:
    """For the chapter's finding: on the machine with the fastest training setting, its
    name, the report's recipe in hours there, the trainer's fraction of the measured matrix
    limit (MFU) and its training speed over transformers' GPT-2 (in turns, median round)."""
    if not results:
        return {"perf_machine": "no machine measured"}
    best = max(results, key=lambda r: r["best_tokens_per_s"])
    return {"perf_machine": _label(best),
            "perf_recipe_hours": REPORT.tokens_processed / best["best_tokens_per_s"] / 3600,
            "perf_mfu": best.get("train_MFU_vs_measured_limit", float("nan")),
            "perf_over_transformers": best.get("train_over_transformers", float("nan"))}
