"""Tables and figures for the book, built from a run folder and the report's numbers.

The notebooks call these and show the result; anything a test could check lives here.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

from .report import REPORT, ReportClaims
from .train import read_jsonl


def provenance(parameters: dict) -> pd.DataFrame:
    """What produced a notebook's outputs: parameters, versions, device and git revision."""
    import torch

    from .train import available_devices

    rows = [("parameter: " + k, repr(v)) for k, v in parameters.items()]
    for pkg in ("h2q-repro", "torch", "numpy", "datasets", "tiktoken", "papermill",
                "jupyter-book", "nbval", "transformers"):
        try:
            rows.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            rows.append((pkg, "not installed"))
    rows.append(("python", platform.python_version()))
    rows.append(("machine", f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                            f"torch threads {torch.get_num_threads()}"))
    rows.append(("devices available", ", ".join(available_devices())))
    rows.append(("git revision", git_revision()))
    return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")


def git_revision() -> str:
    """``git describe`` of the checkout this package lives in (``+dirty`` if modified)."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        # "dirty" when the code that produces results differs from the commit; the executed
        # notebooks that a pipeline run is rewriting do not count. ":/" roots each path at
        # the top of the work tree, whatever folder git runs in.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--",
                                ":/h2q_lib", ":/notebooks", ":/pyproject.toml"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


def load_run(run_dir: str | os.PathLike) -> dict:
    """A run folder's small outputs: config, summary, log and samples."""
    run_dir = Path(run_dir)
    return {
        "config": json.loads((run_dir / "config.json").read_text()),
        "summary": json.loads((run_dir / "summary.json").read_text())
        if (run_dir / "summary.json").is_file() else {},
        "log": read_jsonl(run_dir / "log.jsonl"),
        "samples": read_jsonl(run_dir / "samples.jsonl"),
    }


