"""The report's evaluation rows beside runs: each run's validation loss at the report's rows
500 and 1,000, which rows it reproduces, misses or did not reach, and how far each reading's
run closes the stated reading's gap.

A run "reproduces" a row when |run − report| ≤ ``TOLERANCE`` · report. Differences are always
run − report. The values are numbers; ``book.wording.readings`` words them. The training-log
rows (100 and 6,350) are read in ``report_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from h2q_lib.analysis.curves import Run, continuation, glue_key
from h2q_lib.claims.completion_report import REPORT, ReportClaims

# A run "reproduces" a report row when its validation loss there is within this fraction of
# the report's Loss. 5 % leaves room for what differs even where run and report follow the
# same rate: the training text (WikiText-2 vs WikiText-103), the sample of validation
# windows, the seed and the hardware.
TOLERANCE = 0.05
# The report's evaluation rows (those with a Perplexity) a CPU run reaches: a validation loss
# is set beside these only; the training-log row 100 is read in ``report_rows``.
EVALUATION_ROWS = (500, 1000)


@dataclass(frozen=True)
class RowResult:
    """A run's validation loss at one report row, against the report's Loss there."""

    step: int
    report: float
    val_loss: float | None  # None where the run did not reach the step

    @property
    def diff(self) -> float | None:
        return None if self.val_loss is None else self.val_loss - self.report

    @property
    def relative_pct(self) -> float:
        """100 · (run − report) / report (the run reached the step)."""
        return 100 * self.diff / self.report

    def reproduced(self, tolerance: float = TOLERANCE) -> bool:
        """|run − report| ≤ tolerance · report."""
        return self.diff is not None and abs(self.diff) <= tolerance * self.report


def row_results(run: Run, steps: tuple[int, ...] = EVALUATION_ROWS,
                claims: ReportClaims = REPORT) -> list[RowResult]:
    """The run's validation loss at each of the report's rows ``steps``."""
    report = {r.step: r.loss for r in claims.progress}
    out = []
    for step in steps:
        rec = run.record_at(step)
        out.append(RowResult(step, report[step], rec.get("val_loss") if rec else None))
    return out


def rows_beside_runs(runs: list[Run], steps: tuple[int, ...] = EVALUATION_ROWS,
                     claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The report's rows ``steps``, each run's validation loss there (None where the run did
    not reach the step) and the run minus the report (Δ)."""
    report = {r.step: r.loss for r in claims.progress}
    table = pd.DataFrame({"step": list(steps), "report Loss": [report[s] for s in steps]})
    for run in runs:
        results = row_results(run, steps, claims)
        table[f"{run.name}: val loss"] = [r.val_loss for r in results]
        table[f"{run.name}: Δ loss"] = [r.diff for r in results]
    return table


def loss_columns(runs: list[Run], claims: ReportClaims = REPORT) -> pd.DataFrame:
    """At each report row a run reached: the report's Loss beside the run's three candidates
    for it — that step's own training loss, the mean training loss of the logging window
    ending there, and the validation loss."""
    out = []
    for row in claims.progress:
        for run in runs:
            rec = run.record_at(row.step)
            if rec is None:
                continue
            out.append({"step": row.step, "run": run.name, "report Loss": row.loss,
                        "step's training loss": rec["train_loss"],
                        "window mean training loss": rec.get("train_loss_avg"),
                        "validation loss": rec.get("val_loss")})
    return pd.DataFrame(out)


@dataclass(frozen=True)
class RunVerdict:
    """One run against the report's evaluation rows: what the run is, the rows it reproduces,
    misses and did not reach, and how much of the stated reading's gap at row 500 it closes."""

    run: str
    reading: str
    compressed_to: int | None  # its schedule's length when not the report's schedule
    last_step: int
    passes: float | None  # passes over its training text (``summary.json``'s epochs)
    reproduced: list[RowResult]
    missed: list[RowResult]
    unreached: list[int]  # the rows' steps
    closed: float | None = None  # nats of the stated reading's gap at row 500 it closes
    stated_gap: float | None = None  # the stated reading's run − report at row 500
    closed_pct: float | None = None  # closed as a percentage of stated_gap


