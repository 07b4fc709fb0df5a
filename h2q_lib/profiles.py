"""Named training profiles, defined once for the command line, the notebooks and the tests.

- ``smoke``: a tiny model on the local 1,000-line WikiText-2 train slice; about a minute on
  2 CPU cores (regression tests, nbval).
- ``cpu``: the report's exact architecture and batch on the local WikiText-103 train slice,
  steps scaled to about 40 minutes on a 2-core CPU, warmup at the report's 2,000/6,350.
- ``report``: the report's recipe unchanged (an MPS or CUDA machine with the full data).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields

from .data import CONFIGS, SOURCES
from .errors import ConfigError
from .model import GPTConfig
from .tokenizers import TOKENIZER_NAMES

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
REPORT_STEPS = 6350
REPORT_WARMUP = 2000


@dataclass
class TrainConfig:
    # data
    tokenizer: str = "char"
    data_config: str = "wikitext-103-raw-v1"
    data_dir: str | None = None
    source: str = "auto"
    # model (the report's architecture)
    n_layer: int = 8
    n_head: int = 8
    n_embd: int = 512
    n_ff: int = 2048
    block_size: int = 512
    dropout: float = 0.0
    # optimisation (the report's recipe)
    batch_size: int = 8
    grad_accum: int = 4
    steps: int = REPORT_STEPS
    warmup: int = REPORT_WARMUP
    lr: float = 6e-4
    min_lr: float = 6e-5
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1337
    # evaluation, checkpoints, samples
    eval_every: int = 500
    eval_batches: int = 20
    eval_documents: int | None = None  # articles scored by notebook 03 (None: all)
    log_every: int = 10
    ckpt_every: int = 1000
    sample_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 40
    # machine
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    threads: int = 0  # 0: torch's default
    quiet: bool = False

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            vocab_size=vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            n_ff=self.n_ff,
            dropout=self.dropout,
        )

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.block_size

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> TrainConfig:
        """Raise ``ConfigError`` naming the first field whose value is not allowed."""
        choices = {
            "tokenizer": TOKENIZER_NAMES,
            "data_config": CONFIGS,
            "source": SOURCES,
            "device": DEVICES,
            "precision": PRECISIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(name, getattr(self, name), "one of " + ", ".join(allowed))
        positive = ("n_layer", "n_head", "n_embd", "n_ff", "block_size", "batch_size",
                    "grad_accum", "steps", "eval_every", "eval_batches", "log_every",
                    "ckpt_every")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(name, value, "a positive integer")
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(name, value, "a positive number")
        for name in ("min_lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(name, value, "a number >= 0")
        if self.min_lr > self.lr:
            raise ConfigError("min_lr", self.min_lr, f"at most lr={self.lr}")
        if not isinstance(self.warmup, int) or not 0 <= self.warmup <= self.steps:
            raise ConfigError("warmup", self.warmup, f"an integer in [0, steps={self.steps}]")
        if self.temperature <= 0:
            raise ConfigError("temperature", self.temperature, "a positive number")
        if self.eval_documents is not None and (
            isinstance(self.eval_documents, bool) or not isinstance(self.eval_documents, int)
            or self.eval_documents <= 0
        ):
            raise ConfigError("eval_documents", self.eval_documents, "None or a positive integer")
        if self.sample_tokens < 0 or self.top_k <= 0 or self.threads < 0:
            bad = [n for n in ("sample_tokens", "top_k", "threads")
                   if getattr(self, n) < (1 if n == "top_k" else 0)][0]
            raise ConfigError(bad, getattr(self, bad), "a non-negative integer (top_k >= 1)")
        self.model_config(vocab_size=1)  # width/heads checks
        return self


PROFILES: dict[str, dict] = {
    "smoke": dict(
        data_config="wikitext-2-raw-v1",
        n_layer=2, n_head=4, n_embd=128, n_ff=512, block_size=128,
        batch_size=8, grad_accum=2, steps=120, warmup=12, lr=2e-3, min_lr=2e-4,
        eval_every=20, eval_batches=4, log_every=5, ckpt_every=60, sample_tokens=80,
        eval_documents=6,
    ),
    "cpu": dict(
        data_config="wikitext-103-v1",
        steps=200,
        warmup=round(200 * REPORT_WARMUP / REPORT_STEPS),
        eval_every=20, eval_batches=8, log_every=5, ckpt_every=50, sample_tokens=200,
    ),
    "report": dict(),
}


# The equal-compute tokenizer experiment (notebook 04): one transformer body for every
# tokenizer; each sequence holds ``bytes_per_sequence`` bytes of text, so every model
# trains on the same bytes in the same number of steps (block_size = bytes × tokens/byte).
EXPERIMENTS: dict[str, dict] = {
    "smoke": dict(
        body=dict(n_layer=2, n_head=4, n_embd=64, n_ff=256),
        bytes_per_sequence=256, batch_size=8, grad_accum=1, steps=40, lr=2e-3,
        eval_documents=4,
    ),
    "cpu": dict(
        body=dict(n_layer=4, n_head=4, n_embd=256, n_ff=1024),
        bytes_per_sequence=512, batch_size=8, grad_accum=2, steps=300, lr=1e-3,
        eval_documents=None,
    ),
    "report": dict(
        body=dict(n_layer=8, n_head=8, n_embd=512, n_ff=2048),
        bytes_per_sequence=2048, batch_size=8, grad_accum=4, steps=6350, lr=6e-4,
        eval_documents=None,
    ),
}


def profile_names() -> tuple[str, ...]:
    return tuple(PROFILES)


def get_profile(name: str, **overrides) -> TrainConfig:
    """The profile ``name`` with ``overrides`` applied, validated."""
    if name not in PROFILES:
        raise ConfigError("profile", name, "one of " + ", ".join(PROFILES))
    known = {f.name for f in fields(TrainConfig)}
    for key in overrides:
        if key not in known:
            raise ConfigError("override", key, "a TrainConfig field: " + ", ".join(sorted(known)))
    cfg = dataclasses.replace(TrainConfig(**PROFILES[name]), **overrides)
    return cfg.validate()
