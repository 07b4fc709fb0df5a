"""The readings chapter's tables and verdicts, on synthetic run folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from h2q_lib.analysis import controls, curves, law_analysis
from h2q_lib.analysis import evaluation_rows as rows
from h2q_lib.analysis import reading_rates as rates_of
from h2q_lib.analysis.loss_law import areas, law, rates
from h2q_lib.book.wording import readings as wording
from h2q_lib.training.profiles import get_profile

LAW = np.array([1.2, 0.9, 0.45, 60.0])


def write_run(folder, cfg, losses_at: dict[int, float] | None = None, every: int = 50):
    """A run folder whose validation losses follow the law (or ``losses_at``)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    s1, s2 = areas(rates(cfg, cfg.steps))
    records = []
    for step in range(every, cfg.steps + 1, every):
        val = (losses_at or {}).get(step, float(law(LAW, s1[step - 1], s2[step - 1])))
        records.append({"step": step, "train_loss": val - 0.05, "train_loss_avg": val - 0.04,
                        "val_loss": val, "tokens_seen": step * cfg.tokens_per_step})
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_reading_rates_say_where_each_reading_warms_up_and_decays():
    assert list(rates_of.readings_table()["reading"]) == [
        "stated", "micro-batch", "micro-batch-cosine", "one-pass cosine"]
    table = rates_of.reading_rates().set_index("reading")
    # the one-pass cosine is the stated schedule until its warm-up ends, then decays slower
    assert table.loc["one-pass cosine", "at step 1,000"] == table.loc["stated", "at step 1,000"]
    assert pd.isna(table.loc["one-pass cosine", "cosine ends at step"])
    assert table.loc["stated", "at step 500"] == pytest.approx(1.5)  # ×10⁻⁴
    assert table.loc["micro-batch", "at step 500"] == pytest.approx(6.0)
    assert table.loc["stated", "cosine ends at step"] == 6350
    assert table.loc["micro-batch", "cosine ends at step"] == 1588


@pytest.mark.parametrize("name", ["stated", "micro-batch"])
def test_first_step_at_inverts_a_readings_position(name):
    from h2q_lib.training.readings import get_reading
    reading = get_reading(name)
    for position in (0, 1, 3, 4, 1999, 6349):
        step = reading.first_step_at(position, grad_accum=4)  # counted from 1
        assert reading.position(step - 1, 4) >= position
        assert step == 1 or reading.position(step - 2, 4) < position


def test_verdicts_name_rows_reproduced_missed_and_not_reached(tmp_path):
    stated = curves.Run.read("stated", write_run(
        tmp_path / "a", get_profile("prefix"), {100: 2.75, 500: 2.29}))
    close = curves.Run.read("close", write_run(
        tmp_path / "b", get_profile("prefix", reading="micro-batch"), {100: 2.5, 500: 1.55}))
    first, second = wording.reading_verdicts([stated, close])
    # row 100 is a training-log line: no verdict from a validation loss
    assert "row 100" not in first and "row 100" not in second
    assert "misses row 500 (2.290 vs 1.518, +50.9 %)" in first
    assert "did not reach row 1,000" in first
    assert "reproduces row 500 (1.550 vs 1.518, +2.1 %)" in second
    # (2.29 - 1.55) of the stated run's 2.29 - 1.5178 = 0.7722 nats
    assert "closes 0.740 of the stated reading's 0.772 nats (96 %)" in second
    assert "closes" not in first
    values = wording.verdict_values([stated, close])
    assert values["row500_reproduced_by"] == "close"
    assert values["row500_verdict"] == "reproduced by the close reading"
    assert values["row500_numbers"] == "stated 2.290; close 1.550 vs the report's 1.5178"
    assert wording.verdict_values([stated])["row500_verdict"] == (
        "not reproduced by any tested reading")
    assert values["close_diff500"] == pytest.approx(1.55 - 1.5178)
    assert "report_fall_100_500" not in values and "close_at100" not in values
    assert values["stated_fall_sentence"] == (
        "ends +0.77 nats from the report's row 500 (run − report)")
    assert values["row1000_verdict"] == "not reached by any run"
    assert values["longest_run_steps"] == 500
    # the stated recipe trained further: row 1,000 judged, and no "closes" clause for it
    longer = curves.Run.read("stated-1000", write_run(
        tmp_path / "c", get_profile("prefix", steps=1000), {100: 2.75, 500: 2.3, 1000: 1.62}))
    third = wording.reading_verdicts([stated, close, longer])[2]
    assert "misses row 500 (2.300 vs 1.518, +51.5 %), row 1,000 (1.620 vs 1.411, +14.8 %)" \
        in third and "closes" not in third
    values = wording.verdict_values([stated, close, longer])
    assert values["row1000_verdict"] == "not reproduced by any tested reading"
    assert values["row1000_numbers"] == "stated-1000 1.620 vs the report's 1.4108"
    assert values["longest_run_steps"] == 1000
    assert wording.gap_sentence([stated, close, longer]) == (
        "Between the report's rows 500 and 1,000 its Loss falls 0.107 nats; stated-1000's "
        "validation loss falls 0.680 nats, so its gap to the report goes from +0.782 to +0.209.")
    assert wording.gap_sentence([stated, close]) == ""
    short = curves.Run.read("stated", write_run(tmp_path / "s", get_profile("smoke")))
    assert wording.verdict_values([short])["stated_fall_sentence"] == (
        "has no validation loss at row 500 (it ran 100 steps)")


def test_rows_beside_runs_leave_unreached_rows_empty(tmp_path):
    run = curves.Run.read("stated", write_run(tmp_path / "a", get_profile("prefix")))
    table = rows.rows_beside_runs([run]).set_index("step")
    assert pd.isna(table.loc[1000, "stated: val loss"])
    assert pd.isna(table.loc[1000, "stated: Δ loss"])
    assert table.loc[500, "stated: Δ loss"] == pytest.approx(
        table.loc[500, "stated: val loss"] - 1.5178)


def test_loss_columns_show_the_three_candidates_for_the_reports_loss(tmp_path):
    run = curves.Run.read("stated", write_run(tmp_path / "a", get_profile("prefix"),
                                              {100: 2.6}))
    row = rows.loss_columns([run]).iloc[0]
    assert (row["step"], row["report Loss"]) == (100, 2.718)
    assert (row["step's training loss"], row["window mean training loss"],
            row["validation loss"]) == pytest.approx((2.55, 2.56, 2.6))


def test_the_law_is_checked_on_the_held_out_run_and_predicts_each_reading(tmp_path):
    runs = [curves.Run.read("stated", write_run(tmp_path / "a", get_profile("prefix"))),
            curves.Run.read("short400", write_run(tmp_path / "b", get_profile("short400"))),
            curves.Run.read("micro-batch", write_run(
                tmp_path / "c", get_profile("prefix", reading="micro-batch")))]
    analysis = law_analysis.analyse_law(runs, resamples=20)
    assert analysis.missing == ""
    assert np.abs(analysis.held_out_errors).max() < 1e-3
    assert len(law_analysis.held_out_table(analysis, runs)) == 9  # steps 100 … 500
    predicted = law_analysis.law_predictions(analysis.fit).set_index("step")
    assert len(predicted) == 14
    assert {"stated: loss", "micro-batch: loss"} <= set(predicted.columns)
    lr = rates(get_profile("report", reading="micro-batch"), 6350)
    s1, s2 = areas(lr)
    assert predicted.loc[6000, "micro-batch: loss"] == pytest.approx(
        law(LAW, s1[5999], s2[5999]), abs=1e-3)
    values = wording.law_values(analysis)
    assert values["law_missing"] == "nothing" and "law_micro_batch_band" in values
    assert values["law_at_best_summary"].startswith("stated ")
    # a second selection of points (below a loss) is compared on the same held-out run
    below = law_analysis.analyse_law(runs, resamples=5, max_loss=8.0)
    assert below.check.max_loss == 8.0
    assert len(law_analysis.held_out_table(below, runs)) < 9
    sentence = wording.selection_reading(below, analysis)
    assert sentence.startswith("Fitted on the points with step ≥ 100 instead")
    assert "with step ≥ 100, loss ≤ 8.00." in sentence
    assert wording.selection_reading(analysis, analysis) == ""
    # rows where a below-the-plateau fit's own value is above its cut are left empty
    cut = law_analysis.law_predictions(below.fit).set_index("step")
    assert pd.isna(cut.loc[100, "stated: loss"]) and pd.isna(cut.loc[100, "stated: band"])
    assert (cut["stated: loss"].dropna() <= 8.0).all() and cut["stated: loss"].notna().any()
    assert "it predicts a schedule it never saw" in wording.law_reading(analysis)
    # a held-out run the law misses is said to be missed, and the prediction demoted
    off = curves.Run.read("micro-batch", write_run(
        tmp_path / "d", get_profile("prefix", reading="micro-batch"),
        {s: 1.0 for s in range(100, 501, 50)}))
    missed = law_analysis.analyse_law([runs[0], runs[1], off], resamples=5)
    assert "not a tested forecast" in wording.law_reading(missed)
    assert wording.law_values(missed)["law_check_verdict"].startswith(
        "untested: it misses the held-out micro-batch run by up to")
    assert wording.law_values(analysis)["law_check_verdict"].startswith(
        "it predicts the held-out micro-batch run within")


