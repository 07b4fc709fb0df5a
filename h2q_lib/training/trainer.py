"""Training: the report's recipe on MPS, CUDA or CPU, with checkpoints, resume and samples.

``train(cfg, run_dir)`` reads top to bottom as the run goes: open the run folder (lock it,
check that a resumed run has the same recipe), load and encode the data, build the model
and optimizer, restore the latest checkpoint, then step, log, evaluate, sample and
checkpoint until ``cfg.steps``, and write the final weights and ``summary.json``.

One process or ``torchrun``: when ``WORLD_SIZE`` > 1 it trains with DistributedDataParallel
(gloo on CPU, NCCL on CUDA), keeps the global batch (``batch_size * grad_accum`` sequences a
step, split over ranks) and logs, evaluates and checkpoints on rank 0 only.

Batches are a pure function of ``(seed, step)``, so the data position is the step and a
resumed run sees exactly the batches an uninterrupted one would have. Nothing non-finite is
ever saved: a step whose loss or updated weights are not finite stops the run before any
file is written, and the last good checkpoint and ``best.pt`` stay as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import ConfigError, H2QError, TrainingDivergedError
from h2q_lib.core.provenance import run_provenance
from h2q_lib.data.token_cache import TokenCache, cached_tokens
from h2q_lib.data.tokenizers import Tokenizer, build_tokenizer, tokenizer_from_dict
from h2q_lib.data.wikitext import load_split, report_text
from h2q_lib.evaluation.metrics import safe_exp
from h2q_lib.model.gpt import GPT, count_parameters
from h2q_lib.training import checkpoint as ckpt
from h2q_lib.training.hardware import (
    PrecisionChoice,
    autocast,
    choose_precision,
    machine_description,
    peak_rss_gb,
    pick_device,
    total_memory_bytes,
)
from h2q_lib.training.profiles import RuntimeConfig, TrainConfig
from h2q_lib.training.readings import lr_at

REPORT_PROMPTS = ("The meaning of life is", "Artificial intelligence will")


# --- schedule and batches -------------------------------------------------------------------


def batch_offsets(seed: int, step: int, count: int, n_tokens: int, block_size: int) -> np.ndarray:
    """Start positions of the ``count`` sequences of ``step``: a pure function of its inputs."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - block_size - 1, size=count)


def get_batch(tokens: np.ndarray, offsets: np.ndarray, block_size: int, device: str):
    x = np.stack([tokens[o : o + block_size] for o in offsets]).astype(np.int64)
    y = np.stack([tokens[o + 1 : o + 1 + block_size] for o in offsets]).astype(np.int64)
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


# --- the pieces of a run --------------------------------------------------------------------


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    if device == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


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


def build_optimizer(model: GPT, cfg: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (GPT-2's betas), fused where torch has it."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=device in ("cuda", "cpu"),
    )


def recipe_sha256(recipe: TrainConfig | dict) -> str:
    """The recipe's identity: sha256 of every field but ``steps``, with the schedule's length
    resolved (``schedule_length``).

    ``steps`` says how far a run trains, not what its steps compute, and ``--extend`` raises
    it; the weights of step k depend on everything else. Checkpoints and final weights carry
    it; those of older versions are checked by the recipe in their metadata.
    """
    cfg = recipe if isinstance(recipe, TrainConfig) else TrainConfig.from_dict(recipe)
    fields_ = {**cfg.to_dict(), "schedule_steps": cfg.schedule_length}
    del fields_["steps"]
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
    listing = ", ".join(f"{k} {old!r} where the run has {new!r}" for k, (old, new) in diff.items())
    return f"was written by a different recipe ({listing})"


RESTART_HINT = "h2q train --restart (the notebooks' restart parameter)"


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
    listing = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in diff.items())
    hint = ("; to train this run further, ask for more steps with extend "
            "(h2q train --extend)" if "steps" in diff and len(diff) == 1 else "")
    raise runs.RunFolderError(
        f"run_dir {runs.shown(run_dir)!r} holds a run with a different recipe ({listing}); "
        f"use a new run_dir, or start over with {RESTART_HINT}, to train the new "
        f"recipe{hint}")


@dataclass
class RunState:
    """What a checkpoint carries forward besides the weights."""

    step: int = 0
    best_val_loss: float | None = None
    elapsed_s: float = 0.0
    sessions: list = field(default_factory=list)  # one entry a process that trained


