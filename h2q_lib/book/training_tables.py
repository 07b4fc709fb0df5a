"""Tables and figures of the training chapter (``notebooks/02_train.ipynb``), read from a run
folder: the run's results, speed and sessions, its progress beside the report's table, its
loss curves, checkpoints and samples."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from h2q_lib.claims.completion_report import REPORT, ReportClaims

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESULT_KEYS = ("steps", "tokens_seen", "epochs", "final_train_loss", "final_val_loss",
               "best_val_loss", "best_perplexity", "parameters", "vocab_size", "train_tokens",
               "val_tokens", "train_source", "train_is_slice", "val_source")
SPEED_KEYS = ("device", "precision", "precision_reason", "elapsed_s", "mean_tokens_per_s",
              "peak_rss_GB")


def training_summary(summary: dict) -> pd.Series:
    """The run's results (deterministic for a machine's kernels)."""
    return pd.Series({k: summary.get(k) for k in RESULT_KEYS}, name="this run")


def training_speed(summary: dict) -> pd.Series:
    """Where, in what precision (and why) and how fast the run trained."""
    return pd.Series({k: summary.get(k) for k in SPEED_KEYS}, name="this run")


def sessions_table(summary: dict) -> pd.DataFrame:
    """Each process that trained part of the run: steps, device, precision, attention kernel
    (``sdpa`` for sessions from before the attention rule, the only kernel then), git
    revision."""
    rows = summary.get("sessions", [])
    columns = ["from_step", "to_step", "device", "precision", "reason", "attention",
               "git_revision"]
    return pd.DataFrame([{c: r.get(c, "sdpa" if c == "attention" else None) for c in columns}
                         for r in rows], columns=columns)


def report_progress_table(claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The report's progress table with the tokens processed at each step added."""
    per_step = claims.tokens_per_step()
    return pd.DataFrame(
        [{"step": r.step, "tokens": r.step * per_step, "loss": r.loss,
          "perplexity": r.perplexity, "tok/s": r.tokens_per_s, "progress %": r.progress_pct}
         for r in claims.progress]
    ).set_index("step")


def progress_table(log: list[dict], schedule_steps: int) -> pd.DataFrame:
    """The run's evaluation rows in the report's columns (Loss, Perplexity, tok/s, Progress).

    Loss is the training loss of that step and Perplexity exp(validation loss), as the
    report pairs them; Progress is the step's share of the schedule.
    """
    rows = [{"step": r["step"], "tokens": r["tokens_seen"], "loss": r["train_loss"],
             "val loss": r["val_loss"], "perplexity": r["perplexity"],
             "tok/s": r["tokens_per_s"], "progress %": 100.0 * r["step"] / schedule_steps}
            for r in log if r.get("val_loss") is not None]
    return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()


