"""The performance chapter's targets and the bounds they are judged against.

Each target says where it comes from, and each is paired with the best any implementation
could do on that machine: its matrix products at the measured limit, attention at the
fastest kernel timed, all other work free. A missed target then reads as "not reached" or
"not reachable here". Also the numbers behind the chapter's readings of a CPU's targets and
of a profiled step (their sentences: ``book.wording.performance``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from h2q_lib.bench.performance import (
    fastest_attention_ms,
    format_measure,
    gain_over_trainer,
    machine_label,
)
from h2q_lib.claims.completion_report import REPORT
from h2q_lib.training.attention_rule import MIN_GAIN


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
ATTENTION_REVIEW = "project target (attention rule)"

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
    # the rule's kernel, timed after the ladder, over the fastest kernel timed there; the rule
    # keeps the default unless another kernel is MIN_GAIN faster: its resolution
    Target("attention rule's kernel over the fastest (×)",
           "attention_choice_over_fastest", 1 + MIN_GAIN, False, ATTENTION_REVIEW),
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


# the unit of each target's measure (``format_measure``)
TARGET_UNITS = {"train_MFU_vs_measured_limit": "fraction", "eval_split_of_ceiling": "fraction",
                "train_over_transformers": "×", "eval_over_transformers": "×",
                "attention_choice_over_fastest": "×",
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
            cells.setdefault(name, {})[machine_label(result)] = cell
    rows = [{"target": t.name,
             "required": f"{'≥' if t.higher_is_better else '≤'} {show_measure(t.bound, t.key)}",
             **{machine_label(r): cells[t.name].get(machine_label(r), "") for r in results}}
            for t in TARGETS if t.name in cells]
    return pd.DataFrame(rows).set_index("target")


def targets_by_source() -> dict[str, list[str]]:
    """The targets' names grouped by where they come from, in the order of ``TARGETS``."""
    sources: dict[str, list[str]] = {}
    for t in TARGETS:
        sources.setdefault(t.source, []).append(t.name)
    return sources


def mfu_target(result: dict) -> float | None:
    """The training-MFU target that applies to ``result`` (it depends on the limit's type),
    or None where none does (a GPU)."""
    return next((t.bound for t in TARGETS
                 if t.key == "train_MFU_vs_measured_limit" and t.applies(result)), None)


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


def attention_ms_at_limit(result: dict) -> float:
    """One layer's attention FLOPs over one micro-batch (12·d·T a token, forward and
    backward), at the measured limit, in milliseconds."""
    b, _, t = (int(x) for x in result["batch"].split("x"))
    flops = b * t * 12 * REPORT.n_embd * t
    return flops / (result["matmul_limit_TFLOPs"] * 1e12) * 1e3


# --- the numbers behind the readings ----------------------------------------------------------


@dataclass(frozen=True)
class CpuTargetNumbers:
    """What a CPU's measurements say about the targets
    (``book.wording.performance.cpu_reading``)."""

    label: str  # ``machine_label``
    precision: str  # the trainer's precision, or "its precision" where the file has none
    mfu: float  # the trainer's fraction of the measured limit
    speedup_vs_eager: float  # the trainer over the plain fp32 eager loop
    four_times_eager_tflops: float  # model TFLOP/s of four times that loop
    limit_tflops: float
    limit_type: str
    eval_over_train: float
    split_tokens: int  # tokens the evaluator scored on the test split (0: not timed)
    split_documents: int | None  # pages of them (read only for a quick run)
    quick: bool
    split_seconds: float | None
    split_floor_s: float  # the linear layers alone at the limit, on those tokens
    split_of_ceiling: float | None  # the evaluator's tokens/s over the evaluation ceiling
    eval_attention_ms: float | None  # the fastest forward attention kernel, one layer
    eval_bound_of_ceiling: float | None  # ``attention_bound_tokens_per_s`` over the ceiling
    limit_on_squares_only: bool  # the file predates the model's shapes in the limit
    compile_gain: float | None  # torch.compile's rung over the trainer's default

    @property
    def four_times_eager_of_limit(self) -> float:
        return self.four_times_eager_tflops / self.limit_tflops


def cpu_target_numbers(result: dict) -> CpuTargetNumbers:
    """The numbers behind a CPU's reading of its targets."""
    need = 4 * result["eager_fp32_tokens_per_s"] * result["flops_per_token"] / 1e12
    split_tokens = result.get("eval_split_tokens", 0)
    floor_s = split_tokens / result["eval_ceiling_tokens_per_s"]
    compile_gain = gain_over_trainer(result, "torch.compile")
    bound = attention_bound_tokens_per_s(result, "eval") if split_tokens else None
    return CpuTargetNumbers(
        label=machine_label(result), precision=result.get("train_precision", "its precision"),
        mfu=result["train_MFU_vs_measured_limit"],
        speedup_vs_eager=result["speedup_vs_eager_fp32"], four_times_eager_tflops=need,
        limit_tflops=result["matmul_limit_TFLOPs"], limit_type=result["matmul_limit_type"],
        eval_over_train=result["eval_over_train"], split_tokens=split_tokens,
        split_documents=result["eval_split_documents"] if split_tokens and result.get("quick")
        else None,
        quick=bool(result.get("quick")),
        split_seconds=result["eval_split_seconds"] if split_tokens else None,
        split_floor_s=floor_s,
        split_of_ceiling=(result["eval_split_tokens_per_s"] / result["eval_ceiling_tokens_per_s"]
                          if split_tokens else None),
        eval_attention_ms=fastest_attention_ms(result, "eval") if bound is not None else None,
        eval_bound_of_ceiling=(None if bound is None
                               else bound / result["eval_ceiling_tokens_per_s"]),
        limit_on_squares_only="matmul_limit_shapes" not in result, compile_gain=compile_gain)


@dataclass(frozen=True)
class ProfileNumbers:
    """Where a profiled training step goes and what that says about the trainer's distance
    from its target (``book.wording.performance.profile_reading``)."""

    label: str  # ``machine_label``
    matmul_share: float  # the matrix products' share of the step's time
    matmul_of_limit: float  # and the fraction of the limit they ran at
    attention_share: float | None  # None: the profile has no attention part
    attention_of_limit: float | None
    rest_share: float  # everything else
    matmul_bound_mfu: float  # ``matmul_bound_mfu``
    mfu_target: float | None  # ``mfu_target``
    attention_ms: float | None  # the fastest forward-and-backward kernel, one layer (None:
    attention_ms_at_limit: float | None  # not timed) and its FLOPs at the limit
    attention_bound_of_limit: float | None  # ``attention_bound_tokens_per_s`` over the ceiling


def profile_numbers(result: dict) -> ProfileNumbers:
    """The numbers behind the reading of ``result``'s profiled training step."""
    parts = result["profile_train"]["parts"]
    mm, attention = parts["matrix products"], parts.get("attention")
    rest = 1 - mm["share"] - (attention["share"] if attention else 0)
    bound = attention_bound_tokens_per_s(result, "train")
    return ProfileNumbers(
        label=machine_label(result), matmul_share=mm["share"], matmul_of_limit=mm["of_limit"],
        attention_share=attention["share"] if attention else None,
        attention_of_limit=attention["of_limit"] if attention else None, rest_share=rest,
        matmul_bound_mfu=matmul_bound_mfu(result), mfu_target=mfu_target(result),
        attention_ms=fastest_attention_ms(result, "train") if bound is not None else None,
        attention_ms_at_limit=attention_ms_at_limit(result) if bound is not None else None,
        attention_bound_of_limit=(None if bound is None
                                  else bound / result["train_ceiling_tokens_per_s"]))
