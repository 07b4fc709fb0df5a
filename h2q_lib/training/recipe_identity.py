"""A run's recipe as an identity: its hash, and whether a file or a resumed run is of it.

A checkpoint and a final weights file carry their recipe and its ``recipe_sha256``; a run
resumes only with the recipe its ``config.json`` holds (``check_same_recipe``), except that
``--extend`` may ask for more ``steps`` (``extended_recipe`` then keeps the schedule).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import bounded_repr
from h2q_lib.training.profiles import ADDED_FIELDS, TrainConfig

RESTART_HINT = "h2q train --restart (the notebooks' restart parameter)"


def recipe_sha256(recipe: TrainConfig | dict) -> str:
    """The recipe's identity: sha256 of every field but ``steps``, with the schedule's length
    resolved (``schedule_length``).

    ``steps`` says how far a run trains, not what its steps compute, and ``--extend`` raises
    it; the weights of step k depend on everything else. A field added later
    (``profiles.ADDED_FIELDS``) counts only where it differs from the value earlier runs
    had. Checkpoints and final weights carry it; those of older versions are checked by the
    recipe in their metadata.
    """
    cfg = recipe if isinstance(recipe, TrainConfig) else TrainConfig.from_dict(recipe)
    fields_ = {**cfg.to_dict(), "schedule_steps": cfg.schedule_length}
    del fields_["steps"]
    for name, before in ADDED_FIELDS.items():  # the hash earlier runs carry
        if fields_[name] == before:
            del fields_[name]
    return hashlib.sha256(json.dumps(fields_, sort_keys=True).encode()).hexdigest()


def written_by(meta: dict, cfg: TrainConfig) -> str | None:
    """None when a checkpoint's or weights file's ``meta`` is of the recipe ``cfg``, else why
    not (one phrase)."""
    try:
        theirs = TrainConfig.from_dict(meta["recipe"])
    except (KeyError, TypeError, ValueError):
        return "carries no readable recipe"
    if recipe_sha256(theirs) == recipe_sha256(cfg):
        return None
    diff = {k: v for k, v in recipe_differences(theirs, cfg).items() if k != "steps"}
    listing = ", ".join(f"{k} {bounded_repr(old)} where the run has {bounded_repr(new)}"
                        for k, (old, new) in diff.items())
    return f"was written by a different recipe ({listing})"


def recipe_differences(stored: TrainConfig, asked: TrainConfig) -> dict[str, tuple]:
    """``{field: (stored value, asked value)}`` for every recipe field that differs."""
    a, b = stored.to_dict(), asked.to_dict()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def extended_recipe(stored: TrainConfig, asked: TrainConfig) -> TrainConfig:
    """``asked`` for ``--extend``: a schedule left unset keeps the run's own length.

    Without it the cosine would be stretched to the new ``steps`` and restart its decay
    mid-run, and ``config.json`` would no longer reproduce the steps already trained.
    """
    if asked.schedule_steps is None and (asked.steps != stored.steps
                                         or stored.schedule_steps is not None):
        return dataclasses.replace(asked, schedule_steps=stored.schedule_length)
    return asked


def check_same_recipe(run_dir: Path, stored: TrainConfig, asked: TrainConfig,
                      extend: bool) -> None:
    """Refuse to resume a run with a different recipe; ``extend`` allows more ``steps`` only
    (``schedule_steps`` may then name the length the schedule had: ``extended_recipe``)."""
    if extend and stored.schedule_steps is None and asked.schedule_steps == stored.steps:
        stored = dataclasses.replace(stored, schedule_steps=stored.steps)
    diff = recipe_differences(stored, asked)
    if not diff or (extend and set(diff) == {"steps"} and asked.steps > stored.steps):
        return
    listing = ", ".join(f"{k} {bounded_repr(old)} -> {bounded_repr(new)}"
                        for k, (old, new) in diff.items())
    hint = ("; to train this run further, ask for more steps with extend "
            "(h2q train --extend)" if "steps" in diff and len(diff) == 1 else "")
    raise runs.RunFolderError(
        f"run_dir {runs.shown(run_dir)!r} holds a run with a different recipe ({listing}); "
        f"use a new run_dir, or start over with {RESTART_HINT}, to train the new "
        f"recipe{hint}")
