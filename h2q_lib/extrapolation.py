"""A power law fitted to a run's validation losses, extrapolated to the report's token count.

The model, its assumptions and what it is not:

    L(t) = a · t^(−α)        t = tokens processed, L = validation loss (nats per token)

fitted by least squares on (ln t, ln L), i.e. ln L = ln a − α · ln t. The band is the 2.5-97.5
percentile range of the same fit on bootstrap resamples of the points, so it reflects only
their scatter around the line. It assumes the loss keeps falling along one straight line in
log-log space: no floor, the same data, and a learning-rate schedule that does not change the
shape of the curve (the prefix is still in the report's 2,000-step warmup; later the cosine
decay bends real curves). An extrapolation, never a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .report import REPORT, ReportClaims


@dataclass(frozen=True)
class PowerLawFit:
    """L(t) = a · t^(−alpha), with bootstrap fits for the band."""

    a: float
    alpha: float
    tokens: tuple[float, ...]
    losses: tuple[float, ...]
    bootstrap: tuple[tuple[float, float], ...]  # (a, alpha) of each resample

    def predict(self, tokens: float | np.ndarray) -> np.ndarray:
        """a · t^(−alpha)."""
        return self.a * np.asarray(tokens, dtype=float) ** (-self.alpha)

    def band(self, tokens: float | np.ndarray, level: float = 0.95) -> tuple[np.ndarray, ...]:
        """Lower and upper ``level`` percentiles of the bootstrap fits' predictions."""
        t = np.asarray(tokens, dtype=float)
        preds = np.array([a * t ** (-alpha) for a, alpha in self.bootstrap])
        tail = 100 * (1 - level) / 2
        return np.percentile(preds, tail, axis=0), np.percentile(preds, 100 - tail, axis=0)


def _fit_log_log(tokens: np.ndarray, losses: np.ndarray) -> tuple[float, float]:
    """(a, alpha) of the least-squares line ln L = ln a − alpha · ln t."""
    slope, intercept = np.polyfit(np.log(tokens), np.log(losses), 1)
    return float(np.exp(intercept)), float(-slope)


def fit_power_law(log: list[dict], min_step: int | None = None, resamples: int = 2000,
                  seed: int = 0) -> PowerLawFit:
    """Fit ``L(t) = a · t^(−alpha)`` to the validation losses logged at ``step >= min_step``.

    ``min_step`` None skips the first evaluation only (the loss there still falls from its
    initial value far faster than any power law). Needs at least three points.
    """
    evals = [r for r in log if r.get("val_loss") is not None]
    if min_step is None:
        min_step = evals[1]["step"] if len(evals) > 1 else 0
    points = [(r["tokens_seen"], r["val_loss"]) for r in evals if r["step"] >= min_step]
    if len(points) < 3:
        raise ValueError(f"a power-law fit needs at least 3 validation points at step >= "
                         f"{min_step}; the log has {len(points)}")
    tokens = np.array([p[0] for p in points], dtype=float)
    losses = np.array([p[1] for p in points], dtype=float)
    a, alpha = _fit_log_log(tokens, losses)
    rng = np.random.default_rng(seed)
    boots = []
    while len(boots) < resamples:
        pick = rng.integers(0, len(points), len(points))
        if len(set(pick.tolist())) < 2:  # a line needs two distinct points
            continue
        boots.append(_fit_log_log(tokens[pick], losses[pick]))
    return PowerLawFit(a, alpha, tuple(tokens), tuple(losses), tuple(boots))


def fit_or_none(log: list[dict], min_step: int | None = None) -> PowerLawFit | None:
    """``fit_power_law``, or None where the log has too few validation points (a short run):
    the chapter then says so instead of failing."""
    try:
        return fit_power_law(log, min_step)
    except ValueError:
        return None


def fit_summary(fit: PowerLawFit | None, claims: ReportClaims = REPORT) -> str:
    """Markdown for the book's opening page: the prediction at the report's end, or why
    there is none."""
    if fit is None:
        return ("This run logged too few validation points (a power law needs three after "
                "the first), so no extrapolation to the report's end was computed.")
    lo, hi = fit.band(claims.tokens_processed)
    return (f"A power law fitted to this run's {len(fit.tokens)} validation points and carried "
            f"to the report's {claims.tokens_processed:,} tokens predicts "
            f"{float(fit.predict(claims.tokens_processed)):.3f} nats per character (band "
            f"{float(lo):.3f}–{float(hi):.3f}), against the report's {claims.best_val_loss}.")