def report_progress_table(claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The report's progress table with the tokens processed at each step added."""
    per_step = claims.tokens_per_step()
    return pd.DataFrame(
        [{"step": r.step, "tokens": r.step * per_step, "loss": r.loss,
          "perplexity": r.perplexity, "tok/s": r.tokens_per_s, "progress %": r.progress_pct}
         for r in claims.progress]
    ).set_index("step")


def progress_table(log: list[dict], total_steps: int) -> pd.DataFrame:
    """Our run's rows in the report's columns (Step, Loss, Perplexity, tok/s, Progress).

    One row per validation evaluation; Loss is the training loss of that step, Perplexity is
    exp(validation loss), as the report pairs them.
    """
    rows = [{"step": r["step"], "tokens": r["tokens_seen"], "loss": r["train_loss"],
             "val loss": r["val_loss"], "perplexity": r["perplexity"],
             "tok/s": r["tokens_per_s"], "progress %": 100.0 * r["step"] / total_steps}
            for r in log if r.get("val_loss") is not None]
    return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()


def report_loss_at_tokens(tokens: float, claims: ReportClaims = REPORT) -> float | None:
    """The report's training loss interpolated (in log-tokens) at ``tokens``; None outside."""
    pts = [(r.step * claims.tokens_per_step(), r.loss) for r in claims.progress]
    if not pts[0][0] <= tokens <= pts[-1][0]:
        return None
    for (t0, l0), (t1, l1) in zip(pts, pts[1:], strict=False):
        if t0 <= tokens <= t1:
            w = (math.log(tokens) - math.log(t0)) / (math.log(t1) - math.log(t0))
            return l0 + w * (l1 - l0)
    return None


def compare_at_same_tokens(log: list[dict], claims: ReportClaims = REPORT) -> pd.DataFrame:
    """Our validation loss beside the report's loss curve at the same number of tokens."""
    rows = []
    for r in log:
        if r.get("val_loss") is None:
            continue
        theirs = report_loss_at_tokens(r["tokens_seen"], claims)
        rows.append({"step": r["step"], "tokens": r["tokens_seen"],
                     "our train loss": r["train_loss"], "our val loss": r["val_loss"],
                     "report loss at same tokens": theirs})
    return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()


def checkpoint_files(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Checkpoint and weights files with their sizes (MB = 10^6 bytes, as the report)."""
    run_dir = Path(run_dir)
    files = sorted((run_dir / "checkpoints").glob("*.pt")) + sorted(run_dir.glob("*.safetensors"))
    rows = [{"file": str(p.relative_to(run_dir)), "MB": p.stat().st_size / 1e6} for p in files]
    return pd.DataFrame(rows, columns=["file", "MB"]).set_index("file")


def samples_table(samples: list[dict]) -> pd.DataFrame:
    """Generated samples by step and prompt."""
    rows = [{"step": s["step"], "prompt": s["prompt"], "sample": s["text"]} for s in samples]
    return pd.DataFrame(rows, columns=["step", "prompt", "sample"])


def plot_training_curves(log: list[dict], claims: ReportClaims = REPORT):
    """Loss and perplexity against tokens processed, with the report's points overlaid."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    evals = [r for r in log if r.get("val_loss") is not None]
    ax1.plot([r["tokens_seen"] for r in log], [r["train_loss"] for r in log],
             label="this run: train loss", color="tab:blue", alpha=0.6)
    ax1.plot([r["tokens_seen"] for r in evals], [r["val_loss"] for r in evals], "o-",
             label="this run: validation loss", color="tab:blue", ms=3)
    rep = report_progress_table(claims)
    ax1.plot(rep["tokens"], rep["loss"], "s--", color="tab:red", label="report: loss")
    ax1.set_xscale("log")
    ax1.set_xlabel("tokens processed")
    ax1.set_ylabel("loss (nats per token)")
    ax1.legend()
    ax2.plot([r["tokens_seen"] for r in evals], [r["perplexity"] for r in evals], "o-",
             color="tab:blue", label="this run: exp(validation loss)", ms=3)
    pp = rep.dropna(subset=["perplexity"])
    ax2.plot(pp["tokens"], pp["perplexity"], "s--", color="tab:red", label="report: perplexity")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("tokens processed")
    ax2.set_ylabel("perplexity per token")
    ax2.legend()
    fig.tight_layout()
    return fig


def reconstruction_table(valid_split, char_tokenizer, claims: ReportClaims = REPORT):
    """The char tokenizer's reconstruction against the report's two hard numbers."""
    from .data import report_text
    from .model import count_parameters, vocab_size_for_parameters
    from .tokenizers import encode_stream

    measured_tokens = len(encode_stream(char_tokenizer, report_text(valid_split.lines)))
    implied = vocab_size_for_parameters(claims.parameters, claims.model_config())
    params = count_parameters(claims.model_config(char_tokenizer.vocab_size))
    params_50k = count_parameters(claims.model_config(50_000))
    return pd.DataFrame([
        {"quantity": "vocabulary implied by the parameter count",
         "report": claims.vocab_size, "reconstructed": implied,
         "match": implied == char_tokenizer.vocab_size},
        {"quantity": f"parameters with the char vocabulary ({char_tokenizer.vocab_size})",
         "report": claims.parameters, "reconstructed": params,
         "match": params == claims.parameters},
        {"quantity": "parameters with vocabulary 50,000 (as the report lists)",
         "report": claims.parameters, "reconstructed": params_50k,
         "match": params_50k == claims.parameters},
        {"quantity": f"validation tokens ({valid_split.origin})",
         "report": claims.validation_tokens, "reconstructed": measured_tokens,
         "match": measured_tokens == claims.validation_tokens},
    ]).set_index("quantity")


def convert_report_claim(
    valid_split, test_split=None, claims: ReportClaims = REPORT
) -> pd.DataFrame:
    """The report's best validation loss (nats per character token) on every axis.

    nll = loss × tokens, with tokens = the report-preprocessed split's character tokens
    (<bos> + characters + <eos>); then bits/char = nll / (ln 2 · chars), bits/byte likewise,
    and word perplexity = exp(nll / words) for two word counts:
    - the words of the text the model scored (whitespace words + one per line), and
    - all WikiText words of the split (217,646 on validation), as GPT-2's protocol divides
      by; this counts heading words the report's model never scored, so it is lower.
    The test row assumes the same per-character loss on the test split.
    """
    from .data import report_lines, wikitext_words
    from .metrics import convert_token_loss
    rows = []
    for split in [s for s in (valid_split, test_split) if s is not None]:
        lines = report_lines(split.lines)
        text = "\n".join(lines)
        tokens = len(text) + 2  # <bos> ... <eos>, as the reconstruction
        scored_words = wikitext_words(lines)
        all_words = wikitext_words(split.lines)
        for label, words in (("words of the scored text", scored_words),
                             ("all WikiText words of the split", all_words)):
            m = convert_token_loss(claims.best_val_loss, tokens, len(text),
                                   len(text.encode("utf-8")), words)
            rows.append({"split": split.name, "word count used": label, "words": words,
                         "tokens": tokens, "characters": len(text),
                         "token perplexity": m["token_perplexity"],
                         "bits per character": m["bits_per_character"],
                         "bits per byte": m["bits_per_byte"],
                         "word perplexity": m["word_perplexity"]})
    return pd.DataFrame(rows)


def gpt2_published_on_axes(test_split) -> pd.DataFrame:
    """GPT-2's published WikiText-103 word perplexities put on bits per byte.

    nll = ln(ppl) × WikiText words of the test split; bits/byte = nll / (ln 2 · UTF-8 bytes of
    the raw test text). GPT-2 scored de-tokenized text, so this is an approximation.
    """
    import math as _m

    from .baselines import references
    from .data import wikitext_words

    words = wikitext_words(test_split.lines)
    n_bytes = len(test_split.text().encode("utf-8"))
    rows = []
    for ref in references():
        if ref.dataset == "WikiText-103" and ref.source_key == "radford2019language":
            nll = _m.log(ref.value) * words
            rows.append({"model": ref.model, "parameters": ref.params,
                         "word perplexity (published)": ref.value,
                         "bits per byte (converted)": nll / (_m.log(2) * n_bytes)})
    return pd.DataFrame(rows)