def _closes(run: Run, runs: list[Run], steps: tuple[int, ...],
            claims: ReportClaims) -> tuple[float, float, float] | None:
    """``(closed, stated gap, closed %)`` at row 500 for a run that is not the stated reading
    itself, where the stated run's loss there is above the report's; None otherwise."""
    stated_run = next((r for r in runs if r.name == "stated"), None)
    stated = next((row for r in runs if r.name == "stated"
                   for row in row_results(r, (500,), claims) if row.val_loss is not None), None)
    at500 = row_results(run, (500,), claims)[0] if 500 in steps else None
    # a run continuing the stated one is the stated reading itself, not an alternative
    stated_itself = run is stated_run or (
        stated_run is not None and continuation(stated_run, [stated_run, run]) is run)
    if stated is None or stated_itself or at500 is None or at500.val_loss is None \
            or not stated.diff > 0:
        return None
    closed = stated.val_loss - at500.val_loss
    return closed, stated.diff, 100 * closed / stated.diff


def run_verdicts(runs: list[Run], steps: tuple[int, ...] = EVALUATION_ROWS,
                 tolerance: float = TOLERANCE,
                 claims: ReportClaims = REPORT) -> list[RunVerdict]:
    """Per run: which of the report's rows ``steps`` its validation loss reproduces within
    ``tolerance`` (a fraction of the report's Loss), which it misses, which it did not reach."""
    out = []
    for run in runs:
        reproduced, missed, unreached = [], [], []
        for r in row_results(run, steps, claims):
            if r.val_loss is None:
                unreached.append(r.step)
            else:
                (reproduced if r.reproduced(tolerance) else missed).append(r)
        cfg = run.recipe
        report_schedule = (cfg.schedule_length == REPORT.steps
                           and cfg.warmup == REPORT.warmup_steps)
        closes = _closes(run, runs, steps, claims) or (None, None, None)
        out.append(RunVerdict(run.name, cfg.reading,
                              None if report_schedule else cfg.schedule_length,
                              run.last_step, (run.summary or {}).get("epochs"),
                              reproduced, missed, unreached, *closes))
    return out


@dataclass(frozen=True)
class VerdictNumbers:
    """The numbers behind the book's verdicts on rows 500 and 1,000."""

    values: dict[str, float | int]  # tolerance_pct, <run>_at<step>, <run>_diff<step>
    stated_diff500: float | None  # the stated run's run − report at row 500
    stated_last_step: int  # 0 without a stated run
    report: dict[int, float]  # the report's Loss by step
    reached: dict[int, list[tuple[str, float]]]  # per row: (run, validation loss)
    reproducing: dict[int, list[str]]  # per row: the runs reproducing it
    longest_run_steps: int


def verdict_numbers(runs: list[Run], steps: tuple[int, ...] = EVALUATION_ROWS,
                    tolerance: float = TOLERANCE,
                    claims: ReportClaims = REPORT) -> VerdictNumbers:
    """Each run's validation loss and difference at each row it reached (``<run>_at<step>``,
    ``<run>_diff<step>``), and per row 500 and 1,000 the runs reaching and reproducing it."""
    values: dict[str, float | int] = {"tolerance_pct": 100 * tolerance}
    reproducing: dict[int, list[str]] = {500: [], 1000: []}
    reached: dict[int, list[tuple[str, float]]] = {500: [], 1000: []}
    for run in runs:
        key = glue_key(run.name)
        for r in row_results(run, steps, claims):
            if r.val_loss is None:
                continue
            values[f"{key}_at{r.step}"] = r.val_loss
            values[f"{key}_diff{r.step}"] = r.diff
            if r.step in reached:
                reached[r.step].append((run.name, r.val_loss))
                if r.reproduced(tolerance):
                    reproducing[r.step].append(run.name)
    stated = next((run for run in runs if run.name == "stated"), None)
    stated_diff = values["stated_diff500"] if stated is not None and \
        "stated_diff500" in values else None
    return VerdictNumbers(values, stated_diff, stated.last_step if stated is not None else 0,
                          {r.step: r.loss for r in claims.progress}, reached, reproducing,
                          max((run.last_step for run in runs), default=0))


@dataclass(frozen=True)
class RowFalls:
    """How far the report's Loss and each run's validation loss fall between two rows."""

    first: int
    last: int
    report_fall: float
    runs: list[tuple[str, float, float, float]]  # (run, its fall, gap at first, gap at last)


def row_falls(runs: list[Run], first: int = 500, last: int = 1000,
              claims: ReportClaims = REPORT) -> RowFalls:
    """The report's fall between rows ``first`` and ``last``, and that of each run that
    reached both, with its run − report at each."""
    falls = []
    for run in runs:
        a, b = row_results(run, (first, last), claims)
        if a.val_loss is None or b.val_loss is None:
            continue
        falls.append((run.name, a.val_loss - b.val_loss, a.diff, b.diff))
    report = {r.step: r.loss for r in claims.progress}
    return RowFalls(first, last, report[first] - report[last], falls)
