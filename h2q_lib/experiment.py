"""The equal-compute tokenizer experiment: one body, three tokenizers, the same bytes.

Each tokenizer's model has the same transformer body (``ExperimentConfig``) and trains for the
same steps on sequences of the same number of *bytes* of the same training text:
``block_size = round(bytes_per_sequence × tokens_per_byte)`` with tokens per byte measured on
that text. So every model sees the same training bytes; FLOPs differ (a 50k vocabulary's
embedding and head cost more than a 127-entry one) and are reported. All are then scored on
the same test articles, in tokens, bits per byte and words.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from . import runs
from .checkpoint import load_model
from .data import load_split, report_documents, report_text
from .errors import ConfigError
from .evaluate import evaluate_documents
from .model import count_parameters, flops_per_token
from .profiles import ExperimentConfig, RuntimeConfig, TrainConfig, get_profile_spec
from .token_cache import cached_tokens
from .tokenizers import TOKENIZER_NAMES, build_tokenizer
from .train import train

EXPERIMENT_TOKENIZERS = ("char", "word50k", "gpt2")


def experiment_config(spec: ExperimentConfig | dict | str) -> ExperimentConfig:
    """An ``ExperimentConfig`` from itself, a profile's name, or its fields as a mapping (a
    notebook parameter); unknown or bad fields are one ``ConfigError``."""
    if isinstance(spec, ExperimentConfig):
        return spec
    if isinstance(spec, str):
        return get_profile_spec(spec).experiment
    if not isinstance(spec, dict):
        raise ConfigError("experiment", spec, "a profile name, an ExperimentConfig or a "
                          "mapping of its fields")
    try:
        return ExperimentConfig(**spec)
    except TypeError as e:
        raise ConfigError("experiment", sorted(spec), f"ExperimentConfig fields ({e})") from None


def experiment_recipes(spec: ExperimentConfig, data_dir: str | None, cache_dir: Path,
                       tokenizers: tuple[str, ...] = EXPERIMENT_TOKENIZERS) -> dict:
    """Each tokenizer's ``TrainConfig`` and its measured tokens per byte of the training text.

    The training text is encoded once per tokenizer, into ``cache_dir``, where training then
    finds it.
    """
    for name in tokenizers:
        if name not in TOKENIZER_NAMES:
            raise ConfigError("tokenizers", name, "names from " + ", ".join(TOKENIZER_NAMES))
    split = load_split("train", spec.data_config, data_dir)
    text = report_text(split.lines)
    out = {}
    for name in tokenizers:
        cache = cached_tokens(split, build_tokenizer(name, [text]), cache_dir)
        tpb = cache.meta["num_tokens"] / cache.meta["utf8_bytes"]
        block = max(8, round(spec.bytes_per_sequence * tpb))
        cfg = TrainConfig(
            tokenizer=name, data_config=spec.data_config, block_size=block,
            batch_size=spec.batch_size, grad_accum=spec.grad_accum, steps=spec.steps,
            warmup=max(1, spec.steps // 10), lr=spec.lr, min_lr=spec.lr / 10,
            eval_every=max(1, spec.steps // 5), ckpt_every=spec.steps, sample_tokens=0,
            **spec.body(),
        ).validate()
        out[name] = {"config": cfg, "tokens_per_byte": tpb}
    return out


def run_tokenizer_experiment(spec: ExperimentConfig | dict | str, out_dir: str | os.PathLike,
                             data_dir: str | None = None, restart: bool = False,
                             tokenizers: tuple[str, ...] = EXPERIMENT_TOKENIZERS,
                             split: str = "test", precision: str = "auto") -> pd.DataFrame:
    """Train (or resume) each tokenizer's model and score it on ``split``; one row each.

    ``precision`` is the runtime's for training and scoring (``auto``: the hardware rule).
    """
    spec = experiment_config(spec)
    out_dir = Path(out_dir)
    if restart:
        for name in tokenizers:
            runs.restart_run_folder(out_dir / name)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs.write_json(out_dir / "experiment.json", asdict(spec))
    recipes = experiment_recipes(spec, data_dir, out_dir / "token_cache", tokenizers)
    docs = report_documents(load_split(split, spec.data_config, data_dir).lines)
    docs = docs[: spec.eval_documents]
    runtime = RuntimeConfig(data_dir=data_dir, quiet=True, precision=precision).validate()
    rows = []
    for name, entry in recipes.items():
        cfg = entry["config"]
        summary = train(cfg, out_dir / name, runtime, cache_dir=out_dir / "token_cache")
        model, tok, _ = load_model(out_dir / name / "final_model.safetensors")
        result = evaluate_documents(model, tok, docs, context=cfg.block_size, batch_size=16,
                                    precision=precision)
        model_args = cfg.model_config(tok.vocab_size)
        m = result.metrics
        rows.append({
            "tokenizer": name,
            "vocab": tok.vocab_size,
            "context (tokens)": cfg.block_size,
            "tokens/byte (train)": entry["tokens_per_byte"],
            "parameters": count_parameters(model_args),
            "training bytes": cfg.steps * cfg.batch_size * cfg.grad_accum
            * spec.bytes_per_sequence,
            "training tokens": summary.get("tokens_seen"),
            "training PFLOP": flops_per_token(model_args) * cfg.steps * cfg.tokens_per_step
            / 1e15,
            "test tokens": result.tokens,
            "token perplexity": m["token_perplexity"],
            "bits per byte": m["bits_per_byte"],
            "word perplexity": m["word_perplexity"],
            "unk share": unk_share(tok, docs),
        })
    return pd.DataFrame(rows).set_index("tokenizer")


def unk_share(tok, docs: list[str]) -> float:
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


def experiment_values(table: pd.DataFrame) -> dict:
    """Token perplexity and bits per byte of each tokenizer, and the best one, by name."""
    out: dict = {"exp_best": str(table["bits per byte"].idxmin())}
    for name, row in table.iterrows():
        out[f"exp_{name}_tppl"] = float(row["token perplexity"])
        out[f"exp_{name}_bpb"] = float(row["bits per byte"])
    return out


def plot_experiment(table: pd.DataFrame):
    """Token perplexity (log) and bits per byte per tokenizer, side by side."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    colors = {"char": "tab:red", "word50k": "tab:green", "gpt2": "tab:blue"}
    c = [colors.get(n, "tab:gray") for n in table.index]
    ax1.bar(table.index, table["token perplexity"], color=c)
    ax1.set_yscale("log")
    ax1.set_ylabel("token perplexity (log scale)")
    ax1.set_title("per token: not comparable")
    ax2.bar(table.index, table["bits per byte"], color=c)
    ax2.set_ylabel("bits per byte")
    ax2.set_title("per byte: comparable")
    fig.tight_layout()
    return fig