@torch.no_grad()
def estimate_val_loss(model, tokens: np.ndarray, cfg: TrainConfig, device: str,
                      precision: str) -> float:
    """Mean loss on a fixed set of ``eval_batches * batch_size`` validation windows."""
    model.eval()
    losses = []
    for b in range(cfg.eval_batches):
        offs = batch_offsets(cfg.seed + 1_000_003, b, cfg.batch_size, len(tokens), cfg.block_size)
        x, y = get_batch(tokens, offs, cfg.block_size, device)
        with autocast(device, precision):
            _, loss = model(x, y)
        losses.append(loss.item())
    model.train()
    return float(np.mean(losses))


@torch.no_grad()
def sample_texts(model, tokenizer: Tokenizer, cfg: TrainConfig, device: str,
                 step: int) -> list[dict]:
    """Continuations of the report's prompts, seeded by (seed, step)."""
    model.eval()
    out = []
    for k, prompt in enumerate(REPORT_PROMPTS):
        ids = list(tokenizer.encode(prompt).tolist())
        if tokenizer.bos_id is not None:
            ids = [tokenizer.bos_id] + ids
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1000 + step * 10 + k)
        idx = torch.tensor([ids], dtype=torch.long, device=device)
        raw = model.generate(idx, cfg.sample_tokens, cfg.temperature, cfg.top_k, gen)
        text = tokenizer.decode(raw[0, len(ids) :].tolist())
        out.append({"step": step, "prompt": prompt, "text": prompt + text,
                    "temperature": cfg.temperature, "top_k": cfg.top_k})
    model.train()
    return out


def _weights_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _diverged(what: str, value: float, step: int, run_dir: Path) -> TrainingDivergedError:
    kept = ("the last good checkpoint in "
            f"{runs.shown(run_dir / 'checkpoints')} and best.pt are unchanged"
            if any((run_dir / "checkpoints").glob("*.pt")) else "no checkpoint had been saved yet")
    return TrainingDivergedError(
        f"{what} became {value} at step {step}; nothing of this step was saved: {kept} "
        "(lower lr, or check the data)")


# --- up-front checks, the run's precision, interrupts ----------------------------------------

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


class Interrupted(H2QError):
    """The run was stopped by SIGINT or SIGTERM; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class _StopRequests:
    """SIGINT and SIGTERM while training: remembered, acted on at the next step boundary.

    Before the loop (data, model) a signal stops at once; in the loop the step finishes, a
    checkpoint is written and the run stops with one line. Handlers are restored on exit;
    outside the main thread (where Python allows no handlers) nothing is installed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self.in_loop = False
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        if not self.in_loop:
            raise Interrupted(f"interrupted by {signal.Signals(signum).name} before training "
                              "began; nothing was trained", signum)

    def __enter__(self) -> _StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _stop_requested(stops: _StopRequests, di: DistInfo) -> bool:
    """A signal arrived on this process (or, with torchrun, on any of them)."""
    if di.world == 1:
        return stops.signum is not None
    flag = torch.tensor([0 if stops.signum is None else stops.signum])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    stops.signum = int(flag) or None
    return stops.signum is not None


# --- the run --------------------------------------------------------------------------------


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


def train(cfg: TrainConfig, run_dir: str | os.PathLike, runtime: RuntimeConfig | None = None,
          cache_dir: str | os.PathLike | None = None, stop_after: int | None = None,
          extend: bool = False) -> dict:
    """Train (or resume) the run in ``run_dir``; returns the summary.

    ``stop_after`` ends the process after that many steps of this call, as a crash would
    (used by tests and for splitting long runs); the run can then be resumed. ``extend``
    lets a finished run continue to a larger ``cfg.steps`` with its recipe otherwise equal.
    SIGINT or SIGTERM stop it at the next step boundary with a checkpoint (``Interrupted``).
    """
    runs.check_run_dir_given(run_dir)
    runtime = (runtime or RuntimeConfig()).validate()
    device = check_run(cfg, runtime)
    run_dir = Path(run_dir)
    di = init_distributed(device)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    if di.main:
        runs.prepare_run_folder(run_dir)
    lock = runs.RunLock(run_dir) if di.main else contextlib.nullcontext()
    with lock, _StopRequests() as stops:
        return _train(cfg, runtime, run_dir, device, di, Path(cache_dir) if cache_dir else None,
                      stop_after, extend, stops)