def fit_values(fit: PowerLawFit | None, claims: ReportClaims = REPORT) -> dict[str, float]:
    """The fit's exponent and its prediction (with band) at the report's token count."""
    if fit is None:
        return {"fit_points": 0}
    lo, hi = fit.band(claims.tokens_processed)
    return {"fit_alpha": fit.alpha, "fit_points": len(fit.tokens),
            "fit_at_report_end": float(fit.predict(claims.tokens_processed)),
            "fit_band_low": float(lo), "fit_band_high": float(hi)}


def extrapolation_table(fit: PowerLawFit, claims: ReportClaims = REPORT,
                        min_step: int | None = None) -> pd.DataFrame:
    """The fit's prediction and band at each report table step beyond the fitted points.

    "inside band" says whether the report's own loss at that step lies within the band.
    """
    if fit is None:
        return pd.DataFrame()
    per_step = claims.tokens_per_step()
    first = min_step if min_step is not None else max(fit.tokens) / per_step
    rows = []
    for r in claims.progress:
        if r.step <= first:
            continue
        t = r.step * per_step
        lo, hi = fit.band(t)
        pred = float(fit.predict(t))
        rows.append({"step": r.step, "tokens": t, "report loss": r.loss,
                     "power law": pred, "band low": float(lo), "band high": float(hi),
                     "report − power law": r.loss - pred,
                     "inside band": bool(lo <= r.loss <= hi)})
    return pd.DataFrame(rows).set_index("step")


def extrapolation_reading(fit: PowerLawFit, table: pd.DataFrame,
                          claims: ReportClaims = REPORT) -> str:
    """Markdown: the fit, its prediction at the report's end, and the report's rows against it."""
    if fit is None:
        return "**Reading.** " + fit_summary(None, claims)
    lo, hi = fit.band(claims.tokens_processed)
    end = float(fit.predict(claims.tokens_processed))
    best = next((r for r in claims.progress if r.step == claims.best_val_step), None)
    inside = int(table["inside band"].sum()) if len(table) else 0
    text = (
        f"**Reading.** Fitted on {len(fit.tokens)} validation points "
        f"({min(fit.tokens):,.0f}–{max(fit.tokens):,.0f} tokens), the power law falls as "
        f"t^−{fit.alpha:.3f}. Carried to the report's {claims.tokens_processed:,} tokens it "
        f"predicts {end:.3f} nats per character (95% band {float(lo):.3f}–{float(hi):.3f}); "
        f"the report's best loss is {claims.best_val_loss}")
    if best is not None:
        text += f" at step {best.step}"
    text += (f". {inside} of the report's {len(table)} later rows lie inside the band. This is "
             "an extrapolation under the assumptions above, not a measurement.")
    return text


def plot_extrapolation(fit: PowerLawFit, claims: ReportClaims = REPORT):
    """The fitted points, the power law with its band to 104M tokens, and the report's rows
    (as points: it printed nothing between them); None without a fit."""
    import matplotlib.pyplot as plt

    if fit is None:
        return None
    per_step = claims.tokens_per_step()
    t = np.geomspace(min(fit.tokens), claims.tokens_processed, 200)
    lo, hi = fit.band(t)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.fill_between(t, lo, hi, color="tab:blue", alpha=0.2, label="power law, 95% band")
    ax.plot(t, fit.predict(t), color="tab:blue", label="power law fitted to this run")
    ax.plot(fit.tokens, fit.losses, "o", color="tab:blue", label="this run: validation loss")
    ax.plot([r.step * per_step for r in claims.progress], [r.loss for r in claims.progress],
            "s", color="tab:red", label="report: table rows")
    ax.set_xscale("log")
    ax.set_xlabel("tokens processed (log scale)", fontsize=11)
    ax.set_ylabel("loss (nats per character)", fontsize=11)
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig
