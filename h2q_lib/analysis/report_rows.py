"""The report's progress rows, each compared with the quantity it is.

The report's table has two kinds of rows. Rows 500 to 6,000 print a Perplexity equal to
exp(Loss) (the audit checks it), and the report's best validation loss 1.0828 is row 6,000's
Loss: they are **evaluation rows**, compared with a run's validation loss. Rows 100 and 6,350
print no Perplexity: they are **training-log rows**, lines a training loop printed, compared
with a training loss. Which training loss the report's loop printed is not said, so each
run gives three readings of it, all from the per-step losses its ``log.jsonl`` keeps:

- the step's own loss (one batch of 32 sequences);
- the mean of the last ``WINDOW`` steps (a logger that averages since its last line);
- the running mean since step 1 (a logger that never resets its average).

Differences are always run − report: positive when the run's loss is higher. The values are
numbers; ``book.wording.readings`` words the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from h2q_lib.claims.completion_report import REPORT, ProgressRow, ReportClaims

EVALUATION = "evaluation"
TRAINING_LOG = "training log"
WINDOW = 10
STEP_LOSS = "step's own loss"
WINDOW_MEAN = f"mean of the last {WINDOW} steps"
RUNNING_MEAN = "running mean since step 1"
TRAINING_READINGS = (STEP_LOSS, WINDOW_MEAN, RUNNING_MEAN)
# a run "reproduces" a row when |run − report| ≤ this fraction of the report's Loss (the
# readings chapter's tolerance)
TOLERANCE = 0.05


def row_kind(row: ProgressRow) -> str:
    """``EVALUATION`` for a row with a Perplexity, ``TRAINING_LOG`` for one without."""
    return EVALUATION if row.perplexity is not None else TRAINING_LOG


def rows_of_kind(kind: str, claims: ReportClaims = REPORT) -> tuple[int, ...]:
    """The steps of the report's rows of ``kind``."""
    return tuple(r.step for r in claims.progress if row_kind(r) == kind)


def row_kinds_table(claims: ReportClaims = REPORT) -> pd.DataFrame:
    """Each row of the report's table, its kind, and what a run's number there is."""
    return pd.DataFrame([{
        "step": r.step, "report Loss": r.loss,
        "Perplexity printed": "yes" if r.perplexity is not None else "no",
        "kind of row": row_kind(r),
        "compared with": "validation loss" if row_kind(r) == EVALUATION else
        "training loss: " + ", ".join(TRAINING_READINGS),
    } for r in claims.progress])


def step_losses(log: list[dict]) -> dict[int, float]:
    """Every optimizer step's training loss, by step (1-based), from the log records'
    ``step_losses`` (the losses of the steps since the record before)."""
    out: dict[int, float] = {}
    for record in sorted(log, key=lambda r: r["step"]):
        losses = record.get("step_losses") or []
        first = record["step"] - len(losses) + 1
        out.update({first + i: float(v) for i, v in enumerate(losses)})
    return out


def training_readings(log: list[dict], step: int,
                      window: int = WINDOW) -> dict[str, float | None] | None:
    """The three readings of a training-log line at ``step``: the step's own loss, the mean
    of the ``window`` steps ending there, the mean of steps 1 … ``step``. A reading is None
    when the log lacks a step it needs (a run resumed past unlogged steps); None when the
    log has no loss of ``step`` itself."""
    losses = step_losses(log)
    if step not in losses:
        return None

    def mean(first: int) -> float | None:
        needed = range(max(first, 1), step + 1)
        return None if any(s not in losses for s in needed) else \
            float(np.mean([losses[s] for s in needed]))

    return {STEP_LOSS: losses[step], WINDOW_MEAN: mean(step - window + 1),
            RUNNING_MEAN: mean(1)}


@dataclass(frozen=True)
class TrainingRow:
    """One run's three readings at one training-log row, against the report's Loss."""

    run: str
    step: int
    report: float
    readings: dict[str, float | None]

    def diff(self, reading: str) -> float | None:
        """run − report under ``reading`` (None where the reading is not available)."""
        value = self.readings[reading]
        return None if value is None else value - self.report

    def reproduced(self, reading: str, tolerance: float = TOLERANCE) -> bool:
        diff = self.diff(reading)
        return diff is not None and abs(diff) <= tolerance * self.report


def training_rows(runs: list, claims: ReportClaims = REPORT) -> list[TrainingRow]:
    """Every run's readings at every training-log row it reached (``runs``: objects with
    ``name`` and ``log``, such as ``curves.Run``)."""
    out = []
    for row in claims.progress:
        if row_kind(row) != TRAINING_LOG:
            continue
        for run in runs:
            readings = training_readings(run.log, row.step)
            if readings is not None:
                out.append(TrainingRow(run.name, row.step, row.loss, readings))
    return out


def training_rows_table(runs: list, claims: ReportClaims = REPORT) -> pd.DataFrame:
    """Per run and training-log row: the report's Loss, the three readings and run − report
    under each."""
    out = []
    for r in training_rows(runs, claims):
        entry = {"step": r.step, "run": r.run, "report Loss": r.report}
        for reading in TRAINING_READINGS:
            entry[f"{reading}: loss"] = r.readings[reading]
        for reading in TRAINING_READINGS:
            entry[f"{reading}: run − report"] = r.diff(reading)
        out.append(entry)
    return pd.DataFrame(out)


@dataclass(frozen=True)
class TrainingRowOutcome:
    """The readings of every run at one training-log row, against the report's Loss."""

    step: int
    tolerance: float
    diffs: list[float]  # run − report under every available (run, reading)
    hits: list[tuple[str, str]]  # the (run, reading) within tolerance, in the runs' order


def training_row_outcome(runs: list, step: int, claims: ReportClaims = REPORT,
                         tolerance: float = TOLERANCE) -> TrainingRowOutcome | None:
    """Which readings of which runs come within ``tolerance`` of the report's Loss at the
    training-log row ``step``; None when no run reached it."""
    rows = [r for r in training_rows(runs, claims) if r.step == step]
    if not rows:
        return None
    available = {(r.run, reading): r.diff(reading) for r in rows
                 for reading in TRAINING_READINGS if r.diff(reading) is not None}
    hits = {(r.run, reading) for r in rows for reading in TRAINING_READINGS
            if r.reproduced(reading, tolerance)}
    order = [r.run for r in rows]
    return TrainingRowOutcome(step, tolerance, list(available.values()), sorted(
        hits, key=lambda h: (order.index(h[0]), TRAINING_READINGS.index(h[1]))))
