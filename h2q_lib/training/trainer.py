"""Training: the report's recipe on MPS, CUDA or CPU, with checkpoints, resume and samples.

``train(cfg, run_dir)`` reads top to bottom as the run goes: open the run folder (lock it,
check that a resumed run has the same recipe: ``resume.open_run``), load and encode the
data, build the model and optimizer, restore the latest checkpoint, then step, log,
evaluate, sample and checkpoint until ``cfg.steps``, and write the final weights and
``summary.json``. ``_train`` is that sequence; each of its steps is a function below it.

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
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import TrainingDivergedError
from h2q_lib.core.provenance import run_provenance
from h2q_lib.data.tokenizers import Tokenizer, tokenizer_from_dict
from h2q_lib.model.gpt import GPT, count_parameters
from h2q_lib.training import checkpoint as ckpt
from h2q_lib.training.allocator import keep_freed_memory
from h2q_lib.training.attention_rule import session_attention
from h2q_lib.training.batches import TrainData, batch_offsets, get_batch, prepare_data
from h2q_lib.training.checks import check_run
from h2q_lib.training.distributed import DistInfo, init_distributed
from h2q_lib.training.hardware import PrecisionChoice, autocast, machine_description, peak_rss_gb
from h2q_lib.training.interrupts import Interrupted, StopRequests, stop_requested
from h2q_lib.training.optimizer import build_optimizer, initialize
from h2q_lib.training.profiles import RuntimeConfig, TrainConfig
from h2q_lib.training.readings import lr_at
from h2q_lib.training.recipe_identity import recipe_sha256
from h2q_lib.training.resume import open_run, run_precision
from h2q_lib.training.samples import sample_texts
from h2q_lib.training.validation import estimate_val_loss, loss_perplexity


@dataclass
class RunState:
    """What a checkpoint carries forward besides the weights."""

    step: int = 0
    best_val_loss: float | None = None
    elapsed_s: float = 0.0
    sessions: list = field(default_factory=list)  # one entry a process that trained


@dataclass
class Session:
    """This process's stretch of the run: what its steps use, and the record it leaves in
    the ``sessions`` of the checkpoints and the summary."""

    cfg: TrainConfig
    run_dir: Path
    device: str
    di: DistInfo
    precision: PrecisionChoice
    data: TrainData
    model: GPT
    train_model: torch.nn.Module  # the model, in DistributedDataParallel under torchrun
    step_model: Callable  # train_model, compiled where the runtime asks
    optimizer: torch.optim.AdamW
    scaler: torch.amp.GradScaler
    state: RunState
    provenance: dict  # taken when the session began, from the code this process runs
    micro: int  # sequences a forward/backward pass
    per_rank: int  # sequences this process takes a step
    micro_steps: int  # forward/backward passes a step
    record: dict  # this session's entry in ``sessions``, less the step it ends at
    meta: dict  # what every checkpoint and the final weights carry
    bar: Any = None  # the progress bar (rank 0, unless quiet)
    start_step: int = 0
    t_start: float = 0.0  # perf_counter() at the run's step 0, earlier sessions counted
    # since the last log record: when it was written, tokens trained, every step's loss
    t_last: float = 0.0
    tokens_last: int = 0
    losses_since_log: list = field(default_factory=list)

    def save(self, path: Path, step: int) -> None:
        """A training checkpoint of ``step``; its ``sessions`` end with this one."""
        sessions = self.state.sessions + [{**self.record, "to_step": step}]
        ckpt.save_training(path, self.model, self.optimizer, self.scaler,
                           {**self.meta, "step": step, "best_val_loss": self.state.best_val_loss,
                            "elapsed_s": time.perf_counter() - self.t_start,
                            "sessions": sessions})

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- the run --------------------------------------------------------------------------------


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
    with lock, StopRequests() as stops:
        return _train(cfg, runtime, run_dir, device, di, Path(cache_dir) if cache_dir else None,
                      stop_after, extend, stops)


def _train(cfg: TrainConfig, runtime: RuntimeConfig, run_dir: Path, device: str, di: DistInfo,
           cache_dir: Path | None, stop_after: int | None, extend: bool,
           stops: StopRequests) -> dict:
    say = print if di.main else (lambda *_: None)

    # 1. the run folder: a resumed run must have the same recipe, and nothing is lost
    start = open_run(run_dir, cfg, extend, di.main, say)
    if start.finished is not None:
        return start.finished
    cfg = start.cfg
    precision = run_precision(device, runtime.precision,
                              start.latest[1]["meta"] if start.latest is not None else None, say)
    say(f"precision {precision.precision} on {device}: {precision.reason}")

    # 2. data: the tokenizer of a resumed run is its checkpoint's
    data = _load_data(cfg, runtime, run_dir, cache_dir, di, start.latest, say)

    # 3. model and optimizer, restored from the latest good checkpoint
    run = _start_session(cfg, runtime, run_dir, device, di, precision, data, start.latest, say)
    del start  # the checkpoint's tensors now live in the model and optimizer

    # 4. the loop: a step, its log record (and evaluation), its samples and checkpoint
    stops.in_loop = True
    for step in range(run.start_step, cfg.steps):
        lr = lr_at(step, cfg)
        train_loss = _optimizer_step(run, step, lr)
        done = step + 1
        _log_and_evaluate(run, done, train_loss, lr)
        _sample_and_checkpoint(run, done)
        if stop_requested(stops, di) and done < cfg.steps:
            raise _interrupted(run, done, stops)
        if stop_after is not None and done - run.start_step >= stop_after and done < cfg.steps:
            run.close_bar()
            return {"stopped_at": done}
    run.close_bar()

    # 5. final weights and the summary
    return _finish(run)


def _load_data(cfg: TrainConfig, runtime: RuntimeConfig, run_dir: Path, cache_dir: Path | None,
               di: DistInfo, latest: tuple[Path, dict] | None,
               say: Callable[[str], None]) -> TrainData:
    """The run's text, encoded with the run's tokenizer: a resumed run's is its checkpoint's
    (``latest``), and ``tokenizer.json`` is said to be replaced where it differs."""
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
    return data


def _write_run_files(run_dir: Path, cfg: TrainConfig, tokenizer: Tokenizer, resumed: bool,
                     step: int, say: Callable[[str], None]) -> None:
    """``config.json`` and ``tokenizer.json``; the records of a resumed run cut back to its
    checkpoint's ``step`` (they are written again from there), a fresh run's removed."""
    runs.write_json(run_dir / "config.json", cfg.to_dict())
    runs.write_json(run_dir / "tokenizer.json", tokenizer.to_dict())
    if not resumed:
        for name in ("log.jsonl", "samples.jsonl", "summary.json", "evaluation.json"):
            (run_dir / name).unlink(missing_ok=True)
    else:
        runs.truncate_jsonl(run_dir / "log.jsonl", step, announce=say)
        runs.truncate_jsonl(run_dir / "samples.jsonl", step, announce=say)
        (run_dir / "summary.json").unlink(missing_ok=True)


def _start_session(cfg: TrainConfig, runtime: RuntimeConfig, run_dir: Path, device: str,
                   di: DistInfo, precision: PrecisionChoice, data: TrainData,
                   latest: tuple[Path, dict] | None, say: Callable[[str], None]) -> Session:
    """The model, optimizer and gradient scaler, restored from ``latest`` where the run
    resumes, the run folder's files made to match, and the clock started."""
    tokenizer = data.tokenizer
    torch.manual_seed(cfg.seed)
    model_args = cfg.model_config(tokenizer.vocab_size)
    model = initialize(GPT(model_args), cfg).to(device)
    optimizer = build_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler(device, enabled=precision.precision == "fp16")
    state = RunState()
    if latest is not None:
        meta = ckpt.restore(latest[1], model, optimizer, scaler)
        state = RunState(meta["step"], meta.get("best_val_loss"), meta.get("elapsed_s", 0.0),
                         list(meta.get("sessions", [])))
        say(f"resuming from {latest[0].name} (step {state.step})")
    if di.main:
        _write_run_files(run_dir, cfg, tokenizer, latest is not None, state.step, say)
    # the recipe's sequences of a step, cut into micro-batches of ``micro`` (a runtime choice)
    micro = runtime.micro_batch or cfg.batch_size
    allocator = keep_freed_memory(device)  # before the attention rule measures
    attention = session_attention(model_args, micro, device, precision.precision,
                                  runtime.attention, latest[1]["meta"] if latest else None)
    model.set_attention(attention.kernel)
    say(f"attention {attention.kernel}: {attention.reason}")

    train_model = model
    if di.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[di.local_rank] if device == "cuda" else None)
    step_model = torch.compile(train_model) if runtime.compile else train_model
    # taken now, from the code this process runs (the files may change while it trains)
    provenance = run_provenance()
    per_rank = cfg.batch_size * cfg.grad_accum // di.world
    record = {"from_step": state.step, "device": device, **precision.to_dict(),
              **attention.to_dict(), "allocator": allocator, "micro_batch": micro,
              "git_revision": provenance["git_revision"],
              "library_fingerprint": provenance["library_fingerprint"], "world_size": di.world}
    meta = {"recipe": cfg.to_dict(), "recipe_sha256": recipe_sha256(cfg),
            "model_args": model_args.to_dict(),
            "tokenizer": tokenizer.to_dict(), "device": device,
            "precision": precision.precision, "attention": attention.kernel,
            "world_size": di.world}
    bar = None
    if di.main and not runtime.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=state.step, desc="train", unit="step")
    model.train()
    return Session(cfg, run_dir, device, di, precision, data, model, train_model, step_model,
                   optimizer, scaler, state, provenance, micro, per_rank, per_rank // micro,
                   record, meta, bar, start_step=state.step,
                   t_start=time.perf_counter() - state.elapsed_s, t_last=time.perf_counter())


