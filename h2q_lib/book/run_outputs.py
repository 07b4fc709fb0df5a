"""A run folder's small outputs as the chapters read them (recipe, summary, log, samples and
evaluation): the run folder (``core.run_folder``) is what every chapter after training reads,
so a setting given to training reaches each of them."""

from __future__ import annotations

import os
from pathlib import Path

from h2q_lib.core import run_folder as runs


def load_run_if_present(run_dir: str | os.PathLike) -> dict | None:
    """``load_run``, or None when ``run_dir`` holds no run."""
    return load_run(run_dir) if (Path(run_dir) / "config.json").is_file() else None


def load_run(run_dir: str | os.PathLike) -> dict:
    """A run folder's small outputs: recipe, summary, log, samples and evaluation."""
    run_dir = Path(run_dir)
    config = runs.read_json(run_dir / "config.json")
    if config is None:
        raise runs.RunFolderError(f"{runs.shown(run_dir)!r} has no readable config.json: "
                                  "train the run first (notebook 02 or h2q train)")
    return {
        "config": config,
        "summary": runs.read_json(run_dir / "summary.json") or {},
        "log": runs.read_jsonl(run_dir / "log.jsonl"),
        "samples": runs.read_jsonl(run_dir / "samples.jsonl"),
        "evaluation": runs.read_json(run_dir / "evaluation.json") or {},
    }
