"""Training: the report's recipe on MPS, CUDA or CPU, with checkpoints, resume and samples.

One entry point, ``train(cfg, run_dir)``, serves a single process and ``torchrun``: when
``WORLD_SIZE`` > 1 it trains with DistributedDataParallel (gloo on CPU, NCCL on CUDA),
keeps the global batch (``batch_size * grad_accum`` sequences a step, split over ranks)
and logs, evaluates and checkpoints on rank 0 only.

Batches are a pure function of ``(seed, step)``, so the data position is the step and a
resumed run sees exactly the batches an uninterrupted one would have.

A run folder holds ``config.json``, ``tokenizer.json``, ``log.jsonl`` (one record a logged
step), ``samples.jsonl``, ``summary.json``, ``checkpoints/step_XXXXXX.pt`` (model, optimizer,
scaler, step, RNG states; the report's 300 MB files), ``checkpoints/best.pt`` (lowest
validation loss) and ``final_model.safetensors`` (weights only; the report's 105 MB file).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from . import checkpoint as ckpt
from .data import cached_tokens, load_split, report_text
from .errors import ConfigError, TrainingDivergedError
from .model import GPT, count_parameters
from .profiles import TrainConfig
from .tokenizers import Tokenizer, build_tokenizer, tokenizer_from_dict

REPORT_PROMPTS = ("The meaning of life is", "Artificial intelligence will")


# --- device and precision -------------------------------------------------------------------


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.insert(0, "mps")
    return devices


def pick_device(requested: str = "auto") -> str:
    """``auto`` picks MPS, then CUDA, then CPU; a forced device must be available."""
    available = available_devices()
    if requested == "auto":
        return available[0]
    if requested not in ("cpu", "cuda", "mps"):
        raise ConfigError("device", requested, "one of auto, cpu, cuda, mps")
    if requested not in available:
        raise ConfigError("device", requested, "one available here: auto, " + ", ".join(available))
    return requested


def pick_precision(device: str, requested: str = "auto") -> str:
    """bf16 autocast on CPU and CUDA; fp16 with a gradient scaler on MPS; or as requested."""
    if requested != "auto":
        if requested == "fp16" and device == "cpu":
            raise ConfigError("precision", requested, "bf16 or fp32 on the CPU")
        return requested
    return "fp16" if device == "mps" else "bf16"


def autocast(device: str, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device, dtype=dtype)


# --- schedule and batches -------------------------------------------------------------------


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then cosine decay to ``min_lr``.

    lr(s) = lr·(s+1)/warmup                                   for s < warmup
    lr(s) = min_lr + ½(lr − min_lr)(1 + cos(π·(s − warmup)/(steps − warmup)))  after
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.steps <= cfg.warmup:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup) / (cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


def batch_offsets(seed: int, step: int, count: int, n_tokens: int, block_size: int) -> np.ndarray:
    """Start positions of the ``count`` sequences of ``step``: a pure function of its inputs."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - block_size - 1, size=count)


def get_batch(tokens: np.ndarray, offsets: np.ndarray, block_size: int, device: str):
    x = np.stack([tokens[o : o + block_size] for o in offsets]).astype(np.int64)
    y = np.stack([tokens[o + 1 : o + 1 + block_size] for o in offsets]).astype(np.int64)
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


# --- the run --------------------------------------------------------------------------------


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    if device == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def prepare_data(cfg: TrainConfig, run_dir: Path, cache_dir: Path | None = None):
    """Load train and validation, build (or reload) the tokenizer, and encode both (cached)."""
    train_split = load_split("train", cfg.data_config, cfg.data_dir, cfg.source)
    val_split = load_split("validation", cfg.data_config, cfg.data_dir, cfg.source)
    tok_path = run_dir / "tokenizer.json"
    if tok_path.is_file():
        tokenizer = tokenizer_from_dict(json.loads(tok_path.read_text()))
    else:
        tokenizer = build_tokenizer(cfg.tokenizer, [report_text(train_split.lines)])
    cache_dir = cache_dir or run_dir / "token_cache"
    train = cached_tokens(train_split, tokenizer, cache_dir)
    val = cached_tokens(val_split, tokenizer, cache_dir)
    for name, c in (("train", train), ("validation", val)):
        if len(c.tokens) <= cfg.block_size + 1:
            raise ConfigError(
                "block_size", cfg.block_size,
                f"shorter than the {name} split ({len(c.tokens)} tokens)",
            )
    return tokenizer, train, val, train_split, val_split