# --- one step -------------------------------------------------------------------------------


def _optimizer_step(run: Session, step: int, lr: float) -> float:
    """Optimizer step ``step`` (0-based) at rate ``lr``, over ``grad_accum`` micro-batches;
    returns its training loss, the mean over the step's sequences on every process."""
    cfg, di, device = run.cfg, run.di, run.device
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    offsets = batch_offsets(cfg.seed, step, cfg.batch_size * cfg.grad_accum,
                            len(run.data.train.tokens), cfg.block_size)
    mine = offsets[di.rank * run.per_rank : (di.rank + 1) * run.per_rank]
    micro, micro_steps = run.micro, run.micro_steps
    loss_sum = torch.zeros((), device=device)
    for i in range(micro_steps):
        x, y = get_batch(run.data.train.tokens, mine[i * micro : (i + 1) * micro],
                         cfg.block_size, device)
        sync = i == micro_steps - 1 or di.world == 1
        ctx = contextlib.nullcontext() if sync else run.train_model.no_sync()
        with ctx, autocast(device, run.precision.precision):
            _, loss = run.step_model(x, y)
        run.scaler.scale(loss / micro_steps).backward()
        loss_sum += loss.detach()
    if di.world > 1:
        dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)
    # equal micro-batches: the mean of their means is the mean over the step's sequences
    train_loss = loss_sum.item() / (micro_steps * di.world)
    if not math.isfinite(train_loss):
        raise _diverged("the training loss", train_loss, step + 1, run.run_dir)
    run.scaler.unscale_(run.optimizer)
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    if not _weights_finite(run.model):
        raise _diverged("a weight", "non-finite after the update", step + 1, run.run_dir)
    # counted for the next log record and the progress bar
    run.tokens_last += cfg.tokens_per_step
    run.losses_since_log.append(train_loss)
    if run.bar is not None:
        run.bar.update(1)
    return train_loss


def _weights_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _diverged(what: str, value: float, step: int, run_dir: Path) -> TrainingDivergedError:
    kept = ("the last good checkpoint in "
            f"{runs.shown(run_dir / 'checkpoints')} and best.pt are unchanged"
            if any((run_dir / "checkpoints").glob("*.pt")) else "no checkpoint had been saved yet")
    return TrainingDivergedError(
        f"{what} became {value} at step {step}; nothing of this step was saved: {kept} "
        "(lower lr, or check the data)")


def _log_and_evaluate(run: Session, done: int, train_loss: float, lr: float) -> None:
    """Rank 0's log record at the log steps, with the validation loss at the evaluation steps;
    a validation loss better than any before writes ``best.pt``."""
    cfg = run.cfg
    is_eval = done % cfg.eval_every == 0 or done == cfg.steps
    if not (run.di.main and (done % cfg.log_every == 0 or is_eval)):
        return
    now = time.perf_counter()
    record = {"step": done, "train_loss": train_loss,
              "train_loss_avg": float(np.mean(run.losses_since_log)),
              # every step's own loss since the last record (the report's Loss
              # column can then be read as a step, a window mean or validation)
              "step_losses": list(run.losses_since_log),
              "val_loss": None, "perplexity": None, "lr": lr,
              "tokens_seen": done * cfg.tokens_per_step,
              "tokens_per_s": run.tokens_last / max(now - run.t_last, 1e-9),
              "elapsed_s": now - run.t_start}
    if is_eval:
        val_loss = estimate_val_loss(run.model, run.data.val.tokens, cfg, run.device,
                                     run.precision.precision)
        if not math.isfinite(val_loss):
            raise _diverged("the validation loss", val_loss, done, run.run_dir)
        record["val_loss"], record["perplexity"] = val_loss, loss_perplexity(val_loss)
        if run.state.best_val_loss is None or val_loss < run.state.best_val_loss:
            run.state.best_val_loss = val_loss
            run.save(run.run_dir / "checkpoints" / "best.pt", done)
    runs.append_jsonl(run.run_dir / "log.jsonl", [record])
    run.t_last, run.tokens_last, run.losses_since_log = time.perf_counter(), 0, []
    if run.bar is not None:
        run.bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")


