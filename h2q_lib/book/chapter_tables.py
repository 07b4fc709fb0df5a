"""Tables and figures for the book's data and training chapters, read from a run folder.

The notebooks call these and display the result; the run folder (``runs.py``) is what they
read, so a setting given to training reaches every later chapter. Anything a test could check
lives here, with a test.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import platform
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from h2q_lib.claims.completion_report import REPORT, ReportClaims
from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import DataUnavailableError
from h2q_lib.core.provenance import git_revision, library_fingerprint, package_versions
from h2q_lib.data.wikitext import (
    CONFIGS,
    Split,
    corpus_stats,
    load_split,
    report_char_tokens,
    report_text,
)
from h2q_lib.model.gpt import count_parameters, vocab_size_for_parameters
from h2q_lib.training.hardware import choose_precision, machine_description, pick_device
from h2q_lib.training.profiles import TrainConfig

# --- notebooks ----------------------------------------------------------------------------


def setup_notebook() -> None:
    """The book's display settings: 4-decimal floats, wide text columns, quiet warnings."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="IProgress not found")
    pd.options.display.float_format = "{:,.4f}".format
    pd.options.display.max_colwidth = 160


def glue_figure(key: str, fig) -> None:
    """``myst_nb.glue`` a figure for a ``glue:figure`` directive (caption, alt text) and close
    it, so that the notebook does not show it a second time without them."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(key, fig, display=False)
    plt.close(fig)


def glue_values(values: dict) -> None:
    """``myst_nb.glue`` each value under its key, for the book's pages to cite."""
    from myst_nb import glue

    for key, value in values.items():
        glue(key, value, display=False)


# --- provenance and the run folder ---------------------------------------------------------


def provenance(parameters: dict) -> pd.DataFrame:
    """What produced a page: its parameters, packages, the machine and its precision rule."""
    rows = [("parameter: " + k, repr(v)) for k, v in parameters.items()]
    rows += list(package_versions().items())
    rows.append(("python", platform.python_version()))
    machine = machine_description()
    rows.append(("machine", f"{machine['processor']}, {machine['cpu_cores']} CPU cores, "
                            f"torch threads {machine['torch_threads']}"))
    rows.append(("CPU capability", machine["cpu_capability"]))
    rows.append(("devices available", ", ".join(machine["devices_available"])))
    device = pick_device("auto")
    choice = choose_precision(device)
    rows.append((f"precision rule on {device}", f"{choice.precision}: {choice.reason}"))
    rows.append(("git revision", git_revision()))
    rows.append(("library fingerprint", library_fingerprint()))
    return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")


def load_run_if_present(run_dir: str | os.PathLike) -> dict | None:
    """``load_run``, or None when ``run_dir`` holds no run."""
    return load_run(run_dir) if (Path(run_dir) / "config.json").is_file() else None


def load_run(run_dir: str | os.PathLike) -> dict:
    """A run folder's small outputs: recipe, summary, log, samples and evaluation."""
    run_dir = Path(run_dir)
    config = runs.read_json(run_dir / "config.json")
    if config is None:
        raise runs.RunFolderError(f"{runs.shown(run_dir)!r} has no readable config.json: "
                                  "train the run first (notebook 02 or h2q train)")
    return {
        "config": config,
        "summary": runs.read_json(run_dir / "summary.json") or {},
        "log": runs.read_jsonl(run_dir / "log.jsonl"),
        "samples": runs.read_jsonl(run_dir / "samples.jsonl"),
        "evaluation": runs.read_json(run_dir / "evaluation.json") or {},
    }


# --- data ----------------------------------------------------------------------------------


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


