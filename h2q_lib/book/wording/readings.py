"""The sentences of the readings chapter (``notebooks/03_readings.ipynb``): the verdicts on
the report's rows, the controls, the loss law's check, the schedule clock and the
pre-registered runs, filled with the values that ``analysis.evaluation_rows``,
``analysis.controls``, ``analysis.law_analysis``, ``analysis.clock``,
``analysis.preregistration`` and ``analysis.report_rows`` computed.

The ``*_values`` functions give the glue values the chapter's pages cite: the computed numbers
with the phrases made of them, under the same keys.
"""

from __future__ import annotations

from h2q_lib.analysis.clock import ClockFit, HeldOut, clock_numbers
from h2q_lib.analysis.controls import control_shifts, rerun_agreements
from h2q_lib.analysis.curves import Run, glue_key
from h2q_lib.analysis.evaluation_rows import (
    EVALUATION_ROWS,
    TOLERANCE,
    RunVerdict,
    row_falls,
    run_verdicts,
    verdict_numbers,
)
from h2q_lib.analysis.law_analysis import (
    HELD_OUT_TOLERANCE,
    LawAnalysis,
    law_numbers,
    switched_off_terms,
    worst_held_out_error,
)
from h2q_lib.analysis.loss_law import LawFit
from h2q_lib.analysis.report_rows import TOLERANCE as TRAINING_TOLERANCE
from h2q_lib.analysis.report_rows import training_row_outcome
from h2q_lib.book.wording import present
from h2q_lib.claims.completion_report import REPORT, ReportClaims
from h2q_lib.training.readings import READINGS

# --- the evaluation rows beside the runs ------------------------------------------------------


def _describe(verdict: RunVerdict) -> str:
    """What a run is: its reading, its schedule, its steps and passes over its text."""
    shape = ("the report's schedule" if verdict.compressed_to is None else
             f"its schedule compressed to {verdict.compressed_to:,} steps")
    over = (f", {verdict.passes:.2f} passes over its training text" if verdict.passes
            else "")
    return f"reading {verdict.reading}, {shape}, {verdict.last_step:,} steps trained{over}"


def reading_verdicts(runs: list[Run], steps: tuple[int, ...] = EVALUATION_ROWS,
                     tolerance: float = TOLERANCE,
                     claims: ReportClaims = REPORT) -> list[str]:
    """One sentence per run (``run_verdicts``): which of the report's rows ``steps`` its
    validation loss reproduces within ``tolerance``, which it misses and by how much, which
    it did not reach, and how much of the stated reading's gap at row 500 it closes."""
    def rows(results) -> str:
        return ", ".join(f"row {r.step:,} ({r.val_loss:.3f} vs {r.report:.3f}, "
                         f"{r.relative_pct:+.1f} %)" for r in results)

    sentences = []
    for v in run_verdicts(runs, steps, tolerance, claims):
        parts = []
        if v.reproduced:
            parts.append("reproduces " + rows(v.reproduced))
        if v.missed:
            parts.append("misses " + rows(v.missed))
        if v.unreached:
            parts.append("did not reach row " + ", ".join(f"{s:,}" for s in v.unreached))
        if v.closed is not None:
            parts.append(f"at row 500 it closes {v.closed:.3f} of the stated reading's "
                         f"{v.stated_gap:.3f} nats ({v.closed_pct:.0f} %)")
        sentences.append(f"**{v.run}** ({_describe(v)}) " + "; ".join(parts) + ".")
    return sentences


def gap_sentence(runs: list[Run], first: int = 500, last: int = 1000,
                 claims: ReportClaims = REPORT) -> str:
    """How each run that reached both report rows ``first`` and ``last`` fell between them,
    against the report's fall there (empty when no run reached both)."""
    falls = row_falls(runs, first, last, claims)
    if not falls.runs:
        return ""
    parts = [f"{name}'s validation loss falls {fall:.3f} nats, so its gap to the report goes "
             f"from {gap_first:+.3f} to {gap_last:+.3f}"
             for name, fall, gap_first, gap_last in falls.runs]
    return (f"Between the report's rows {first:,} and {last:,} its Loss falls "
            f"{falls.report_fall:.3f} nats; " + "; ".join(parts) + ".")


def verdicts_markdown(runs: list[Run], **kwargs) -> str:
    """``reading_verdicts`` as a Markdown list, then ``gap_sentence``."""
    bullets = "\n".join("- " + sentence for sentence in reading_verdicts(runs, **kwargs))
    gap = gap_sentence(runs)
    return bullets + ("\n\n" + gap if gap else "")