def _final_weights_fit(run_dir: Path, cfg: TrainConfig) -> str | None:
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
        why = f"holds step {meta.get('step')!r}, not the run's last step {cfg.steps}"
    return why


RECORDS = ("log.jsonl", "samples.jsonl", "summary.json", "evaluation.json")


def _refuse_to_retrain_records(run_dir: Path, cfg: TrainConfig, stored: dict | None,
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
        wrong.append(f"the run finished at step {finished.get('steps')!r}"
                     + (" and cannot be extended without its weights" if extend else
                        f", not at step {cfg.steps}"))
    why = "; ".join(wrong) or "no checkpoint is left"
    raise runs.RunFolderError(
        f"{runs.shown(run_dir)} holds a run's records ({', '.join(present)}, to step {last}) "
        f"but no checkpoint to resume from ({why}), so it is not trained again from step 0; "
        f"nothing was changed: train into a new run_dir, or start over with {RESTART_HINT}")


def _check_entries_are_files(run_dir: Path) -> None:
    """A folder where the run writes a file (a checkpoint) is refused before training."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if (ckpt.STEP_FILE.match(entry.name) or entry.name == "best.pt") and entry.is_dir():
            raise runs.RunFolderError(
                f"{runs.shown(entry)} is a folder where h2q writes a checkpoint; move it "
                "away and run again")


def _train(cfg, runtime, run_dir, device, di, cache_dir, stop_after, extend, stops) -> dict:
    say = print if di.main else (lambda *_: None)

    # 1. the run folder: a resumed run must have the same recipe, and nothing is lost
    if di.main:
        for tmp in runs.remove_stale_temporaries(run_dir):
            say(f"removed {runs.shown(tmp)}, left by a writer that was stopped")
        _check_entries_are_files(run_dir)
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
    finished = runs.read_json(run_dir / "summary.json")
    kept_steps = latest[1]["meta"]["step"] if latest is not None else None
    foreign = _final_weights_fit(run_dir, cfg)
    if stored is not None and isinstance(finished, dict) and finished.get("steps") == cfg.steps \
            and foreign is None \
            and (kept_steps is None and not ckpt.step_checkpoints(run_dir / "checkpoints")
                 or kept_steps is not None and kept_steps >= cfg.steps):
        # a finished run is read, never retrained, also where it keeps no checkpoints (a
        # committed run folder holds its records only)
        if di.main:
            runs.write_json(run_dir / "config.json", cfg.to_dict())
        if kept_steps is None:
            say(f"{runs.shown(run_dir)} holds this run finished at step {cfg.steps} and keeps "
                "no checkpoints: its records are read, not retrained")
        return finished
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
        _refuse_to_retrain_records(run_dir, cfg, stored, finished, extend)
    precision = run_precision(device, runtime.precision,
                              latest[1]["meta"] if latest is not None else None, say)
    say(f"precision {precision.precision} on {device}: {precision.reason}")

    # 2. data: the tokenizer of a resumed run is its checkpoint's
    resumed_tokenizer = None
    if latest is not None:
        resumed_tokenizer = tokenizer_from_dict(latest[1]["meta"]["tokenizer"])
        if runs.read_json(run_dir / "tokenizer.json") != resumed_tokenizer.to_dict():
            say(f"tokenizer.json in {runs.shown(run_dir)} was missing, unreadable or not the "
                f"run's; replaced from {latest[0].name}")
    if di.main:
        data = prepare_data(cfg, runtime, run_dir, cache_dir, resumed_tokenizer)
    if di.world > 1:
        dist.barrier()  # rank 0 builds the token caches first; the others then read them
    if not di.main:
        data = prepare_data(cfg, runtime, run_dir, cache_dir, resumed_tokenizer)
    tokenizer = data.tokenizer

    # 3. model and optimizer, restored from the latest good checkpoint
    torch.manual_seed(cfg.seed)
    model_args = cfg.model_config(tokenizer.vocab_size)
    model = GPT(model_args).to(device)
    optimizer = build_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler(device, enabled=precision.precision == "fp16")
    state = RunState()
    if latest is not None:
        meta = ckpt.restore(latest[1], model, optimizer, scaler)
        state = RunState(meta["step"], meta.get("best_val_loss"), meta.get("elapsed_s", 0.0),
                         list(meta.get("sessions", [])))
        say(f"resuming from {latest[0].name} (step {state.step})")
    if di.main:
        runs.write_json(run_dir / "config.json", cfg.to_dict())
        runs.write_json(run_dir / "tokenizer.json", tokenizer.to_dict())
    if di.main:
        if latest is None:
            for name in ("log.jsonl", "samples.jsonl", "summary.json", "evaluation.json"):
                (run_dir / name).unlink(missing_ok=True)
        else:
            runs.truncate_jsonl(run_dir / "log.jsonl", state.step, announce=say)
            runs.truncate_jsonl(run_dir / "samples.jsonl", state.step, announce=say)
            (run_dir / "summary.json").unlink(missing_ok=True)
    del latest  # the checkpoint's tensors now live in the model and optimizer

    train_model = model
    if di.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[di.local_rank] if device == "cuda" else None)
    step_model = torch.compile(train_model) if runtime.compile else train_model
    # taken now, from the code this process runs (the files may change while it trains)
    provenance = run_provenance()
    # the recipe's sequences of a step, cut into micro-batches of ``micro`` (a runtime choice)
    micro = runtime.micro_batch or cfg.batch_size
    per_rank = cfg.batch_size * cfg.grad_accum // di.world
    micro_steps = per_rank // micro
    session = {"from_step": state.step, "device": device, **precision.to_dict(),
               "micro_batch": micro,
               "git_revision": provenance["git_revision"],
               "library_fingerprint": provenance["library_fingerprint"], "world_size": di.world}
    meta = {"recipe": cfg.to_dict(), "recipe_sha256": recipe_sha256(cfg),
            "model_args": model_args.to_dict(),
            "tokenizer": tokenizer.to_dict(), "device": device,
            "precision": precision.precision, "world_size": di.world}

    def save(path: Path, step: int) -> None:
        sessions = state.sessions + [{**session, "to_step": step}]
        ckpt.save_training(path, model, optimizer, scaler,
                           {**meta, "step": step, "best_val_loss": state.best_val_loss,
                            "elapsed_s": time.perf_counter() - t_start, "sessions": sessions})

    bar = None
    if di.main and not runtime.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=state.step, desc="train", unit="step")

    # 4. the loop
    start_step = state.step
    seqs_per_step = cfg.batch_size * cfg.grad_accum
    t_start = time.perf_counter() - state.elapsed_s
    t_last, tokens_last, losses_since_log = time.perf_counter(), 0, []
    model.train()
    stops.in_loop = True
    for step in range(start_step, cfg.steps):
        # 4a. one optimizer step over grad_accum micro-batches
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        offsets = batch_offsets(cfg.seed, step, seqs_per_step, len(data.train.tokens),
                                cfg.block_size)
        mine = offsets[di.rank * per_rank : (di.rank + 1) * per_rank]
        loss_sum = torch.zeros((), device=device)
        for i in range(micro_steps):
            x, y = get_batch(data.train.tokens, mine[i * micro : (i + 1) * micro],
                             cfg.block_size, device)
            sync = i == micro_steps - 1 or di.world == 1
            ctx = contextlib.nullcontext() if sync else train_model.no_sync()
            with ctx, autocast(device, precision.precision):
                _, loss = step_model(x, y)
            scaler.scale(loss / micro_steps).backward()
            loss_sum += loss.detach()
        if di.world > 1:
            dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)
        # equal micro-batches: the mean of their means is the mean over the step's sequences
        train_loss = loss_sum.item() / (micro_steps * di.world)
        done = step + 1
        if not math.isfinite(train_loss):
            raise _diverged("the training loss", train_loss, done, run_dir)
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if not _weights_finite(model):
            raise _diverged("a weight", "non-finite after the update", done, run_dir)
        tokens_last += cfg.tokens_per_step
        losses_since_log.append(train_loss)
        if bar is not None:
            bar.update(1)

        # 4b. log, and evaluate at the evaluation steps
        is_eval = done % cfg.eval_every == 0 or done == cfg.steps
        if di.main and (done % cfg.log_every == 0 or is_eval):
            now = time.perf_counter()
            record = {"step": done, "train_loss": train_loss,
                      "train_loss_avg": float(np.mean(losses_since_log)),
                      # every step's own loss since the last record (the report's Loss
                      # column can then be read as a step, a window mean or validation)
                      "step_losses": list(losses_since_log),
                      "val_loss": None, "perplexity": None, "lr": lr,
                      "tokens_seen": done * cfg.tokens_per_step,
                      "tokens_per_s": tokens_last / max(now - t_last, 1e-9),
                      "elapsed_s": now - t_start}
            if is_eval:
                val_loss = estimate_val_loss(model, data.val.tokens, cfg, device,
                                             precision.precision)
                if not math.isfinite(val_loss):
                    raise _diverged("the validation loss", val_loss, done, run_dir)
                record["val_loss"], record["perplexity"] = val_loss, safe_exp(val_loss)
                if state.best_val_loss is None or val_loss < state.best_val_loss:
                    state.best_val_loss = val_loss
                    save(run_dir / "checkpoints" / "best.pt", done)
            runs.append_jsonl(run_dir / "log.jsonl", [record])
            t_last, tokens_last, losses_since_log = time.perf_counter(), 0, []
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")

        # 4c. samples and a checkpoint at the checkpoint steps
        if di.main and (done % cfg.ckpt_every == 0 or done == cfg.steps):
            if cfg.sample_tokens:
                runs.append_jsonl(run_dir / "samples.jsonl",
                                  sample_texts(model, tokenizer, cfg, device, done))
            save(run_dir / "checkpoints" / f"step_{done:06d}.pt", done)
            t_last = time.perf_counter()  # saving and sampling are not training throughput
        if _stop_requested(stops, di) and done < cfg.steps:
            if bar is not None:
                bar.close()
            name = f"step_{done:06d}.pt"
            if di.main and not (run_dir / "checkpoints" / name).exists():
                save(run_dir / "checkpoints" / name, done)
            signum = stops.signum or signal.SIGTERM
            raise Interrupted(
                f"interrupted by {signal.Signals(signum).name} after step {done}: saved "
                f"{runs.shown(run_dir / 'checkpoints' / name)}; run the same command again "
                "to resume", signum)
        if stop_after is not None and done - start_step >= stop_after and done < cfg.steps:
            if bar is not None:
                bar.close()
            return {"stopped_at": done}
    if bar is not None:
        bar.close()

    # 5. final weights and the summary
    summary = {}
    if di.main:
        elapsed = time.perf_counter() - t_start
        sessions = state.sessions + [{**session, "to_step": cfg.steps}]
        ckpt.save_weights(run_dir / "final_model.safetensors", model,
                          {**meta, "step": cfg.steps, "sessions": sessions})
        log = runs.read_jsonl(run_dir / "log.jsonl")
        evals = [r for r in log if r.get("val_loss") is not None]
        summary = {
            "steps": cfg.steps,
            "tokens_seen": cfg.steps * cfg.tokens_per_step,
            "final_train_loss": log[-1]["train_loss"] if log else None,
            "final_val_loss": evals[-1]["val_loss"] if evals else None,
            "best_val_loss": state.best_val_loss,
            "best_perplexity": safe_exp(state.best_val_loss)
            if state.best_val_loss is not None else None,
            "elapsed_s": elapsed,
            "mean_tokens_per_s": (cfg.steps - start_step) * cfg.tokens_per_step
            / max(elapsed - state.elapsed_s, 1e-9),
            "parameters": count_parameters(model_args),
            "vocab_size": tokenizer.vocab_size,
            "train_tokens": int(len(data.train.tokens)),
            "val_tokens": int(len(data.val.tokens)),
            "train_source": data.train_origin,
            "train_is_slice": data.train_is_slice,
            "val_source": data.val_origin,
            "epochs": cfg.steps * cfg.tokens_per_step / len(data.train.tokens),
            "device": device,
            "precision": precision.precision,
            "precision_reason": precision.reason,
            "world_size": di.world,
            "machine": machine_description(),
            "sessions": sessions,
            "peak_rss_GB": peak_rss_gb(),
            **provenance,
        }
        runs.write_json(run_dir / "summary.json", summary)
    if di.world > 1:
        dist.barrier()
    return summary
