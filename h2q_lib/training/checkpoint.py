"""Checkpoints that are written atomically, checksummed, and loaded without unpickling.

- Training checkpoints (``.pt``): tensors, numbers and strings only, read back with
  ``torch.load(weights_only=True)``; run metadata travels as a JSON string.
- Weights-only files (``.safetensors``): the model's tensors plus JSON metadata.

Both carry ``sha256``, a digest of everything else in the file (every tensor's name, dtype,
shape and bytes, and the metadata); loading recomputes it, so a flipped bit anywhere in the
tensor data is named rather than trained on. Both carry the model's shape (``model_args``,
as nanoGPT stores it), the tokenizer and the recipe, so a file alone rebuilds its model.
Writes go through ``runs.atomic_write``: an interrupted write never leaves a half-written
file under the real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import torch

from h2q_lib.core.errors import CheckpointError, bounded_repr
from h2q_lib.core.run_folder import atomic_write, dumps, shown

FORMAT = "h2q-checkpoint-2"
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def _update(h, obj: object, name: str = "") -> None:
    """Feed ``obj`` (nested dicts, lists, tensors, numbers, strings) to ``h`` in a fixed order."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{name}|{obj.dtype}|{tuple(obj.shape)}\n".encode())
        h.update(memoryview(t.view(torch.uint8).numpy()))
    elif isinstance(obj, dict):
        h.update(f"D{name}|{len(obj)}\n".encode())
        for key in sorted(obj, key=str):
            _update(h, obj[key], f"{name}/{key}")
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{name}|{len(obj)}\n".encode())
        for i, item in enumerate(obj):
            _update(h, item, f"{name}/{i}")
    else:
        h.update(f"V{name}|{obj!r}\n".encode())


def digest(obj: object) -> str:
    """sha256 of a nested structure of tensors and plain values (see ``_update``)."""
    h = hashlib.sha256()
    _update(h, obj)
    return h.hexdigest()


def save_training(path: str | os.PathLike, model, optimizer, scaler, meta: dict) -> None:
    """Model, optimizer, scaler, RNG states and ``meta`` (JSON) in one checksummed file."""
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "meta_json": dumps(meta),
    }
    if torch.cuda.is_available():
        payload["cuda_rng"] = torch.cuda.get_rng_state_all()
    payload["sha256"] = digest(payload)
    atomic_write(Path(path), lambda tmp: _torch_save(payload, tmp))


class _KeptWriteError:
    """A file whose failed write is kept: ``torch.save`` turns a write error (a full disk)
    into a ``RuntimeError("... unexpected pos ...")`` that no longer says why."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def _torch_save(obj, path: Path) -> None:
    with open(path, "wb") as f:
        target = _KeptWriteError(f)
        try:
            torch.save(obj, target)
        except RuntimeError:
            if target.error is not None:
                raise target.error from None
            raise


def read_training(path: str | os.PathLike) -> dict:
    """Load and verify a training checkpoint; one clear error names the file when unusable."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {shown(path)} does not exist") from None
    except Exception as e:  # truncated zip, bad magic, forbidden global, ...
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CheckpointError(
            f"checkpoint {shown(path)} cannot be loaded safely (truncated, corrupted or "
            f"holding objects other than tensors): {reason}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {shown(path)} is not an h2q training checkpoint "
                              f"(format {FORMAT})")
    stored = payload.pop("sha256", None)
    if stored != digest(payload):
        raise CheckpointError(f"checkpoint {shown(path)} is corrupted: its content does not "
                              "match its sha256 checksum")
    try:
        payload["meta"] = json.loads(payload.pop("meta_json"))
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {shown(path)} has no readable metadata") from None
    return payload


def restore(payload: dict, model, optimizer=None, scaler=None) -> dict:
    """Put a loaded checkpoint's state back; returns its metadata."""
    try:
        model.load_state_dict(payload["model"])
        if optimizer is not None:
            optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint does not fit this model: {first}") from None
    if scaler is not None:
        scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(payload["torch_rng"])
    if "cuda_rng" in payload and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return payload["meta"]


def step_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """``step_*.pt`` entries in ``folder``, newest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def latest_training(folder: str | os.PathLike,
                    announce: Callable[[str], None] | None = None,
                    accept: Callable[[dict], str | None] | None = None
                    ) -> tuple[Path, dict] | None:
    """``(path, payload)`` of the newest step checkpoint that verifies and belongs; others
    are skipped (and announced by name). None when there is none.

    A checkpoint belongs when the step it holds is the one its name says and ``accept(meta)``
    (the run's own check, e.g. of the recipe) gives no reason to refuse it.
    """
    for path in step_checkpoints(folder):
        try:
            payload = read_training(path)
        except CheckpointError as e:
            if announce:
                announce(f"{e}; falling back to the previous checkpoint")
            continue
        named = int(STEP_FILE.match(path.name).group(1))
        held = payload["meta"].get("step")
        why = (f"holds step {bounded_repr(held)}, not step {named} as its name says"
               if held != named else accept(payload["meta"]) if accept else None)
        if why is None:
            return path, payload
        if announce:
            announce(f"checkpoint {shown(path)} {why}: skipped, falling back to the previous "
                     "checkpoint")
    return None


def save_weights(path: str | os.PathLike, model, meta: dict) -> None:
    """Weights only, as safetensors (the tied head is stored once), with a checksum."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
               if k != "lm_head.weight"}
    meta_json = dumps(meta)
    header = {"format": FORMAT, "meta": meta_json,
              "sha256": digest({"tensors": tensors, "meta": meta_json})}
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), header))


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"weights file {shown(path)} does not exist") from None
    except Exception as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CheckpointError(f"weights file {shown(path)} cannot be read: {reason}") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"weights file {shown(path)} was not written by h2q "
                              f"(format {FORMAT})")
    if header.get("sha256") != digest({"tensors": state, "meta": header.get("meta")}):
        raise CheckpointError(f"weights file {shown(path)} is corrupted: its content does not "
                              "match its sha256 checksum")
    meta = json.loads(header["meta"])
    state["lm_head.weight"] = state["tok_emb.weight"]
    return state, meta


def load_weights(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(state_dict, meta)`` from a ``.safetensors`` file or a training ``.pt`` checkpoint."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    payload = read_training(path)
    return payload["model"], payload["meta"]


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """``(GPT, tokenizer, meta)`` rebuilt from a checkpoint or weights file alone."""
    from h2q_lib.data.tokenizers import tokenizer_from_dict
    from h2q_lib.model.gpt import GPT, GPTConfig

    state, meta = load_weights(path)
    try:
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        model = GPT(GPTConfig(**meta["model_args"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{shown(path)} lacks a usable model description: {e}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{shown(path)}: weights do not fit its model_args: "
                              f"{str(e).splitlines()[0][:160]}") from None
    return model.to(device).eval(), tokenizer, meta