def verdict_values(runs: list[Run], steps: tuple[int, ...] = EVALUATION_ROWS,
                   tolerance: float = TOLERANCE,
                   claims: ReportClaims = REPORT) -> dict[str, float | int | str]:
    """Glue values (``verdict_numbers``): each run's validation loss and difference at each
    row it reached (``<run>_at<step>``, ``<run>_diff<step>``), where the stated run ends, and
    per row 500 and 1,000 the runs reproducing it and the verdict."""
    n = verdict_numbers(runs, steps, tolerance, claims)
    values: dict[str, float | int | str] = dict(n.values)
    values["stated_fall_sentence"] = (
        f"ends {n.stated_diff500:+.2f} nats from the report's row 500 (run − report)"
        if n.stated_diff500 is not None else
        f"has no validation loss at row 500 (it ran {n.stated_last_step:,} steps)")
    for step, reached in n.reached.items():
        names = n.reproducing[step]
        values[f"row{step}_reproduced_by"] = ", ".join(names) if names else "none"
        values[f"row{step}_verdict"] = (
            f"reproduced by the {' and '.join(names)} reading" if names else
            "not reproduced by any tested reading" if reached else
            "not reached by any run")
        values[f"row{step}_numbers"] = (
            "; ".join(f"{name} {loss:.3f}" for name, loss in reached) or
            f"no run reached step {step:,}") + f" vs the report's {n.report[step]:.4f}"
    values["longest_run_steps"] = n.longest_run_steps
    return values


def rerun_agreement(runs: list[Run]) -> str:
    """How closely each continued run and the run continuing it agree where both measured a
    validation loss (``rerun_agreements``): run-to-run noise, in a sentence (empty when no
    run continues another)."""
    return " ".join(
        f"**{a.long}** is the {a.short} run's recipe and seed trained again, to step "
        f"{a.long_last_step:,}: at the {a.steps_compared} steps both measured, their "
        f"validation losses differ by at most {a.largest_gap:.3f} nats (step "
        f"{a.largest_gap_step:,}), so past step {a.short_last_step:,} it continues the "
        f"{a.short} run's curve." for a in rerun_agreements(runs))


# --- the training-log row ---------------------------------------------------------------------


def training_row_verdict(runs: list, step: int, claims: ReportClaims = REPORT,
                         tolerance: float = TRAINING_TOLERANCE) -> str:
    """One sentence on a training-log row (``training_row_outcome``): which readings of which
    runs come within ``tolerance`` of the report's Loss and which do not; when they disagree,
    no verdict."""
    o = training_row_outcome(runs, step, claims, tolerance)
    if o is None:
        return f"no run reached the training-log row {step:,}"
    span = f"run − report from {min(o.diffs):+.3f} to {max(o.diffs):+.3f} nats"
    if not o.hits:
        return f"missed under every reading of the training loss ({span})"
    if len(o.hits) == len(o.diffs):
        return f"reproduced under every reading of the training loss ({span})"
    named = "; ".join(f"{run}'s {reading}" for run, reading in o.hits)
    return (f"undecided: within {100 * tolerance:.0f} % for {named}, not for the other "
            f"{len(o.diffs) - len(o.hits)} readings, and the report does not say which "
            f"training loss it printed ({span})")


# --- the controls -----------------------------------------------------------------------------


def controls_reading(base: Run, controls: list[Run], runs: list[Run],
                     claims: ReportClaims = REPORT) -> str:
    """How far the controls move the validation loss at their last common step, beside how
    far each reading's run is from the report's row 500 (``control_shifts``)."""
    c = control_shifts(base, controls, runs, claims)
    if c is None:
        return ("No control run is committed: whether the seed, the training text or the "
                "precision could move the loss by the gap below is not measured here.")
    listed = ", ".join(f"{name} {v:+.3f}" for name, v in c.shifts.items())
    text = (f"At step {c.last_step:,}, the last step every control reached, changing one "
            f"thing moves the stated run's validation loss by at most {c.largest:.3f} nats "
            f"({listed}); at any common step by at most {c.largest_anywhere:.3f} "
            f"(step {c.largest_anywhere_step:,}).")
    if c.gaps_at_500:
        gaps = "; ".join(f"{name} {diff:+.3f}" for name, diff in c.gaps_at_500)
        text += (f" At the report's row 500 the runs differ from the report by "
                 f"{gaps} nats. The controls end at step "
                 f"{c.last_step:,}: they measure what one such change does there, not "
                 "at row 500, so the two compare in order of size only.")
    return text


# --- the schedule clock -----------------------------------------------------------------------


