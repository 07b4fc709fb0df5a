"""The checks of ``train``'s values that need no run folder, made before anything is created.

``check_run`` gathers them (recipe and runtime fields, the device, values that pass their
type but cannot run here, the split of a step over processes and micro-batches, the local
data files), so that ``--restart`` removes nothing before all of them pass.
"""

from __future__ import annotations

import os

from h2q_lib.core.errors import ConfigError
from h2q_lib.model.gpt import count_parameters
from h2q_lib.training.hardware import choose_precision, pick_device, total_memory_bytes
from h2q_lib.training.profiles import RuntimeConfig, TrainConfig

SEED_MAX = 2**32 - 1  # numpy's and torch's seeds, and the samples' seed * 1000 + ..., fit
THREADS_MAX = 4096
# what a parameter costs in training: fp32 weights, gradients and AdamW's two moments
BYTES_PER_PARAMETER = 16
LARGEST_VOCAB = 50_304  # GPT-2's, padded: no tokenizer of the project has more


def check_bounds(cfg: TrainConfig, runtime: RuntimeConfig, device: str) -> None:
    """Values that pass their type but cannot run here, refused in one line before anything
    is made: seeds beyond 2**32 - 1, absurd thread counts, a model or batch that cannot fit
    in the device's memory."""
    if cfg.seed > SEED_MAX:
        raise ConfigError("seed", cfg.seed, f"an integer from 0 to {SEED_MAX}")
    if runtime.threads and not 0 <= runtime.threads <= THREADS_MAX:
        raise ConfigError("threads", runtime.threads,
                          f"0 (torch's default) or an integer up to {THREADS_MAX}")
    memory = total_memory_bytes(device)
    if memory is None:
        return
    params = count_parameters(cfg.model_config(LARGEST_VOCAB))
    # activations: a low estimate (attention scores and the logits), enough to catch the absurd
    activations = 4 * cfg.batch_size * cfg.block_size * (
        cfg.n_layer * (cfg.n_head * cfg.block_size + 16 * cfg.n_embd) + LARGEST_VOCAB)
    need = params * BYTES_PER_PARAMETER + activations
    if need > memory:
        # name the size furthest above the report's recipe
        default = TrainConfig()
        sizes = ("n_embd", "n_ff", "n_layer", "n_head", "block_size", "batch_size")
        name = max(sizes, key=lambda n: getattr(cfg, n) / getattr(default, n))
        raise ConfigError(name, getattr(cfg, name),
                          f"a model and batch that fit in {device} memory (these need about "
                          f"{need / 1e9:.3g} GB; this machine has {memory / 1e9:.3g} GB)")


def check_data_files(cfg: TrainConfig, runtime: RuntimeConfig) -> None:
    """A local data folder that lacks the run's splits, refused before anything is made (the
    text itself is read later; the hub is asked only when training needs it)."""
    from h2q_lib.core.errors import DataUnavailableError
    from h2q_lib.data.wikitext import DATA_DIR_ENV, local_split_file, resolve_data_dir

    folder = resolve_data_dir(runtime.data_dir)
    if runtime.source == "hf" or folder is None:
        return
    if not folder.is_dir():
        raise DataUnavailableError(
            f"data_dir={os.fspath(folder)!r} (the data_dir parameter or ${DATA_DIR_ENV}) is "
            "not a folder: pass a folder laid out like <folder>/<config>/wiki.<split>.*")
    local_split_file(folder, cfg.train_data, "train")
    local_split_file(folder, cfg.data_config, "validation")


def check_run(cfg: TrainConfig, runtime: RuntimeConfig) -> str:
    """Every check of ``train``'s values that needs no run folder, in one place, so that
    ``--restart`` removes nothing before all of them pass; returns the device."""
    cfg.validate()
    runtime.validate()
    device = pick_device(runtime.device)
    check_bounds(cfg, runtime, device)
    if runtime.precision != "auto":
        choose_precision(device, runtime.precision)  # a bad choice fails before anything
    world = max(int(os.environ.get("WORLD_SIZE", "1") or 1), 1)
    if cfg.grad_accum % world:
        raise ConfigError("grad_accum", cfg.grad_accum, f"a multiple of the {world} processes")
    per_process = cfg.batch_size * cfg.grad_accum // world
    if runtime.micro_batch and per_process % runtime.micro_batch:
        raise ConfigError("micro_batch", runtime.micro_batch,
                          f"a divisor of the {per_process} sequences each process takes a step "
                          "(batch_size x grad_accum / processes), or 0 for the recipe's "
                          f"batch_size={cfg.batch_size}")
    check_data_files(cfg, runtime)
    return device
