"""Published reference numbers, each with its source and a BibTeX key for the book.

Units matter more than values here: GPT-2's WikiText perplexities are per WikiText *word*
(a BPE loss rescaled by BPE tokens / dataset words, Radford et al. 2019, section 3.1),
enwik8 is in bits per byte, text8 and the character models in bits per character, and
nanoGPT's shakespeare_char loss in nats per character.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import pandas as pd

from h2q_lib.claims.completion_report import BASELINES


@dataclass(frozen=True)
class Reference:
    """One published number."""

    model: str
    params: int | None  # nominal parameter count as the source labels it
    dataset: str
    metric: str
    unit: str
    value: float
    source: str
    source_key: str
    note: str = ""


GPT2_PAPER = "Radford et al. 2019, Language Models are Unsupervised Multitask Learners, Table 3"
TXL_PAPER = "Dai et al. 2019, Transformer-XL"
WORD = "per WikiText word"

# WikiText-103 word counts (whitespace tokens + one end-of-line token per line),
# Merity et al. 2016; WikiText-2's valid/test are these same articles.
WIKITEXT103_WORDS: dict[str, int] = {
    "train": 103_227_021,
    "validation": 217_646,
    "test": 245_569,
}
WIKITEXT2_TRAIN_WORDS = 2_088_628

# paper label: (params, WikiText-2 PPL, WikiText-103 PPL, enwik8 bpb, text8 bpc)
_GPT2_TABLE3 = {
    "117M": (117_000_000, 29.41, 37.50, 1.16, 1.17),
    "345M": (345_000_000, 22.76, 26.37, 1.01, 1.06),
    "762M": (762_000_000, 19.93, 22.05, 0.97, 1.02),
    "1542M": (1_542_000_000, 18.34, 17.48, 0.93, 0.98),
}
_GPT2_NOTE = (
    "zero-shot; paper label (the released checkpoints count 124M/355M/774M/1558M); "
    "de-tokenized text, loss rescaled to the dataset's units"
)


def _gpt2_rows() -> list[Reference]:
    rows = []
    for label, (n, wt2, wt103, enwik8, text8) in _GPT2_TABLE3.items():
        model = f"GPT-2 {label}"
        for dataset, metric, unit, value in (
            ("WikiText-2", "perplexity", WORD, wt2),
            ("WikiText-103", "perplexity", WORD, wt103),
            ("enwik8", "bits_per_byte", "bits/byte", enwik8),
            ("text8", "bits_per_character", "bits/char", text8),
        ):
            rows.append(
                Reference(model, n, dataset, metric, unit, value, GPT2_PAPER,
                          "radford2019language", _GPT2_NOTE)
            )
    return rows


def _other_rows() -> list[Reference]:
    return [
        Reference(
            "GPT-2 small (124M), lm-eval-harness", 124_000_000,
            "WikiText-2/103 test (document level)",
            "word_perplexity", "per whitespace word", 37.37,
            "EleutherAI lm-evaluation-harness task wikitext; huggingface/transformers issue 13761",
            "gao2021harness", "rolling windows of 1024 tokens; counts on the original pages",
        ),
        Reference(
            "Transformer-XL Standard", 151_000_000, "WikiText-103", "perplexity",
            "per WikiText word", 24.0, TXL_PAPER, "dai2019transformerxl", "word-level model",
        ),
        Reference(
            "Transformer-XL 12L", 41_000_000, "enwik8", "bits_per_character", "bits/char",
            1.06, TXL_PAPER, "dai2019transformerxl", "",
        ),
        Reference(
            "Transformer-XL 24L", 277_000_000, "enwik8", "bits_per_character", "bits/char",
            0.99, TXL_PAPER, "dai2019transformerxl", "",
        ),
        Reference(
            "Adaptive inputs (Baevski & Auli)", 247_000_000, "WikiText-103", "perplexity",
            "per WikiText word", 18.7, "Baevski & Auli 2018, Adaptive Input Representations; "
            "fairseq adaptive-inputs README", "baevski2018adaptive", "word-level model",
        ),
        Reference(
            "Al-Rfou et al. 12-layer char Transformer", 44_000_000, "enwik8",
            "bits_per_character", "bits/char", 1.11,
            "Al-Rfou et al. 2018, as listed in the Transformer-XL paper (tables 2-3)",
            "alrfou2018character", "",
        ),
        Reference(
            "Al-Rfou et al. 12-layer char Transformer", 44_000_000, "text8",
            "bits_per_character", "bits/char", 1.18,
            "Al-Rfou et al. 2018, as listed in the Transformer-XL paper (tables 2-3)",
            "alrfou2018character", "",
        ),
        Reference(
            "nanoGPT shakespeare_char (6L, 384d)", 10_650_000, "Shakespeare (char)",
            "loss", "nats/char", 1.4697, "karpathy/nanoGPT README", "karpathy2022nanogpt",
            "validation loss, about 3 min on one A100",
        ),
    ]


_REPORT_PARAMS = {"117M": 117_000_000, "345M": 345_000_000, "774M": 774_000_000}


def _report_rows() -> list[Reference]:
    return [
        Reference(
            f"{row.model} (as the report labels it)", _REPORT_PARAMS.get(row.params_label),
            "WikiText-103", "perplexity", WORD, row.wikitext103_ppl,
            "the audited report, 'Comparison with baselines'", "h2q2026report",
            f"report's label {row.params_label}; rounded from GPT-2 Table 3",
        )
        for row in BASELINES
    ]


def references() -> list[Reference]:
    """Every reference row: GPT-2 Table 3, the other published numbers, the report's table."""
    return _gpt2_rows() + _other_rows() + _report_rows()


def published_table() -> pd.DataFrame:
    """``references()`` as a DataFrame, one column per ``Reference`` field."""
    columns = [f.name for f in fields(Reference)]
    return pd.DataFrame([asdict(r) for r in references()], columns=columns)
