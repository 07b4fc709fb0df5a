"""The book's performance chapter (``notebooks/06_performance.ipynb``): the benchmark's
results as tables.

``h2q bench`` writes one JSON file a machine (``benchmarks/results*.json``); these functions
load them and lay them out: the measures side by side, the training ladder, where a step goes,
the transformers peer and the micro-batch cuts, and the chapter's headline values. The targets
and the bounds they are judged against are in ``performance_targets``, the report's recipe on
each machine in ``recipe_time``, the sentences in ``book.wording.performance``.
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
        chosen = result.get(f"attention_train_ms_{result.get('train_attention')}")
        if chosen:
            result["attention_choice_over_fastest"] = chosen / fastest_attention_ms(result,
                                                                                    "train")
        if result.get("eval_split_tokens_per_s") and result.get("eval_ceiling_tokens_per_s"):
            result["eval_split_of_ceiling"] = (result["eval_split_tokens_per_s"]
                                               / result["eval_ceiling_tokens_per_s"])
        results.append(result)
    # two measurements of one kind of machine (instances of a cloud CPU differ) are told
    # apart by their date: every table keys its columns by the machine's label
    labels = [machine_label(r) for r in results]
    for result, label in zip(results, labels, strict=True):
        if labels.count(label) > 1:
            result["device_name"] = (f"{result.get('device_name', result['device'])}, "
                                     f"measured {result.get('date', result['file'])}")
    return sorted(results, key=lambda r: (r.get("device") != "cpu", r["file"]))


def fastest_attention_ms(result: dict, work: str) -> float | None:
    """The fastest measured kernel's milliseconds for one layer's attention over one
    micro-batch: ``work="train"`` forward and backward, ``"eval"`` forward alone."""
    prefix = "attention_train_ms_" if work == "train" else "attention_ms_"
    times = [v for k, v in result.items() if k.startswith(prefix)]
    return min(times) if times else None


def machine_label(result: dict) -> str:
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
    ("train_attention", "attention kernel chosen by the rule (attention=auto)", ""),
    ("train_attention_reason", "  why (one layer, forward and backward, in turns)", ""),
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
    ("attention_ms_explicit_blocked", "  written out, the future quarter skipped", "ms"),
    ("attention_train_ms_sdpa", "the same, forward and backward: SDPA", "ms"),
    ("attention_train_ms_sdpa_math", "  SDPA's math backend", "ms"),
    ("attention_train_ms_explicit", "  written out", "ms"),
    ("attention_train_ms_explicit_blocked", "  written out, the future quarter skipped", "ms"),
    ("attention_choice_over_fastest", "  the rule's kernel over the fastest", "×"),
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
                     **{machine_label(r): format_measure(r.get(key), unit) for r in results}})
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


def fastest_rung(result: dict) -> dict:
    """The ladder row with the highest tokens/s (its best pass)."""
    return max(result["train"], key=lambda r: r["tokens_per_s"])


@dataclass(frozen=True)
class LadderVerdictNumbers:
    """Whether a rung beats the trainer's default beyond the spread between passes."""

    faster: list[str]  # ``rungs_faster_than_default``
    best_variant: str  # the rung with the fastest pass
    best_tokens_per_s: float
    best_spread: float | None  # its spread between passes; None: one measurement a rung
    default_tokens_per_s: float  # the trainer's default rung

    @property
    def default_is_fastest(self) -> bool:
        return self.best_tokens_per_s <= self.default_tokens_per_s


def ladder_verdict_numbers(result: dict) -> LadderVerdictNumbers:
    """The numbers behind the ladder's verdict (``book.wording.performance.ladder_verdict``)."""
    faster = rungs_faster_than_default(result)
    best = fastest_rung(result)
    return LadderVerdictNumbers(faster, best["variant"], best["tokens_per_s"],
                                best.get("pass_spread"), result["train_tokens_per_s"])


def gain_over_trainer(result: dict, word: str) -> float | None:
    """Throughput of the ladder rung whose name contains ``word``, over the trainer's default."""
    for row in result["train"]:
        if word in row["variant"]:
            return row["tokens_per_s"] / result["train_tokens_per_s"]
    return None


def ladder_tables(results: list[dict]) -> pd.DataFrame:
    """Every machine's training ladder in one table, the machine as the outer index."""
    return pd.concat({machine_label(r): ladder_table(r) for r in results},
                     names=["machine", "variant"])


# --- where the time goes, and the peer ------------------------------------------------------


PROFILES = (("profile_train", "training step"), ("profile_eval", "evaluation batch"))


def profile_table(result: dict) -> pd.DataFrame:
    """One row a part of the work: its share of a profiled training step's and evaluation
    batch's time and, for matrix products and attention, the fraction of the measured limit
    they ran at (the other parts move memory more than they compute: no FLOP ceiling)."""
    from h2q_lib.bench.profiling import CATEGORIES  # here: the chapter need not load torch

    rows = {c: {"part": c} for c in CATEGORIES}
    for key, what in PROFILES:
        for part, v in result[key]["parts"].items():
            rows[part][f"{what}: share of its time"] = v["share"]
            rows[part][f"{what}: fraction of the limit"] = v["of_limit"]
    present = [r for r in rows.values() if len(r) > 1]
    return pd.DataFrame(present).set_index("part")


def profile_tables(results: list[dict]) -> pd.DataFrame:
    """Every profiled machine's ``profile_table``, the machine as the outer index."""
    return pd.concat({machine_label(r): profile_table(r) for r in results
                      if "profile_train" in r}, names=["machine", "part"])


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
                "machine": machine_label(r), "work": name,
                "ours (tokens/s)": r.get(f"ours_{work}_tokens_per_s_paired", r[ours_key]),
                "transformers (tokens/s)": r[f"transformers_{work}_tokens_per_s"],
                "ours over theirs (×)": r[f"{work}_over_transformers"],
                "rounds: lowest–highest": (f"{rounds[0]:.2f}–{rounds[1]:.2f}×" if rounds
                                           else "one measurement each")})
    return pd.DataFrame(rows).set_index(["machine", "work"]) if rows else pd.DataFrame()


def split_table(results: list[dict]) -> pd.DataFrame:
    """Training tokens/s of the same 32 sequences a step cut into different micro-batches."""
    rows = [{"machine": machine_label(r),
             **{f"{cut.replace(' x ', ' × ')} (tokens/s)": rate
                for cut, rate in r["train_split_tokens_per_s"].items()}}
            for r in results if "train_split_tokens_per_s" in r]
    return pd.DataFrame(rows).set_index("machine") if rows else pd.DataFrame()


def headline_values(results: list[dict]) -> dict[str, float | str]:
    """For the chapter's finding: on the machine with the fastest training setting, its
    name, the report's recipe in hours there, the trainer's fraction of the measured matrix
    limit (MFU) and its training speed over transformers' GPT-2 (in turns, median round)."""
    if not results:
        return {"perf_machine": "no machine measured"}
    best = max(results, key=lambda r: r["best_tokens_per_s"])
    return {"perf_machine": machine_label(best),
            "perf_recipe_hours": REPORT.tokens_processed / best["best_tokens_per_s"] / 3600,
            "perf_mfu": best.get("train_MFU_vs_measured_limit", float("nan")),
            "perf_over_transformers": best.get("train_over_transformers", float("nan"))}
