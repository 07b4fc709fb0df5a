"""Scores of checkpoints and run folders on WikiText-103, and the ``h2q evaluate`` command.

Two protocols choose the pages of a raw WikiText-103 split (``protocol_pages``) that
``evaluate.evaluate_documents`` scores:

- ``lm-eval``: lm-eval's ``wikitext`` task exactly: the pages of EleutherAI's
  ``wikitext_document_level`` (``data.documents``), fed through lm-eval's
  ``wikitext_detokenizer``, counted on the original pages;
- ``report``: ``data.report_documents``, the text the report's model was trained on, as is.

``evaluate_checkpoint`` scores a checkpoint (or a GPT-2 folder); ``evaluate_run`` keeps a
run's ``evaluation.json``, reusing a stored result only while its key still matches: the
weights, the settings, the data and the code of ``EVAL_MODULES``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from h2q_lib.core.errors import CheckpointError, ConfigError
from h2q_lib.core.run_folder import check_writable, file_sha256
from h2q_lib.data import wikitext as data
from h2q_lib.evaluation.documents import (
    EvalResult,
    as_device,
    check_positive,
    evaluate_documents,
    resolve_precision,
)
from h2q_lib.model.gpt2 import GPT2_CONTEXT, WeightsUnavailableError, check_gpt2_folder, load_gpt2
from h2q_lib.training.hardware import DEVICES, pick_device

PROTOCOLS = ("lm-eval", "report")
EVAL_CONFIG = "wikitext-103-raw-v1"
# The code a stored result depends on (``provenance.library_fingerprint``).
EVAL_MODULES = ("data.tokenizers", "data.wikitext", "evaluation.checkpoint_scores",
                "evaluation.documents", "evaluation.metrics", "model.gpt", "model.gpt2",
                "training.checkpoint", "training.hardware")


# --- checkpoints and their pages ------------------------------------------------------------


def protocol_pages(split: data.Split, protocol: str) -> tuple[list[str], bool]:
    """``(pages, detokenize)`` of ``split`` under ``protocol`` (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise ConfigError("protocol", protocol, "one of " + ", ".join(PROTOCOLS))
    if protocol == "lm-eval":
        return data.documents(split.lines), True
    return data.report_documents(split.lines), False


@dataclass
class ScoringModel:
    """A loaded model with its tokenizer, its context and what identifies its weights."""

    model: torch.nn.Module
    tokenizer: object
    context: int
    weights_sha256: str
    kind: str  # "h2q" (a project checkpoint) or "gpt2" (a Hugging Face GPT-2)
    path: str


_HUB_ID = re.compile(r"[\w.-]+(?:/[\w.-]+)?")


def _checkpoint_kind(path: str | os.PathLike) -> str:
    """``h2q`` (a checkpoint file), ``gpt2`` (a GPT-2 folder) or ``hub`` (a hub name)."""
    p = Path(path)
    _refuse_unfinished_run(p)
    if p.is_dir() and (p / "config.json").is_file():
        return "gpt2"
    if p.suffix in (".safetensors", ".pt") and not p.is_dir():
        if not p.is_file():
            raise CheckpointError(f"checkpoint {os.fspath(path)} does not exist")
        return "h2q"
    if not p.exists() and not p.suffix and _HUB_ID.fullmatch(os.fspath(path)):
        return "hub"
    raise ConfigError("checkpoint", os.fspath(path), "a .safetensors or .pt checkpoint, a "
                      "GPT-2 folder with config.json, or a GPT-2 name on the Hugging Face hub")


def _refuse_unfinished_run(p: Path) -> None:
    """A run folder (its ``.h2q-run`` marker) is scored by its final weights only."""
    if p.is_dir() and (p / ".h2q-run").is_file() \
            and not (p / "final_model.safetensors").is_file():
        raise CheckpointError(f"run folder {os.fspath(p)} has no final weights "
                              "(final_model.safetensors): train the run to its end first")


def gpt2_context(folder: Path, shown: str) -> int:
    """``n_positions`` of a GPT-2 folder's config.json (GPT-2's 1024 when it is not given);
    one ``CheckpointError`` when the file is not a JSON object or the value not a positive
    integer."""
    where = f"{shown}/config.json"
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"GPT-2 folder {shown}: config.json is not readable JSON "
                              f"({str(e).splitlines()[0][:120]})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"GPT-2 folder {shown}: {where} holds a "
                              f"{type(config).__name__}, not a JSON object")
    context = config.get("n_positions", GPT2_CONTEXT)
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ConfigError(f"{where}: n_positions", context, "a positive integer")
    return context