def beside_report(log: list[dict], claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The run at each report row it reached at the report's tokens per step, each against
    the quantity the row is (``report_rows``): an evaluation row against the run's validation
    loss, a training-log row against the run's training loss read three ways. Differences
    are ours − report.
    """
    from h2q_lib.analysis.report_rows import (
        EVALUATION,
        RUNNING_MEAN,
        STEP_LOSS,
        WINDOW_MEAN,
        row_kind,
        training_readings,
    )

    by_step = {r["step"]: r for r in log}
    rows = []
    for row in claims.progress:
        ours = by_step.get(row.step)
        if ours is None or ours["tokens_seen"] != row.step * claims.tokens_per_step():
            continue
        kind = row_kind(row)
        entry = {"step": row.step, "kind of row": kind, "report loss": row.loss,
                 "our validation loss": None, "our training loss: that step": None,
                 "our training loss: last 10 steps": None,
                 "our training loss: since step 1": None, "ours − report": None,
                 "relative": None}
        if kind == EVALUATION:
            if ours.get("val_loss") is None:
                continue
            diff = ours["val_loss"] - row.loss
            entry.update({"our validation loss": ours["val_loss"], "ours − report": diff,
                          "relative": diff / row.loss})
        else:
            readings = training_readings(log, row.step) or {
                STEP_LOSS: ours.get("train_loss"), WINDOW_MEAN: ours.get("train_loss_avg"),
                RUNNING_MEAN: None}
            entry.update({"our training loss: that step": readings[STEP_LOSS],
                          "our training loss: last 10 steps": readings[WINDOW_MEAN],
                          "our training loss: since step 1": readings[RUNNING_MEAN]})
        rows.append(entry)
    return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()


def training_loss_readings(row: pd.Series) -> list[tuple[str, float]]:
    """A training-log row of ``beside_report``: each reading of our training loss it holds,
    as (how it was read, loss), in the order that step, the last 10 steps, since step 1."""
    names = {"our training loss: that step": "that step",
             "our training loss: last 10 steps": "the last 10 steps",
             "our training loss: since step 1": "since step 1"}
    return [(label, float(row[col])) for col, label in names.items()
            if row.get(col) is not None and not pd.isna(row[col])]


def beside_compact(beside: pd.DataFrame) -> pd.DataFrame:
    """``beside_report`` in four short columns for a narrow page (the intro on a phone): the
    row's kind, the report's Loss, ours (the validation loss, or the range of the training
    readings) and ours − report."""
    rows = []
    for step, row in beside.iterrows():
        if row["kind of row"] == "evaluation":
            ours = f"{row['our validation loss']:.3f} (validation)"
            diff = f"{row['ours − report']:+.3f}"
        else:
            values = [v for _, v in training_loss_readings(row)]
            ours = f"{min(values):.3f}–{max(values):.3f} (training)"
            low, high = min(values) - row["report loss"], max(values) - row["report loss"]
            diff = f"{low:+.3f} to {high:+.3f}"
        rows.append({"step": step, "row": row["kind of row"], "report": row["report loss"],
                     "ours": ours, "ours − report": diff})
    return pd.DataFrame(rows)


def beside_values(beside: pd.DataFrame) -> dict[str, float]:
    """``beside_report``'s numbers for the book's pages to cite: at each evaluation row
    ``at<step>_report``, ``at<step>_ours`` (validation), ``at<step>_diff`` (ours − report);
    ``beside_last_step`` (0 when the run reached none of the report's steps)."""
    out: dict[str, float] = {"beside_last_step": int(beside.index.max()) if len(beside) else 0}
    for step, row in beside.iterrows():
        if row["kind of row"] != "evaluation":
            continue
        out[f"at{step}_report"] = float(row["report loss"])
        out[f"at{step}_ours"] = float(row["our validation loss"])
        out[f"at{step}_diff"] = float(row["ours − report"])
    return out


def plot_training_curves(log: list[dict], claims: ReportClaims = REPORT) -> Figure:
    """Both runs' losses against tokens processed, on one plot (log tokens)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    evals = [r for r in log if r.get("val_loss") is not None]
    ax.plot([r["tokens_seen"] for r in log], [r["train_loss"] for r in log],
            label="this run: training loss", color="tab:blue", alpha=0.5)
    ax.plot([r["tokens_seen"] for r in evals], [r["val_loss"] for r in evals], "o-",
            label="this run: validation loss", color="tab:blue", ms=4)
    rep = report_progress_table(claims)
    ax.plot(rep["tokens"], rep["loss"], "s", color="tab:red",
            label="report: table rows (measured points only)")
    ax.set_xscale("log")
    ax.set_xlabel("tokens processed (log scale)", fontsize=11)
    ax.set_ylabel("loss (nats per character)", fontsize=11)
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def checkpoint_files(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Checkpoint and weights files with their sizes (MB = 10^6 bytes, as the report)."""
    run_dir = Path(run_dir)
    files = sorted((run_dir / "checkpoints").glob("*.pt")) + sorted(run_dir.glob("*.safetensors"))
    rows = [{"file": str(p.relative_to(run_dir)), "MB": p.stat().st_size / 1e6} for p in files]
    return pd.DataFrame(rows, columns=["file", "MB"]).set_index("file")


def checkpoint_sizes(files: pd.DataFrame) -> dict[str, float | None]:
    """MB of the newest step checkpoint and of the final weights (None where absent)."""
    steps = files[files.index.str.startswith("checkpoints/step")]
    final = files[files.index == "final_model.safetensors"]
    return {"step_checkpoint_MB": float(steps["MB"].iloc[-1]) if len(steps) else None,
            "final_weights_MB": float(final["MB"].iloc[0]) if len(final) else None}


def samples_table(samples: list[dict]) -> pd.DataFrame:
    """Generated samples by step and prompt."""
    rows = [{"step": s["step"], "prompt": s["prompt"], "sample": s["text"]} for s in samples]
    return pd.DataFrame(rows, columns=["step", "prompt", "sample"]).set_index(["step", "prompt"])


def _uncut(text: str) -> str:
    """The report's sample with its trailing "..." said in words (the report cut it there)."""
    stripped = text.rstrip()
    for tail in ("...", "…"):
        if stripped.endswith(tail):
            return stripped[: -len(tail)].rstrip() + " [the report's sample stops here]"
    return text


def samples_beside_report(samples: list[dict], claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The run's samples at its last step beside the report's samples, by prompt."""
    last = max((s["step"] for s in samples), default=None)
    rows = [{"source": f"report, step {r.step}", "prompt": r.prompt,
             "sample": _uncut(r.output)} for r in claims.generated_samples]
    rows += [{"source": f"this run, step {s['step']}", "prompt": s["prompt"], "sample": s["text"]}
             for s in samples if s["step"] == last]
    return pd.DataFrame(rows, columns=["source", "prompt", "sample"]).set_index(
        ["prompt", "source"]).sort_index(level=0, sort_remaining=False)
