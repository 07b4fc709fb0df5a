"""The recipe against the report: the report's listed configuration beside a run's recipe
(``config_table``) and every setting the report leaves unstated with what this reproduction
assumed (``unstated_settings``)."""

from __future__ import annotations

import pandas as pd

from h2q_lib.claims.completion_report import REPORT, ReportClaims
from h2q_lib.training.profiles import TrainConfig


def config_table(run: dict, claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The report's listed configuration beside the run's recipe (as strings)."""
    cfg = TrainConfig.from_dict(run["config"])
    summary = run["summary"]
    ours = {
        "parameters": summary.get("parameters"), "vocabulary": summary.get("vocab_size"),
        "hidden dim": cfg.n_embd, "layers": cfg.n_layer, "heads": cfg.n_head, "FF dim": cfg.n_ff,
        "sequence length": cfg.block_size,
        "batch (accumulation)": f"{cfg.batch_size} ({cfg.grad_accum})",
        "learning rate": cfg.lr, "warmup steps": cfg.warmup,
        "schedule length (steps)": cfg.schedule_length, "steps trained": cfg.steps,
        "tokens per step": cfg.tokens_per_step, "tokenizer": cfg.tokenizer,
        "training text": summary.get("train_source", cfg.train_data),
        "validation text": summary.get("val_source", cfg.data_config),
    }
    theirs = {
        "parameters": claims.parameters, "vocabulary": f"{claims.vocab_size:,} (listed)",
        "hidden dim": claims.n_embd, "layers": claims.n_layer, "heads": claims.n_head,
        "FF dim": claims.n_ff, "sequence length": claims.seq_len,
        "batch (accumulation)": f"{claims.batch_size} ({claims.grad_accum})",
        "learning rate": claims.learning_rate, "warmup steps": claims.warmup_steps,
        "schedule length (steps)": claims.steps, "steps trained": claims.steps,
        "tokens per step": claims.tokens_per_step(), "tokenizer": '"simple"',
        "training text": f"{claims.dataset} (Hugging Face datasets)",
        "validation text": claims.dataset,
    }
    return pd.DataFrame({"report": theirs, "this run": ours})


def unstated_settings(cfg: TrainConfig | dict | None = None) -> pd.DataFrame:
    """Every setting the recipe needs that the report does not state, and what this
    reproduction assumed (read from the recipe, ``cfg``: the profile's defaults)."""
    cfg = TrainConfig.from_dict(cfg) if isinstance(cfg, dict) else cfg or TrainConfig()
    rows = [
        ("tokenizer", 'a "simple tokenizer", vocabulary "50,000"',
         f"{cfg.tokenizer}: one token a character, the vocabulary solved from the parameter "
         "count (the audit)"),
        ("text preprocessing", "not stated",
         "drop empty lines and headings, strip, join with newlines, <bos>…<eos>: the one "
         "reading that gives the report's validation token count exactly"),
        ("learning-rate floor of the cosine", "not stated", f"{cfg.min_lr:g} (lr / 10)"),
        ("weight decay", "not stated", f"{cfg.weight_decay:g}, "
         + ("matrices only" if cfg.decay_scope == "matrices" else "every parameter")),
        ("AdamW betas", "not stated", f"(0.9, {cfg.adam_beta2:g})"
         + (" (GPT-2's)" if cfg.adam_beta2 == 0.95 else "")),
        ("gradient clipping", "not stated", f"{cfg.grad_clip:g}" if cfg.grad_clip else "none"),
        ("initialisation", "not stated", "GPT-2's: N(0, 0.02), residual projections scaled"
         if cfg.init == "gpt2" else "PyTorch's defaults"),
        ("dropout", "not stated", f"{cfg.dropout:g}"),
        ("seed", "not stated", f"{cfg.seed}"),
        ("what the learning-rate scheduler counts", "not stated",
         f"{cfg.reading}: optimizer steps; the readings chapter also trains the schedule "
         "stepped once per micro-batch"),
        ("what the Loss column measures", "not stated: a Loss on every row, a Perplexity "
         "on rows 500-6,000 only",
         "rows with a Perplexity are evaluations (PPL = exp(Loss), the audit): a validation "
         f"loss, ours on {cfg.eval_batches} fixed batches every {cfg.eval_every} steps; rows "
         "100 and 6,350 are training-log lines: a training loss, read three ways"),
        ("mixed precision", '"automatic" on Apple MPS',
         "bf16 only where the CPU runs it faster than fp32, else fp32 (hardware rule)"),
        ("sampling", "not stated", f"temperature {cfg.temperature:g}, top-k {cfg.top_k}"),
        ("training text", "WikiText-103 train, 1 epoch",
         "the complete WikiText-2 training text (the same validation and test files as "
         "WikiText-103); see the data chapter"),
    ]
    return pd.DataFrame(rows, columns=["setting", "the report", "assumed here"])
