"""The book's performance chapter: benchmark results against targets, ceilings and the report.

``h2q bench`` writes one JSON file a machine (``benchmarks/results*.json``); these functions
turn those files into tables. Each target says where it comes from, and each is paired with
the best any implementation could do on that machine (the ceiling from its measured bf16
matrix-multiply rate), so a missed target reads as "not reached" or "not reachable here".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .report import REPORT


def load_benchmarks(folder: str | os.PathLike) -> list[dict]:
    """Every ``results*.json`` in ``folder`` (CPU results first), each with its file name."""
    results = []
    for path in sorted(Path(folder).glob("results*.json")):
        result = json.loads(path.read_text())
        result["file"] = path.name
        results.append(result)
    return sorted(results, key=lambda r: (r.get("device") != "cpu", r["file"]))


def _label(result: dict) -> str:
    return f"{result.get('device_name', result['device'])} ({result['device']})"


MEASURES: tuple[tuple[str, str, str], ...] = (
    ("matmul_bf16_TFLOPs", "bf16 matrix product, achievable", "TFLOP/s"),
    ("matmul_fp32_TFLOPs", "fp32 matrix product, achievable", "TFLOP/s"),
    ("train_tokens_per_s", "training, the trainer's default settings", "tokens/s"),
    ("train_MFU_vs_measured_bf16", "  model-FLOPs utilisation (of the bf16 rate)", "fraction"),
    ("eager_fp32_tokens_per_s", "training, plain fp32 eager loop (reference)", "tokens/s"),
    ("speedup_vs_eager_fp32", "  trainer over the reference", "×"),
    ("adamw_step_s_for_loop", "one AdamW step, for-loop", "s"),
    ("adamw_step_s_fused", "one AdamW step, fused", "s"),
    ("best_tokens_per_s", "training, fastest setting measured", "tokens/s"),
    ("train_ceiling_tokens_per_s", "training ceiling: every FLOP at the bf16 rate", "tokens/s"),
    ("eval_tokens_per_s", "evaluation forward, no gradients", "tokens/s"),
    ("eval_over_train", "  evaluation over training", "×"),
    ("attention_ms_sdpa", "one layer's attention, SDPA as the model calls it", "ms"),
    ("attention_ms_sdpa_math", "  SDPA forced onto its math backend", "ms"),
    ("attention_ms_explicit", "  written out: q·kᵀ, mask, softmax, ·v", "ms"),
    ("eval_all_threads_over_one", "evaluation, all threads over one", "×"),
    ("eval_split_seconds", "evaluator on the whole test split", "s"),
    ("eval_split_tokens_per_s", "  its throughput, end to end", "tokens/s"),
    ("eval_ceiling_tokens_per_s", "evaluation ceiling: linear layers at the bf16 rate", "tokens/s"),
    ("char_MB_per_s", "char tokenization", "MB/s"),
    ("gpt2_1_thread_MB_per_s", "gpt2 tokenization, one thread", "MB/s"),
    ("gpt2_MB_per_s", "gpt2 tokenization, all cores", "MB/s"),
    ("gpt2_threads", "  threads used (= the machine's cores)", "threads"),
    ("peak_rss_GB", "peak resident memory of the benchmark", "GB"),
    ("peak_device_memory_GB", "peak GPU memory", "GB"),
)


def measures_table(results: list[dict]) -> pd.DataFrame:
    """One row a measure, one column a machine; measures a machine lacks are blank."""
    rows = []
    for key, name, unit in MEASURES:
        if not any(key in r for r in results):
            continue
        rows.append({"measure": name, "unit": unit, **{_label(r): r.get(key) for r in results}})
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
    table = pd.DataFrame(result["train"]).set_index("variant")
    return table[["tokens_per_s", "speedup_vs_reference", "MFU_vs_measured_bf16"]]


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

    def met(self, value: float) -> bool:
        return value >= self.bound if self.higher_is_better else value <= self.bound


GPU_RECIPE_SPEEDUP = 60  # "the report's full 104M-token recipe in under 5 minutes"

TARGETS: tuple[Target, ...] = (
    Target("training MFU against the measured bf16 rate", "train_MFU_vs_measured_bf16", 0.60,
           True, "issue #7"),
    Target("trainer over the plain fp32 eager loop", "speedup_vs_eager_fp32", 4.0, True,
           "issue #7"),
    Target("evaluation over training throughput", "eval_over_train", 3.0, True, "issue #7"),
    Target("char tokenization, MB/s", "char_MB_per_s", 50.0, True, "issue #7"),
    Target("peak memory of cpu-profile training, GB", "peak_rss_GB", 4.0, False, "issue #7"),
    Target("whole test split through the evaluator, s", "eval_split_seconds", 150.0, False,
           "issue #4"),
    Target("training tokens/s on one H100-class GPU", "best_tokens_per_s",
           GPU_RECIPE_SPEEDUP * REPORT.avg_tokens_per_s, True, "issue #7", ("cuda",)),
)


def best_possible(key: str, result: dict) -> float | None:
    """The best value ``key`` could take on this machine, from its measured bf16 rate.

    Training cannot beat ``train_ceiling_tokens_per_s`` (all its FLOPs at the bf16 rate), so
    the MFU is at most 1 and the speed-up at most ceiling / reference; the evaluator cannot
    beat the linear layers alone at that rate. Other measures have no such bound here.
    """
    ceiling = result.get("train_ceiling_tokens_per_s")
    if key == "train_MFU_vs_measured_bf16":
        return 1.0
    if key == "speedup_vs_eager_fp32" and ceiling:
        return ceiling / result["eager_fp32_tokens_per_s"]
    if key == "eval_split_seconds" and result.get("eval_split_tokens"):
        return result["eval_split_tokens"] / result["eval_ceiling_tokens_per_s"]
    if key == "best_tokens_per_s" and ceiling:
        return ceiling
    return None


def target_table(result: dict) -> pd.DataFrame:
    """Each target for this machine: measured, required, met, and the best reachable here."""
    rows = []
    for t in TARGETS:
        if result["device"] not in t.devices or t.key not in result:
            continue
        if t.key == "eval_split_seconds" and result.get("quick"):
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


def recipe_table(results: list[dict], run_tokens_per_s: float | None = None,
                 run_label: str = "this project's cpu run, as it ran") -> pd.DataFrame:
    """How long the report's 104,038,400 training tokens take at each measured rate."""
    rows = [{"machine": "the report: Apple MPS (its stated average)",
             "tokens/s": float(REPORT.avg_tokens_per_s), "source": "report"},
            {"machine": "the report: Apple MPS (its stated duration, 5 h 2 min)",
             "tokens/s": REPORT.tokens_processed / REPORT.duration_stated_s,
             "source": "report"}]
    for r in results:
        rows.append({"machine": _label(r) + ", fastest setting", "tokens/s": r["best_tokens_per_s"],
                     "source": f"benchmarks/{r.get('file', 'results.json')}"})
    if run_tokens_per_s:
        rows.append({"machine": run_label, "tokens/s": run_tokens_per_s,
                     "source": "runs/cpu/log.jsonl"})
    table = pd.DataFrame(rows)
    table["hours for 104M tokens"] = REPORT.tokens_processed / table["tokens/s"] / 3600
    table["× the report's speed"] = table["tokens/s"] / REPORT.avg_tokens_per_s
    return table.set_index("machine")
