"""Committed run folders read into runs: each run's recipe, loss curve, summary and stored
scores, and which run continues which.

Every function reads committed run folders (``config.json``, ``log.jsonl``, ``summary.json``,
``evaluation.json``); nothing here trains. The readings chapter ("Why the report's loss fell
so fast") sets these runs beside the report's rows (``evaluation_rows``, ``report_rows``),
fits the loss law to their curves (``law_analysis``) and draws them (``readings_figures``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from h2q_lib.analysis.loss_law import Curve
from h2q_lib.core.run_folder import read_json, read_jsonl
from h2q_lib.training.profiles import TrainConfig


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

    def val_losses(self) -> dict[int, float]:
        """The validation loss at each step that measured one, in step order."""
        return dict(sorted((r["step"], r["val_loss"]) for r in self.log
                           if r.get("val_loss") is not None))

    def record_at(self, step: int) -> dict | None:
        return next((r for r in self.log if r["step"] == step), None)

    def curve(self) -> Curve:
        return Curve.from_run(self.name, self.config, self.log)


def read_runs(run_dirs: dict[str, str | os.PathLike]) -> list[Run]:
    """The run folders ``{name: folder}`` that exist, read; missing ones are left out."""
    return [Run.read(name, d) for name, d in run_dirs.items()
            if (Path(d) / "config.json").is_file()]


def continuation(run: Run, runs: list[Run]) -> Run | None:
    """The longest of ``runs`` that continues ``run``: the same ``config.json`` but for
    ``steps``, trained further (same recipe, seed and schedule: the same curve to where
    ``run`` stopped, up to run-to-run rounding); None when none does."""
    def recipe(r: Run) -> dict:
        return {k: v for k, v in r.config.items() if k != "steps"}

    longer = [other for other in runs if other is not run and other.last_step > run.last_step
              and recipe(other) == recipe(run)]
    return max(longer, key=lambda r: r.last_step, default=None)


def continued_runs(runs: list[Run]) -> list[str]:
    """Names of the runs another of ``runs`` continues (see ``continuation``)."""
    return [run.name for run in runs if continuation(run, runs) is not None]


def glue_key(name: str) -> str:
    """A run's or reading's name as part of a glue key: letters, digits and underscores."""
    return re.sub(r"\W", "_", name)


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
