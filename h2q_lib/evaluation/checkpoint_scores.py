"""Scores of checkpoints and run folders on raw WikiText-103, under the two protocols
(``evaluation.protocols``).

``evaluate_checkpoint`` scores a checkpoint (or a GPT-2 folder) once; ``evaluate_to_file``
keeps the scores in a JSON file and ``evaluate_run`` a run's ``evaluation.json``, reusing a
stored result only while its key still matches: the weights, the settings, the data and the
code of ``EVAL_MODULES``. The ``h2q evaluate`` command is ``evaluation.evaluate_command``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from h2q_lib.core.errors import CheckpointError, ConfigError, bounded_repr
from h2q_lib.data import wikitext as data
from h2q_lib.evaluation.checkpoint_identity import (
    checkpoint_identity,
    load_scoring_model,
    safetensors_header,
)
from h2q_lib.evaluation.documents import as_device, check_positive, resolve_precision
from h2q_lib.evaluation.protocols import EVAL_CONFIG, PROTOCOLS, check_splits, score_split
from h2q_lib.evaluation.stored_results import entry_problem, stored_without_weights

# The code a stored result depends on (``provenance.library_fingerprint``).
EVAL_MODULES = ("data.tokenizers", "data.wikitext", "evaluation.checkpoint_identity",
                "evaluation.checkpoint_scores", "evaluation.documents",
                "evaluation.evaluate_command", "evaluation.metrics", "evaluation.protocols",
                "evaluation.stored_results", "model.attention", "model.gpt", "model.gpt2",
                "training.checkpoint", "training.hardware")


def check_scores_file(out: str | os.PathLike, checkpoint: str | os.PathLike,
                      param: str = "out") -> None:
    """One ``ConfigError`` naming ``param`` unless ``out`` may take the scores: a new file, or
    a JSON file of earlier scores (``{protocol: {split: entry}}``, which is kept and added
    to). The weights being scored, a run's ``config.json`` or any other file would be
    overwritten (a JSON object is read as stored scores and written back with them)."""
    from h2q_lib.core.run_folder import read_json

    out, weights = Path(out), Path(checkpoint)
    if weights.exists() and out.exists() and os.path.samefile(out, weights):
        raise ConfigError(param, os.fspath(out), "a path other than the weights being scored")
    stored = read_json(out) if out.is_file() else {}
    if out.exists() and (stored is None or set(stored) - set(PROTOCOLS)):
        raise ConfigError(param, os.fspath(out),
                          "a new file or a JSON file of earlier scores (this file holds "
                          "something else, which writing the scores would overwrite)")


def evaluate_checkpoint(
    path: str | os.PathLike,
    splits: Sequence[str] = ("validation", "test"),
    protocol: str = "lm-eval",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 8,
    max_documents: int | None = None,
    progress: bool = False,
) -> dict:
    """Score a checkpoint on raw WikiText-103 ``splits`` under ``protocol``; a JSON-able dict.

    ``path`` is a project ``.safetensors``/``.pt`` checkpoint, a GPT-2 folder or a GPT-2
    name on the Hugging Face hub (``WeightsUnavailableError`` where it cannot be had). The
    dict has ``splits`` (``EvalResult.to_dict()`` each), the protocol, the settings, the
    weights' sha256 and the precision used with its reason.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError("protocol", protocol, "one of " + ", ".join(PROTOCOLS))
    splits = check_splits(splits)
    check_positive("batch_size", batch_size)
    check_positive("max_documents", max_documents, optional=True)
    device = as_device(device)
    choice = resolve_precision(device, precision)
    scoring = load_scoring_model(path, device)
    results = {}
    for name in splits:
        split = data.load_split(name, EVAL_CONFIG, data_dir)
        results[name] = score_split(scoring, split, protocol, batch_size, device, precision,
                                    max_documents, progress).to_dict()
    from h2q_lib.core.provenance import library_fingerprint

    return {
        "checkpoint": os.fspath(path),
        "kind": scoring.kind,
        "weights_sha256": scoring.weights_sha256,
        "protocol": protocol,
        "context": scoring.context,
        "device": str(device),
        "precision": choice.precision,
        "precision_reason": choice.reason,
        "batch_size": batch_size,
        "max_documents": max_documents,
        "config": EVAL_CONFIG,
        "library_fingerprint": library_fingerprint(EVAL_MODULES),
        "splits": results,
    }



