"""The sentences of the tokenizer chapter (``notebooks/05_tokenizer_caveats.ipynb``): the claims
audit as a list a reader can scan, and what the equal-bytes experiment shows, filled with the
values that ``analysis.audit`` and ``analysis.tokenizer_experiment`` computed."""

from __future__ import annotations

import pandas as pd

from h2q_lib.analysis.audit_row import CONSISTENT, INCONSISTENT, NOT_CHECKABLE
from h2q_lib.analysis.tokenizer_experiment import experiment_comparison

# --- the claims audit -------------------------------------------------------------------------

VERDICT_COLOURS = {CONSISTENT: "#1e7b34", INCONSISTENT: "#b02a37", NOT_CHECKABLE: "#555555"}


def audit_markdown(table: pd.DataFrame) -> str:
    """The audit as a list a reader can scan: each claim in bold with its verdict in colour,
    then what was computed and what it means, in full."""
    items = []
    for row in table.itertuples(index=False):
        badge = (f'<span style="background:{VERDICT_COLOURS[row.verdict]};color:white;'
                 f'padding:0 .4em;border-radius:3px">{row.verdict}</span>')
        claim, check, evidence, detail = (markdown_text(v) for v in (
            row.claim, row.check, row.evidence, row.detail))
        items.append(f"{len(items) + 1}. {badge} **{claim}**  \n"
                     f"   *Checked:* {check}. *Found:* {evidence}.  \n"
                     f"   {detail}")
    return "\n".join(items)


def markdown_text(text: str) -> str:
    """``text`` for a Markdown page: ``<`` and ``>`` as entities, so that a marker such as
    ``<bos>`` is shown instead of being read as an HTML tag and dropped."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the equal-bytes experiment ---------------------------------------------------------------


def experiment_reading(table: pd.DataFrame) -> str:
    """Markdown: what the experiment's table shows, worded from the table itself
    (``experiment_comparison``); the ranking uses only the tokenizers whose bits per byte
    compare."""
    c = experiment_comparison(table)
    best, worst, lowest_tppl = c["best"], c["worst"], c["lowest_tppl"]
    text = (
        f"**What the experiment shows.** Token perplexity spans a factor of "
        f"{c['tppl_spread']:,.0f} across the {c['tokenizers']} tokenizers although the models "
        f"share one body and the same training bytes; bits per byte, the unit that compares "
        f"them, spans a factor of {c['bpb_spread']:.1f} ({c['bpb_min']:.2f}–{c['bpb_max']:.2f}). ")
    if c["pflop_range"] is not None:
        low, high = c["pflop_range"]
        text += f"Equal bytes are not equal compute: the models spent {low:.3f}–{high:.3f} PFLOP. "
    text += (f"Among the tokenizers that compare, `{best}` has the lowest bits per byte and "
             f"`{worst}` the highest. `{lowest_tppl}` has the lowest token perplexity")
    text += (", and also the lowest bits per byte." if lowest_tppl == best else
             f", yet `{best}` needs fewer bits per byte: a low token perplexity says nothing "
             "by itself.")
    for entry in c["not_comparable"]:
        vocab = f" ({entry['vocab']:,} entries)" if entry["vocab"] is not None else ""
        text += (f" `{entry['name']}`{vocab} maps {entry['unk_share']:.1%} of test tokens "
                 "to `<unk>`, a free prediction of a whole word, so its "
                 f"{entry['bpb']:.2f} bits per byte is not comparable and it is not ranked.")
    return text