def _hub_snapshot(name: str) -> Path:
    """The local folder of hub model ``name``: the cache's snapshot, downloaded by
    ``load_gpt2`` when missing (which fails in one line where the hub cannot serve it)."""

    def cached() -> Path | None:
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(name, "model.safetensors")
        except Exception:  # an invalid repo id, or no huggingface_hub
            return None
        return Path(hit).parent if isinstance(hit, str) else None

    folder = cached()
    if folder is None:
        load_gpt2(name)
        folder = cached()
    if folder is None:
        raise WeightsUnavailableError(f"GPT-2 weights for {name!r} are unavailable: the hub "
                                      "copy has no model.safetensors")
    return folder


def _safetensors_header(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as e:  # not a safetensors file, truncated, ...
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"weights file {os.fspath(path)} cannot be read: {first}") from None


def checkpoint_identity(path: str | os.PathLike, verify: bool = False) -> dict:
    """``{"kind", "weights_sha256", "context"}`` of a checkpoint, cheaply where possible.

    A ``.safetensors`` file: the checksum its header carries (``checkpoint.save_weights``
    writes it over every tensor and the metadata) and ``model_args["block_size"]`` from its
    metadata, without reading the tensors unless ``verify``: then the checksum is recomputed
    (a stored result is reused only for weights that verify), and ``meta`` is added. A ``.pt``
    checkpoint: the file's sha256, the context from its metadata. A GPT-2 folder: sha256
    over its ``*.safetensors`` files, the context ``n_positions`` of its config.json; a
    GPT-2 name on the hub: the same of its snapshot in the Hugging Face cache (``folder``).
    """
    kind = _checkpoint_kind(path)
    p = _hub_snapshot(os.fspath(path)) if kind == "hub" else Path(path)
    if kind in ("gpt2", "hub"):
        check_gpt2_folder(p)
        h = hashlib.sha256()
        for weights in sorted(p.glob("*.safetensors")):
            h.update(weights.name.encode() + b"\0")
            file_sha256(weights, h)
        context = gpt2_context(p, os.fspath(path))
        return {"kind": "gpt2", "weights_sha256": h.hexdigest(), "context": context,
                "folder": str(p)}
    if p.suffix == ".safetensors":
        header = _safetensors_header(p)
        try:
            meta = json.loads(header["meta"])
            context = int(meta["model_args"]["block_size"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{os.fspath(path)} has no model_args.block_size in its "
                                  "metadata: it was not written by h2q") from None
        if verify:
            from h2q_lib.training.checkpoint import load_weights

            load_weights(p)  # recomputes the checksum over every tensor: names corruption
        sha = header.get("sha256") or file_sha256(p)
        return {"kind": kind, "weights_sha256": sha, "context": context, "meta": meta}
    from h2q_lib.training.checkpoint import load_weights

    _, meta = load_weights(p)
    return {"kind": kind, "weights_sha256": file_sha256(p),
            "context": int(meta["model_args"]["block_size"]), "meta": meta}


def load_scoring_model(path: str | os.PathLike, device: str | torch.device = "cpu"
                       ) -> ScoringModel:
    """A project checkpoint (``checkpoint.load_model``, context ``block_size``), or a GPT-2
    folder or hub name (``gpt2.load_gpt2``, context ``n_positions``), on ``device``, in eval
    mode."""
    identity = checkpoint_identity(path)
    device = as_device(device)
    if identity["kind"] == "gpt2":
        model, tokenizer = load_gpt2(identity["folder"], device)
    else:
        from h2q_lib.training.checkpoint import load_model

        model, tokenizer, _ = load_model(path, device)
    return ScoringModel(model, tokenizer, identity["context"], identity["weights_sha256"],
                        identity["kind"], os.fspath(path))


def score_split(
    scoring: ScoringModel,
    split: data.Split,
    protocol: str = "lm-eval",
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    max_documents: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """``evaluate_documents`` of ``protocol_pages(split, protocol)`` at the model's context."""
    pages, detokenize = protocol_pages(split, protocol)
    choice = resolve_precision(device, precision)
    result = evaluate_documents(scoring.model, scoring.tokenizer, pages, context=scoring.context,
                                batch_size=batch_size, device=device, detokenize=detokenize,
                                precision=choice.precision, max_documents=max_documents,
                                progress=progress)
    result.settings.update(protocol=protocol, split=split.name, config=split.config,
                           source=split.origin, data_sha256=split.sha256(),
                           precision_reason=choice.reason)
    return result


def _check_splits(splits: Sequence[str], name: str = "splits") -> tuple[str, ...]:
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if not splits:
        raise ConfigError(name, splits, "one or more of " + ", ".join(data.SPLITS))
    for split in splits:
        if split not in data.SPLITS:
            raise ConfigError(name, split, "one or more of " + ", ".join(data.SPLITS))
    return splits


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
    splits = _check_splits(splits)
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


# --- stored evaluations ---------------------------------------------------------------------

COUNTS = ("tokens", "characters", "utf8_bytes", "whitespace_words", "wikitext_words",
          "documents")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def result_problem(result: object, complete: bool = True) -> str | None:
    """None when a stored ``result`` is sound, else what is wrong with it (one phrase).

    Sound: metrics that are numbers (null stands for an infinite one) and, where the counts
    are stored (always, when ``complete``), exactly the metrics ``metrics.summarize`` gives
    for its summed NLL and counts: an edited number no longer agrees with the others.
    """
    from h2q_lib.core.run_folder import strict
    from h2q_lib.evaluation import metrics as metrics_mod

    if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict):
        return "has no metrics"
    stored = result["metrics"]
    if not all(v is None or _number(v) for v in stored.values()):
        return "has a metric that is not a number"
    if not complete and not any(k in result for k in ("nll_sum", *COUNTS)):
        return None
    if not _number(result.get("nll_sum")) or not all(
            isinstance(result.get(k), int) and not isinstance(result.get(k), bool)
            and result[k] > 0 for k in COUNTS):
        return "lacks its summed NLL or counts"
    try:
        derived = strict(metrics_mod.summarize(
            result["nll_sum"], *(result[k] for k in COUNTS[:-1])))
    except (ValueError, ZeroDivisionError):
        return "has counts that give no metrics"
    if stored != derived:
        return "has metrics that do not follow from its summed NLL and counts (edited?)"
    return None


def entry_problem(entry: object, key: dict) -> str | None:
    """None when a stored entry may be reused for ``key``, else why not (one phrase)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), dict):
        return "is not an entry of h2q's"
    if entry["key"] != key:
        changed = sorted(k for k in set(key) | set(entry["key"])
                         if entry["key"].get(k) != key.get(k))
        return "was scored with a different " + ", ".join(changed)
    return result_problem(entry.get("result"))


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
    splits = _check_splits(splits)
    check_positive("batch_size", batch_size)
    check_positive("max_documents", max_documents, optional=True)
    say = announce or (lambda _message: None)
    device = as_device(device)
    choice = resolve_precision(device, precision)
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
    _check_run_weights(run_dir, weights)
    return evaluate_to_file(weights, run_dir / "evaluation.json", protocols, splits,
                            max_documents, data_dir, device, precision, batch_size, announce,
                            progress)


def _check_run_weights(run_dir: Path, weights: Path) -> None:
    """The run's final weights must be of the run's recipe and last step (``config.json``)."""
    from h2q_lib.core.run_folder import read_json
    from h2q_lib.training.profiles import TrainConfig
    from h2q_lib.training.trainer import written_by

    config = read_json(run_dir / "config.json")
    if config is None:
        return
    try:
        meta = json.loads(_safetensors_header(weights)["meta"])
        cfg = TrainConfig.from_dict(config, "config.json")
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        raise CheckpointError(f"{os.fspath(weights)} or the run's config.json cannot be "
                              "read as h2q wrote them") from None
    why = written_by(meta, cfg)
    if why is None and meta.get("step") != cfg.steps:
        why = f"holds step {meta.get('step')!r}, not the run's last step {cfg.steps}"
    if why is not None:
        raise CheckpointError(f"{os.fspath(weights)} {why}: it is not this run's final model; "
                              "nothing was scored: put the run's own weights back")


def stored_without_weights(run_dir: str | os.PathLike, protocols: Sequence[str] = PROTOCOLS,
                           splits: Sequence[str] = ("validation", "test"),
                           max_documents: int | None = None) -> dict | None:
    """The stored ``evaluation.json`` of a run folder that keeps no weights, or None.

    Weights are never committed, so a run folder from the repository can only show what was
    scored when its weights existed. It is returned only if every asked protocol and split
    has an entry scored on the same number of pages with metrics; which weights
    (sha256) and code scored it stay in each entry's ``key``.
    """
    from h2q_lib.core.run_folder import read_json

    stored = read_json(Path(run_dir) / "evaluation.json")
    if not isinstance(stored, dict):
        return None
    protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
    for protocol in protocols:
        for name in splits:
            entry = stored.get(protocol, {}).get(name) if isinstance(
                stored.get(protocol), dict) else None
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), dict) \
                    or entry["key"].get("max_documents") != max_documents \
                    or result_problem(entry.get("result"), complete=False) is not None:
                return None
    return stored


# --- the `h2q evaluate` command -------------------------------------------------------------


def _flag_int(flag: str, value: object) -> int | None:
    """A positive integer flag given as text (or None); one ``ConfigError`` naming the flag."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(flag, value, "a positive integer") from None
    if number < 1:
        raise ConfigError(flag, value, "a positive integer")
    return number


def _resolve_checkpoint(checkpoint: str) -> tuple[Path, Path | None]:
    """``(weights, run_dir)``: a run folder means its final_model.safetensors; a GPT-2
    folder or hub name stands as it is."""
    p = Path(checkpoint)
    if p.is_dir() and ((p / "final_model.safetensors").is_file() or (p / ".h2q-run").is_file()):
        return p / "final_model.safetensors", p
    if (p.is_dir() and (p / "config.json").is_file()) or (
            p.is_file() and p.suffix in (".safetensors", ".pt")):
        is_run = p.name == "final_model.safetensors" and (p.parent / ".h2q-run").is_file()
        return p, (p.parent if is_run else None)
    if not p.exists() and not p.suffix and _HUB_ID.fullmatch(checkpoint):
        return p, None  # a GPT-2 name on the hub
    raise ConfigError("checkpoint", checkpoint,
                      "an existing .safetensors or .pt file, a run folder with "
                      "final_model.safetensors, a GPT-2 folder or a GPT-2 hub name")


def _renamed(flag: str, error: ConfigError) -> ConfigError:
    return ConfigError(flag, error.value, error.allowed)


def format_table(stored: dict, protocols: Sequence[str], splits: Sequence[str]) -> str:
    """A small fixed-width table of the stored results of ``protocols`` x ``splits``."""
    head = (f"{'protocol':<9}{'split':<11}{'pages':>6}{'tokens':>12}{'bits/byte':>11}"
            f"{'byte ppl':>11}{'word ppl':>12}{'token ppl':>12}")
    lines = [head, "-" * len(head)]
    for protocol in protocols:
        for split in splits:
            entry = stored.get(protocol, {}).get(split)
            if not entry:
                continue
            r = entry["result"]
            m = r["metrics"]

            def cell(value, width: int, spec: str) -> str:
                return f"{value:>{width}{spec}}" if _number(value) else f"{'-':>{width}}"

            lines.append(f"{protocol:<9}{split:<11}{cell(r.get('documents'), 6, '')}"
                         f"{cell(r.get('tokens'), 12, ',')}"
                         f"{cell(m.get('bits_per_byte'), 11, '.4f')}"
                         f"{cell(m.get('byte_perplexity'), 11, '.4g')}"
                         f"{cell(m.get('word_perplexity'), 12, '.5g')}"
                         f"{cell(m.get('token_perplexity'), 12, '.5g')}")
    return "\n".join(lines)


def evaluate_command(
    checkpoint: str,
    protocol: str = "lm-eval",
    splits: Sequence[str] = ("validation", "test"),
    max_documents: str | int | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: str | int = 8,
    data_dir: str | None = None,
    out: str | None = None,
) -> dict:
    """``h2q evaluate``: check every flag (one ``ConfigError`` naming it), check that
    ``--out``'s folder can be written, score, print a table and write the JSON."""
    if protocol not in PROTOCOLS:
        raise ConfigError("--protocol", protocol, "one of " + ", ".join(PROTOCOLS))
    try:
        splits = _check_splits(splits, "--splits")
    except ConfigError as e:
        raise _renamed("--splits", e) from None
    max_docs = _flag_int("--max-documents", max_documents)
    batch = _flag_int("--batch-size", batch_size)
    if device not in DEVICES:
        raise ConfigError("--device", device, "one of " + ", ".join(DEVICES))
    try:
        device = pick_device(device)
    except ConfigError as e:
        raise _renamed("--device", e) from None
    try:
        choice = resolve_precision(device, precision)
    except ConfigError as e:
        raise _renamed("--precision", e) from None
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ConfigError("--data-dir", data_dir,
                          "an existing folder laid out like <folder>/wikitext-2-raw-v1/"
                          "wiki.test.raw")
    weights, run_dir = _resolve_checkpoint(checkpoint)
    out_path = Path(out) if out else (run_dir / "evaluation.json" if run_dir
                                      else Path("evaluation.json"))
    check_writable(out_path, "--out")
    print(f"h2q evaluate: {weights} (protocol {protocol}; {choice.precision} on {device}: "
          f"{choice.reason})")
    if run_dir is not None and out is None:
        stored = evaluate_run(run_dir, (protocol,), splits, max_docs, data_dir, device,
                              precision, batch, announce=print, progress=True)
    else:
        if run_dir is not None:
            _check_run_weights(run_dir, weights)
        stored = evaluate_to_file(weights, out_path, (protocol,), splits, max_docs, data_dir,
                                  device, precision, batch, announce=print, progress=True)
    if run_dir is not None and out is None and not weights.is_file():
        # a committed folder is only read: say which precision its numbers are from, not the
        # one asked for above (nothing was scored in it)
        shown = sorted({str(stored.get(protocol, {}).get(split, {}).get("key", {})
                            .get("precision")) for split in splits})
        print(f"shown: the stored results, scored in {', '.join(shown)} (the run folder keeps "
              f"no weights, so nothing was scored in {choice.precision})")
    print(format_table(stored, (protocol,), splits))
    if run_dir is None or out is not None or weights.is_file():
        print(f"wrote {out_path}")  # a committed folder without weights is only read
    return stored
