"""The report's claim, this project's models and GPT-2, put on the same axes.

Every comparison divides one summed negative log-likelihood (nats) by the units of the same
text (``metrics``): a per-character perplexity and a per-word perplexity are different
quantities, and bits per byte is the axis on which a character model and a BPE model meet.
The chapter's sentences about these numbers are ``book.wording.evaluate``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from h2q_lib.claims.completion_report import REPORT, ReportClaims
from h2q_lib.claims.gpt2_baselines import references
from h2q_lib.data.wikitext import (
    Split,
    load_split,
    report_char_tokens,
    report_lines,
    wikitext_words,
)
from h2q_lib.evaluation.metrics import convert_token_loss, word_perplexity

PROTOCOL_LABELS = {
    "lm-eval": "lm-eval protocol (raw pages, de-tokenized, harness counts)",
    "report": "report protocol (the report's preprocessed text)",
}


REPORT_TEXT_CONFIG = "wikitext-103-raw-v1"  # the report's raw WikiText-103 text


def report_splits(data_dir: str | None = None) -> tuple[Split, Split]:
    """The report's validation and test text (raw WikiText-103, complete splits)."""
    return (load_split("validation", REPORT_TEXT_CONFIG, data_dir),
            load_split("test", REPORT_TEXT_CONFIG, data_dir))


def gpt2_small_published(claims: ReportClaims = REPORT) -> float:
    """GPT-2 small's WikiText-103 perplexity as the report's baseline table gives it."""
    return min(claims.baselines, key=lambda b: int(b.params_label.rstrip("M"))).wikitext103_ppl


