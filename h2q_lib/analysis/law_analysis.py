"""The loss law (``loss_law``) fitted to the committed runs and checked on a held-out run: the
fit, the check, the law carried to the report's rows under each reading, its constants, and
which of its terms the fit switched off.

The values are numbers; ``book.wording.readings`` words them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from h2q_lib.analysis.curves import Run, continued_runs
from h2q_lib.analysis.loss_law import LawFit, areas, fit_law, held_out_errors
from h2q_lib.analysis.reading_rates import report_rates
from h2q_lib.claims.completion_report import REPORT, ReportClaims
from h2q_lib.training.readings import READINGS

# The law "predicts" a held-out run when it misses none of its points by more than this many
# nats: about the spread of the validation loss between two seeds early in a run (the seed
# control) and well under the 0.4–0.8 nats between the runs and the report's row 500.
HELD_OUT_TOLERANCE = 0.05


@dataclass(frozen=True)
class LawAnalysis:
    """The law fitted to every run, its check on a held-out run, and what could not be done."""

    fit: LawFit | None  # fitted on every run
    check: LawFit | None  # fitted on every run but the held-out one
    held_out: str | None
    held_out_errors: np.ndarray | None  # measured − predicted at the held-out run's points
    missing: str  # why a part is absent ("" when nothing is)


def analyse_law(runs: list[Run], held_out: str = "micro-batch", min_step: int = 100,
                resamples: int = 200, max_loss: float | None = None) -> LawAnalysis:
    """Fit the loss law to ``runs`` (points from ``min_step`` on and, with ``max_loss``, at or
    below that loss); check it by refitting without ``held_out`` and predicting that run.
    A run another run continues (``continued_runs``) is left out, so that no step's curve is
    fitted twice. Parts that the runs cannot support are left None and said in ``missing``."""
    continued = continued_runs(runs)
    curves = [run.curve() for run in runs if run.name not in continued]
    missing = []
    try:
        fit = fit_law(curves, min_step=min_step, resamples=resamples, max_loss=max_loss)
    except ValueError as e:
        fit = None
        missing.append(f"no fit: {e}")
    others = [c for c in curves if c.name != held_out]
    target = next((c for c in curves if c.name == held_out), None)
    check, errors = None, None
    if target is None or not others:
        missing.append(f"no held-out check: it needs the {held_out} run and at least one other")
    else:
        try:
            check = fit_law(others, min_step=min_step, resamples=resamples,
                            max_loss=max_loss)
            errors = held_out_errors(check, target)
        except ValueError as e:
            missing.append(f"no held-out check: {e}")
    return LawAnalysis(fit, check, held_out if target is not None else None, errors,
                       "; ".join(missing))


def law_predictions(fit: LawFit | None, readings: tuple[str, ...] = tuple(READINGS),
                    claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The fitted law's loss at every report row under each reading of the report's schedule,
    with its bootstrap band, beside the report's Loss (empty without a fit).

    A fit made only below a loss (``max_loss``) says nothing above it: where its own value is
    above that loss (on the plateau) the row is left empty."""
    if fit is None:
        return pd.DataFrame()
    steps = np.array([r.step for r in claims.progress])
    out = pd.DataFrame({"step": steps, "report Loss": [r.loss for r in claims.progress]})
    for name in readings:
        lr = report_rates(name, claims.steps)
        lo, hi = fit.band(lr, steps)
        predicted = fit.predict(lr, steps)
        inside = fit.covers(predicted)
        out[f"{name}: loss"] = [p if ok else None for p, ok in zip(predicted, inside,
                                                                   strict=True)]
        out[f"{name}: band"] = [f"{a:.2f}–{b:.2f}" if ok else None
                                for a, b, ok in zip(lo, hi, inside, strict=True)]
    return out


