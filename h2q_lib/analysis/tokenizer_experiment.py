"""The equal-bytes tokenizer experiment: one body, three tokenizers, the same training bytes.

Each tokenizer's model has the same transformer body (``ExperimentConfig``) and trains for the
same steps on sequences of the same number of *bytes* of the same training text:
``block_size = round(bytes_per_sequence × tokens_per_byte)`` with tokens per byte measured on
that text. So every model sees the same training bytes; FLOPs differ (a 50k vocabulary's
embedding and head cost more than a 127-entry one) and are reported. All are then scored on
the same test articles, in tokens, bits per byte and words.

The scored table is stored in the experiment folder (``results.json``) with the experiment's
settings; a finished experiment (every model's ``summary.json`` at its steps) with a stored
table for the same settings is read back, never retrained: the committed folder keeps no
weights.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from h2q_lib.core import run_cleanup
from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import ConfigError
from h2q_lib.data.token_cache import cached_tokens
from h2q_lib.data.tokenizers import TOKENIZER_NAMES, build_tokenizer
from h2q_lib.data.wikitext import load_split, report_documents, report_text
from h2q_lib.evaluation.documents import evaluate_documents
from h2q_lib.model.gpt import count_parameters, flops_per_token
from h2q_lib.training.checkpoint import load_model
from h2q_lib.training.profiles import ExperimentConfig, RuntimeConfig, TrainConfig, get_profile_spec
from h2q_lib.training.trainer import train

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
    stored = None if restart else stored_results(out_dir, spec, tokenizers, split)
    if stored is not None:
        return stored
    if restart:
        for name in tokenizers:
            run_cleanup.restart_run_folder(out_dir / name)
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
    runs.write_json(out_dir / RESULTS, {"experiment": asdict(spec), "split": split,
                                        "rows": rows})
    return pd.DataFrame(rows).set_index("tokenizer")


RESULTS = "results.json"


def stored_results(out_dir: Path, spec: ExperimentConfig, tokenizers: tuple[str, ...],
                   split: str) -> pd.DataFrame | None:
    """The stored table of a finished experiment with these settings, else None."""
    stored = runs.read_json(Path(out_dir) / RESULTS)
    if not stored or stored.get("experiment") != asdict(spec) or stored.get("split") != split:
        return None
    if [r.get("tokenizer") for r in stored.get("rows", [])] != list(tokenizers):
        return None
    for name in tokenizers:
        summary = runs.read_json(Path(out_dir) / name / "summary.json")
        if not summary or summary.get("steps") != spec.steps:
            return None
    return pd.DataFrame(stored["rows"]).set_index("tokenizer")


MAX_COMPARABLE_UNK = 0.001


def comparable(table: pd.DataFrame) -> pd.Series:
    """True for a tokenizer whose bits per byte compare with the others': at most 0.1% of its
    test tokens are ``<unk>`` (an ``<unk>`` is a free prediction of a whole word)."""
    return table["unk share"] <= MAX_COMPARABLE_UNK


def experiment_tables(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The experiment as two narrow tables: what each model spent, and how it scored."""
    spent = table[["vocab", "context (tokens)", "parameters", "training bytes",
                   "training tokens", "training PFLOP"]]
    scored = table[["token perplexity", "bits per byte", "word perplexity", "unk share"]].copy()
    scored["comparable"] = comparable(table)
    return spent.reset_index(), scored.reset_index()


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
    ok = table[comparable(table)]
    out: dict = {"exp_best": str((ok if len(ok) else table)["bits per byte"].idxmin()),
                 }
    if "training PFLOP" in table:
        out["exp_pflop_min"] = float(table["training PFLOP"].min())
        out["exp_pflop_max"] = float(table["training PFLOP"].max())
    if "word50k" in table.index:
        out["exp_word50k_vocab"] = int(table.loc["word50k"].get("vocab", 0))
        out["exp_word50k_unk"] = float(table.loc["word50k", "unk share"])
    for name, row in table.iterrows():
        out[f"exp_{name}_tppl"] = float(row["token perplexity"])
        out[f"exp_{name}_bpb"] = float(row["bits per byte"])
    return out


def plot_experiment(table: pd.DataFrame):
    """Token perplexity and bits per byte per tokenizer, side by side, bars from zero on
    linear axes; a model whose bits per byte do not compare (``<unk>``) is hatched."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    colors = {"char": "tab:red", "word50k": "tab:green", "gpt2": "tab:blue"}
    c = [colors.get(n, "tab:gray") for n in table.index]
    hatch = ["" if ok else "//" for ok in comparable(table)]
    for ax, column, title in ((ax1, "token perplexity", "per token: not comparable"),
                              (ax2, "bits per byte", "per byte: comparable")):
        bars = ax.bar(table.index, table[column], color=c, hatch=hatch, edgecolor="black")
        ax.bar_label(bars, labels=[f"{v:,.3g}" for v in table[column]], fontsize=11)
        ax.set_ylim(0, table[column].max() * 1.18)
        ax.set_ylabel(column, fontsize=12)
        ax.set_title(title, fontsize=12)
        ax.tick_params(labelsize=11)
    fig.tight_layout()
    return fig


def experiment_comparison(table: pd.DataFrame) -> dict:
    """What the experiment's table shows, as values for its reading: the spread of token
    perplexity (max / min) and of bits per byte, the training PFLOP range (None without that
    column), the best and worst bits per byte among the tokenizers that compare
    (``comparable``; all of them when none does), the lowest token perplexity, and each
    tokenizer that does not compare with its vocabulary (None without that column), ``<unk>``
    share and bits per byte."""
    bpb, tppl = table["bits per byte"], table["token perplexity"]
    ok = comparable(table)
    ranked = bpb[ok] if ok.any() else bpb
    pflop = table["training PFLOP"] if "training PFLOP" in table else None
    return {
        "tokenizers": len(table),
        "tppl_spread": tppl.max() / tppl.min(),
        "bpb_spread": bpb.max() / bpb.min(),
        "bpb_min": bpb.min(),
        "bpb_max": bpb.max(),
        "pflop_range": None if pflop is None else (pflop.min(), pflop.max()),
        "best": ranked.idxmin(),
        "worst": ranked.idxmax(),
        "lowest_tppl": tppl.idxmin(),
        "not_comparable": [
            {"name": name,
             "vocab": int(table.loc[name, "vocab"]) if "vocab" in table else None,
             "unk_share": table.loc[name, "unk share"],
             "bpb": bpb[name]}
            for name in table.index[~ok]],
    }
