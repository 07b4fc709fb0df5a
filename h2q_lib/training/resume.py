"""Where a call of ``train`` begins in its run folder: fresh, resumed, or already finished.

``open_run`` reads the folder before anything is trained: the recipe in ``config.json``
(restored from the latest checkpoint when it is missing), the latest checkpoint of that
recipe, the final weights and ``summary.json``. A finished run is read, never retrained; a
folder with a run's records but no checkpoint to resume from is refused, never trained from
step 0; nothing is deleted on the way. ``run_precision`` keeps a resumed run's precision.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from h2q_lib.core import run_cleanup
from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import bounded_repr
from h2q_lib.training import checkpoint as ckpt
from h2q_lib.training.hardware import PrecisionChoice, choose_precision
from h2q_lib.training.profiles import TrainConfig
from h2q_lib.training.recipe_identity import (
    RESTART_HINT,
    check_same_recipe,
    extended_recipe,
    written_by,
)

RECORDS = ("log.jsonl", "samples.jsonl", "summary.json", "evaluation.json")


def run_precision(device: str, asked: str, meta: dict | None,
                  say: Callable[[str], None]) -> PrecisionChoice:
    """The precision of this session: the run's own on resume (``meta`` of its latest
    checkpoint) unless another is asked for by name, else the hardware rule.

    ``auto`` measures the machine, and a busy machine measures differently; a run resumed
    with ``auto`` keeps the precision it trained in, so that it goes on as it began.
    """
    kept = (meta or {}).get("precision")
    if asked == "auto" and kept is not None and (kept, device) != ("fp16", "cpu") \
            and meta.get("device") in (device, None):
        return PrecisionChoice(kept, f"kept from the run's checkpoint at step {meta['step']} "
                               "(precision auto on resume keeps the run's own; ask for one "
                               "by name to change it)")
    choice = choose_precision(device, asked)
    if kept is not None and kept != choice.precision:
        say(f"precision changes from the run's {kept} to {choice.precision} from step "
            f"{meta['step']} on: a new session, recorded in the checkpoints and summary")
    return choice


def final_weights_fit(run_dir: Path, cfg: TrainConfig) -> str | None:
    """None when ``final_model.safetensors`` is absent or this run's (its recipe and step),
    else why not. Only the header is read."""
    path = run_dir / "final_model.safetensors"
    if not path.exists():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["meta"])
    except Exception:  # not safetensors, no metadata, ...
        return "cannot be read"
    why = written_by(meta, cfg)
    if why is None and meta.get("step") != cfg.steps:
        why = f"holds step {bounded_repr(meta.get('step'))}, not the run's last step {cfg.steps}"
    return why


def refuse_to_retrain_records(run_dir: Path, cfg: TrainConfig, stored: dict | None,
                              finished: dict | None, extend: bool) -> None:
    """A folder with a run's records but no checkpoint to resume from is never trained from
    step 0: that would delete the records (a committed run folder keeps no weights, and one
    whose ``summary.json`` or ``config.json`` is missing or damaged is still a run's).

    Only a run stopped before its first checkpoint (no summary or evaluation, every record
    before step ``ckpt_every``) is trained again from step 0: its records are the ones the
    same steps write again.
    """
    present = [name for name in RECORDS if (run_dir / name).exists()]
    if not present:
        return
    steps = [r.get("step") for name in ("log.jsonl", "samples.jsonl")
             for r in runs.read_jsonl(run_dir / name)]
    last = max((s for s in steps if isinstance(s, int)), default=0)
    if not ({"summary.json", "evaluation.json"} & set(present)) and last < cfg.ckpt_every:
        return
    wrong = []
    if not (run_dir / "config.json").exists():
        wrong.append("config.json is missing")
    elif stored is None:
        wrong.append("config.json is unreadable")
    if finished is None:
        wrong.append("summary.json is " + ("unreadable" if (run_dir / "summary.json").exists()
                                           else "missing"))
    elif finished.get("steps") != cfg.steps:
        wrong.append(f"the run finished at step {bounded_repr(finished.get('steps'))}"
                     + (" and cannot be extended without its weights" if extend else
                        f", not at step {cfg.steps}"))
    why = "; ".join(wrong) or "no checkpoint is left"
    raise runs.RunFolderError(
        f"{runs.shown(run_dir)} holds a run's records ({', '.join(present)}, to step {last}) "
        f"but no checkpoint to resume from ({why}), so it is not trained again from step 0; "
        f"nothing was changed: train into a new run_dir, or start over with {RESTART_HINT}")


def check_entries_are_files(run_dir: Path) -> None:
    """A folder where the run writes a file (a checkpoint) is refused before training."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if (ckpt.STEP_FILE.match(entry.name) or entry.name == "best.pt") and entry.is_dir():
            raise runs.RunFolderError(
                f"{runs.shown(entry)} is a folder where h2q writes a checkpoint; move it "
                "away and run again")


@dataclass
class RunStart:
    """Where a call of ``train`` begins: the recipe it trains, and what the folder holds."""

    cfg: TrainConfig  # the recipe asked for (for --extend, with the run's schedule kept)
    latest: tuple[Path, dict] | None  # the checkpoint to resume from: (path, payload)
    finished: dict | None = None  # the summary of this run finished: read, not retrained


def _says_the_recipe(path: Path, cfg: TrainConfig) -> bool:
    """Whether the file at ``path`` holds the recipe ``cfg`` (fields added later at their
    defaults, as ``TrainConfig.from_dict`` reads it); False if missing or unreadable."""
    stored = runs.read_json(path)
    try:
        return isinstance(stored, dict) and \
            TrainConfig.from_dict(stored, "config.json").to_dict() == cfg.to_dict()
    except (TypeError, ValueError):  # ConfigError is a ValueError
        return False


def _recipe_and_checkpoint(run_dir: Path, cfg: TrainConfig, extend: bool,
                           say: Callable[[str], None]
                           ) -> tuple[TrainConfig, dict | None, tuple[Path, dict] | None]:
    """``(recipe, stored config.json, latest checkpoint)``: a resumed run must have the same
    recipe, and its latest checkpoint must be of it; a missing ``config.json`` is restored
    from the latest checkpoint."""
    stored = runs.read_json(run_dir / "config.json")
    if stored is not None:
        stored_cfg = TrainConfig.from_dict(stored, "config.json")
        if extend:
            cfg = extended_recipe(stored_cfg, cfg)
            if cfg.schedule_steps != stored_cfg.schedule_steps:
                say(f"extend: the schedule keeps its length, schedule_steps "
                    f"{cfg.schedule_steps} (recorded in config.json)")
        check_same_recipe(run_dir, stored_cfg, cfg, extend)
    accept = (lambda meta: written_by(meta, cfg)) if stored is not None else None
    latest = ckpt.latest_training(run_dir / "checkpoints", announce=say, accept=accept)
    if stored is None and latest is not None:
        stored = latest[1]["meta"]["recipe"]
        say(f"config.json in {runs.shown(run_dir)} was missing or unreadable; "
            f"restored from {latest[0].name}")
        stored_cfg = TrainConfig.from_dict(stored, "config.json")
        if extend:
            cfg = extended_recipe(stored_cfg, cfg)
        check_same_recipe(run_dir, stored_cfg, cfg, extend)
    return cfg, stored, latest


def open_run(run_dir: Path, cfg: TrainConfig, extend: bool, main: bool,
             say: Callable[[str], None]) -> RunStart:
    """The run folder read before training (``main``: this process writes the run's files):
    a resumed run must have the same recipe, and nothing is lost."""
    if main:
        for tmp in run_cleanup.remove_stale_temporaries(run_dir):
            say(f"removed {runs.shown(tmp)}, left by a writer that was stopped")
        check_entries_are_files(run_dir)
    cfg, stored, latest = _recipe_and_checkpoint(run_dir, cfg, extend, say)
    finished = runs.read_json(run_dir / "summary.json")
    kept_steps = latest[1]["meta"]["step"] if latest is not None else None
    foreign = final_weights_fit(run_dir, cfg)
    if stored is not None and isinstance(finished, dict) and finished.get("steps") == cfg.steps \
            and foreign is None \
            and (kept_steps is None and not ckpt.step_checkpoints(run_dir / "checkpoints")
                 or kept_steps is not None and kept_steps >= cfg.steps):
        # a finished run is read, never retrained, also where it keeps no checkpoints (a
        # committed run folder holds its records only)
        # written again only where it says less than the recipe (an extended schedule);
        # a file without the recipe fields added later says the same, and stays as it is
        if main and not _says_the_recipe(run_dir / "config.json", cfg):
            runs.write_json(run_dir / "config.json", cfg.to_dict())
        if kept_steps is None:
            say(f"{runs.shown(run_dir)} holds this run finished at step {cfg.steps} and keeps "
                "no checkpoints: its records are read, not retrained")
        return RunStart(cfg, latest, finished)
    if foreign is not None:
        if latest is None:
            raise runs.RunFolderError(
                f"{runs.shown(run_dir / 'final_model.safetensors')} {foreign}, and no "
                "checkpoint of the run is left to write its own; nothing was deleted: move "
                f"the file away, or start over with {RESTART_HINT}")
        say(f"{runs.shown(run_dir / 'final_model.safetensors')} {foreign}: not this run's "
            f"final weights; they are written again from {latest[0].name}")
    if latest is None and ckpt.step_checkpoints(run_dir / "checkpoints"):
        raise runs.RunFolderError(
            f"no checkpoint in {runs.shown(run_dir / 'checkpoints')} verifies and belongs to "
            "this run (see above), so the run cannot resume; nothing was deleted: put back "
            f"a good checkpoint, or start over with {RESTART_HINT}")
    if latest is None:
        refuse_to_retrain_records(run_dir, cfg, stored, finished, extend)
    return RunStart(cfg, latest)
