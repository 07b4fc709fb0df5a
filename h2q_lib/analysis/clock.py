"""A schedule clock for the plateau exit: is validation loss one curve of τ_p(s) = Σ (η/η_ref)^p?

A character model leaves its ~2.45-nat plateau (the character-bigram level) at a step that
depends on the learning-rate schedule. Tissue et al.'s law measures a schedule's progress by
its summed rate S₁ = Σ η; the runs leave the plateau at values of S₁ about 3× apart, so S₁
cannot be what decides the exit. This module tests a family of clocks

    τ_p(s) = Σ_{i≤s} (η_i / η_ref)^p          η_ref = the report's peak rate 6e-4

(p = 0 counts steps, p = 1 is S₁/η_ref): the runs "collapse" on a clock when one
non-increasing function f gives every run's validation loss, L(s) ≈ f(τ_p(s)).

How f and p are found, with no functional form assumed for f:
- ``fit_collapse``: f is the isotonic (non-increasing) regression of the pooled points'
  losses on log τ_p, interpolated linearly between its knots; it says nothing outside the
  range of log τ_p its points span (NaN there).
- ``choose_p``: p minimises the RMS of the cross-errors among the fitted runs (each run
  predicted from the others' f), over a grid of step 0.05 from 0 to 1.5.
- ``leave_one_out``: each run in turn is left out, p and f are fitted on the rest, and the
  left-out run is predicted where its clock lies inside their range. A clock passes when it
  misses no held-out point by more than ``HELD_OUT_TOLERANCE`` nats.
- Points before ``MIN_STEP`` are left out: the first fall, from the unigram level to the
  plateau, takes ~100 steps under any schedule (the loss law makes the same cut).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from h2q_lib.analysis.loss_law import Curve
from h2q_lib.claims.completion_report import REPORT

REFERENCE_RATE = REPORT.learning_rate  # η_ref: τ_p counts steps taken at the report's peak rate
P_GRID = tuple(round(0.05 * i, 2) for i in range(31))  # 0, 0.05, …, 1.5
MIN_STEP = 100
# A clock predicts a held-out run when it misses none of its points by more than this many
# nats: about the spread of the validation loss between two seeds early in a run (the seed
# control), and well under the 0.4–0.8 nats between the runs and the report's row 500.
HELD_OUT_TOLERANCE = 0.05


def clock(lr: np.ndarray, p: float, reference: float = REFERENCE_RATE) -> np.ndarray:
    """τ_p after each step: τ_p[k] = Σ_{i≤k} (η_i / η_ref)^p, for the rates ``lr`` of
    optimizer steps 0 … k (p = 0: k + 1 steps; p = 1: S₁ / η_ref)."""
    return np.cumsum(np.power(np.asarray(lr, dtype=float) / reference, p))


def _points(curve: Curve, p: float, min_step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, log τ_p, losses)`` at the curve's evaluations from ``min_step`` on."""
    keep = curve.steps >= min_step
    steps = curve.steps[keep]
    return steps, np.log(clock(curve.lr, p)[steps - 1]), curve.losses[keep]