def clock_values(fit: ClockFit | None, summed: list[HeldOut], missing: str = "",
                 claims: ReportClaims = REPORT) -> dict[str, float | int | str | bool]:
    """Glue values (``clock_numbers``): the fitted p, its band, whether it passed, its range
    and the runs it was fitted on, the summed rate's worst held-out miss, and the last step of
    the stated reading inside the range."""
    n = clock_numbers(fit, summed, missing, claims)
    fitted = n["clock_fitted"]
    values: dict[str, float | int | str | bool] = {
        "clock_missing": n["clock_missing"], "clock_fitted": fitted,
        "s1_worst": n["s1_worst"],
        "clock_runs": ", ".join(n["clock_fitted_on"]) if fitted else
        "none (no clock is fitted)",
        "clock_range_text": f"{n['clock_range_lo']:,.0f} to {n['clock_range_hi']:,.0f} "
        "peak-rate steps" if fitted else "no range: no clock is fitted"}
    values.update({k: v for k, v in n.items() if k not in values and k != "clock_fitted_on"})
    return values


# --- the loss law -----------------------------------------------------------------------------


def selection_words(fit: LawFit) -> str:
    """The points a fit keeps, in words."""
    below = "" if fit.max_loss is None else f", loss ≤ {fit.max_loss:.2f}"
    return f"step ≥ {fit.min_step:,}{below}"


def law_values(analysis: LawAnalysis, claims: ReportClaims = REPORT) -> dict[str, float | str]:
    """Glue values (``law_numbers``): the held-out errors and the check's verdict, and each
    reading's predicted loss at the report's best row (step 6,000, Loss 1.0828) with its
    band."""
    n = law_numbers(analysis, claims)
    values: dict[str, float | str] = {"law_missing": analysis.missing or "nothing",
                                      "law_check_verdict": "no held-out check"}
    if n.held_out_max_error is not None:
        worst = n.held_out_max_error
        values["held_out_max_error"] = worst
        values["held_out_mean_error"] = n.held_out_mean_error
        values["law_check_verdict"] = (
            f"it predicts the held-out {analysis.held_out} run within {worst:.2f} nats"
            if n.predicts else
            f"untested: it misses the held-out {analysis.held_out} run by up to {worst:.2f} "
            "nats, so these are fits carried forward, not forecasts")
    for name, loss in n.at_best.items():
        lo, hi = n.band[name]
        values[f"law_{glue_key(name)}_at_best"] = loss
        values[f"law_{glue_key(name)}_band"] = f"{lo:.2f}–{hi:.2f}"
    values["law_at_best_summary"] = "; ".join(
        f"{name} {values['law_' + glue_key(name) + '_at_best']:.2f} "
        f"({values['law_' + glue_key(name) + '_band']})" for name in READINGS
    ) if analysis.fit is not None else "no fit (" + analysis.missing + ")"
    values["law_impossible"] = ", ".join(n.impossible)
    return values


def degenerate_terms(fit: LawFit, claims: ReportClaims = REPORT,
                     negligible: float = 0.01) -> str:
    """Which of the law's terms the fit has switched off (``switched_off_terms``), in a
    sentence (empty when the fit uses both)."""
    off = switched_off_terms(fit, claims, negligible)
    terms = []
    if off.floor is not None:
        terms.append(f"the floor L₀ to {off.floor:.3f} nats")
    if off.annealing is not None:
        terms.append(f"the annealing term C·S₂ to at most {off.annealing:.3f} nats at step "
                     f"{off.steps:,} under any reading")
    if not terms:
        return ""
    text = "The fit on every run drives " + " and ".join(terms)
    if off.annealing is not None:
        text += (f": on these runs the law is a power law in the summed learning rate, "
                 f"A·S₁^(−{off.alpha:.2f}), and the readings differ only in how fast they sum "
                 "their rate")
    return text + "."


def law_reading(analysis: LawAnalysis, claims: ReportClaims = REPORT) -> str:
    """What the fit and its held-out check say, in sentences computed from them."""
    values = law_values(analysis, claims)
    n = law_numbers(analysis, claims)
    parts = []
    if n.held_out_max_error is not None:
        verdict = ("it predicts a schedule it never saw" if n.predicts else
                   f"more than the {HELD_OUT_TOLERANCE:.2f} nats within which we would call it "
                   "a prediction, so its numbers below are a fit carried forward, not a "
                   "tested forecast")
        parts.append(
            f"Fitted without the {analysis.held_out} run, the law misses that run's "
            f"validation loss at its {len(analysis.held_out_errors)} points in the fitted "
            f"range ({selection_words(analysis.check)}) by up to {n.held_out_max_error:.3f} "
            f"nats (mean measured − predicted {n.held_out_mean_error:+.3f}): {verdict}.")
    if analysis.fit is not None:
        preds = ", ".join(
            f"{name} reading {values['law_' + glue_key(name) + '_at_best']:.3f} "
            f"(band {values['law_' + glue_key(name) + '_band']})" for name in READINGS)
        parts.append(
            f"Fitted on every run, it puts the loss at the report's step "
            f"{claims.best_val_step:,} at: {preds}; the report printed "
            f"{claims.best_val_loss}.")
        parts.append(degenerate_terms(analysis.fit, claims))
    if values["law_impossible"]:
        parts.append(
            f"Under the {values['law_impossible']} reading the band reaches below zero, a loss "
            "no model can have: there the annealing term, fitted on rates that fall once, is "
            "carried over rates that fall many times, far outside what it was fitted on.")
    if analysis.missing:
        parts.append(f"Not computed: {analysis.missing}.")
    return " ".join(parts)


