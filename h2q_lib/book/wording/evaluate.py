"""The sentences of the evaluation chapter (``notebooks/04_evaluate.ipynb``, whose conversion
of the report's claim ``notebooks/05_tokenizer_caveats.ipynb`` also reads): the report's
claim as word perplexity beside GPT-2 small's, and the claim, GPT-2 and this run on bits per
byte, filled with the values that ``evaluation.gpt2_comparison`` computed."""

from __future__ import annotations

import pandas as pd

from h2q_lib.claims.completion_report import REPORT, ReportClaims
from h2q_lib.data.wikitext import Split
from h2q_lib.evaluation.gpt2_comparison import conversion_numbers, evaluation_numbers


def conversion_reading(valid_split: Split, claims: ReportClaims = REPORT) -> str:
    """Markdown: step 6 with both word counts, as multiples of GPT-2 small's perplexity
    (``conversion_numbers``)."""
    n = conversion_numbers(valid_split, claims)
    return (
        f"Step 6 divides by all {n.all_words:,} WikiText words of the validation split, "
        f"including the headings that the report's preprocessing dropped, so it flatters the "
        f"report slightly; dividing by the {n.scored_words:,} words the model actually scored "
        f"gives {n.ppl_scored:.0f}. Either way, on the validation split the report's model's "
        f"word perplexity is {n.ppl_all / n.gpt2_small:.1f}× to "
        f"{n.ppl_scored / n.gpt2_small:.1f}× GPT-2 small's test-split 37.5: "
        + ("worse, not better." if n.worse else "better."))


def evaluation_reading(claim: pd.DataFrame, ours: pd.DataFrame, published: pd.DataFrame,
                       claims: ReportClaims = REPORT) -> str:
    """Markdown: the report's claim, GPT-2 and this run on bits per byte (test split;
    ``evaluation_numbers``)."""
    n = evaluation_numbers(claim, ours, published, claims)
    text = (
        f"**Reading.** On bits per byte (test), the report's claim converts to "
        f"{n.claim_bpb:.3f}; the GPT-2 sizes reach {n.gpt2_bpb_worst:.3f} to "
        f"{n.gpt2_bpb_best:.3f}, so even GPT-2 small needs "
        f"{n.claim_bpb / n.gpt2_bpb_worst:.2f} times fewer bits per byte. The report's "
        f"{n.best_perplexity} is a per-character perplexity; per word of the test split "
        f"(all its WikiText words, GPT-2's count) the same loss is {n.claim_wppl:.0f}, "
        f"{n.claim_wppl / n.gpt2_small:.1f} times GPT-2 small's {n.gpt2_small}.")
    if n.ours_bpb is not None:
        text += (f" This run reaches {n.ours_bpb:.3f} bits per byte on the report's own test "
                 f"text, {'behind' if n.ours_behind else 'ahead of'} the report's claim, after "
                 "the training it had (see {doc}`02_train`).")
    return text