def plot_tokens_per_word(per_unit: pd.DataFrame):
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

    ``restart`` first removes the run folder (``runs.restart_run_folder``: only a folder the
    project made). Returns one row a cache (built now or reused, tokens, dtype, source) and
    the peak Python memory while encoding, in MB: encoding goes chunk by chunk, so it stays
    bounded.
    """
    from h2q_lib.training.profiles import RuntimeConfig
    from h2q_lib.training.trainer import prepare_data

    if restart:
        runs.restart_run_folder(run_dir)
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


# --- the run against the report ------------------------------------------------------------


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


RESULT_KEYS = ("steps", "tokens_seen", "epochs", "final_train_loss", "final_val_loss",
               "best_val_loss", "best_perplexity", "parameters", "vocab_size", "train_tokens",
               "val_tokens", "train_source", "train_is_slice", "val_source")
SPEED_KEYS = ("device", "precision", "precision_reason", "elapsed_s", "mean_tokens_per_s",
              "peak_rss_GB")


def training_summary(summary: dict) -> pd.Series:
    """The run's results (deterministic for a machine's kernels)."""
    return pd.Series({k: summary.get(k) for k in RESULT_KEYS}, name="this run")


def training_speed(summary: dict) -> pd.Series:
    """Where, in what precision (and why) and how fast the run trained."""
    return pd.Series({k: summary.get(k) for k in SPEED_KEYS}, name="this run")


def sessions_table(summary: dict) -> pd.DataFrame:
    """Each process that trained part of the run: steps, device, precision, git revision."""
    rows = summary.get("sessions", [])
    columns = ["from_step", "to_step", "device", "precision", "reason", "git_revision"]
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


def report_progress_table(claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The report's progress table with the tokens processed at each step added."""
    per_step = claims.tokens_per_step()
    return pd.DataFrame(
        [{"step": r.step, "tokens": r.step * per_step, "loss": r.loss,
          "perplexity": r.perplexity, "tok/s": r.tokens_per_s, "progress %": r.progress_pct}
         for r in claims.progress]
    ).set_index("step")


def progress_table(log: list[dict], schedule_steps: int) -> pd.DataFrame:
    """The run's evaluation rows in the report's columns (Loss, Perplexity, tok/s, Progress).

    Loss is the training loss of that step and Perplexity exp(validation loss), as the
    report pairs them; Progress is the step's share of the schedule.
    """
    rows = [{"step": r["step"], "tokens": r["tokens_seen"], "loss": r["train_loss"],
             "val loss": r["val_loss"], "perplexity": r["perplexity"],
             "tok/s": r["tokens_per_s"], "progress %": 100.0 * r["step"] / schedule_steps}
            for r in log if r.get("val_loss") is not None]
    return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()


