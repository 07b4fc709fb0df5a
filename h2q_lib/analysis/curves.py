"""The report's progress rows beside runs trained under each reading of its schedule.

Every function reads committed run folders (``config.json``, ``log.jsonl``, ``summary.json``)
and the report's rows (``report.REPORT``); nothing here trains. The chapter "Why the report's
loss fell so fast" is built from these tables, verdicts and figures.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from h2q_lib.analysis.loss_law import Curve, LawFit, rates
from h2q_lib.claims.completion_report import REPORT, ReportClaims
from h2q_lib.core.run_folder import read_json, read_jsonl
from h2q_lib.training.profiles import TrainConfig, get_profile
from h2q_lib.training.readings import READINGS

# A run "reproduces" a report row when its validation loss there is within this fraction of
# the report's Loss. 5 % leaves room for what differs even where run and report follow the
# same rate: the training text (WikiText-2 vs WikiText-103), the sample of validation
# windows, the seed and the hardware.
TOLERANCE = 0.05
# The report's evaluation rows (those with a Perplexity) a CPU run reaches: a validation loss
# is set beside these only; the training-log row 100 is read in ``report_rows``.
EVALUATION_ROWS = (500, 1000)
# The law "predicts" a held-out run when it misses none of its points by more than this many
# nats: about the spread of the validation loss between two seeds early in a run (the seed
# control) and well under the 0.4–0.8 nats between the runs and the report's row 500.
HELD_OUT_TOLERANCE = 0.05


@dataclass(frozen=True)
class Run:
    """One committed run folder, read."""

    name: str
    config: dict
    log: list[dict]
    summary: dict | None
    evaluation: dict | None = None  # evaluation.json: scores of the final weights

    @classmethod
    def read(cls, name: str, run_dir: str | os.PathLike) -> Run:
        folder = Path(run_dir)
        config = read_json(folder / "config.json")
        if config is None:
            raise FileNotFoundError(f"{folder} has no readable config.json: not a run folder")
        return cls(name, config, read_jsonl(folder / "log.jsonl"),
                   read_json(folder / "summary.json"), read_json(folder / "evaluation.json"))

    @property
    def recipe(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config, f"{self.name}/config.json")

    @property
    def reading(self) -> str:
        return self.config.get("reading", "stated")

    @property
    def last_step(self) -> int:
        return max((r["step"] for r in self.log), default=0)

    def record_at(self, step: int) -> dict | None:
        return next((r for r in self.log if r["step"] == step), None)

    def curve(self) -> Curve:
        return Curve.from_run(self.name, self.config, self.log)


def read_runs(run_dirs: dict[str, str | os.PathLike]) -> list[Run]:
    """The run folders ``{name: folder}`` that exist, read; missing ones are left out."""
    return [Run.read(name, d) for name, d in run_dirs.items()
            if (Path(d) / "config.json").is_file()]


def _continuation(run: Run, runs: list[Run]) -> Run | None:
    """The longest of ``runs`` that continues ``run``: the same ``config.json`` but for
    ``steps``, trained further (same recipe, seed and schedule: the same curve to where
    ``run`` stopped, up to run-to-run rounding); None when none does."""
    def recipe(r: Run) -> dict:
        return {k: v for k, v in r.config.items() if k != "steps"}

    longer = [other for other in runs if other is not run and other.last_step > run.last_step
              and recipe(other) == recipe(run)]
    return max(longer, key=lambda r: r.last_step, default=None)


def continued_runs(runs: list[Run]) -> list[str]:
    """Names of the runs another of ``runs`` continues (see ``_continuation``)."""
    return [run.name for run in runs if _continuation(run, runs) is not None]


def rerun_agreement(runs: list[Run]) -> str:
    """How closely each continued run and the run continuing it agree where both measured a
    validation loss: run-to-run noise, in a sentence (empty when no run continues another)."""
    sentences = []
    for short in runs:
        long = _continuation(short, runs)
        if long is None:
            continue
        table = controls_table(short, [long])
        gap = table[f"{long.name}: Δ loss"].abs().to_numpy()
        sentences.append(
            f"**{long.name}** is the {short.name} run's recipe and seed trained again, to step "
            f"{long.last_step:,}: at the {len(table)} steps both measured, their validation "
            f"losses differ by at most {gap.max():.3f} nats (step "
            f"{int(table['step'].iloc[int(gap.argmax())]):,}), so past step "
            f"{short.last_step:,} it continues the {short.name} run's curve.")
    return " ".join(sentences)


def glue_key(name: str) -> str:
    """A run's or reading's name as part of a glue key: letters, digits and underscores."""
    return re.sub(r"\W", "_", name)


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


def loss_columns(runs: list[Run], claims: ReportClaims = REPORT) -> pd.DataFrame:
    """At each report row a run reached: the report's Loss beside the run's three candidates
    for it — that step's own training loss, the mean training loss of the logging window
    ending there, and the validation loss."""
    out = []
    for row in claims.progress:
        for run in runs:
            rec = run.record_at(row.step)
            if rec is None:
                continue
            out.append({"step": row.step, "run": run.name, "report Loss": row.loss,
                        "step's training loss": rec["train_loss"],
                        "window mean training loss": rec.get("train_loss_avg"),
                        "validation loss": rec.get("val_loss")})
    return pd.DataFrame(out)


def final_scores(runs: list[Run]) -> pd.DataFrame:
    """Each run's final weights on the whole test split, as its ``evaluation.json`` stores
    them: bits per character (the report's preprocessing) and bits per byte and word
    perplexity (lm-evaluation-harness's protocol). Runs without stored scores are left out."""
    out = []
    for run in runs:
        stored = run.evaluation or {}
        try:
            report = stored["report"]["test"]["result"]["metrics"]
            harness = stored["lm-eval"]["test"]["result"]["metrics"]
        except (KeyError, TypeError):
            continue
        out.append({"run": run.name, "steps": run.last_step,
                    "bits per character (report protocol)": report["bits_per_character"],
                    "bits per byte (lm-eval protocol)": harness["bits_per_byte"],
                    "word perplexity (lm-eval protocol)": harness["word_perplexity"]})
    return pd.DataFrame(out)


@dataclass(frozen=True)
class RowResult:
    """A run's validation loss at one report row, against the report's Loss there."""

    step: int
    report: float
    val_loss: float | None  # None where the run did not reach the step

    @property
    def diff(self) -> float | None:
        return None if self.val_loss is None else self.val_loss - self.report

    def reproduced(self, tolerance: float = TOLERANCE) -> bool:
        """|run − report| ≤ tolerance · report."""
        return self.diff is not None and abs(self.diff) <= tolerance * self.report


def row_results(run: Run, steps: tuple[int, ...] = EVALUATION_ROWS,
                claims: ReportClaims = REPORT) -> list[RowResult]:
    """The run's validation loss at each of the report's rows ``steps``."""
    report = {r.step: r.loss for r in claims.progress}
    out = []
    for step in steps:
        rec = run.record_at(step)
        out.append(RowResult(step, report[step], rec.get("val_loss") if rec else None))
    return out


def rows_beside_runs(runs: list[Run], steps: tuple[int, ...] = EVALUATION_ROWS,
                     claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The report's rows ``steps``, each run's validation loss there (None where the run did
    not reach the step) and the run minus the report (Δ)."""
    report = {r.step: r.loss for r in claims.progress}
    table = pd.DataFrame({"step": list(steps), "report Loss": [report[s] for s in steps]})
    for run in runs:
        results = row_results(run, steps, claims)
        table[f"{run.name}: val loss"] = [r.val_loss for r in results]
        table[f"{run.name}: Δ loss"] = [r.diff for r in results]
    return table


def reading_verdicts(runs: list[Run], steps: tuple[int, ...] = EVALUATION_ROWS,
                     tolerance: float = TOLERANCE,
                     claims: ReportClaims = REPORT) -> list[str]:
    """One sentence per run: which of the report's rows ``steps`` its validation loss
    reproduces within ``tolerance`` (a fraction of the report's Loss), which it misses and
    by how much, which it did not reach."""
    sentences = []
    stated_run = next((run for run in runs if run.name == "stated"), None)
    stated = next((row for run in runs if run.name == "stated"
                   for row in row_results(run, (500,), claims) if row.val_loss is not None), None)
    for run in runs:
        hit, miss, unreached = [], [], []
        for r in row_results(run, steps, claims):
            if r.val_loss is None:
                unreached.append(f"{r.step:,}")
                continue
            text = (f"row {r.step:,} ({r.val_loss:.3f} vs {r.report:.3f}, "
                    f"{100 * r.diff / r.report:+.1f} %)")
            (hit if r.reproduced(tolerance) else miss).append(text)
        parts = []
        if hit:
            parts.append("reproduces " + ", ".join(hit))
        if miss:
            parts.append("misses " + ", ".join(miss))
        if unreached:
            parts.append("did not reach row " + ", ".join(unreached))
        at500 = row_results(run, (500,), claims)[0] if 500 in steps else None
        # a run continuing the stated one is the stated reading itself, not an alternative
        stated_itself = run is stated_run or (
            stated_run is not None and _continuation(stated_run, [stated_run, run]) is run)
        if stated is not None and not stated_itself and at500 and at500.val_loss is not None \
                and stated.diff > 0:
            closed = stated.val_loss - at500.val_loss
            parts.append(f"at row 500 it closes {closed:.3f} of the stated reading's "
                         f"{stated.diff:.3f} nats ({100 * closed / stated.diff:.0f} %)")
        sentences.append(f"**{run.name}** ({_describe(run)}) " + "; ".join(parts) + ".")
    return sentences


def _describe(run: Run) -> str:
    cfg = run.recipe
    shape = ("the report's schedule" if cfg.schedule_length == REPORT.steps
             and cfg.warmup == REPORT.warmup_steps else
             f"its schedule compressed to {cfg.schedule_length:,} steps")
    passes = (run.summary or {}).get("epochs")
    over = f", {passes:.2f} passes over its training text" if passes else ""
    return f"reading {cfg.reading}, {shape}, {run.last_step:,} steps trained{over}"


def verdict_values(runs: list[Run], steps: tuple[int, ...] = EVALUATION_ROWS,
                   tolerance: float = TOLERANCE,
                   claims: ReportClaims = REPORT) -> dict[str, float | int | str]:
    """Numbers for the book's prose: each run's validation loss and difference at each row it
    reached (``<run>_at<step>``, ``<run>_diff<step>``) and the runs reproducing row 500."""
    report = {r.step: r.loss for r in claims.progress}
    values: dict[str, float | int | str] = {"tolerance_pct": 100 * tolerance}
    reproducing = {500: [], 1000: []}
    reached = {500: [], 1000: []}
    for run in runs:
        key = glue_key(run.name)
        for r in row_results(run, steps, claims):
            if r.val_loss is None:
                continue
            values[f"{key}_at{r.step}"] = r.val_loss
            values[f"{key}_diff{r.step}"] = r.diff
            if r.step in reached:
                reached[r.step].append(f"{run.name} {r.val_loss:.3f}")
                if r.reproduced(tolerance):
                    reproducing[r.step].append(run.name)
    stated = next((run for run in runs if run.name == "stated"), None)
    if stated is not None and "stated_diff500" in values:
        values["stated_fall_sentence"] = (
            f"ends {values['stated_diff500']:+.2f} nats from the report's row 500 (run − "
            "report)")
    else:
        trained = stated.last_step if stated is not None else 0
        values["stated_fall_sentence"] = (f"has no validation loss at row 500 (it ran "
                                          f"{trained:,} steps)")
    for step in reached:
        names = reproducing[step]
        values[f"row{step}_reproduced_by"] = ", ".join(names) if names else "none"
        values[f"row{step}_verdict"] = (
            f"reproduced by the {' and '.join(names)} reading" if names else
            "not reproduced by any tested reading" if reached[step] else
            "not reached by any run")
        values[f"row{step}_numbers"] = ("; ".join(reached[step]) or
                                        f"no run reached step {step:,}") + \
            f" vs the report's {report[step]:.4f}"
    values["longest_run_steps"] = max((run.last_step for run in runs), default=0)
    return values


def _val_losses(run: Run) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in run.log if r.get("val_loss") is not None}


def controls_table(base: Run, controls: list[Run]) -> pd.DataFrame:
    """At every step where ``base`` and all ``controls`` measured a validation loss: base's
    loss, each control's and the control minus the base (Δ)."""
    losses = [_val_losses(run) for run in (base, *controls)]
    steps = sorted(set.intersection(*(set(v) for v in losses))) if controls else []
    table = pd.DataFrame({"step": steps, f"{base.name}: val loss": [losses[0][s] for s in steps]})
    for run, own in zip(controls, losses[1:], strict=True):
        table[f"{run.name}: val loss"] = [own[s] for s in steps]
        table[f"{run.name}: Δ loss"] = [own[s] - losses[0][s] for s in steps]
    return table


def controls_reading(base: Run, controls: list[Run], runs: list[Run],
                     claims: ReportClaims = REPORT) -> str:
    """How far the controls move the validation loss at their last common step, beside how
    far each reading's run is from the report's row 500."""
    table = controls_table(base, controls)
    if table.empty:
        return ("No control run is committed: whether the seed, the training text or the "
                "precision could move the loss by the gap below is not measured here.")
    last = table.iloc[-1]
    shifts = {run.name: float(last[f"{run.name}: Δ loss"]) for run in controls}
    largest = max(abs(v) for v in shifts.values())
    listed = ", ".join(f"{name} {v:+.3f}" for name, v in shifts.items())
    gaps = [f"{run.name} {row.diff:+.3f}" for run in runs
            for row in row_results(run, (500,), claims) if row.val_loss is not None]
    deltas = table[[f"{run.name}: Δ loss" for run in controls]].abs()
    peak_step = int(table["step"].iloc[int(deltas.max(axis=1).to_numpy().argmax())])
    text = (f"At step {int(last['step']):,}, the last step every control reached, changing one "
            f"thing moves the stated run's validation loss by at most {largest:.3f} nats "
            f"({listed}); at any common step by at most {float(deltas.to_numpy().max()):.3f} "
            f"(step {peak_step:,}).")
    if gaps:
        text += (f" At the report's row 500 the runs differ from the report by "
                 f"{'; '.join(gaps)} nats. The controls end at step "
                 f"{int(last['step']):,}: they measure what one such change does there, not "
                 "at row 500, so the two compare in order of size only.")
    return text


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


def verdicts_markdown(runs: list[Run], **kwargs) -> str:
    """``reading_verdicts`` as a Markdown list, then ``gap_sentence``."""
    bullets = "\n".join("- " + sentence for sentence in reading_verdicts(runs, **kwargs))
    gap = gap_sentence(runs)
    return bullets + ("\n\n" + gap if gap else "")


def gap_sentence(runs: list[Run], first: int = 500, last: int = 1000,
                 claims: ReportClaims = REPORT) -> str:
    """How each run that reached both report rows ``first`` and ``last`` fell between them,
    against the report's fall there (empty when no run reached both)."""
    parts = []
    for run in runs:
        a, b = row_results(run, (first, last), claims)
        if a.val_loss is None or b.val_loss is None:
            continue
        parts.append(f"{run.name}'s validation loss falls {a.val_loss - b.val_loss:.3f} nats, "
                     f"so its gap to the report goes from {a.diff:+.3f} to {b.diff:+.3f}")
    if not parts:
        return ""
    report = {r.step: r.loss for r in claims.progress}
    return (f"Between the report's rows {first:,} and {last:,} its Loss falls "
            f"{report[first] - report[last]:.3f} nats; " + "; ".join(parts) + ".")


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


def plot_law(fit: LawFit | None, runs: list[Run],
             readings: tuple[str, ...] = tuple(READINGS), claims: ReportClaims = REPORT):
    """The law's predicted curve under each reading with its band, the fitted runs' points,
    and the report's rows as points, against the report's steps (a fit made below a loss is
    drawn only where its value is below that loss, as in ``law_predictions``)."""
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
    from h2q_lib.analysis.loss_law import fit_law, held_out_errors

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


def law_reading(analysis: LawAnalysis, claims: ReportClaims = REPORT) -> str:
    """What the fit and its held-out check say, in sentences computed from them."""
    values = law_values(analysis, claims)
    parts = []
    if "held_out_max_error" in values:
        worst = values["held_out_max_error"]
        verdict = ("it predicts a schedule it never saw" if worst <= HELD_OUT_TOLERANCE else
                   f"more than the {HELD_OUT_TOLERANCE:.2f} nats within which we would call it "
                   "a prediction, so its numbers below are a fit carried forward, not a "
                   "tested forecast")
        parts.append(
            f"Fitted without the {analysis.held_out} run, the law misses that run's "
            f"validation loss at its {len(analysis.held_out_errors)} points in the fitted "
            f"range ({_selection(analysis.check)}) by up to {worst:.3f} nats (mean measured "
            f"− predicted {values['held_out_mean_error']:+.3f}): {verdict}.")
    if analysis.fit is not None:
        preds = ", ".join(
            f"{name} reading {values['law_' + glue_key(name) + '_at_best']:.3f} "
            f"(band {values['law_' + glue_key(name) + '_band']})" for name in READINGS)
        parts.append(
            f"Fitted on every run, it puts the loss at the report's step "
            f"{claims.best_val_step:,} at: {preds}; the report printed "
            f"{claims.best_val_loss}.")
    if analysis.fit is not None:
        parts.append(_degenerate_terms(analysis.fit, claims))
    if values["law_impossible"]:
        parts.append(
            f"Under the {values['law_impossible']} reading the band reaches below zero, a loss "
            "no model can have: there the annealing term, fitted on rates that fall once, is "
            "carried over rates that fall many times, far outside what it was fitted on.")
    if analysis.missing:
        parts.append(f"Not computed: {analysis.missing}.")
    return " ".join(parts)


def _degenerate_terms(fit: LawFit, claims: ReportClaims = REPORT,
                      negligible: float = 0.01) -> str:
    """Which of the law's terms the fit has switched off, in a sentence: a floor L₀ below
    ``negligible`` nats, an annealing term C·S₂ below it at the end of every reading's
    schedule (empty when the fit uses both)."""
    from h2q_lib.analysis.loss_law import areas

    l0, _, alpha, c = fit.params
    annealing = max(float(c * areas(report_rates(name, claims.steps))[1][-1])
                    for name in READINGS)
    off = []
    if l0 < negligible:
        off.append(f"the floor L₀ to {l0:.3f} nats")
    if annealing < negligible:
        off.append(f"the annealing term C·S₂ to at most {annealing:.3f} nats at step "
                   f"{claims.steps:,} under any reading")
    if not off:
        return ""
    text = "The fit on every run drives " + " and ".join(off)
    if annealing < negligible:
        text += (f": on these runs the law is a power law in the summed learning rate, "
                 f"A·S₁^(−{alpha:.2f}), and the readings differ only in how fast they sum "
                 "their rate")
    return text + "."


def selection_reading(chosen: LawAnalysis, alternative: LawAnalysis) -> str:
    """The held-out check of the chosen selection of points beside an alternative's, in one
    sentence (empty when either has no check)."""
    if chosen.held_out_errors is None or alternative.held_out_errors is None \
            or not len(chosen.held_out_errors) or not len(alternative.held_out_errors) \
            or _selection(chosen.check) == _selection(alternative.check):
        return ""
    worst = [float(np.abs(a.held_out_errors).max()) for a in (chosen, alternative)]
    return (f"Fitted on the points with {_selection(alternative.check)} instead, the law "
            f"misses the held-out {chosen.held_out} run by up to {worst[1]:.3f} nats, against "
            f"{worst[0]:.3f} with {_selection(chosen.check)}.")


def _selection(fit: LawFit) -> str:
    """The points a fit keeps, in words."""
    below = "" if fit.max_loss is None else f", loss ≤ {fit.max_loss:.2f}"
    return f"step ≥ {fit.min_step:,}{below}"


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


def law_values(analysis: LawAnalysis, claims: ReportClaims = REPORT) -> dict[str, float | str]:
    """Numbers for the prose: the held-out errors, and each reading's predicted loss at the
    report's best row (step 6,000, Loss 1.0828) with its band."""
    values: dict[str, float | str] = {"law_missing": analysis.missing or "nothing",
                                      "law_check_verdict": "no held-out check"}
    if analysis.held_out_errors is not None and len(analysis.held_out_errors):
        worst = float(np.abs(analysis.held_out_errors).max())
        values["held_out_max_error"] = worst
        values["held_out_mean_error"] = float(np.mean(analysis.held_out_errors))
        values["law_check_verdict"] = (
            f"it predicts the held-out {analysis.held_out} run within {worst:.2f} nats"
            if worst <= HELD_OUT_TOLERANCE else
            f"untested: it misses the held-out {analysis.held_out} run by up to {worst:.2f} "
            "nats, so these are fits carried forward, not forecasts")
    impossible = []
    if analysis.fit is not None:
        step = np.array([claims.best_val_step])
        for name in READINGS:
            lr = report_rates(name, claims.steps)
            lo, hi = analysis.fit.band(lr, step)
            key = glue_key(name)
            values[f"law_{key}_at_best"] = float(analysis.fit.predict(lr, step)[0])
            values[f"law_{key}_band"] = f"{lo[0]:.2f}–{hi[0]:.2f}"
            if lo[0] < 0:
                impossible.append(name)
        values["law_at_best_summary"] = "; ".join(
            f"{name} {values['law_' + glue_key(name) + '_at_best']:.2f} "
            f"({values['law_' + glue_key(name) + '_band']})" for name in READINGS)
    else:
        values["law_at_best_summary"] = "no fit (" + analysis.missing + ")"
    values["law_impossible"] = ", ".join(impossible)
    return values