def selection_reading(chosen: LawAnalysis, alternative: LawAnalysis) -> str:
    """The held-out check of the chosen selection of points beside an alternative's, in one
    sentence (empty when either has no check)."""
    worst = [worst_held_out_error(a) for a in (chosen, alternative)]
    if None in worst or selection_words(chosen.check) == selection_words(alternative.check):
        return ""
    return (f"Fitted on the points with {selection_words(alternative.check)} instead, the "
            f"law misses the held-out {chosen.held_out} run by up to {worst[1]:.3f} nats, "
            f"against {worst[0]:.3f} with {selection_words(chosen.check)}.")


def readings_finding(values: dict) -> str:
    """The readings chapter's finding: row 500, row 100, and the clock."""
    parts = []
    if present(values, "stated_diff500"):
        parts.append(f"At the report's row 500, an evaluation, the stated recipe's rerun is "
                     f"{values['stated_diff500']:+.2f} nats from the report's 1.5178 (run − "
                     f"report); the row is {values['row500_verdict']}.")
    else:
        parts.append("No run of this profile reached the report's row 500.")
    row100 = str(values.get("row100_training_verdict", "not reached"))
    parts.append(f"Row 100, a training-log line, is {row100.split(':')[0].split(' (')[0]} "
                 "under the three readings of a training loss.")
    if values.get("preregistered_outcome"):
        parts.append("Pre-registered before it ran, the clock's forecast was tested: "
                     f"{values['preregistered_outcome']}.")
    if values.get("unstated_numbers"):
        parts.append(f"Of the settings the report leaves unsaid, tried in those runs, "
                     f"{values['unstated_verdict']} ({values['unstated_numbers']}).")
    if not values.get("clock_fitted"):
        parts.append(f"No schedule clock is fitted: {values.get('clock_missing')}.")
    elif values.get("clock_passed"):
        parts.append(
            f"Counting steps at the peak rate, τ_p = Σ (η/η_peak)^p with p = "
            f"{values['clock_p']:g}, puts the committed runs on one curve: fitted without each "
            f"run in turn, it predicts that run within {values['clock_band']:.3f} nats, where "
            f"the summed rate of Tissue et al.'s law misses by up to {values['s1_worst']:.2f}. "
            f"It is the chapter's predictor inside the range its runs cover (to step "
            f"{values['clock_stated_last_step']:,} of the stated reading); the report's later "
            "rows, its final 1.0828 among them, lie outside it and are not predicted.")
    else:
        parts.append(
            f"No schedule clock passes its held-out check (the fitted τ_p misses a left-out run "
            f"by up to {values['clock_band']:.2f} nats, the summed rate by up to "
            f"{values['s1_worst']:.2f}), so this chapter predicts no row it did not measure.")
    return " ".join(parts)


def cosine_length_sentence(unchanged_rows: tuple[int, ...], reading: str = "one-pass cosine"
                           ) -> str:
    """Which of the report's rows a reading of the cosine's length cannot move."""
    if not unchanged_rows:
        return f"The {reading} reading differs from the stated one from the first step."
    return (f"The {reading} reading applies the stated rates until its warm-up ends, so the "
            f"report's rows up to step {unchanged_rows[-1]:,} cannot depend on it; it changes "
            "only the later rows, where the clock's range ends.")


def final_loss_values(values: dict, best_step: int = 6_000) -> dict[str, str]:
    """The intro's verdict on the report's final validation loss (row ``best_step``): never
    measured on a CPU here; predicted only by a clock that passed its held-out check and only
    inside its range, else "not predicted" with the reason."""
    longest = values.get("longest_run_steps", 0)
    measured = f"not measured (our longest run stopped at step {longest:,})"
    if not values.get("clock_fitted"):
        return {"final_loss_verdict": measured + "; not predicted",
                "final_loss_why": f"no clock is fitted: {values.get('clock_missing')}"}
    if not values.get("clock_passed"):
        return {"final_loss_verdict": measured + "; not predicted",
                "final_loss_why": f"no clock passed its held-out check (misses up to "
                                  f"{values['clock_band']:.2f} nats)"}
    last = values["clock_stated_last_step"]
    if last < best_step:
        return {"final_loss_verdict": measured + "; not predicted",
                "final_loss_why": f"the clock that passed its held-out check covers the stated "
                                  f"reading only to step {last:,}"}
    return {"final_loss_verdict": measured + "; predicted by the clock",
            "final_loss_why": f"inside the clock's range (to step {last:,})"}
