"""The schedule clock τ_p, its collapse of runs, the leave-one-out check and pre-registration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from h2q_lib.analysis.clock import (
    MIN_STEP,
    choose_p,
    clock,
    fit_clock,
    fit_collapse,
    leave_one_out,
    passes,
)
from h2q_lib.analysis.loss_law import Curve, areas, rates
from h2q_lib.analysis.preregistration import beside_measurement, prediction
from h2q_lib.claims.completion_report import REPORT
from h2q_lib.cli import main
from h2q_lib.training.profiles import get_profile

TRUE_P = 0.4


def true_loss(tau: np.ndarray) -> np.ndarray:
    """A plateau near 2.45 nats, a fall off it near τ = 150, then a slow decline."""
    return 1.5 + 1.0 / (1.0 + (tau / 150.0) ** 3) - 0.1 * np.log1p(tau / 400.0)


def synthetic(name: str, cfg, p: float = TRUE_P, eval_every: int = 25,
              noise: float = 0.0, seed: int = 0) -> Curve:
    lr = rates(cfg, cfg.steps)
    steps = np.arange(eval_every, cfg.steps + 1, eval_every)
    losses = true_loss(clock(lr, p)[steps - 1])
    losses = losses + np.random.default_rng(seed).normal(0, noise, len(steps))
    return Curve(name, steps, losses, lr)


SCHEDULES = {
    "stated": dict(steps=1000),
    "micro-batch": dict(steps=500, reading="micro-batch"),
    "no-warmup": dict(steps=500, warmup=0),
}


def curves(p: float = TRUE_P, noise: float = 0.0) -> list[Curve]:
    return [synthetic(name, get_profile("prefix", **recipe), p, noise=noise, seed=i)
            for i, (name, recipe) in enumerate(SCHEDULES.items())]


def test_p_zero_counts_steps_and_p_one_is_the_summed_rate():
    lr = rates(get_profile("prefix", steps=300), 300)
    assert clock(lr, 0.0).tolist() == list(range(1, 301))
    assert clock(lr, 1.0) == pytest.approx(areas(lr)[0] / 6e-4)


def test_choose_p_recovers_the_exponent_that_made_the_curves():
    p, rms = choose_p(curves(noise=0.003))
    assert p == pytest.approx(TRUE_P, abs=0.1)
    assert rms < 0.02


def test_runs_made_on_one_clock_pass_the_held_out_check_and_fail_it_on_the_summed_rate():
    made = curves(noise=0.003)
    fitted = leave_one_out(made)
    assert passes(fitted), [r.max_error for r in fitted]
    summed = leave_one_out(made, p=1.0)
    assert not passes(summed)
    assert max(r.max_error for r in summed if r.max_error is not None) > 0.1


def test_runs_that_do_not_collapse_fail_the_check():
    """Curves made on different clocks have no common p: the check must say so."""
    made = [synthetic("stated", get_profile("prefix", steps=1000), p=0.0),
            synthetic("micro-batch", get_profile("prefix", steps=500, reading="micro-batch"),
                      p=1.0),
            synthetic("no-warmup", get_profile("prefix", steps=500, warmup=0), p=0.5)]
    assert not passes(leave_one_out(made))


def test_the_collapse_is_non_increasing_and_says_nothing_outside_its_range():
    collapse = fit_collapse(curves(noise=0.01), TRUE_P)
    assert (np.diff(collapse.values) <= 0).all()
    lo, hi = collapse.clock_range
    inside = collapse.at(np.array([lo, (lo + hi) / 2, hi]))
    assert not np.isnan(inside).any()
    assert np.isnan(collapse.at(np.array([lo / 2, hi * 2]))).all()
    lr = rates(get_profile("prefix", steps=500), 500)
    assert np.isnan(collapse.predict(lr, np.array([MIN_STEP - 1]))).all()


def test_a_prediction_gives_no_number_before_min_step_or_outside_the_range():
    fit = fit_clock(curves())
    cfg = get_profile("prefix", steps=2000, warmup=0, eval_every=25)
    pred = prediction(cfg, fit, "no-warmup", "h2q train ...", "abc")
    points = {p["step"]: p for p in pred["points"]}
    assert points[25]["predicted"] is None and points[25]["not predicted"] == "before step 100"
    assert points[2000]["predicted"] is None
    assert points[2000]["not predicted"] == "clock outside the fitted range"
    covered = [p for p in pred["points"] if p["predicted"] is not None]
    assert covered and all(p["high"] - p["low"] == pytest.approx(2 * fit.band)
                           for p in covered)
    json.dumps(pred, allow_nan=False)


def test_beside_measurement_says_whether_each_band_held(tmp_path):
    from h2q_lib.analysis.curves import Run

    pred = {"points": [{"step": 100, "predicted": 2.5, "low": 2.45, "high": 2.55},
                       {"step": 125, "predicted": 2.4, "low": 2.35, "high": 2.45},
                       {"step": 150, "predicted": None, "low": None, "high": None},
                       {"step": 175, "predicted": 2.3, "low": 2.25, "high": 2.35}]}
    run = Run("n1", {}, [{"step": 100, "val_loss": 2.52}, {"step": 125, "val_loss": 2.2},
                         {"step": 150, "val_loss": 2.1}], None)
    table = beside_measurement(pred, run)
    assert table["held"].tolist()[:2] == ["yes", "no"] and table["held"].isna().tolist()[2:]
    assert table["measured − predicted"].iloc[0] == pytest.approx(0.02)
    assert table["measured"].isna().iloc[3]


def test_the_preregistered_table_sets_measured_over_predicted_with_a_mark():
    from h2q_lib.analysis.curves import Run
    from h2q_lib.analysis.preregistration import preregistered_table

    pred = {"clock": {"band_nats": 0.05},
            "points": [{"step": 100, "predicted": 2.5, "low": 2.45, "high": 2.55},
                       {"step": 125, "predicted": 2.4, "low": 2.35, "high": 2.45},
                       {"step": 150, "predicted": None, "low": None, "high": None},
                       {"step": 175, "predicted": 2.3, "low": 2.25, "high": 2.35}]}
    run = Run("n1", {}, [{"step": 100, "val_loss": 2.52}, {"step": 125, "val_loss": 2.2},
                         {"step": 150, "val_loss": 2.1}], None)
    table = preregistered_table([("N1 no warm-up", pred, run)])
    assert table.columns.tolist() == ["step", "N1: measured / predicted (± 0.050)"]
    assert table.iloc[:, 1].tolist() == ["2.520 / 2.500 ✓", "2.200 / 2.400 ✗", "2.100 / —",
                                         "— / 2.300"]


def test_predict_refuses_too_few_runs_in_one_line(tmp_path, capsys):
    assert main(["predict", "--name", "n1", "--runs-dir", str(tmp_path),
                 "--warmup", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("h2q: error:") and "runs_dir" in err and len(err.splitlines()) == 1


def test_predict_writes_the_prediction_from_the_committed_runs(tmp_path):
    """On the repository's committed runs: the clock passes its check and predicts the
    no-warm-up run from step 100 on."""
    out = tmp_path / "prediction.json"
    assert main(["predict", "--name", "no-warmup", "--warmup", "0", "--eval-every", "25",
                 "--out", str(out)]) == 0
    pred = json.loads(out.read_text())
    assert pred["recipe"]["warmup"] == 0 and pred["recipe"]["eval_every"] == 25
    assert pred["command"] == "h2q train --profile prefix --warmup 0 --eval-every 25"
    assert "no-warmup" not in pred["clock"]["fitted_on"]
    assert [p["step"] for p in pred["points"] if p["predicted"] is not None][0] == 100


def test_the_report_rows_on_the_clock_are_evaluation_rows_predicted_only_inside_the_range():
    from h2q_lib.analysis.clock import report_rows_on_clock

    fit = fit_clock(curves())
    table = report_rows_on_clock(fit.collapse, ("stated", "one-pass cosine")).set_index("step")
    assert 100 not in table.index and 6350 not in table.index  # training-log rows
    lo, hi = fit.collapse.clock_range
    for name in ("stated", "one-pass cosine"):
        inside = (table[f"{name}: clock"] >= lo) & (table[f"{name}: clock"] <= hi)
        assert table[f"{name}: loss"].notna().tolist() == inside.tolist()
    assert table.loc[6000, "stated: loss"] is None or pd.isna(table.loc[6000, "stated: loss"])


def test_a_reading_cannot_change_the_rows_before_its_rates_part_from_the_stated_ones():
    from h2q_lib.analysis.clock import rows_before_readings_part

    assert rows_before_readings_part("one-pass cosine") == (100, 500, 1000, 1500, 2000)
    assert rows_before_readings_part("micro-batch") == ()
    assert rows_before_readings_part("stated") == tuple(r.step for r in REPORT.progress)


def test_the_compute_table_adds_up_every_committed_run(tmp_path):
    from h2q_lib.analysis.compute import compute_table, compute_total
    from h2q_lib.core.run_folder import write_json

    machine = {"processor": "CPU X", "cpu_capability": "AVX2", "torch_threads": 1}
    (tmp_path / "a").mkdir()
    (tmp_path / "exp" / "char").mkdir(parents=True)
    write_json(tmp_path / "a" / "summary.json", {
        "steps": 10, "tokens_seen": 100, "elapsed_s": 3600.0, "machine": machine,
        "library_fingerprint": "f00d", "sessions": [{"git_revision": "abc+dirty"},
                                                    {"git_revision": "def"}]})
    write_json(tmp_path / "exp" / "char" / "summary.json",
               {"steps": 5, "tokens_seen": 50, "elapsed_s": 1800.0, "machine": machine,
                "git_revision": "abc"})
    (tmp_path / "empty").mkdir()
    table = compute_table(tmp_path)
    assert table["run"].tolist() == ["a", "exp/char"]
    assert table["machine (its last session)"].iloc[0] == "CPU X, AVX2, 1 thread"
    # issue #34: a run trained with uncommitted changes says so and names its code otherwise
    assert table["code (git revision)"].tolist() == [
        "abc, def, with uncommitted changes: fingerprint f00d", "abc"]
    assert compute_total(table) == {"compute_runs": 2, "compute_steps": 15,
                                    "compute_tokens": 150, "compute_hours": 1.5,
                                    "compute_uncommitted_runs": 1}


def test_preregistered_runs_are_read_with_or_without_their_measurement(tmp_path):
    from h2q_lib.analysis.preregistration import (
        PREDICTION,
        preregistered_table,
        read_preregistered,
    )
    from h2q_lib.book.wording.runs_tried import preregistered_reading
    from h2q_lib.core.run_folder import write_json

    fit = fit_clock(curves())
    cfg = get_profile("prefix", steps=200, warmup=0, eval_every=50)
    (tmp_path / "n1").mkdir()
    write_json(tmp_path / "n1" / PREDICTION, prediction(cfg, fit, "n1", "h2q train", "abc"))
    entries = read_preregistered({"N1": tmp_path / "n1", "none": tmp_path / "missing"})
    assert [(name, run) for name, _, run in entries] == [("N1", None)]
    assert "not committed yet" in preregistered_reading(entries)
    table = preregistered_table(entries)
    assert table["step"].tolist() == [50, 100, 150, 200]
    band = entries[0][1]["clock"]["band_nats"]
    column = f"N1: measured / predicted (± {band:.3f})"
    assert table.columns.tolist() == ["step", column]
    assert all(cell.startswith("— / ") for cell in table[column].dropna())
    assert table[column].dropna().size
    assert "failed its held-out check" not in preregistered_reading(entries)
    name, pred, _ = entries[0]
    failed = {**pred, "clock": {**pred["clock"], "passed_held_out_check": False}}
    assert "failed its held-out check" in preregistered_reading([(name, failed, None)])
    assert preregistered_reading([]) == "No run is pre-registered for this profile."


def test_the_clock_needs_three_runs_and_says_why_and_the_finding_says_it_too():
    from h2q_lib.analysis.clock import analyse_clock
    from h2q_lib.book.wording.readings import clock_values, readings_finding

    fit, summed, missing = analyse_clock(curves()[:2])
    assert fit is None and summed == [] and "at least 3 runs" in missing
    values = clock_values(fit, summed, missing)
    text = readings_finding({**values, "row100_training_verdict": "x"})
    assert "No run of this profile reached the report's row 500" in text
    assert "No schedule clock is fitted: the clock needs at least 3 runs" in text
    fit, summed, _ = analyse_clock(curves(noise=0.003))
    values = clock_values(fit, summed)
    assert values["clock_passed"] and values["s1_worst"] > 0.1
    assert "puts the committed runs on one curve" in readings_finding(
        {**values, "stated_diff500": 0.78, "row500_verdict": "v", "row100_training_verdict": "x"})
    failed = readings_finding({**values, "clock_passed": False, "row100_training_verdict": "x"})
    assert "No schedule clock passes its held-out check" in failed


def test_the_final_loss_is_predicted_only_inside_a_passing_clocks_range():
    from h2q_lib.book.wording.readings import final_loss_values

    base = {"longest_run_steps": 1000, "clock_fitted": True, "clock_passed": True,
            "clock_band": 0.03, "clock_stated_last_step": 1000}
    out = final_loss_values(base)
    assert out["final_loss_verdict"].endswith("not predicted")
    assert "only to step 1,000" in out["final_loss_why"]
    assert final_loss_values({**base, "clock_stated_last_step": 6350})[
        "final_loss_verdict"].endswith("predicted by the clock")
    assert "no clock passed" in final_loss_values({**base, "clock_passed": False})[
        "final_loss_why"]
    assert "no clock is fitted" in final_loss_values(
        {"clock_fitted": False, "clock_missing": "x"})["final_loss_why"]


def test_a_clock_that_failed_its_check_gives_no_row_numbers():
    from h2q_lib.analysis.clock import clock_rows_table

    made = [synthetic("stated", get_profile("prefix", steps=1000), p=0.0),
            synthetic("micro-batch", get_profile("prefix", steps=500, reading="micro-batch"),
                      p=1.0),
            synthetic("no-warmup", get_profile("prefix", steps=500, warmup=0), p=0.5)]
    assert clock_rows_table(fit_clock(made)).empty
    assert not clock_rows_table(fit_clock(curves(noise=0.003))).empty
