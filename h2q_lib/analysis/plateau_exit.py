"""When a run leaves the plateau: the evaluation steps between which its validation loss first
drops below a threshold just under the ~2.45-nat plateau (the character-bigram level).

The step is bracketed, never interpolated: a run evaluated every 50 steps says only that it
left between two evaluations 50 steps apart, so two runs whose brackets overlap left at a step
these evaluations cannot tell apart. The values are numbers; ``book.wording.runs_tried``
words them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from h2q_lib.analysis.curves import Run, continuation, continued_runs

# Below the plateau (~2.45 nats) by 0.05 nats, the spread of the validation loss between two
# seeds on the plateau (clock.HELD_OUT_TOLERANCE): a run under it has left the plateau, not
# wandered along it.
EXIT_LOSS = 2.40


@dataclass(frozen=True)
class PlateauExit:
    """A run's exit: the last evaluated step at or above ``EXIT_LOSS`` (``after``; None when
    its first evaluation is already below) and the first below it (``by``; None when the run
    never got below)."""

    run: str
    after: int | None
    by: int | None
    last_step: int

    @property
    def words(self) -> str:
        if self.by is None:
            return f"not by step {self.last_step:,}"
        if self.after is None:
            return f"by step {self.by:,}"
        return f"steps {self.after:,}–{self.by:,}"


def plateau_exit(run: Run, below: float = EXIT_LOSS) -> PlateauExit:
    """Where ``run``'s validation loss first drops below ``below`` nats: the evaluation steps
    that bracket it (``PlateauExit``)."""
    after = None
    for step, loss in run.val_losses().items():
        if loss < below:
            return PlateauExit(run.name, after, step, run.last_step)
        after = step
    return PlateauExit(run.name, after, None, run.last_step)


def exit_table(runs: list[Run], stated: Run, below: float = EXIT_LOSS) -> pd.DataFrame:
    """Per run: its evaluation spacing, the steps between which it left the plateau, and its
    validation loss at its last evaluation beside the ``stated`` run's at that step (run −
    stated), in nats to 3 decimals ("—" where ``stated`` has no evaluation there, and for
    ``stated`` itself)."""
    stated_losses = stated.val_losses()
    out = []
    for run in runs:
        steps = list(measured := run.val_losses())
        if not steps:
            continue
        step, loss = steps[-1], measured[steps[-1]]
        base = None if run is stated else stated_losses.get(step)
        out.append({"run": run.name,
                    "evaluated every": steps[1] - steps[0] if len(steps) > 1 else "—",
                    f"left the plateau (validation < {below:.2f})":
                        plateau_exit(run, below).words,
                    "last evaluation": f"step {step:,}", "validation loss": f"{loss:.3f}",
                    "stated recipe there": "—" if base is None else f"{base:.3f}",
                    "run − stated": "—" if base is None else f"{loss - base:+.3f}"})
    return pd.DataFrame(out)


def exit_runs(runs: list[Run], more: list[Run]) -> tuple[list[Run], Run]:
    """The runs an exit table compares: ``runs`` without those another of them continues,
    then ``more``; and the baseline, the longest run of the stated recipe (``runs[0]`` or
    the run that continues it, which is evaluated at more steps)."""
    continued = set(continued_runs(runs))
    return ([r for r in runs if r.name not in continued] + list(more),
            continuation(runs[0], runs) or runs[0])
