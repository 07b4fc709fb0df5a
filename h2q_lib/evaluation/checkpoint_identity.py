"""What a checkpoint to score is, and the model it loads.

A path is a project checkpoint (``.safetensors`` or ``.pt``), a GPT-2 folder (with
``config.json``) or a GPT-2 name on the Hugging Face hub. ``checkpoint_identity`` says
which, with its weights' sha256 and its context, cheaply where the checkpoint's header
allows (a stored score is keyed by them); ``load_scoring_model`` loads it to score.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from h2q_lib.core.errors import CheckpointError, ConfigError
from h2q_lib.core.run_folder import file_sha256
from h2q_lib.evaluation.documents import as_device
from h2q_lib.model.gpt2 import GPT2_CONTEXT, WeightsUnavailableError, check_gpt2_folder, load_gpt2


@dataclass
class ScoringModel:
    """A loaded model with its tokenizer, its context and what identifies its weights."""

    model: torch.nn.Module
    tokenizer: object
    context: int
    weights_sha256: str
    kind: str  # "h2q" (a project checkpoint) or "gpt2" (a Hugging Face GPT-2)
    path: str


# A GPT-2 name on the Hugging Face hub: ``name`` or ``owner/name``.
HUB_ID = re.compile(r"[\w.-]+(?:/[\w.-]+)?")


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
    if not p.exists() and not p.suffix and HUB_ID.fullmatch(os.fspath(path)):
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


def safetensors_header(path: Path) -> dict:
    """The metadata in a ``.safetensors`` file's header (no tensor is read); one
    ``CheckpointError`` when the file cannot be read as one."""
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
        header = safetensors_header(p)
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

