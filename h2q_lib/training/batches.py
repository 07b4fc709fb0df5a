"""What a step trains on: the run's encoded text (``prepare_data``) and the batches cut from it.

Batches are a pure function of ``(seed, step)`` (``batch_offsets``), so the data position is
the step and a resumed run sees exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import ConfigError
from h2q_lib.data.token_cache import TokenCache, cached_tokens
from h2q_lib.data.tokenizers import Tokenizer, build_tokenizer, tokenizer_from_dict
from h2q_lib.data.wikitext import load_split, report_text
from h2q_lib.training.profiles import RuntimeConfig, TrainConfig


def batch_offsets(seed: int, step: int, count: int, n_tokens: int, block_size: int) -> np.ndarray:
    """Start positions of the ``count`` sequences of ``step``: a pure function of its inputs."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - block_size - 1, size=count)


def get_batch(tokens: np.ndarray, offsets: np.ndarray, block_size: int,
              device: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.stack([tokens[o : o + block_size] for o in offsets]).astype(np.int64)
    y = np.stack([tokens[o + 1 : o + 1 + block_size] for o in offsets]).astype(np.int64)
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


@dataclass
class TrainData:
    tokenizer: Tokenizer
    train: TokenCache
    val: TokenCache
    train_origin: str
    train_is_slice: bool
    val_origin: str


def _saved_tokenizer(run_dir: Path) -> Tokenizer | None:
    saved = runs.read_json(run_dir / "tokenizer.json")
    if saved is None:
        return None
    try:
        return tokenizer_from_dict(saved)
    except (ConfigError, KeyError, TypeError, ValueError):
        return None


def prepare_data(cfg: TrainConfig, runtime: RuntimeConfig, run_dir: Path,
                 cache_dir: Path | None = None, tokenizer: Tokenizer | None = None) -> TrainData:
    """Load the training and validation text, build (or reuse) the tokenizer, encode both.

    The tokenizer comes from ``tokenizer`` (a checkpoint's), else the run folder's
    ``tokenizer.json``, else it is learned from the training text. Encodings are cached in
    ``cache_dir`` (default ``<run_dir>/token_cache``).
    """
    train_split = load_split("train", cfg.train_data, runtime.data_dir, runtime.source)
    val_split = load_split("validation", cfg.data_config, runtime.data_dir, runtime.source)
    tokenizer = tokenizer or _saved_tokenizer(run_dir) or build_tokenizer(
        cfg.tokenizer, [report_text(train_split.lines)])
    cache = cache_dir or run_dir / "token_cache"
    train = cached_tokens(train_split, tokenizer, cache)
    val = cached_tokens(val_split, tokenizer, cache)
    for name, c in (("train", train), ("validation", val)):
        if len(c.tokens) <= cfg.block_size + 1:
            raise ConfigError("block_size", cfg.block_size,
                              f"shorter than the {name} split ({len(c.tokens)} tokens)")
    return TrainData(tokenizer, train, val, train_split.origin, train_split.is_slice,
                     val_split.origin)
