"""The equal-compute tokenizer experiment: one body, three tokenizers, the same bytes.

Each tokenizer's model has the same transformer body (``EXPERIMENTS[profile]["body"]``) and
trains for the same steps on sequences of the same number of *bytes* of the same training
text: ``block_size = round(bytes_per_sequence × tokens_per_byte)`` with tokens per byte
measured on that text. So every model sees the same training bytes; FLOPs differ (a 50k
vocabulary's embedding and head cost more than a 127-entry one) and are reported.
All are then scored on the same test articles, in tokens, bits per byte and words.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pandas as pd

from .checkpoint import load_model
from .data import load_split, report_documents, report_text
from .errors import ConfigError
from .evaluate import evaluate_documents
from .model import count_parameters, flops_per_token
from .profiles import EXPERIMENTS, PROFILES, get_profile
from .tokenizers import TOKENIZER_NAMES, build_tokenizer, encode_stream
from .train import train

EXPERIMENT_TOKENIZERS = ("char", "word50k", "gpt2")


def tokens_per_byte(tokenizer_name: str, train_text: str):
    """``(tokenizer, tokens per UTF-8 byte)`` of ``train_text`` under a fresh tokenizer."""
    tok = build_tokenizer(tokenizer_name, [train_text])
    return tok, len(encode_stream(tok, train_text)) / len(train_text.encode("utf-8"))


def experiment_configs(profile: str, data_dir: str | None = None,
                       tokenizers: tuple[str, ...] = EXPERIMENT_TOKENIZERS) -> dict:
    """The ``TrainConfig`` of each tokenizer's run, with its measured tokens per byte."""
    if profile not in EXPERIMENTS:
        raise ConfigError("profile", profile, "one of " + ", ".join(PROFILES))
    for name in tokenizers:
        if name not in TOKENIZER_NAMES:
            raise ConfigError("tokenizers", name, "names from " + ", ".join(TOKENIZER_NAMES))
    spec = EXPERIMENTS[profile]
    base = get_profile(profile, data_dir=data_dir)
    train_text = report_text(load_split("train", base.data_config, data_dir, base.source).lines)
    out = {}
    for name in tokenizers:
        _, tpb = tokens_per_byte(name, train_text)
        block = max(8, round(spec["bytes_per_sequence"] * tpb))
        cfg = dataclasses.replace(
            base, tokenizer=name, block_size=block, batch_size=spec["batch_size"],
            grad_accum=spec["grad_accum"], steps=spec["steps"],
            warmup=max(1, spec["steps"] // 10), lr=spec["lr"], min_lr=spec["lr"] / 10,
            eval_every=max(1, spec["steps"] // 5), ckpt_every=spec["steps"], sample_tokens=0,
            quiet=True, **spec["body"],
        ).validate()
        out[name] = {"config": cfg, "tokens_per_byte": tpb}
    return out


def run_tokenizer_experiment(profile: str, out_dir: str | os.PathLike,
                             data_dir: str | None = None, restart: bool = False,
                             tokenizers: tuple[str, ...] = EXPERIMENT_TOKENIZERS,
                             split: str = "test") -> pd.DataFrame:
    """Train (or resume) each tokenizer's model and score it on ``split``; one row each."""
    out_dir = Path(out_dir)
    if restart and out_dir.exists():
        shutil.rmtree(out_dir)
    spec = EXPERIMENTS[profile]
    configs = experiment_configs(profile, data_dir, tokenizers)
    first = next(iter(configs.values()))["config"]  # every run shares data_config and source
    docs = report_documents(load_split(split, first.data_config, data_dir, first.source).lines)
    rows = []
    for name, entry in configs.items():
        cfg = entry["config"]
        run_dir = out_dir / name
        summary = train(cfg, run_dir)
        model, tok, _ = load_model(run_dir / "final_model.safetensors")
        res = evaluate_documents(model, tok, docs, context=cfg.block_size, batch_size=16,
                                 max_documents=spec["eval_documents"])
        mcfg = cfg.model_config(tok.vocab_size)
        m = res.metrics
        rows.append({
            "tokenizer": name,
            "vocab": tok.vocab_size,
            "context (tokens)": cfg.block_size,
            "tokens/byte (train)": entry["tokens_per_byte"],
            "parameters": count_parameters(mcfg),
            "training bytes": round(cfg.steps * cfg.batch_size * cfg.grad_accum
                                    * spec["bytes_per_sequence"]),
            "training tokens": summary.get("tokens_seen"),
            "training PFLOP": flops_per_token(mcfg) * cfg.steps * cfg.tokens_per_step / 1e15,
            "test tokens": res.tokens,
            "token perplexity": m["token_perplexity"],
            "bits per byte": m["bits_per_byte"],
            "word perplexity": m["word_perplexity"],
            "unk share": _unk_share(tok, docs[: spec["eval_documents"]]),
        })
    return pd.DataFrame(rows).set_index("tokenizer")


def _unk_share(tok, docs: list[str]) -> float:
    """Fraction of test tokens that are ``<unk>`` (a free prediction that flatters the score)."""
    unk = getattr(tok, "unk_id", None)
    if unk is None:
        return 0.0
    total = hits = 0
    for d in docs:
        ids = tok.encode(d)
        total += len(ids)
        hits += int((ids == unk).sum())
    return hits / max(total, 1)