def test_a_run_continued_by_a_longer_one_is_fitted_once(tmp_path):
    stated = curves.Run.read("stated", write_run(tmp_path / "a", get_profile("prefix"),
                                                 {500: 2.30}))
    longer = curves.Run.read("stated-1000", write_run(
        tmp_path / "b", get_profile("prefix", steps=1000), {500: 2.31}))
    other = curves.Run.read("micro-batch", write_run(
        tmp_path / "c", get_profile("prefix", reading="micro-batch")))
    # another seed is another run, not a continuation
    seed = curves.Run.read("seed", write_run(tmp_path / "d", get_profile("prefix", steps=300,
                                                                         seed=1)))
    runs = [stated, longer, other, seed]
    assert curves.continued_runs(runs) == ["stated"]
    analysis = law_analysis.analyse_law(runs, held_out="micro-batch", resamples=5)
    assert "stated" not in analysis.fit.fitted_on
    assert {"stated-1000", "micro-batch"} <= set(analysis.fit.fitted_on)
    sentence = wording.rerun_agreement(runs)
    assert sentence.startswith("**stated-1000** is the stated run's recipe and seed trained "
                               "again, to step 1,000: at the 10 steps both measured")
    assert "differ by at most 0.010 nats (step 500)" in sentence
    assert wording.rerun_agreement([stated, other]) == ""


def test_missing_runs_are_said_not_crashed(tmp_path):
    runs = curves.read_runs({"stated": write_run(tmp_path / "a", get_profile("prefix")),
                             "micro-batch": tmp_path / "never-trained"})
    assert [r.name for r in runs] == ["stated"]
    analysis = law_analysis.analyse_law(runs, resamples=5)
    assert analysis.check is None and "needs the micro-batch run" in analysis.missing
    assert wording.law_values(analysis)["law_at_best_summary"].startswith("stated ")
    assert law_analysis.held_out_table(analysis, runs).empty


def test_final_scores_come_from_the_stored_evaluation(tmp_path):
    folder = write_run(tmp_path / "a", get_profile("prefix"))
    metrics = {"bits_per_character": 3.3, "bits_per_byte": 3.5, "word_perplexity": 4.8e5}
    (folder / "evaluation.json").write_text(json.dumps(
        {p: {"test": {"result": {"metrics": metrics}}} for p in ("report", "lm-eval")}))
    unscored = write_run(tmp_path / "b", get_profile("short400"))
    table = curves.final_scores(curves.read_runs({"stated": folder, "short400": unscored}))
    assert table.to_dict("records") == [{
        "run": "stated", "steps": 500, "bits per character (report protocol)": 3.3,
        "bits per byte (lm-eval protocol)": 3.5, "word perplexity (lm-eval protocol)": 4.8e5}]


def test_controls_are_compared_with_the_stated_run_at_common_steps(tmp_path):
    cfg = get_profile("prefix")
    base = curves.Run.read("stated", write_run(tmp_path / "a", cfg, {100: 2.60, 150: 2.50}))
    short = get_profile("prefix", steps=150, seed=1338)
    seed = curves.Run.read("seed 1338", write_run(tmp_path / "b", short, {100: 2.62, 150: 2.46}))
    table = controls.controls_table(base, [seed])
    assert table["step"].tolist() == [50, 100, 150]
    assert table["seed 1338: Δ loss"].iloc[-1] == pytest.approx(-0.04)
    text = wording.controls_reading(base, [seed], [base])
    assert "at most 0.040 nats" in text and "seed 1338 -0.040" in text
    assert "at any common step by at most 0.040 (step 150)" in text
    assert "row 500" in text and "stated +" in text
    assert controls.controls_table(base, []).empty
    assert "No control run is committed" in wording.controls_reading(base, [], [base])


def test_a_fit_that_switches_off_the_floor_and_the_annealing_term_says_so():
    from h2q_lib.analysis.loss_law import LawFit
    power_law = LawFit(params=(0.0, 1.4, 0.14, 0.0), fitted_on=("a",), points=3, min_step=100,
                       rmse=0.1, bootstrap=np.zeros((1, 4)))
    sentence = wording.degenerate_terms(power_law)
    assert sentence.startswith("The fit on every run drives the floor L₀ to 0.000 nats and the "
                               "annealing term C·S₂ to at most 0.000 nats at step 6,350")
    assert "a power law in the summed learning rate, A·S₁^(−0.14)" in sentence
    full = LawFit(params=tuple(LAW), fitted_on=("a",), points=3, min_step=100, rmse=0.1,
                  bootstrap=np.zeros((1, 4)))
    assert wording.degenerate_terms(full) == ""