def beside_report(log: list[dict], claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The run at each report row it reached at the report's tokens per step, each against
    the quantity the row is (``report_rows``): an evaluation row against the run's validation
    loss, a training-log row against the run's training loss read three ways. Differences
    are ours − report.
    """
    from h2q_lib.analysis.report_rows import (
        EVALUATION,
        RUNNING_MEAN,
        STEP_LOSS,
        WINDOW_MEAN,
        row_kind,
        training_readings,
    )

    by_step = {r["step"]: r for r in log}
    rows = []
    for row in claims.progress:
        ours = by_step.get(row.step)
        if ours is None or ours["tokens_seen"] != row.step * claims.tokens_per_step():
            continue
        kind = row_kind(row)
        entry = {"step": row.step, "kind of row": kind, "report loss": row.loss,
                 "our validation loss": None, "our training loss: that step": None,
                 "our training loss: last 10 steps": None,
                 "our training loss: since step 1": None, "ours − report": None,
                 "relative": None}
        if kind == EVALUATION:
            if ours.get("val_loss") is None:
                continue
            diff = ours["val_loss"] - row.loss
            entry.update({"our validation loss": ours["val_loss"], "ours − report": diff,
                          "relative": diff / row.loss})
        else:
            readings = training_readings(log, row.step) or {
                STEP_LOSS: ours.get("train_loss"), WINDOW_MEAN: ours.get("train_loss_avg"),
                RUNNING_MEAN: None}
            entry.update({"our training loss: that step": readings[STEP_LOSS],
                          "our training loss: last 10 steps": readings[WINDOW_MEAN],
                          "our training loss: since step 1": readings[RUNNING_MEAN]})
        rows.append(entry)
    return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()


def _training_values(row: pd.Series) -> list[tuple[str, float]]:
    names = {"our training loss: that step": "that step",
             "our training loss: last 10 steps": "the last 10 steps",
             "our training loss: since step 1": "since step 1"}
    return [(label, float(row[col])) for col, label in names.items()
            if row.get(col) is not None and not pd.isna(row[col])]


def beside_reading(beside: pd.DataFrame) -> str:
    """Markdown: at each shared report row, ours against the report's (ours − report); a
    training-log row with every reading of our training loss and their range."""
    if beside.empty:
        return ("This run is not at the report's tokens per step, so none of its steps is one "
                "of the report's table.")
    parts = []
    for step, row in beside.iterrows():
        if row["kind of row"] == "evaluation":
            parts.append(f"step {step:,} (an evaluation row): our validation loss "
                         f"{row['our validation loss']:.4f} against the report's "
                         f"{row['report loss']:.4f}, ours − report "
                         f"{row['ours − report']:+.4f} ({row['relative']:+.1%})")
        else:
            values = _training_values(row)
            diffs = [v - row["report loss"] for _, v in values]
            read = ", ".join(f"{v:.4f} ({label})" for label, v in values)
            parts.append(f"step {step:,} (a training-log row, no Perplexity): our training "
                         f"loss reads {read} against the report's {row['report loss']:.4f}, "
                         f"ours − report from {min(diffs):+.3f} to {max(diffs):+.3f} nats "
                         "depending on which the report's logger printed")
    return "**Reading.** " + "; ".join(parts) + "."


def beside_compact(beside: pd.DataFrame) -> pd.DataFrame:
    """``beside_report`` in four short columns for a narrow page (the intro on a phone): the
    row's kind, the report's Loss, ours (the validation loss, or the range of the training
    readings) and ours − report."""
    rows = []
    for step, row in beside.iterrows():
        if row["kind of row"] == "evaluation":
            ours = f"{row['our validation loss']:.3f} (validation)"
            diff = f"{row['ours − report']:+.3f}"
        else:
            values = [v for _, v in _training_values(row)]
            ours = f"{min(values):.3f}–{max(values):.3f} (training)"
            low, high = min(values) - row["report loss"], max(values) - row["report loss"]
            diff = f"{low:+.3f} to {high:+.3f}"
        rows.append({"step": step, "row": row["kind of row"], "report": row["report loss"],
                     "ours": ours, "ours − report": diff})
    return pd.DataFrame(rows)


def beside_values(beside: pd.DataFrame) -> dict[str, float]:
    """``beside_report``'s numbers for the book's pages to cite: at each evaluation row
    ``at<step>_report``, ``at<step>_ours`` (validation), ``at<step>_diff`` (ours − report);
    ``beside_last_step`` (0 when the run reached none of the report's steps)."""
    out: dict[str, float] = {"beside_last_step": int(beside.index.max()) if len(beside) else 0}
    for step, row in beside.iterrows():
        if row["kind of row"] != "evaluation":
            continue
        out[f"at{step}_report"] = float(row["report loss"])
        out[f"at{step}_ours"] = float(row["our validation loss"])
        out[f"at{step}_diff"] = float(row["ours − report"])
    return out


def plot_training_curves(log: list[dict], claims: ReportClaims = REPORT):
    """Both runs' losses against tokens processed, on one plot (log tokens)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    evals = [r for r in log if r.get("val_loss") is not None]
    ax.plot([r["tokens_seen"] for r in log], [r["train_loss"] for r in log],
            label="this run: training loss", color="tab:blue", alpha=0.5)
    ax.plot([r["tokens_seen"] for r in evals], [r["val_loss"] for r in evals], "o-",
            label="this run: validation loss", color="tab:blue", ms=4)
    rep = report_progress_table(claims)
    ax.plot(rep["tokens"], rep["loss"], "s", color="tab:red",
            label="report: table rows (measured points only)")
    ax.set_xscale("log")
    ax.set_xlabel("tokens processed (log scale)", fontsize=11)
    ax.set_ylabel("loss (nats per character)", fontsize=11)
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def checkpoint_files(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Checkpoint and weights files with their sizes (MB = 10^6 bytes, as the report)."""
    run_dir = Path(run_dir)
    files = sorted((run_dir / "checkpoints").glob("*.pt")) + sorted(run_dir.glob("*.safetensors"))
    rows = [{"file": str(p.relative_to(run_dir)), "MB": p.stat().st_size / 1e6} for p in files]
    return pd.DataFrame(rows, columns=["file", "MB"]).set_index("file")


def checkpoint_sizes(files: pd.DataFrame) -> dict[str, float | None]:
    """MB of the newest step checkpoint and of the final weights (None where absent)."""
    steps = files[files.index.str.startswith("checkpoints/step")]
    final = files[files.index == "final_model.safetensors"]
    return {"step_checkpoint_MB": float(steps["MB"].iloc[-1]) if len(steps) else None,
            "final_weights_MB": float(final["MB"].iloc[0]) if len(final) else None}


def samples_table(samples: list[dict]) -> pd.DataFrame:
    """Generated samples by step and prompt."""
    rows = [{"step": s["step"], "prompt": s["prompt"], "sample": s["text"]} for s in samples]
    return pd.DataFrame(rows, columns=["step", "prompt", "sample"]).set_index(["step", "prompt"])


def _uncut(text: str) -> str:
    """The report's sample with its trailing "..." said in words (the report cut it there)."""
    stripped = text.rstrip()
    for tail in ("...", "…"):
        if stripped.endswith(tail):
            return stripped[: -len(tail)].rstrip() + " [the report's sample stops here]"
    return text


def samples_beside_report(samples: list[dict], claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The run's samples at its last step beside the report's samples, by prompt."""
    last = max((s["step"] for s in samples), default=None)
    rows = [{"source": f"report, step {r.step}", "prompt": r.prompt,
             "sample": _uncut(r.output)} for r in claims.generated_samples]
    rows += [{"source": f"this run, step {s['step']}", "prompt": s["prompt"], "sample": s["text"]}
             for s in samples if s["step"] == last]
    return pd.DataFrame(rows, columns=["source", "prompt", "sample"]).set_index(
        ["prompt", "source"]).sort_index(level=0, sort_remaining=False)


# --- tables for readers ----------------------------------------------------------------------

MISSING = "—"
VERDICT_COLOURS = {"consistent": "#d4edda", "reproduced": "#d4edda",
                   "inconsistent": "#f8d7da", "not reproduced": "#f8d7da",
                   "wrong as stated": "#f8d7da",
                   "not checkable here": "#e2e3e5", "not reached": "#e2e3e5"}


def significant(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits, thousands separated, never in e-notation.

    A measured value never prints as a whole number: from 10^(digits-1) up, where ``digits``
    significant digits leave no decimals, it keeps one (``5,667,420.4``, not ``5,667,420``).
    A reader then sees a measurement, not a count, and the regression check compares it
    within its tolerance instead of digit for digit (another CPU's kernels move the last
    digits of a perplexity in the millions).
    """
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    if abs(x) < 1:
        return f"{x:.{digits}g}"
    decimals = max(digits - 1 - math.floor(math.log10(abs(x))), 1 if not x.is_integer() else 0)
    return f"{x:,.{decimals}f}"


def format_value(value, name: str = "") -> str:
    """One cell as a reader reads it; ``name`` is its column (or row) label.

    Missing (None, NaN) → "—"; booleans → yes/no; integers (and whole floats) with thousands
    separators; a label with "loss" → 4 decimals; "%" in the label → value already in percent,
    1 decimal; "share" or "fraction" → a fraction shown as a percentage; "(×)" → a ratio, 2
    decimals and ×; "tokens/s" → whole tokens; other floats → 4 significant digits.
    """
    label = str(name).lower()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return MISSING
        if "share" in label or "fraction" in label or label == "relative":
            return f"{value:.1%}"
        if "%" in label:
            return f"{value:.1f}%"
        if "(×)" in label:
            return f"{value:.2f}×"
        if "tokens/s" in label:
            return f"{value:,.0f}"
        if "loss" in label:
            return f"{value:.4f}"
        if value.is_integer():
            return f"{value:,.0f}"
        return significant(value)
    text = str(value)
    return MISSING if text in ("", "nan", "None", "NaN") else text


def formatted(df: pd.DataFrame, by: str = "column", formats: dict | None = None) -> pd.DataFrame:
    """``df`` as strings by ``format_value``; labels of columns (``by="column"``) or of rows
    (``by="row"``, for a table whose rows are quantities) choose each cell's format.
    ``formats`` maps a label to a format string or a function, overriding the rule."""
    formats = formats or {}
    out = pd.DataFrame(index=df.index, columns=df.columns, dtype=object)
    for r, row_label in enumerate(df.index):
        for c, col_label in enumerate(df.columns):
            label = col_label if by == "column" else row_label
            value = df.iat[r, c]
            fmt = formats.get(label)
            if fmt is not None and value is not None and not (
                    isinstance(value, float) and math.isnan(value)):
                out.iat[r, c] = fmt(value) if callable(fmt) else fmt.format(value)
            else:
                out.iat[r, c] = format_value(value, label)
    out.columns = [_label(c) for c in df.columns]
    out.index = df.index.map(_label) if df.index.nlevels == 1 else df.index
    out.index.names = [_label(n) if n is not None else None for n in df.index.names]
    return out


def _label(label):
    """A header as a reader reads it: ``tokens_per_s`` → ``tokens per s``."""
    return label.replace("_", " ") if isinstance(label, str) else label


class Table:
    """A table as the book shows it: formatted cells, no index column unless it is data,
    an optional caption, coloured verdicts, long text wrapped in the text column.

    ``_repr_html_`` is the page's table (a pandas Styler with a fixed id, so executed
    notebooks are reproducible); ``repr`` the same cells as text (what nbval compares too).
    """

    def __init__(self, df: pd.DataFrame, index: bool = False, by: str = "column",
                 formats: dict | None = None, caption: str | None = None,
                 verdict: str | None = None, wide: tuple[str, ...] = (),
                 empty: str = "Nothing to list."):
        self.data = df
        self.cells = formatted(df, by, formats)
        self.index, self.caption, self.verdict, self.wide = index, caption, verdict, wide
        self.empty = empty  # said instead of a table without rows

    def __repr__(self) -> str:
        if self.data.empty:
            return self.empty
        text = self.cells.to_string(index=self.index)
        return f"{self.caption}\n{text}" if self.caption else text

    def _repr_html_(self) -> str:
        if self.data.empty:  # a header with no rows says nothing: say why instead
            return f'<p class="h2q-empty"><em>{html.escape(self.empty)}</em></p>'
        labels = repr((list(self.cells.columns), list(self.cells.index)))
        styler = self.cells.style.set_uuid(  # from the labels only: numbers vary by machine
            "h2q" + hashlib.sha1(labels.encode()).hexdigest()[:8])
        # cells are text: a marker such as <bos> is shown, not read as a tag
        styler = styler.format(escape="html").format_index(escape="html", axis=0) \
            .format_index(escape="html", axis=1)
        if not self.index:
            styler = styler.hide(axis="index")
        if self.caption:
            styler = styler.set_caption(self.caption)
        if self.verdict in self.cells.columns:
            styler = styler.map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, 'none')}; "
                                          "font-weight: 600", subset=[self.verdict])
        wide = [c for c in self.wide if c in self.cells.columns]
        if wide:
            styler = styler.set_properties(subset=wide, **{"min-width": "16em"})
        styler = styler.set_table_attributes('class="dataframe h2q-table" style="font-size: 0.9em"')
        return styler.to_html(exclude_styles=False)


