"""The readings of the report's schedule side by side: what each changes, and the learning
rate each applies at the report's optimizer steps."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from h2q_lib.analysis.loss_law import rates
from h2q_lib.claims.completion_report import REPORT
from h2q_lib.training.profiles import get_profile
from h2q_lib.training.readings import READINGS


def readings_table() -> pd.DataFrame:
    """Each reading: what differs from the stated recipe and why it is plausible."""
    return pd.DataFrame([{"reading": r.name, "what differs": r.differs,
                          "why it is plausible": r.why} for r in READINGS.values()])


@cache
def report_rates(reading: str, steps: int = REPORT.steps) -> np.ndarray:
    """The rate at each of the report's optimizer steps under ``reading`` (computed once,
    read-only)."""
    lr = rates(get_profile("report", reading=reading), steps)
    lr.setflags(write=False)
    return lr


def reading_rates(steps: int = REPORT.steps) -> pd.DataFrame:
    """Each reading's learning rate (in units of 10⁻⁴) at the report's rows 100, 500 and
    1,000, and the step where its cosine reaches ``min_lr``."""
    out = []
    for reading in READINGS.values():
        cfg = get_profile("report", reading=reading.name)
        lr = report_rates(reading.name, steps) * 1e4
        length = reading.schedule_length or cfg.schedule_length
        ended = reading.first_step_at(length - 1, cfg.grad_accum)
        out.append({"reading": reading.name, "rate ×10⁻⁴ at step 100": lr[99],
                    "at step 500": lr[499], "at step 1,000": lr[999],
                    "cosine ends at step": ended if ended <= steps else None})
    return pd.DataFrame(out)
