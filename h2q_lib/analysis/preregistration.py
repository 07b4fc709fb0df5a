"""Pre-registered runs: the clock's prediction, written and committed before a run starts,
set beside what the run then measured.

``h2q predict`` fits the schedule clock (``clock.fit_clock``) on the committed runs that share
the new run's training text and shape, and writes ``prediction.json`` into the run's folder
in the repository: the recipe, the fit (its p, the runs and clock range it covers, its
leave-one-out check) and the predicted validation loss at every evaluation step, with a band
of ± the clock's largest held-out miss. The prediction is committed before the run's first
log record; git history shows the order. The book reads it beside the run's ``log.jsonl``
(``book.wording.readings`` words the outcome).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from h2q_lib.analysis.clock import MIN_STEP, ClockFit, clock, fit_clock
from h2q_lib.analysis.curves import Run, continued_runs, read_runs
from h2q_lib.analysis.loss_law import rates
from h2q_lib.training.profiles import TrainConfig

PREDICTION = "prediction.json"
# recipe fields that must agree for a run's curve to inform another's clock: the text trained
# on, the model, the tokens a step and every optimizer setting but the learning-rate schedule
# (the clock is a function of the schedule alone; the schedule, seed and records may differ)
SHARED_FIELDS = ("tokenizer", "data_config", "train_data_config", "n_layer", "n_head",
                 "n_embd", "n_ff", "block_size", "batch_size", "grad_accum", "dropout",
                 "weight_decay", "grad_clip", "init", "adam_beta2", "decay_scope")


def clock_runs(runs_dir: str | os.PathLike, cfg: TrainConfig,
               exclude: tuple[str, ...] = ()) -> list[Run]:
    """The committed runs in ``runs_dir`` that share ``cfg``'s ``SHARED_FIELDS``, without
    those another run continues and without ``exclude`` (folder names)."""
    folders = {p.name: p for p in sorted(Path(runs_dir).iterdir())
               if p.is_dir() and p.name not in exclude} if Path(runs_dir).is_dir() else {}
    target = cfg.to_dict()
    # the recipe read back fills fields an older config.json predates with their defaults
    runs = [r for r in read_runs(folders)
            if all(r.recipe.to_dict()[k] == target[k] for k in SHARED_FIELDS)
            and r.val_losses()]
    continued = set(continued_runs(runs))
    return [r for r in runs if r.name not in continued]


def eval_steps(cfg: TrainConfig) -> np.ndarray:
    """The steps (1-based) at which a run of ``cfg`` measures its validation loss."""
    return np.arange(cfg.eval_every, cfg.steps + 1, cfg.eval_every)


def prediction(cfg: TrainConfig, fit: ClockFit, name: str, command: str,
               revision: str) -> dict:
    """What ``prediction.json`` holds for a run ``name`` of ``cfg``: its recipe and command,
    the fit, and the predicted loss at each evaluation step (None where the clock says
    nothing: before ``MIN_STEP`` or outside the fitted range)."""
    steps = eval_steps(cfg)
    lr = rates(cfg, int(steps.max()) if len(steps) else 0)
    predicted = fit.collapse.predict(lr, steps)
    tau = clock(lr, fit.collapse.p)[steps - 1]
    band = fit.band
    points = []
    for step, t, value in zip(steps, tau, predicted, strict=True):
        inside = not np.isnan(value)
        why = None if inside else (f"before step {MIN_STEP}" if step < MIN_STEP
                                   else "clock outside the fitted range")
        points.append({"step": int(step), "clock": float(t),
                       "predicted": float(value) if inside else None,
                       "low": float(value - band) if inside and band is not None else None,
                       "high": float(value + band) if inside and band is not None else None,
                       "not predicted": why})
    return {
        "run": name, "command": command, "recipe": cfg.to_dict(),
        "predicted_at_revision": revision,
        "clock": {"p": fit.collapse.p, "fitted_on": list(fit.collapse.fitted_on),
                  "min_step": fit.collapse.min_step, "clock_range": list(fit.collapse.clock_range),
                  "cross_rms": fit.cross_rms, "passed_held_out_check": fit.passed,
                  "band_nats": band,
                  "held_out": [{"run": r.held_out, "p": r.p, "largest_miss": r.max_error,
                                "points_predicted": len(r.errors), "points": r.points}
                               for r in fit.check]},
        "points": points,
    }


def predict_command(cfg: TrainConfig, name: str, runs_dir: str, out: str,
                    command: str) -> dict:
    """Fit the clock on ``runs_dir``'s runs (leaving ``name`` itself out) and write
    ``out``; the prediction, returned."""
    from h2q_lib.core.errors import ConfigError
    from h2q_lib.core.provenance import git_revision
    from h2q_lib.core.run_folder import check_writable, write_json

    runs = clock_runs(runs_dir, cfg, exclude=(name,))
    if len(runs) < 3:
        raise ConfigError("runs_dir", runs_dir, "a folder with at least 3 committed runs that "
                          "share the recipe's training text and shape (found "
                          f"{len(runs)}: {', '.join(r.name for r in runs) or 'none'})")
    check_writable(out)
    pred = prediction(cfg, fit_clock([r.curve() for r in runs]), name, command, git_revision())
    write_json(out, pred)
    return pred


def beside_measurement(pred: dict, run: Run | None) -> pd.DataFrame:
    """Each predicted step: the prediction and its band, the run's measured validation loss
    (None before it got there), measured − predicted, and whether the band held."""
    measured = {} if run is None else run.val_losses()
    out = []
    for point in pred["points"]:
        value, got = point["predicted"], measured.get(point["step"])
        diff = None if value is None or got is None else got - value
        held = None if diff is None or point["low"] is None else \
            point["low"] <= got <= point["high"]
        out.append({"step": point["step"], "predicted": value,
                    "band": None if point["low"] is None else
                    f"{point['low']:.3f}–{point['high']:.3f}",
                    "measured": got, "measured − predicted": diff,
                    "held": None if held is None else ("yes" if held else "no")})
    return pd.DataFrame(out)


Preregistered = tuple[str, dict, "Run | None"]  # (name, prediction.json, the run once committed)


def read_preregistered(run_dirs: dict[str, str | os.PathLike]) -> list[Preregistered]:
    """``(name, prediction, run)`` for each folder of ``run_dirs`` that holds a
    ``prediction.json``; ``run`` is None until the run's own files are committed beside it."""
    from h2q_lib.core.run_folder import read_json

    out = []
    for name, folder in run_dirs.items():
        pred = read_json(Path(folder) / PREDICTION)
        if pred is None:
            continue
        run = Run.read(name, folder) if (Path(folder) / "config.json").is_file() else None
        out.append((name, pred, run))
    return out