def evaluate_to_file(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    protocols: Sequence[str] = PROTOCOLS,
    splits: Sequence[str] = ("validation", "test"),
    max_documents: int | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 8,
    announce: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Score ``checkpoint`` into the JSON file ``out``, ``{protocol: {split: entry}}``.

    An entry is ``{"key", "result", ...}``; a stored entry is reused, not rescored, only
    when the weights verify (their checksum recomputed), its ``key`` equals this call's
    (the weights' sha256, the protocol, split, max_documents, context and precision, the
    data's sha256 and ``provenance.library_fingerprint(EVAL_MODULES)``) and its result is
    sound (``result_problem``); otherwise it is scored again and the reason said. Each new
    entry is written at once,
    atomically (``runs.write_json``). Returns the file's content.
    """
    from h2q_lib.core.provenance import library_fingerprint
    from h2q_lib.core.run_folder import read_json, write_json

    protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            raise ConfigError("protocols", protocol, "one or more of " + ", ".join(PROTOCOLS))
    splits = check_splits(splits)
    check_positive("batch_size", batch_size)
    check_positive("max_documents", max_documents, optional=True)
    say = announce or (lambda _message: None)
    device = as_device(device)
    choice = resolve_precision(device, precision)
    check_scores_file(out, checkpoint)
    identity = checkpoint_identity(checkpoint, verify=True)  # corrupt weights: named here
    fingerprint = library_fingerprint(EVAL_MODULES)
    stored = read_json(out) or {}
    scoring = None
    for name in splits:
        split = data.load_split(name, EVAL_CONFIG, data_dir)
        for protocol in protocols:
            key = {"weights_sha256": identity["weights_sha256"], "protocol": protocol,
                   "split": name, "max_documents": max_documents,
                   "context": identity["context"], "precision": choice.precision,
                   "data_sha256": split.sha256(), "library_fingerprint": fingerprint}
            entry = stored.get(protocol, {}).get(name) if isinstance(
                stored.get(protocol), dict) else None
            why = None if entry is None else entry_problem(entry, key)
            if entry is not None and why is None:
                say(f"{protocol} {name}: stored result reused (verified weights, same "
                    "settings and code)")
                continue
            if why is not None:
                say(f"{protocol} {name}: the stored result {why}: scoring again")
            scoring = scoring or load_scoring_model(checkpoint, device)
            started = time.perf_counter()
            result = score_split(scoring, split, protocol, batch_size, device, precision,
                                 max_documents, progress)
            entry = {"key": key, "result": result.to_dict(),
                     "checkpoint": os.fspath(checkpoint), "device": str(device),
                     "precision_reason": choice.reason, "batch_size": batch_size,
                     "seconds": round(time.perf_counter() - started, 3)}
            # read again: keep what another process stored meanwhile
            stored = read_json(out) or {}
            if not isinstance(stored.get(protocol), dict):
                stored[protocol] = {}
            stored[protocol][name] = entry
            write_json(out, stored)
            say(f"{protocol} {name}: scored in {entry['seconds']:.1f} s")
    return stored


def evaluate_run(
    run_dir: str | os.PathLike,
    protocols: Sequence[str] = PROTOCOLS,
    splits: Sequence[str] = ("validation", "test"),
    max_documents: int | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 8,
    announce: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Score ``<run_dir>/final_model.safetensors`` into ``<run_dir>/evaluation.json``.

    ``evaluate_to_file``: results keyed by protocol and split, a stored one reused only
    when its key (weights, settings, data and evaluation code) still matches.
    """
    run_dir = Path(run_dir)
    weights = run_dir / "final_model.safetensors"
    if not weights.is_file():
        kept = stored_without_weights(run_dir, protocols, splits, max_documents)
        if kept is not None:
            (announce or print)(f"{os.fspath(run_dir)} keeps no weights (a committed run "
                                "folder): its stored evaluation.json is shown, as scored")
            return kept
        raise CheckpointError(f"run folder {os.fspath(run_dir)} has no final weights "
                              "(final_model.safetensors): train the run to its end first")
    check_run_weights(run_dir, weights)
    return evaluate_to_file(weights, run_dir / "evaluation.json", protocols, splits,
                            max_documents, data_dir, device, precision, batch_size, announce,
                            progress)


def check_run_weights(run_dir: Path, weights: Path, nothing_was: str = "scored") -> None:
    """The run's final weights must be of the run's recipe and last step (``config.json``);
    else one ``CheckpointError`` that says nothing was ``nothing_was`` (scored, exported)."""
    from h2q_lib.core.run_folder import read_json
    from h2q_lib.training.profiles import TrainConfig
    from h2q_lib.training.recipe_identity import written_by

    config = read_json(run_dir / "config.json")
    if config is None:
        return
    try:
        meta = json.loads(safetensors_header(weights)["meta"])
        cfg = TrainConfig.from_dict(config, "config.json")
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        raise CheckpointError(f"{os.fspath(weights)} or the run's config.json cannot be "
                              "read as h2q wrote them") from None
    why = written_by(meta, cfg)
    if why is None and meta.get("step") != cfg.steps:
        why = f"holds step {bounded_repr(meta.get('step'))}, not the run's last step {cfg.steps}"
    if why is not None:
        raise CheckpointError(f"{os.fspath(weights)} {why}: it is not this run's final model; "
                              f"nothing was {nothing_was}: put the run's own weights back")

