"""Readings of the report's learning-rate schedule: named, documented differences, as data.

The report states "lr 6e-4, warmup 2,000, cosine decay, 6,350 steps, batch 8 x 4 accumulated"
and nothing about *what* its scheduler counts. A reading fixes that one unstated choice; a
run selects it with the recipe field ``reading`` (``h2q train --reading micro-batch``), so it
is recorded in ``config.json`` and checked on resume like every other recipe field.

``lr_at(step, cfg)`` is the one schedule every reading shares (linear warm-up, then a cosine
to ``min_lr``); a reading only says at which *position* of that schedule optimizer step
``step`` is, and what happens once the position passes the schedule's end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from h2q_lib.claims.completion_report import REPORT

# One pass over the report's training text (its "527,706,706 tokens") at its 16,384 tokens a
# step: the length a cosine set for "one epoch" would have.
ONE_PASS_STEPS = math.ceil(REPORT.train_tokens / REPORT.tokens_per_step())

LR_UNITS = ("optimizer step", "micro-batch")
AFTER_SCHEDULE = ("hold min_lr", "follow the cosine")


@dataclass(frozen=True)
class Reading:
    """One reading of the report's schedule, with what differs and why it is plausible."""

    name: str
    lr_unit: str  # what one scheduler position counts: see LR_UNITS
    after_schedule: str  # past the schedule's end: see AFTER_SCHEDULE
    differs: str
    why: str
    # the cosine's length in the reading's units when the reading fixes it (None: the
    # recipe's schedule_steps)
    schedule_length: int | None = None

    def position(self, step: int, grad_accum: int) -> int:
        """The scheduler's position when optimizer step ``step`` (0-based) is applied.

        Stepped once per optimizer step: ``step``. Stepped once per micro-batch after each
        backward pass, the scheduler has been stepped ``(step + 1) * grad_accum - 1`` times
        when the ``step``-th optimizer update reads its rate.
        """
        if self.lr_unit == "micro-batch":
            return (step + 1) * grad_accum - 1
        return step

    def first_step_at(self, position: int, grad_accum: int) -> int:
        """The first optimizer step, counted from 1, whose scheduler position is at least
        ``position``: the inverse of ``position`` (per micro-batch, ⌈(position + 1) /
        grad_accum⌉)."""
        if self.lr_unit == "micro-batch":
            return -(-(position + 1) // grad_accum)
        return position + 1


READINGS: dict[str, Reading] = {
    "stated": Reading(
        name="stated",
        lr_unit="optimizer step",
        after_schedule="hold min_lr",
        differs="nothing: warm-up over 2,000 optimizer steps, cosine to step 6,350",
        why="the report's words taken literally; what runs/prefix trained",
    ),
    "micro-batch": Reading(
        name="micro-batch",
        lr_unit="micro-batch",
        after_schedule="hold min_lr",
        differs="the scheduler steps once per micro-batch (4 per optimizer step): warm-up "
        "ends at optimizer step 500, the cosine reaches min_lr at step 1,588, then holds",
        why="a common slip with gradient accumulation (scheduler.step() inside the "
        "accumulation loop); it puts the full 6e-4 rate at step 500, where the report's "
        "loss has already fallen to 1.52. After the end it holds min_lr as nanoGPT's get_lr "
        "does; torch's CosineAnnealingLR and transformers' cosine schedule would instead "
        "climb back up, which the report's steadily falling loss from step 1,500 to 6,000 "
        "does not suggest",
    ),
    "micro-batch-cosine": Reading(
        name="micro-batch-cosine",
        lr_unit="micro-batch",
        after_schedule="follow the cosine",
        differs="as micro-batch, but past step 1,588 the rate follows the cosine back up "
        "(period 2 x 4,350 micro-batches), as torch's CosineAnnealingLR does",
        why="what a per-micro-batch CosineAnnealingLR would do; identical to micro-batch "
        "through step 1,588, so it matters only for the later rows",
    ),
    "one-pass cosine": Reading(
        name="one-pass cosine",
        lr_unit="optimizer step",
        after_schedule="hold min_lr",
        differs=f"the cosine is set for one pass over the report's training text "
        f"({ONE_PASS_STEPS:,} steps of 16,384 tokens), not for 6,350 steps; warm-up as stated",
        why="the report's Progress column is elapsed time as a share of 5 hours, and its last "
        "row 6,350 is 99.6 % of 5 hours: a time budget, not the schedule, most likely ended "
        "the run, and the report speaks of one epoch; identical to stated until the warm-up "
        "ends at step 2,000",
        schedule_length=ONE_PASS_STEPS,
    ),
}


class ScheduleRecipe(Protocol):
    """The recipe fields the schedule reads (``profiles.TrainConfig`` has them; it names
    ``READINGS`` as the allowed values of ``reading``, so this module cannot import it)."""

    reading: str
    grad_accum: int
    warmup: int
    lr: float
    min_lr: float

    @property
    def schedule_length(self) -> int: ...


def get_reading(name: str) -> Reading:
    from h2q_lib.core.errors import ConfigError

    if name not in READINGS:
        raise ConfigError("reading", name, "one of " + ", ".join(READINGS))
    return READINGS[name]


def lr_at(step: int, cfg: ScheduleRecipe) -> float:
    """The learning rate applied at optimizer step ``step`` (0-based) under ``cfg.reading``.

    With p the reading's position of the step, W = ``warmup``, S = the reading's
    ``schedule_length`` or else the recipe's (both counted in the reading's unit):
    lr(p) = lr·(p+1)/W                                      for p < W
    lr(p) = min_lr + ½(lr − min_lr)(1 + cos(π·(p − W)/(S − W)))  after,
    with (p − W)/(S − W) clipped at 1 ("hold min_lr") or not ("follow the cosine").
    """
    reading = get_reading(cfg.reading)
    p = reading.position(step, cfg.grad_accum)
    if p < cfg.warmup:
        return cfg.lr * (p + 1) / cfg.warmup
    total = reading.schedule_length or cfg.schedule_length
    if total <= cfg.warmup:
        return cfg.lr
    progress = (p - cfg.warmup) / (total - cfg.warmup)
    if reading.after_schedule == "hold min_lr":
        progress = min(1.0, progress)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))
