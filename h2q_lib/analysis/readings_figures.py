"""The readings chapter's figures: each reading's learning rate, the runs' validation losses
beside the report's rows, and the loss law's predicted curves with their bands."""

from __future__ import annotations

import numpy as np

from h2q_lib.analysis.curves import Run
from h2q_lib.analysis.loss_law import LawFit
from h2q_lib.analysis.reading_rates import report_rates
from h2q_lib.claims.completion_report import REPORT, ReportClaims
from h2q_lib.training.readings import READINGS


def _finish(fig, ax, xlabel: str, ylabel: str, legend_size: int):
    """Label the axes, start y at zero (losses and rates compare as ratios), grid, legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    return fig


def plot_runs_beside_report(runs: list[Run], claims: ReportClaims = REPORT,
                            max_step: int = 1000):
    """Validation loss against tokens for each run, the report's rows as points."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    tokens_per_step = claims.tokens_per_step()
    for run in runs:
        evals = [r for r in run.log if r.get("val_loss") is not None]
        ax.plot([r["tokens_seen"] / 1e6 for r in evals], [r["val_loss"] for r in evals],
                marker=".", label=f"{run.name} (validation)")
    rows = [r for r in claims.progress if r.step <= max_step]
    ax.scatter([r.step * tokens_per_step / 1e6 for r in rows], [r.loss for r in rows],
               color="black", zorder=5, label="report's Loss column")
    return _finish(fig, ax, "tokens (millions)", "loss (nats per character)", legend_size=9)


def plot_law(fit: LawFit | None, runs: list[Run],
             readings: tuple[str, ...] = tuple(READINGS), claims: ReportClaims = REPORT):
    """The law's predicted curve under each reading with its band, the fitted runs' points,
    and the report's rows as points, against the report's steps (a fit made below a loss is
    drawn only where its value is below that loss, as in ``law_analysis.law_predictions``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    steps = np.arange(10, claims.steps + 1, 10)
    for name in readings if fit is not None else ():
        lr = report_rates(name, claims.steps)
        lo, hi = fit.band(lr, steps)
        predicted = fit.predict(lr, steps)
        inside = fit.covers(predicted)
        predicted, lo, hi = (np.where(inside, v, np.nan) for v in (predicted, lo, hi))
        line, = ax.plot(steps, predicted, label=f"law, {name} reading")
        ax.fill_between(steps, np.maximum(lo, 0), hi, color=line.get_color(), alpha=0.15)
    for curve in (run.curve() for run in runs):
        ax.scatter(curve.steps, curve.losses, s=10, label=f"{curve.name} (measured)")
    ax.scatter([r.step for r in claims.progress], [r.loss for r in claims.progress],
               color="black", zorder=5, label="report's Loss column")
    return _finish(fig, ax, "optimizer step", "loss (nats per character)", legend_size=8)


def plot_rates(readings: tuple[str, ...] = tuple(READINGS), claims: ReportClaims = REPORT):
    """The learning rate of each reading over the report's 6,350 steps."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for name in readings:
        ax.plot(np.arange(1, claims.steps + 1),
                report_rates(name, claims.steps) * 1e4, label=name)
    for row in claims.progress:
        ax.axvline(row.step, color="grey", lw=0.5, alpha=0.4)
    return _finish(fig, ax, "optimizer step (grey: the report's rows)",
                   "learning rate (×10⁻⁴)", legend_size=9)
