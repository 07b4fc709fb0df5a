"""The report's recipe on each machine: how long its 104,038,400 training tokens take at
each measured rate (the report's own, each benchmarked machine's fastest setting, and a run
of the report's model), as a table and as a figure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from h2q_lib.bench.performance import machine_label
from h2q_lib.claims.completion_report import REPORT

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
        rows.append({"machine": machine_label(r) + ", fastest setting",
                     "tokens/s": r["best_tokens_per_s"],
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


def plot_recipe_times(recipe: pd.DataFrame) -> Figure:
    """Hours for the report's tokens at each rate (bars from zero; the report's rows in red)."""
    import textwrap

    import matplotlib.pyplot as plt

    # narrow, with large type and wrapped machine names: on a phone (390 px) the figure is
    # shown at about half its width, and 11-point labels on an 8-inch figure could not be read
    labels = [textwrap.fill(str(i), 26) for i in recipe.index]
    lines = max(label.count("\n") + 1 for label in labels) if labels else 1
    fig, ax = plt.subplots(figsize=(5.5, 0.8 + 0.25 * lines * len(recipe)))
    colors = ["tab:red" if i.startswith("the report") else "tab:blue" for i in recipe.index]
    ax.barh(labels, recipe["hours for 104M tokens"], color=colors)
    ax.set_xlabel(f"hours for the report's {REPORT.tokens_processed / 1e6:.0f}M tokens\n"
                  "(lower is faster)", fontsize=13)
    ax.tick_params(labelsize=12)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def recipe_minutes(tokens_per_s: float) -> float:
    """Minutes the report's training tokens take at ``tokens_per_s``."""
    return REPORT.tokens_processed / tokens_per_s / 60


def gpu_recipe_times(results: list[dict]) -> list[tuple[str, float, float]]:
    """``(device name, fastest tokens/s, minutes for the recipe)`` of each CUDA result."""
    return [(r["device_name"], r["best_tokens_per_s"], recipe_minutes(r["best_tokens_per_s"]))
            for r in results if r["device"] == "cuda"]