def measured_runs(entries: list[Preregistered]) -> list[Run]:
    """The pre-registered runs whose own files are committed, in ``entries``' order."""
    return [run for _, _, run in entries if run is not None]


def outcome(pred: dict, run: Run | None) -> tuple[int, int, float] | None:
    """``(steps whose band held, steps judged, largest |measured − predicted|)``; None until
    the run has measured a predicted step."""
    judged = beside_measurement(pred, run).dropna(subset=["held"])
    if run is None or judged.empty:
        return None
    return (int((judged["held"] == "yes").sum()), len(judged),
            float(judged["measured − predicted"].abs().max()))


def preregistered_table(entries: list[Preregistered]) -> pd.DataFrame:
    """One row per evaluation step and one column per pre-registered run (headed by the
    first word of its book name, e.g. "N1", and its band): "measured / predicted", the
    measurement marked ✓ inside the band or ✗ outside (``beside_measurement``), "—" for
    what is missing. One short column a run keeps four runs within a page's column."""
    table = None
    for name, pred, run in entries:
        own = beside_measurement(pred, run)
        band = pred["clock"].get("band_nats")
        column = f"{name.split()[0]}: measured / predicted" + (
            f" (± {band:.3f})" if band else "")
        own[column] = [_measured_over_predicted(got, value, held) for got, value, held
                       in zip(own["measured"], own["predicted"], own["held"], strict=True)]
        own = own[["step", column]]
        table = own if table is None else table.merge(own, on="step", how="outer")
    return pd.DataFrame() if table is None else table


def _measured_over_predicted(got: float | None, value: float | None,
                             held: str | None) -> str | None:
    got, value, held = (None if pd.isna(x) else x for x in (got, value, held))
    if got is None and value is None:
        return None
    shown = ("—" if got is None else f"{got:.3f}") + " / " + (
        "—" if value is None else f"{value:.3f}")
    return shown + ("" if held is None else " ✓" if held == "yes" else " ✗")


def clock_curves(runs_dir: str | os.PathLike, profile: str) -> list:
    """The curves of ``clock_runs`` for ``profile``'s recipe (``loss_law.Curve``), each
    named as the book names its run (the profile's own run is "stated")."""
    import dataclasses

    from h2q_lib.training.profiles import get_profile, get_profile_spec

    spec = get_profile_spec(profile)
    names = {folder: name for name, folder in {**spec.reading_runs, **spec.control_runs,
                                               **spec.preregistered_runs}.items()}
    names[profile] = "stated"
    return [dataclasses.replace(run.curve(), name=names.get(run.name, run.name))
            for run in clock_runs(runs_dir, get_profile(profile))]
