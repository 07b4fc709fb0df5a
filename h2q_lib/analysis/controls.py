"""Could the gap be ours? Run-to-run differences measured at common steps: control runs (the
stated recipe with one thing changed: the seed, the training text) against the stated run, and
a run trained again further against the run it continues.

The values are numbers; ``book.wording.readings`` words them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from h2q_lib.analysis.curves import Run, continuation
from h2q_lib.analysis.evaluation_rows import row_results
from h2q_lib.claims.completion_report import REPORT, ReportClaims


def controls_table(base: Run, controls: list[Run]) -> pd.DataFrame:
    """At every step where ``base`` and all ``controls`` measured a validation loss: base's
    loss, each control's and the control minus the base (Δ)."""
    losses = [run.val_losses() for run in (base, *controls)]
    steps = sorted(set.intersection(*(set(v) for v in losses))) if controls else []
    table = pd.DataFrame({"step": steps, f"{base.name}: val loss": [losses[0][s] for s in steps]})
    for run, own in zip(controls, losses[1:], strict=True):
        table[f"{run.name}: val loss"] = [own[s] for s in steps]
        table[f"{run.name}: Δ loss"] = [own[s] - losses[0][s] for s in steps]
    return table


@dataclass(frozen=True)
class ControlShifts:
    """How far the controls move the base run's validation loss, beside the runs' gaps to the
    report's row 500."""

    last_step: int  # the last step every control reached
    shifts: dict[str, float]  # control − base there, by control
    largest: float  # the largest |shift| there
    largest_anywhere: float  # the largest |control − base| at any common step
    largest_anywhere_step: int
    gaps_at_500: list[tuple[str, float]]  # (run, run − report) for the runs reaching row 500


def control_shifts(base: Run, controls: list[Run], runs: list[Run],
                   claims: ReportClaims = REPORT) -> ControlShifts | None:
    """The controls' shifts at their last common step and at any (``controls_table``), and
    each of ``runs``' run − report at row 500; None when no control shares a step."""
    table = controls_table(base, controls)
    if table.empty:
        return None
    last = table.iloc[-1]
    shifts = {run.name: float(last[f"{run.name}: Δ loss"]) for run in controls}
    gaps = [(run.name, row.diff) for run in runs
            for row in row_results(run, (500,), claims) if row.val_loss is not None]
    deltas = table[[f"{run.name}: Δ loss" for run in controls]].abs()
    peak_step = int(table["step"].iloc[int(deltas.max(axis=1).to_numpy().argmax())])
    return ControlShifts(int(last["step"]), shifts, max(abs(v) for v in shifts.values()),
                         float(deltas.to_numpy().max()), peak_step, gaps)


@dataclass(frozen=True)
class RerunAgreement:
    """A run and the longer run continuing it (``curves.continuation``), where both measured."""

    short: str
    short_last_step: int
    long: str
    long_last_step: int
    steps_compared: int
    largest_gap: float  # the largest |long − short| validation loss
    largest_gap_step: int


def rerun_agreements(runs: list[Run]) -> list[RerunAgreement]:
    """For each run another of ``runs`` continues: how closely the two agree where both
    measured a validation loss (run-to-run noise)."""
    out = []
    for short in runs:
        long = continuation(short, runs)
        if long is None:
            continue
        table = controls_table(short, [long])
        gap = table[f"{long.name}: Δ loss"].abs().to_numpy()
        out.append(RerunAgreement(short.name, short.last_step, long.name, long.last_step,
                                  len(table), gap.max(),
                                  int(table["step"].iloc[int(gap.argmax())])))
    return out