def convert_report_claim(valid_split: Split, test_split: Split | None = None,
                         claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The report's best validation loss (nats per character token) on every axis.

    nll = loss × tokens, with tokens = ``report_char_tokens`` of the split (<bos> + characters
    + <eos>); then bits/char = nll / (ln 2 · chars), bits/byte likewise, and word perplexity
    = exp(nll / words) for two word counts: the words of the text the model scored
    (whitespace words + one per line) and all WikiText words of the split (217,646 on
    validation, GPT-2's divisor), which counts heading words the report's model never saw.
    The test row assumes the same per-character loss on the test split.
    """
    rows = []
    for split in [s for s in (valid_split, test_split) if s is not None]:
        lines = report_lines(split.lines)
        tokens = report_char_tokens(split.lines)
        chars = tokens - 2
        n_bytes = len("\n".join(lines).encode("utf-8"))
        for label, words in (("words of the scored text", wikitext_words(lines)),
                             ("all WikiText words of the split", wikitext_words(split.lines))):
            m = convert_token_loss(claims.best_val_loss, tokens, chars, n_bytes, words)
            rows.append({"split": split.name, "word count used": label, "words": words,
                         "tokens": tokens, "characters": chars,
                         "token perplexity": m["token_perplexity"],
                         "bits per character": m["bits_per_character"],
                         "bits per byte": m["bits_per_byte"],
                         "word perplexity": m["word_perplexity"]})
    return pd.DataFrame(rows)


def conversion_steps(valid_split: Split, claims: ReportClaims = REPORT) -> pd.DataFrame:
    """The report's 2.95, turned into GPT-2's units one computed step at a time."""
    loss = claims.best_val_loss
    tokens = report_char_tokens(valid_split.lines)
    words = wikitext_words(valid_split.lines)
    nll = loss * tokens
    small = gpt2_small_published(claims)
    rows = [
        ("1. validation loss (nats per character token)", loss, "the report"),
        ("2. perplexity per character = exp(loss)", math.exp(loss),
         f"the report's {claims.best_perplexity}"),
        ("3. bits per character = loss / ln 2", loss / math.log(2), "1 bit = ln 2 nats"),
        ("4. total nll on validation = loss × tokens (nats)", nll, f"tokens = {tokens:,}"),
        ("5. characters per WikiText word", (tokens - 2) / words, f"words = {words:,}"),
        ("6. word perplexity = exp(total nll / words)", word_perplexity(nll, words),
         "GPT-2's normalisation"),
        ("7. GPT-2 small, WikiText-103 (published)", small, "Radford et al. 2019, Table 3"),
    ]
    return pd.DataFrame(rows, columns=["step", "value", "note"]).set_index("step")


@dataclass(frozen=True)
class ConversionNumbers:
    """Step 6 of ``conversion_steps`` with both word counts of the validation split."""

    all_words: int  # every WikiText word of the split, headings included (GPT-2's divisor)
    scored_words: int  # the words of the text the report's model scored
    ppl_all: float  # word perplexity over ``all_words``
    ppl_scored: float  # word perplexity over ``scored_words``
    gpt2_small: float  # GPT-2 small's published WikiText-103 perplexity

    @property
    def worse(self) -> bool:
        """Whether the report's model is worse than GPT-2 small per word (the flattering
        count)."""
        return self.ppl_all > self.gpt2_small


def conversion_numbers(valid_split: Split, claims: ReportClaims = REPORT) -> ConversionNumbers:
    """The report's loss as word perplexity on ``valid_split`` with both word counts:
    nll = loss × ``report_char_tokens``, word perplexity = exp(nll / words)."""
    nll = claims.best_val_loss * report_char_tokens(valid_split.lines)
    all_words = wikitext_words(valid_split.lines)
    scored_words = wikitext_words(report_lines(valid_split.lines))
    return ConversionNumbers(all_words, scored_words, word_perplexity(nll, all_words),
                             word_perplexity(nll, scored_words), gpt2_small_published(claims))


def gpt2_published_on_axes(test_split: Split) -> pd.DataFrame:
    """GPT-2's published WikiText-103 word perplexities put on bits per byte.

    nll = ln(ppl) × WikiText words of the test split; bits/byte = nll / (ln 2 · UTF-8 bytes of
    the raw test text). GPT-2 scored de-tokenized text, so this is an approximation.
    """
    words = wikitext_words(test_split.lines)
    n_bytes = len(test_split.text().encode("utf-8"))
    rows = []
    for ref in references():
        if ref.dataset == "WikiText-103" and ref.source_key == "radford2019language":
            nll = math.log(ref.value) * words
            rows.append({"model": ref.model, "parameters": ref.params,
                         "word perplexity (published)": ref.value,
                         "bits per byte (converted)": nll / (math.log(2) * n_bytes)})
    return pd.DataFrame(rows)


def _entries(evaluation: dict):
    """``(protocol, split, entry)`` for each stored evaluation result."""
    for protocol, by_split in evaluation.get("protocols", evaluation).items():
        if not isinstance(by_split, dict):
            continue
        for split, entry in by_split.items():
            if isinstance(entry, dict) and "metrics" in entry.get("result", entry):
                yield protocol, split, entry.get("result", entry)


def evaluation_table(evaluation: dict, label: str = "this run") -> pd.DataFrame:
    """One row a (protocol, split) of a run's ``evaluation.json``: counts and metrics."""
    rows = []
    for protocol, split, result in _entries(evaluation):
        m = result["metrics"]
        rows.append({"model": label, "protocol": protocol, "split": split,
                     "documents": result["documents"], "tokens": result["tokens"],
                     "bits per character": m["bits_per_character"],
                     "bits per byte": m["bits_per_byte"],
                     "word perplexity": m["word_perplexity"],
                     "token perplexity": m["token_perplexity"]})
    return pd.DataFrame(rows)


def models_on_one_axis(claim: pd.DataFrame, ours: pd.DataFrame, published: pd.DataFrame,
                       measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """The report's converted claim, this run, and GPT-2 on bits per byte and word perplexity.

    Each row says which word count its word perplexity divides by.
    """
    parts = [
        pd.DataFrame({"model": "report (claimed, converted)", "split": claim["split"],
                      "bits per byte": claim["bits per byte"],
                      "word perplexity": claim["word perplexity"],
                      "word count": claim["word count used"]}),
        pd.DataFrame({"model": ours["model"] + ", " + ours["protocol"] + " protocol",
                      "split": ours["split"], "bits per byte": ours["bits per byte"],
                      "word perplexity": ours["word perplexity"],
                      "word count": "whitespace words of the pages (lm-eval)"}),
        pd.DataFrame({"model": published["model"] + " (published)", "split": "test",
                      "bits per byte": published["bits per byte (converted)"],
                      "word perplexity": published["word perplexity (published)"],
                      "word count": "all WikiText words"}),
    ]
    if measured is not None and len(measured):
        measured = measured[measured["status"] == "measured"]
        parts.append(pd.DataFrame({"model": measured["model"], "split": measured["split"],
                                   "bits per byte": measured["bits per byte"],
                                   "word perplexity": measured["word perplexity"],
                                   "word count": "whitespace words of the pages (lm-eval)"}))
    return pd.concat([p for p in parts if len(p)], ignore_index=True)


def plot_bits_per_byte(table: pd.DataFrame, split: str = "test"):
    """Horizontal bars of bits per byte on ``split`` (report red, this run blue, GPT-2 grey)."""
    import matplotlib.pyplot as plt

    rows = table[table["split"] == split].drop_duplicates("model")
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.45 * len(rows)))
    colors = ["tab:red" if m.startswith("report") else
              "tab:blue" if m.startswith("this run") else "tab:gray" for m in rows["model"]]
    bars = ax.barh(rows["model"], rows["bits per byte"], color=colors)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in rows["bits per byte"]], padding=3,
                 fontsize=11)
    ax.set_xlim(0, rows["bits per byte"].max() * 1.12)
    ax.tick_params(labelsize=11)
    ax.set_xlabel(f"bits per byte on the WikiText-103 {split} split (lower is better)",
                  fontsize=11)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class EvaluationNumbers:
    """The test split's bits per byte of the report's claim, GPT-2 and this run."""

    claim_bpb: float  # the report's claim, converted
    gpt2_bpb_worst: float  # the GPT-2 sizes' highest (GPT-2 small's)
    gpt2_bpb_best: float  # and lowest
    gpt2_small: float  # GPT-2 small's published word perplexity
    claim_wppl: float  # the claim per word, all WikiText words of the test split
    best_perplexity: float  # the report's own (per-character) perplexity
    ours_bpb: float | None  # this run on the report's test text (None: not scored)

    @property
    def ours_behind(self) -> bool:
        """Whether this run's bits per byte are above (worse than) the report's claim."""
        return self.ours_bpb is not None and self.ours_bpb > self.claim_bpb


