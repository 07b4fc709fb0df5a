"""The report's rows by kind, and the three readings of a training-log row."""

from __future__ import annotations

import pytest

from h2q_lib.analysis.curves import Run
from h2q_lib.analysis.report_rows import (
    EVALUATION,
    RUNNING_MEAN,
    STEP_LOSS,
    TRAINING_LOG,
    WINDOW_MEAN,
    rows_of_kind,
    step_losses,
    training_readings,
    training_rows_table,
)
from h2q_lib.book.wording.readings import training_row_verdict


def log_of(losses: list[float], every: int = 10) -> list[dict]:
    """Log records every ``every`` steps, each with the losses of the steps since the last."""
    return [{"step": end, "train_loss": losses[end - 1], "step_losses": losses[end - every:end]}
            for end in range(every, len(losses) + 1, every)]


def test_rows_with_a_perplexity_are_evaluations_and_the_others_training_log_lines():
    assert rows_of_kind(TRAINING_LOG) == (100, 6350)
    assert rows_of_kind(EVALUATION) == tuple(range(500, 6001, 500))


def test_the_three_readings_are_the_step_the_window_and_the_mean_since_step_one():
    losses = [float(100 - s) for s in range(100)]  # step s (1-based) has loss 101 - s
    log = log_of(losses)
    assert step_losses(log)[1] == 100.0 and step_losses(log)[100] == 1.0
    readings = training_readings(log, 100)
    assert readings[STEP_LOSS] == 1.0
    assert readings[WINDOW_MEAN] == pytest.approx(5.5)  # steps 91..100: losses 10..1
    assert readings[RUNNING_MEAN] == pytest.approx(50.5)
    assert training_readings(log, 105) is None


def test_a_reading_that_needs_an_unlogged_step_is_left_out():
    log = log_of([3.0] * 100)
    log[4]["step_losses"] = log[4]["step_losses"][2:]  # steps 41-42 not logged (a resume)
    readings = training_readings(log, 100)
    assert readings[STEP_LOSS] == 3.0 and readings[WINDOW_MEAN] == 3.0
    assert readings[RUNNING_MEAN] is None


def test_the_verdict_is_undecided_when_the_readings_disagree():
    # the window near 2.70 (within 5 % of the report's 2.718), the mean since step 1 far above
    losses = [4.0] * 90 + [2.7] * 10
    run = Run("r", {}, log_of(losses), None)
    verdict = training_row_verdict([run], 100)
    assert verdict.startswith("undecided") and f"r's {WINDOW_MEAN}" in verdict
    assert f"r's {RUNNING_MEAN}" not in verdict
    table = training_rows_table([run]).iloc[0]
    assert table[f"{RUNNING_MEAN}: run − report"] == pytest.approx(3.87 - 2.718)
    agreed = Run("r", {}, log_of([2.7] * 100), None)
    assert training_row_verdict([agreed], 100).startswith("reproduced under every reading")
    far = Run("r", {}, log_of([3.5] * 100), None)
    assert training_row_verdict([far], 100).startswith("missed under every reading")
    assert training_row_verdict([far], 6350) == "no run reached the training-log row 6,350"
