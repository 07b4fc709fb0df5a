"""Checkpoints that are written atomically and loaded without unpickling arbitrary objects.

- Training checkpoints (``.pt``): tensors, numbers and strings only, read back with
  ``torch.load(weights_only=True)``; run metadata travels as a JSON string.
- Weights-only files (``.safetensors``): the model's tensors plus JSON metadata.
Writes go to a temporary file in the same folder, are flushed to disk, then renamed: an
interrupted write never leaves a half-written file under the real name.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_training(path: str | os.PathLike, model, optimizer, scaler, meta: dict) -> None:
    """Model, optimizer, scaler, RNG states and ``meta`` (JSON) in one atomic file."""
    payload = {
        "format": "h2q-checkpoint-1",
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "meta_json": json.dumps(meta),
    }
    if torch.cuda.is_available():
        payload["cuda_rng"] = torch.cuda.get_rng_state_all()
    _atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def read_training(path: str | os.PathLike) -> dict:
    """Load a training checkpoint safely; one clear error names the file when it is unusable."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path.name} does not exist in {path.parent}") from None
    except Exception as e:  # truncated zip, bad magic, forbidden global, ...
        reason = str(e).splitlines()[0][:200]
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded safely (truncated, corrupted or holding "
            f"objects other than tensors): {reason}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != "h2q-checkpoint-1":
        raise CheckpointError(f"checkpoint {path} is not an h2q training checkpoint")
    payload["meta"] = json.loads(payload.pop("meta_json"))
    return payload


def restore(payload: dict, model, optimizer=None, scaler=None) -> dict:
    """Put a loaded checkpoint's state back; returns its metadata."""
    model.load_state_dict(payload["model"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scaler is not None:
        scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(payload["torch_rng"])
    if "cuda_rng" in payload and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return payload["meta"]


def step_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """``step_*.pt`` files in ``folder``, newest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def load_latest(folder: str | os.PathLike, model, optimizer=None, scaler=None,
                announce: Callable[[str], None] | None = None) -> dict | None:
    """Restore the newest usable step checkpoint; fall back past broken ones, saying so.

    Returns ``{"step", "best_val_loss", "elapsed_s"}`` or None when there is none to resume.
    """
    for path in step_checkpoints(folder):
        try:
            payload = read_training(path)
        except CheckpointError as e:
            if announce:
                announce(f"{e}; falling back to the previous checkpoint")
            continue
        meta = restore(payload, model, optimizer, scaler)
        if announce:
            announce(f"resuming from {path.name} (step {meta['step']})")
        return {"step": meta["step"], "best_val_loss": meta.get("best_val_loss"),
                "elapsed_s": meta.get("elapsed_s", 0.0)}
    return None


def save_weights(path: str | os.PathLike, model, meta: dict) -> None:
    """Weights only, as safetensors (the tied head is stored once)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
               if k != "lm_head.weight"}
    _atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), {"meta": json.dumps(meta)}))


def load_weights(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(state_dict, meta)`` from a ``.safetensors`` file or a training ``.pt`` checkpoint."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("meta", "{}"))
            state = load_file(str(path))
        except FileNotFoundError:
            raise CheckpointError(f"weights file {path} does not exist") from None
        except Exception as e:
            raise CheckpointError(f"weights file {path} cannot be read: {e}") from None
        state["lm_head.weight"] = state["tok_emb.weight"]
        return state, meta
    payload = read_training(path)
    return payload["model"], payload["meta"]


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """A ``GPT`` and its tokenizer rebuilt from a checkpoint or weights file."""
    from .model import GPT, GPTConfig
    from .profiles import TrainConfig
    from .tokenizers import tokenizer_from_dict

    state, meta = load_weights(path)
    tokenizer = tokenizer_from_dict(meta["tokenizer"])
    cfg = TrainConfig(**meta["config"]).model_config(tokenizer.vocab_size)
    model = GPT(GPTConfig(**cfg.to_dict()))
    model.load_state_dict(state)
    return model.to(device).eval(), tokenizer, meta