def evaluation_numbers(claim: pd.DataFrame, ours: pd.DataFrame, published: pd.DataFrame,
                       claims: ReportClaims = REPORT) -> EvaluationNumbers:
    """The numbers behind the chapter's reading: ``claim`` (``convert_report_claim``),
    ``ours`` (``evaluation_table``) and ``published`` (``gpt2_published_on_axes``) on the
    test split."""
    claim_test = claim[claim["split"] == "test"]
    gpt2 = published["bits per byte (converted)"]
    test = ours[(ours["split"] == "test") & (ours["protocol"] == "report")]
    return EvaluationNumbers(
        claim_bpb=float(claim_test["bits per byte"].iloc[0]),
        gpt2_bpb_worst=gpt2.max(), gpt2_bpb_best=gpt2.min(),
        gpt2_small=gpt2_small_published(claims),
        claim_wppl=float(claim_test["word perplexity"].min()),
        best_perplexity=claims.best_perplexity,
        ours_bpb=float(test["bits per byte"].iloc[0]) if len(test) else None)


def measure_gpt2(names: list[str], data_dir: str | None = None,
                 max_documents: int | None = None) -> pd.DataFrame:
    """Each GPT-2 (hub name or local folder) scored with the lm-eval protocol on the test
    split, or a row saying why its weights could not be loaded."""
    from h2q_lib.evaluation.checkpoint_scores import evaluate_checkpoint
    from h2q_lib.model.gpt2 import WeightsUnavailableError

    rows = []
    for name in names:
        try:
            out = evaluate_checkpoint(name, splits=("test",), protocol="lm-eval",
                                      data_dir=data_dir, max_documents=max_documents)
        except WeightsUnavailableError as e:
            rows.append({"model": f"{name} (measured)", "split": "test", "status": str(e)})
            continue
        result = out["splits"]["test"]
        rows.append({"model": f"{name} (measured)", "split": "test", "status": "measured",
                     "bits per byte": result["metrics"]["bits_per_byte"],
                     "word perplexity": result["metrics"]["word_perplexity"]})
    return pd.DataFrame(rows, columns=["model", "split", "status", "bits per byte",
                                       "word perplexity"])


def precision_effect(run_dir, data_dir: str | None = None, pages: int = 4) -> pd.DataFrame:
    """The run's final weights on the first ``pages`` test pages (lm-eval protocol) in fp32 and
    in bf16: bits per byte of each and bf16's difference in percent of fp32.

    Says how much evaluating in bf16, where the precision rule picks it, moves the numbers.
    The measurement is stored in ``<run_dir>/precision_effect.json`` and read from there
    when the folder keeps no weights (a committed run folder).
    """
    from pathlib import Path

    from h2q_lib.core.run_folder import read_json, write_json
    from h2q_lib.data.wikitext import documents
    from h2q_lib.evaluation.documents import evaluate_documents
    from h2q_lib.training.checkpoint import load_model

    run_dir = Path(run_dir)
    stored_file = run_dir / "precision_effect.json"
    weights = run_dir / "final_model.safetensors"
    if not weights.is_file():
        stored = read_json(stored_file)
        if not isinstance(stored, dict) or stored.get("pages") != pages:
            raise FileNotFoundError(f"{run_dir} keeps no final weights and no stored "
                                    f"precision_effect.json for {pages} pages")
        measured = stored
    else:
        model, tok, meta = load_model(weights)
        docs = documents(report_splits(data_dir)[1].lines)[:pages]
        bpb = {p: evaluate_documents(model, tok, docs, context=meta["model_args"]["block_size"],
                                     detokenize=True, precision=p).metrics["bits_per_byte"]
               for p in ("fp32", "bf16")}
        measured = {"pages": len(docs), "bits_per_byte_fp32": bpb["fp32"],
                    "bits_per_byte_bf16": bpb["bf16"],
                    "bf16_difference_pct": 100 * (bpb["bf16"] - bpb["fp32"]) / bpb["fp32"]}
        write_json(stored_file, measured)
    return pd.DataFrame([{"pages": measured["pages"],
                          "bits per byte, fp32": measured["bits_per_byte_fp32"],
                          "bits per byte, bf16": measured["bits_per_byte_bf16"],
                          "bf16 difference, %": measured["bf16_difference_pct"]}])