def _sample_and_checkpoint(run: Session, done: int) -> None:
    """Rank 0's samples and step checkpoint at the checkpoint steps and the last step."""
    cfg = run.cfg
    if not (run.di.main and (done % cfg.ckpt_every == 0 or done == cfg.steps)):
        return
    if cfg.sample_tokens:
        runs.append_jsonl(run.run_dir / "samples.jsonl",
                          sample_texts(run.model, run.data.tokenizer, cfg, run.device, done))
    run.save(run.run_dir / "checkpoints" / f"step_{done:06d}.pt", done)
    run.t_last = time.perf_counter()  # saving and sampling are not training throughput


def _interrupted(run: Session, done: int, stops: StopRequests) -> Interrupted:
    """A signal arrived: step ``done``'s checkpoint is saved (unless it was already), and the
    one-line error the run stops with."""
    run.close_bar()
    name = f"step_{done:06d}.pt"
    if run.di.main and not (run.run_dir / "checkpoints" / name).exists():
        run.save(run.run_dir / "checkpoints" / name, done)
    signum = stops.signum or signal.SIGTERM
    return Interrupted(
        f"interrupted by {signal.Signals(signum).name} after step {done}: saved "
        f"{runs.shown(run.run_dir / 'checkpoints' / name)}; run the same command again "
        "to resume", signum)


# --- the end of the run ---------------------------------------------------------------------


def _finish(run: Session) -> dict:
    """The final weights and ``summary.json`` (rank 0); returns the summary."""
    cfg, di, data, state = run.cfg, run.di, run.data, run.state
    summary = {}
    if di.main:
        elapsed = time.perf_counter() - run.t_start
        sessions = state.sessions + [{**run.record, "to_step": cfg.steps}]
        ckpt.save_weights(run.run_dir / "final_model.safetensors", run.model,
                          {**run.meta, "step": cfg.steps, "sessions": sessions})
        log = runs.read_jsonl(run.run_dir / "log.jsonl")
        evals = [r for r in log if r.get("val_loss") is not None]
        summary = {
            "steps": cfg.steps,
            "tokens_seen": cfg.steps * cfg.tokens_per_step,
            "final_train_loss": log[-1]["train_loss"] if log else None,
            "final_val_loss": evals[-1]["val_loss"] if evals else None,
            "best_val_loss": state.best_val_loss,
            "best_perplexity": loss_perplexity(state.best_val_loss)
            if state.best_val_loss is not None else None,
            "elapsed_s": elapsed,
            "mean_tokens_per_s": (cfg.steps - run.start_step) * cfg.tokens_per_step
            / max(elapsed - state.elapsed_s, 1e-9),
            "parameters": count_parameters(run.model.config),
            "vocab_size": data.tokenizer.vocab_size,
            "train_tokens": int(len(data.train.tokens)),
            "val_tokens": int(len(data.val.tokens)),
            "train_source": data.train_origin,
            "train_is_slice": data.train_is_slice,
            "val_source": data.val_origin,
            "epochs": cfg.steps * cfg.tokens_per_step / len(data.train.tokens),
            "device": run.device,
            "precision": run.precision.precision,
            "precision_reason": run.precision.reason,
            "attention": run.record["attention"],
            "attention_reason": run.record["attention_reason"],
            "world_size": di.world,
            "machine": machine_description(),
            "sessions": sessions,
            "peak_rss_GB": peak_rss_gb(),
            **run.provenance,
        }
        runs.write_json(run.run_dir / "summary.json", summary)
    if di.world > 1:
        dist.barrier()
    return summary