def experiment_reading(table: pd.DataFrame) -> str:
    """Markdown: what the experiment's table shows, worded from the table itself."""
    bpb, tppl = table["bits per byte"], table["token perplexity"]
    best, worst = bpb.idxmin(), bpb.idxmax()
    lowest_tppl = tppl.idxmin()
    text = (
        f"**What the experiment shows.** Token perplexity spans a factor of "
        f"{tppl.max() / tppl.min():,.0f} across the {len(table)} tokenizers although the models "
        f"share one body and the same training bytes; bits per byte, the unit that compares "
        f"them, spans a factor of {bpb.max() / bpb.min():.1f} ({bpb.min():.2f}–{bpb.max():.2f}). "
        f"At this compute `{best}` has the lowest bits per byte and `{worst}` the highest. "
        f"`{lowest_tppl}` has the lowest token perplexity")
    text += (", and also the lowest bits per byte." if lowest_tppl == best else
             f", yet `{best}` needs fewer bits per byte: a low token perplexity says nothing "
             "by itself.")
    if "word50k" in table.index and table.loc["word50k", "unk share"] > 0:
        text += (f" The `word50k` model maps {table.loc['word50k', 'unk share']:.1%} of test "
                 "tokens to `<unk>`, which makes its numbers look better than they are.")
    return text
