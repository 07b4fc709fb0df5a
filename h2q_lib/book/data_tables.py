"""Tables and figures of the data chapter (``notebooks/01_data_prep.ipynb``): the training
texts and their epochs, the splits' statistics per tokenizer, the char tokenizer's
reconstruction of the report's numbers, and the run's token caches."""

from __future__ import annotations

import os
import tracemalloc
from typing import TYPE_CHECKING

import pandas as pd

from h2q_lib.claims.completion_report import REPORT, ReportClaims
from h2q_lib.core import run_cleanup
from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import DataUnavailableError
from h2q_lib.data.wikitext import (
    CONFIGS,
    Split,
    corpus_stats,
    load_split,
    report_char_tokens,
    report_text,
)
from h2q_lib.model.gpt import count_parameters, vocab_size_for_parameters
from h2q_lib.training.profiles import TrainConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def training_texts_table(cfg: TrainConfig, data_dir: str | None = None) -> pd.DataFrame:
    """Every training text available here, and how many epochs ``cfg``'s steps make of it.

    epochs = steps × tokens per step / character tokens of the report-preprocessed text.
    Also the share of its words that read ``<unk>`` (the tokenized configurations).
    """
    rows = []
    for config in CONFIGS:
        try:
            split = load_split("train", config, data_dir, source="local")
        except DataUnavailableError:
            continue
        words = [w for line in split.lines for w in line.split()]
        tokens = report_char_tokens(split.lines)
        rows.append({"training text": split.origin, "complete": not split.is_slice,
                     "characters": tokens - 2, "char tokens": tokens,
                     "<unk> share of words": sum(w == "<unk>" for w in words) / max(len(words), 1),
                     "epochs in this run": cfg.steps * cfg.tokens_per_step / tokens,
                     "used by this run": config == cfg.train_data})
    return pd.DataFrame(rows).set_index("training text")


def corpus_table(splits: list[Split], tokenizers: list) -> pd.DataFrame:
    """``data.corpus_stats`` of each split (with each tokenizer's counts), one column each."""
    rows = [corpus_stats(s, tokenizers) for s in splits]
    table = pd.DataFrame(rows)
    table.index = [f"{r['config']} / {r['split']}" for r in rows]
    return table.T


def tokens_per_unit(stats: pd.DataFrame, column: str, tokenizers: list) -> pd.DataFrame:
    """Tokens per word and per byte of one split (a column of ``corpus_table``)."""
    names = [t.name for t in tokenizers]
    return pd.DataFrame({
        "tokens per word": [stats.loc[f"tokens_per_word_{n}", column] for n in names],
        "tokens per byte": [stats.loc[f"tokens_per_byte_{n}", column] for n in names],
    }, index=pd.Index(names, name="tokenizer")).astype(float)


def plot_tokens_per_word(per_unit: pd.DataFrame) -> Figure:
    """Bar chart of tokens per word, bars from zero, values printed on the bars."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    values = per_unit["tokens per word"]
    ax.bar(values.index, values, color=["tab:red", "tab:green", "tab:blue"][: len(values)])
    ax.set_ylabel("tokens per word (validation)", fontsize=11)
    ax.set_ylim(0, values.max() * 1.2)
    for i, x in enumerate(values):
        ax.text(i, x, f"{x:.2f}", ha="center", va="bottom", fontsize=11)
    fig.tight_layout()
    return fig


def reconstruction_table(valid_split: Split, char_tokenizer,
                         claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The char tokenizer's reconstruction against the report's two hard numbers."""
    from h2q_lib.data.tokenizers import encode_stream

    measured_tokens = len(encode_stream(char_tokenizer, report_text(valid_split.lines)))
    implied = vocab_size_for_parameters(claims.parameters, claims.model_config())
    params = count_parameters(claims.model_config(char_tokenizer.vocab_size))
    params_stated_vocab = count_parameters(claims.model_config())
    return pd.DataFrame([
        {"quantity": "vocabulary implied by the parameter count",
         "report": claims.vocab_size, "reconstructed": implied,
         "match": implied == char_tokenizer.vocab_size},
        {"quantity": f"parameters with the char vocabulary ({char_tokenizer.vocab_size})",
         "report": claims.parameters, "reconstructed": params,
         "match": params == claims.parameters},
        {"quantity": f"parameters with vocabulary {claims.vocab_size:,} (as the report lists)",
         "report": claims.parameters, "reconstructed": params_stated_vocab,
         "match": params_stated_vocab == claims.parameters},
        {"quantity": f"validation tokens ({valid_split.origin})",
         "report": claims.validation_tokens, "reconstructed": measured_tokens,
         "match": measured_tokens == claims.validation_tokens},
    ]).set_index("quantity")


def prepare_run_data(cfg: TrainConfig, run_dir: str | os.PathLike, data_dir: str | None = None,
                     restart: bool = False) -> tuple[pd.DataFrame, float]:
    """Build (or reuse) the run folder's token caches exactly as training will read them.

    ``restart`` first removes the run folder (``run_cleanup.restart_run_folder``: only a folder the
    project made). Returns one row a cache (built now or reused, tokens, dtype, source) and
    the peak Python memory while encoding, in MB: encoding goes chunk by chunk, so it stays
    bounded.
    """
    from h2q_lib.training.batches import prepare_data
    from h2q_lib.training.profiles import RuntimeConfig

    if restart:
        run_cleanup.restart_run_folder(run_dir)
    folder = runs.prepare_run_folder(run_dir)
    tracemalloc.start()
    try:
        with runs.RunLock(folder):
            prepared = prepare_data(cfg, RuntimeConfig(data_dir=data_dir), folder)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    rows = [{"split": name, "text": cache.meta["source"], "tokenizer": cache.meta["tokenizer"],
             "tokens": cache.meta["num_tokens"], "dtype": cache.meta["dtype"],
             "built now": cache.rebuilt}
            for name, cache in (("train", prepared.train), ("validation", prepared.val))]
    return pd.DataFrame(rows).set_index("split"), peak_mb