def table(df: pd.DataFrame | pd.Series, **kwargs) -> Table:
    """``Table`` of a DataFrame, or of a Series as a two-column quantity/value table."""
    if isinstance(df, pd.Series):
        name = df.name or "value"
        df = df.to_frame(name=name)
        kwargs.setdefault("by", "row")
        kwargs.setdefault("index", True)
    return Table(df, **kwargs)


def unstated_settings(cfg: TrainConfig | dict | None = None) -> pd.DataFrame:
    """Every setting the recipe needs that the report does not state, and what this
    reproduction assumed (read from the recipe, ``cfg``: the profile's defaults)."""
    import inspect
    import re

    from h2q_lib.training.trainer import build_optimizer

    betas = re.search(r"betas=(\([^)]*\))", inspect.getsource(build_optimizer)).group(1)
    cfg = TrainConfig.from_dict(cfg) if isinstance(cfg, dict) else cfg or TrainConfig()
    rows = [
        ("tokenizer", 'a "simple tokenizer", vocabulary "50,000"',
         f"{cfg.tokenizer}: one token a character, the vocabulary solved from the parameter "
         "count (the audit)"),
        ("text preprocessing", "not stated",
         "drop empty lines and headings, strip, join with newlines, <bos>…<eos>: the one "
         "reading that gives the report's validation token count exactly"),
        ("learning-rate floor of the cosine", "not stated", f"{cfg.min_lr:g} (lr / 10)"),
        ("weight decay", "not stated", f"{cfg.weight_decay:g}, matrices only"),
        ("AdamW betas", "not stated", f"{betas} (GPT-2's)"),
        ("gradient clipping", "not stated", f"{cfg.grad_clip:g}"),
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