def law_constants(analysis: LawAnalysis) -> pd.DataFrame:
    """The fitted constants of each fit, the runs and points it used and its residual."""
    out = []
    for label, fit in (("every run", analysis.fit),
                       (f"every run but {analysis.held_out}", analysis.check)):
        if fit is None:
            continue
        l0, a, alpha, c = fit.params
        out.append({"fitted on": label, "runs": ", ".join(fit.fitted_on),
                    "points": fit.points, "L0 (loss floor)": l0, "A": a, "α": alpha,
                    "C": round(c, 4),  # a fitted zero prints as 0, not as 1e-35
                    "RMS residual (loss)": fit.rmse})
    return pd.DataFrame(out)


def held_out_table(analysis: LawAnalysis, runs: list[Run]) -> pd.DataFrame:
    """The held-out run's measured validation loss beside the check fit's prediction."""
    if analysis.check is None or analysis.held_out is None:
        return pd.DataFrame()
    curve = next(r for r in runs if r.name == analysis.held_out).curve()
    keep = analysis.check.selects(curve)
    steps = curve.steps[keep]
    predicted = analysis.check.predict(curve.lr, steps)
    lo, hi = analysis.check.band(curve.lr, steps)
    return pd.DataFrame({"step": steps, "measured": curve.losses[keep],
                         "predicted": predicted,
                         "band": [f"{a:.2f}–{b:.2f}" for a, b in zip(lo, hi, strict=True)],
                         "measured − predicted": curve.losses[keep] - predicted})


def worst_held_out_error(analysis: LawAnalysis) -> float | None:
    """The largest |measured − predicted| at the held-out run's points; None without any."""
    errors = analysis.held_out_errors
    return None if errors is None or not len(errors) else float(np.abs(errors).max())


@dataclass(frozen=True)
class LawNumbers:
    """The held-out check's errors, and each reading's predicted loss at the report's best row
    with its bootstrap band."""

    held_out_max_error: float | None  # None without a held-out check
    held_out_mean_error: float | None
    predicts: bool  # the check misses no point by more than HELD_OUT_TOLERANCE
    at_best: dict[str, float]  # reading → the law's loss at the report's best row (with a fit)
    band: dict[str, tuple[float, float]]  # reading → the band's (low, high) there
    impossible: list[str]  # readings whose band reaches below zero


def law_numbers(analysis: LawAnalysis, claims: ReportClaims = REPORT) -> LawNumbers:
    """The held-out errors, and each reading's predicted loss at the report's best row
    (step 6,000, Loss 1.0828) with its band."""
    worst = worst_held_out_error(analysis)
    mean = None if worst is None else float(np.mean(analysis.held_out_errors))
    at_best, band, impossible = {}, {}, []
    if analysis.fit is not None:
        step = np.array([claims.best_val_step])
        for name in READINGS:
            lr = report_rates(name, claims.steps)
            lo, hi = analysis.fit.band(lr, step)
            at_best[name] = float(analysis.fit.predict(lr, step)[0])
            band[name] = (lo[0], hi[0])
            if lo[0] < 0:
                impossible.append(name)
    return LawNumbers(worst, mean, worst is not None and worst <= HELD_OUT_TOLERANCE,
                      at_best, band, impossible)


@dataclass(frozen=True)
class SwitchedOff:
    """The law's terms a fit has switched off (None where the term is in use)."""

    floor: float | None  # L₀, when below the negligible level
    annealing: float | None  # the largest C·S₂ at the end of any reading's schedule, when
    # below the negligible level
    alpha: float  # the power law's exponent, what is left when the annealing term is off
    steps: int  # the schedule's end


def switched_off_terms(fit: LawFit, claims: ReportClaims = REPORT,
                       negligible: float = 0.01) -> SwitchedOff:
    """Which of the law's terms the fit has switched off: a floor L₀ below ``negligible``
    nats, an annealing term C·S₂ below it at the end of every reading's schedule."""
    l0, _, alpha, c = fit.params
    annealing = max(float(c * areas(report_rates(name, claims.steps))[1][-1])
                    for name in READINGS)
    return SwitchedOff(l0 if l0 < negligible else None,
                       annealing if annealing < negligible else None, alpha, claims.steps)