@torch.no_grad()
def estimate_val_loss(model, tokens: np.ndarray, cfg: TrainConfig, device: str, precision: str):
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
def sample_texts(
    model, tokenizer: Tokenizer, cfg: TrainConfig, device: str, step: int
) -> list[dict]:
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


def peak_rss_gb() -> float | None:
    """Peak resident memory of this process so far, in GB (None where it cannot be read)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return peak / 1e9 if sys.platform == "darwin" else peak * 1024 / 1e9


def _append_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def _truncate_jsonl(path: Path, after_step: int) -> None:
    """Drop records past ``after_step`` (written after the checkpoint a resume starts from)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= after_step]
    path.write_text("".join(line + "\n" for line in keep))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def train(cfg: TrainConfig, run_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
          stop_after: int | None = None) -> dict:
    """Train (or resume) the run in ``run_dir``; returns the summary.

    ``stop_after`` ends the process after that many steps of this call, as a crash would
    (used by tests and for splitting long runs); the run can then be resumed.
    """
    cfg.validate()
    run_dir = Path(run_dir)
    device = pick_device(cfg.device)
    precision = pick_precision(device, cfg.precision)
    di = _init_distributed(device)
    if cfg.grad_accum % di.world:
        raise ConfigError("grad_accum", cfg.grad_accum, f"a multiple of the {di.world} processes")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if di.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
    # rank 0 builds the token caches first; the others then read them (no concurrent writes)
    cache = Path(cache_dir) if cache_dir else None
    if di.main:
        tokenizer, train_c, val_c, train_split, _ = prepare_data(cfg, run_dir, cache)
    if di.world > 1:
        dist.barrier()
    if not di.main:
        tokenizer, train_c, val_c, train_split, _ = prepare_data(cfg, run_dir, cache)
    train_tokens, val_tokens = train_c.tokens, val_c.tokens

    torch.manual_seed(cfg.seed)
    mcfg = cfg.model_config(tokenizer.vocab_size)
    model = GPT(mcfg).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8,
        fused=device in ("cuda", "cpu"),
    )
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")

    state = {"step": 0, "best_val_loss": None, "elapsed_s": 0.0}
    resumed = ckpt.load_latest(run_dir / "checkpoints", model, optimizer, scaler,
                               announce=print if di.main else None)
    if resumed is not None:
        state.update(resumed)
        summary_path = run_dir / "summary.json"
        if state["step"] >= cfg.steps and summary_path.is_file():
            return json.loads(summary_path.read_text())  # finished: nothing to redo
    elif di.main:
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        (run_dir / "tokenizer.json").write_text(json.dumps(tokenizer.to_dict()))
        for name in ("log.jsonl", "samples.jsonl"):
            (run_dir / name).unlink(missing_ok=True)
    if di.main:
        _truncate_jsonl(run_dir / "log.jsonl", state["step"])
        _truncate_jsonl(run_dir / "samples.jsonl", state["step"])

    train_model = model
    if di.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[di.local_rank] if device == "cuda" else None
        )
    step_model = torch.compile(train_model) if cfg.compile else train_model

    accum_local = cfg.grad_accum // di.world
    seqs_per_step = cfg.batch_size * cfg.grad_accum
    meta = {"config": cfg.to_dict(), "tokenizer": tokenizer.to_dict(), "device": device,
            "precision": precision, "world_size": di.world}

    bar = None
    if di.main and not cfg.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=state["step"], desc="train", unit="step")

    start_step = state["step"]
    t_last, tokens_last = time.perf_counter(), 0
    t_start = time.perf_counter() - state["elapsed_s"]
    model.train()
    for step in range(start_step, cfg.steps):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        offsets = batch_offsets(cfg.seed, step, seqs_per_step, len(train_tokens), cfg.block_size)
        per_rank = accum_local * cfg.batch_size
        mine = offsets[di.rank * per_rank : (di.rank + 1) * per_rank]
        loss_sum = torch.zeros((), device=device)
        for micro in range(accum_local):
            micro_offsets = mine[micro * cfg.batch_size : (micro + 1) * cfg.batch_size]
            x, y = get_batch(train_tokens, micro_offsets, cfg.block_size, device)
            sync = micro == accum_local - 1 or di.world == 1
            ctx = contextlib.nullcontext() if sync else train_model.no_sync()
            with ctx, autocast(device, precision):
                _, loss = step_model(x, y)
                scaled = loss / accum_local
            scaler.scale(scaled).backward()
            loss_sum += loss.detach()
        if di.world > 1:
            dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)
        train_loss = loss_sum.item() / cfg.grad_accum
        if not math.isfinite(train_loss):
            raise TrainingDivergedError(
                f"training loss became {train_loss} at step {step + 1}; the last good "
                f"checkpoint in {run_dir / 'checkpoints'} is kept and 'best' is unchanged"
            )
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        tokens_last += cfg.tokens_per_step

        if bar is not None:
            bar.update(1)
        is_eval = done % cfg.eval_every == 0 or done == cfg.steps
        if di.main and (done % cfg.log_every == 0 or is_eval):
            now = time.perf_counter()
            record = {"step": done, "train_loss": train_loss, "val_loss": None,
                      "perplexity": None, "lr": lr, "tokens_seen": done * cfg.tokens_per_step,
                      "tokens_per_s": tokens_last / max(now - t_last, 1e-9),
                      "elapsed_s": now - t_start}
            t_last, tokens_last = now, 0
            if is_eval:
                val_loss = estimate_val_loss(model, val_tokens, cfg, device, precision)
                record["val_loss"], record["perplexity"] = val_loss, math.exp(val_loss)
                best = state["best_val_loss"]
                if best is None or val_loss < best:
                    state["best_val_loss"] = val_loss
                    ckpt.save_training(run_dir / "checkpoints" / "best.pt", model, optimizer,
                                       scaler, {**meta, "step": done, "best_val_loss": val_loss,
                                                "elapsed_s": now - t_start})
                t_last = time.perf_counter()  # evaluation time is not training throughput
            _append_jsonl(run_dir / "log.jsonl", [record])
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        if di.main and (done % cfg.ckpt_every == 0 or done == cfg.steps):
            if cfg.sample_tokens:
                _append_jsonl(run_dir / "samples.jsonl",
                              sample_texts(model, tokenizer, cfg, device, done))
            ckpt.save_training(run_dir / "checkpoints" / f"step_{done:06d}.pt", model, optimizer,
                               scaler, {**meta, "step": done,
                                        "best_val_loss": state["best_val_loss"],
                                        "elapsed_s": time.perf_counter() - t_start})
        if stop_after is not None and done - start_step >= stop_after and done < cfg.steps:
            if bar is not None:
                bar.close()
            return {"stopped_at": done}
    if bar is not None:
        bar.close()

    summary = {}
    if di.main:
        ckpt.save_weights(run_dir / "final_model.safetensors", model, {**meta, "step": cfg.steps})
        log = read_jsonl(run_dir / "log.jsonl")
        evals = [r for r in log if r["val_loss"] is not None]
        elapsed = time.perf_counter() - t_start
        summary = {
            "steps": cfg.steps,
            "tokens_seen": cfg.steps * cfg.tokens_per_step,
            "final_train_loss": log[-1]["train_loss"] if log else None,
            "final_val_loss": evals[-1]["val_loss"] if evals else None,
            "best_val_loss": state["best_val_loss"],
            "best_perplexity": math.exp(state["best_val_loss"]) if state["best_val_loss"] else None,
            "elapsed_s": elapsed,
            "mean_tokens_per_s": (cfg.steps - start_step) * cfg.tokens_per_step
            / max(elapsed - state["elapsed_s"], 1e-9),
            "parameters": count_parameters(mcfg),
            "vocab_size": tokenizer.vocab_size,
            "train_tokens": int(len(train_tokens)),
            "val_tokens": int(len(val_tokens)),
            "train_source": train_split.origin,
            "train_is_slice": train_split.is_slice,
            "epochs": cfg.steps * cfg.tokens_per_step / len(train_tokens),
            "device": device,
            "precision": precision,
            "world_size": di.world,
            "torch": torch.__version__,
            "peak_rss_GB": peak_rss_gb(),
        }
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    if di.world > 1:
        dist.barrier()
    return summary