@dataclass(frozen=True)
class Collapse:
    """One non-increasing function of log τ_p fitted to the pooled points of some runs."""

    p: float
    fitted_on: tuple[str, ...]
    min_step: int
    knots: np.ndarray  # log τ_p, increasing
    values: np.ndarray  # the fitted loss at each knot, non-increasing

    @property
    def clock_range(self) -> tuple[float, float]:
        """The smallest and largest τ_p the fitted points span."""
        return float(np.exp(self.knots[0])), float(np.exp(self.knots[-1]))

    def at(self, tau: np.ndarray) -> np.ndarray:
        """f(τ): linear in log τ between knots, NaN outside the fitted range."""
        x = np.log(np.asarray(tau, dtype=float))
        inside = (x >= self.knots[0]) & (x <= self.knots[-1])
        return np.where(inside, np.interp(x, self.knots, self.values), np.nan)

    def predict(self, lr: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The loss after each of ``steps`` (1-based) of the schedule ``lr``; NaN where the
        step comes before ``min_step`` or its clock lies outside the fitted range."""
        steps = np.asarray(steps, dtype=int)
        tau = clock(lr, self.p)[steps - 1]
        return np.where(steps >= self.min_step, self.at(tau), np.nan)


def fit_collapse(curves: list[Curve], p: float, min_step: int = MIN_STEP) -> Collapse:
    """The isotonic (non-increasing) regression of the curves' pooled losses on log τ_p."""
    from sklearn.isotonic import IsotonicRegression

    x, y = (np.concatenate(v) for v in zip(*((lt, loss) for _, lt, loss in
                                                (_points(c, p, min_step) for c in curves)),
                                            strict=True))
    if len(y) < 2:
        raise ValueError(f"a collapse needs at least 2 points at step >= {min_step}; the "
                         f"curves give {len(y)}")
    model = IsotonicRegression(increasing=False).fit(x, y)
    return Collapse(p, tuple(c.name for c in curves), min_step,
                    np.asarray(model.X_thresholds_, dtype=float),
                    np.asarray(model.y_thresholds_, dtype=float))


def held_out_errors(collapse: Collapse, curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, measured − predicted)`` at the curve's points the collapse covers."""
    steps = curve.steps[curve.steps >= collapse.min_step]
    measured = curve.losses[curve.steps >= collapse.min_step]
    predicted = collapse.predict(curve.lr, steps)
    covered = ~np.isnan(predicted)
    return steps[covered], (measured - predicted)[covered]


def cross_rms(curves: list[Curve], p: float, min_step: int = MIN_STEP) -> float:
    """RMS of measured − predicted over every curve's covered points, each curve predicted
    from the collapse of the others (inf when no point is covered)."""
    errors = [held_out_errors(fit_collapse([o for o in curves if o is not c], p, min_step),
                              c)[1] for c in curves]
    pooled = np.concatenate(errors)
    return float(np.sqrt(np.mean(pooled ** 2))) if len(pooled) else float("inf")


def choose_p(curves: list[Curve], grid: tuple[float, ...] = P_GRID,
             min_step: int = MIN_STEP) -> tuple[float, float]:
    """``(p, cross RMS)``: the grid's p whose clock collapses the curves best (the smallest p
    on a tie). Needs at least two curves."""
    if len(curves) < 2:
        raise ValueError(f"fitting p needs at least 2 runs; got {len(curves)}")
    scores = [(cross_rms(curves, p, min_step), p) for p in grid]
    rms, p = min(scores)
    return p, rms


@dataclass(frozen=True)
class HeldOut:
    """One run predicted by a clock fitted without it."""

    clock: str  # "S₁" (p fixed at 1) or "τ_p" (p fitted)
    held_out: str
    p: float
    fitted_on: tuple[str, ...]
    clock_range: tuple[float, float]
    steps: np.ndarray  # the held-out run's covered steps
    errors: np.ndarray  # measured − predicted there
    points: int  # the held-out run's points from min_step on, covered or not

    @property
    def max_error(self) -> float | None:
        return float(np.abs(self.errors).max()) if len(self.errors) else None


def leave_one_out(curves: list[Curve], p: float | None = None,
                  min_step: int = MIN_STEP) -> list[HeldOut]:
    """Each curve predicted by the collapse of the others: at a fixed ``p`` (1 is S₁), or
    with p fitted on the others (``choose_p``; a fold left with fewer than two runs cannot fit
    p and is skipped)."""
    out = []
    for curve in curves:
        others = [c for c in curves if c is not curve]
        if not others or (p is None and len(others) < 2):
            continue
        chosen = choose_p(others, min_step=min_step)[0] if p is None else p
        collapse = fit_collapse(others, chosen, min_step)
        steps, errors = held_out_errors(collapse, curve)
        out.append(HeldOut("S₁" if p == 1 else ("τ_p" if p is None else f"τ_{p:g}"),
                           curve.name, chosen, collapse.fitted_on, collapse.clock_range,
                           steps, errors, int((curve.steps >= min_step).sum())))
    return out


def passes(results: list[HeldOut], tolerance: float = HELD_OUT_TOLERANCE) -> bool:
    """Every held-out run has a covered point and none is missed by more than
    ``tolerance`` nats."""
    return bool(results) and all(r.max_error is not None and r.max_error <= tolerance
                                 for r in results)


def held_out_table(results: list[HeldOut]) -> pd.DataFrame:
    """A row per held-out run: the clock, its p, the runs it was fitted on, the clock range
    they span, the points it could predict and how far it missed them."""
    return pd.DataFrame([{
        "clock": r.clock, "held-out run": r.held_out, "p": r.p,
        "fitted on": ", ".join(r.fitted_on),
        "clock range (peak-rate steps)": f"{r.clock_range[0]:,.0f}–{r.clock_range[1]:,.0f}",
        "points predicted": f"{len(r.errors)} of {r.points}",
        "largest miss (loss, nats)": r.max_error,
        "mean measured − predicted loss": float(np.mean(r.errors)) if len(r.errors) else None,
    } for r in results])


@dataclass(frozen=True)
class ClockFit:
    """The clock fitted on every given run, and its leave-one-out check."""

    collapse: Collapse
    cross_rms: float
    check: list[HeldOut]

    @property
    def band(self) -> float | None:
        """± the largest held-out miss: how far the clock has been seen to err."""
        misses = [r.max_error for r in self.check if r.max_error is not None]
        return max(misses) if misses else None

    @property
    def passed(self) -> bool:
        return passes(self.check)


def fit_clock(curves: list[Curve], min_step: int = MIN_STEP) -> ClockFit:
    """p fitted on every curve, the collapse at that p, and the leave-one-out check."""
    p, rms = choose_p(curves, min_step=min_step)
    return ClockFit(fit_collapse(curves, p, min_step), rms, leave_one_out(curves, None,
                                                                          min_step))


# --- the report's rows on the clock ----------------------------------------------------------


def report_rows_on_clock(collapse: Collapse, readings: tuple[str, ...] | None = None,
                         claims=REPORT) -> pd.DataFrame:
    """Each evaluation row of the report (the clock predicts validation losses) under each
    reading of its schedule: τ_p at that step and the clock's
    loss where τ_p lies inside the range the collapse was fitted on (None outside: the clock
    says nothing there), beside the report's Loss."""
    from h2q_lib.analysis.loss_law import rates
    from h2q_lib.analysis.report_rows import EVALUATION, row_kind
    from h2q_lib.training.profiles import get_profile
    from h2q_lib.training.readings import READINGS

    names = tuple(READINGS) if readings is None else readings
    rows = [r for r in claims.progress if row_kind(r) == EVALUATION]  # validation losses
    steps = np.array([r.step for r in rows])
    out = pd.DataFrame({"step": steps, "report Loss": [r.loss for r in rows]})
    for name in names:
        lr = rates(get_profile("report", reading=name), claims.steps)
        out[f"{name}: clock"] = clock(lr, collapse.p)[steps - 1]
        predicted = collapse.predict(lr, steps)
        out[f"{name}: loss"] = [None if np.isnan(v) else float(v) for v in predicted]
    return out


def rows_before_readings_part(reading: str, other: str = "stated", claims=REPORT) -> tuple[
        int, ...]:
    """The report's rows at which ``reading`` has applied exactly the rates of ``other`` at
    every step so far: rows whose loss cannot depend on where the two differ."""
    from h2q_lib.analysis.loss_law import rates
    from h2q_lib.training.profiles import get_profile

    a = rates(get_profile("report", reading=reading), claims.steps)
    b = rates(get_profile("report", reading=other), claims.steps)
    differ = np.flatnonzero(~np.isclose(a, b, rtol=1e-12, atol=0.0))
    first = int(differ[0]) + 1 if len(differ) else claims.steps + 1  # 1-based step
    return tuple(r.step for r in claims.progress if r.step < first)


def plot_collapse(curves: list[Curve], p: float, min_step: int = MIN_STEP):
    """Validation loss against S₁/η_ref (left) and against τ_p (right), each run's points from
    ``min_step`` on: on the right clock the runs fall on one curve."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), sharey=True)
    for ax, exponent, label in ((axes[0], 1.0, "S₁ / η_ref (p = 1)"),
                                (axes[1], p, f"τ_p, p = {p:g}")):
        for curve in curves:
            steps, log_tau, losses = _points(curve, exponent, min_step)
            ax.plot(np.exp(log_tau), losses, marker=".", label=curve.name)
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} (peak-rate steps, log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation loss (nats per character)")
    # from zero, as every loss figure of the book: losses compare as ratios, and a run with
    # few points does not blow rounding-level differences up to the whole axis
    axes[0].set_ylim(bottom=0)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def clock_numbers(fit: ClockFit | None, summed: list[HeldOut], missing: str = "",
                  claims=REPORT) -> dict[str, float | int | str | bool | tuple[str, ...]]:
    """Numbers for the pages: why no clock is fitted, the summed rate's worst held-out miss
    and, with a fit, its p, band, whether it passed, its range, the runs it was fitted on
    (``clock_fitted_on``) and the last step of the stated reading inside the range."""
    from h2q_lib.analysis.loss_law import rates
    from h2q_lib.training.profiles import get_profile

    worst = [r.max_error for r in summed if r.max_error is not None]
    values: dict[str, float | int | str | bool | tuple[str, ...]] = {
        "clock_missing": missing, "clock_fitted": fit is not None,
        "s1_worst": max(worst) if worst else float("nan")}
    if fit is None:
        return values
    lo, hi = fit.collapse.clock_range
    tau = clock(rates(get_profile("report", reading="stated"), claims.steps), fit.collapse.p)
    inside = np.flatnonzero(tau <= hi)
    values.update({"clock_fitted_on": fit.collapse.fitted_on,
                   "clock_p": fit.collapse.p, "clock_band": fit.band or float("nan"),
                   "clock_passed": fit.passed, "clock_range_lo": lo, "clock_range_hi": hi,
                   "clock_stated_last_step": int(inside[-1]) + 1 if len(inside) else 0})
    return values


def analyse_clock(curves: list[Curve], min_step: int = MIN_STEP) -> tuple[
        ClockFit | None, list[HeldOut], str]:
    """``(the fitted clock, the summed rate's leave-one-out, why not)``: the clock and S₁
    each checked on every run left out; with fewer than three runs nothing is fitted and the
    reason is said."""
    if len(curves) < 3:
        return None, [], (f"the clock needs at least 3 runs sharing the training text and "
                          f"shape, to fit p on two and predict the third; there are "
                          f"{len(curves)}")
    return fit_clock(curves, min_step), leave_one_out(curves, 1.0, min_step), ""


def clock_check_table(fit: ClockFit | None, summed: list[HeldOut]) -> pd.DataFrame:
    """The leave-one-out check of the summed rate S₁ and of τ_p with p fitted, one table."""
    return held_out_table(summed + ([] if fit is None else fit.check))


def clock_rows_table(fit: ClockFit | None) -> pd.DataFrame:
    """``report_rows_on_clock`` of the fitted clock; empty without a clock that passed its
    held-out check (a failed fit gives no numbers)."""
    return pd.DataFrame() if fit is None or not fit.passed else \
        report_rows_on_clock(fit.collapse)


def plot_clock(fit: ClockFit | None, curves: list[Curve]):
    """``plot_collapse`` at the fitted p (at p = 1 on both sides without a fit)."""
    return plot_collapse(curves, 1.0 if fit is None else fit.collapse.p)
