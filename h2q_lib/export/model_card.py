"""The ``README.md`` of an export: what the model is, its recipe and its scores.

The card's words are the templates below; the numbers come from the checkpoint's metadata
and from the run's ``evaluation.json`` (``stored_scores``: only entries scored in fp32 on
exactly these weights, and sound).
"""

from __future__ import annotations

from pathlib import Path

from h2q_lib.core.run_folder import read_json
from h2q_lib.export.gpt2_weights import new_tokens

# --- the card's words ---------------------------------------------------------------------------

FRONT_MATTER = """---
library_name: transformers
pipeline_tag: text-generation
tags: [gpt2, h2q-repro{character_tag}]
datasets: [Salesforce/wikitext]
language: [en]
---"""
INTRO = (
    "A GPT-2-architecture language model of {n_params:,} parameters "
    "({n_layer} layers, {n_head} heads, width {n_embd}, "
    "feed-forward {n_ff}, context {block_size} tokens, "
    "{vocab_size:,} token ids), trained on WikiText by "
    "h2q-repro (a reproduction and audit of the H2Q-AGI "
    "\"Real AGI Training Completion Report\") and exported with `h2q export` from "
    "`{source}`{ending}")
AFTER_STEPS = " after {step:,} training steps."
CHARACTER_TOKENS = (
    "**Its tokens are characters.** The tokenizer is the report's reconstructed "
    "\"simple tokenizer\": `<pad>`, `<unk>`, `<bos>`, `<eos>` and the "
    "{n_chars} most frequent characters of the training text; any "
    "other character is `<unk>`. So its *perplexity is per character*: "
    "a token perplexity of this model cannot be set beside GPT-2's per-word or "
    "per-BPE-token perplexities. Compare models in **bits per byte** (below).")
BPE_TOKENS = ("Its tokenizer is GPT-2's byte-level BPE (50,257 ids); its token "
              "perplexity is per GPT-2 BPE token.")
PER_TOKEN = {"char": "character", "gpt2": "GPT-2 BPE token"}  # what a token perplexity is per
NO_RECIPE = "Not recorded in the checkpoint."
TOKENS_PER_STEP = "tokens per step"
TRAINING_PRECISION = "training precision"
SCORED = (
    "Scored by `h2q evaluate` in fp32 (the precision in which `lm_eval --model hf` "
    "gives the same numbers) on raw WikiText-103 (`lm-eval`: lm-evaluation-harness's "
    "`wikitext` task, its pages, detokenizer and counts; `report`: the report's "
    "preprocessed text). Bits per byte is the comparable unit; the last column is "
    "perplexity per {per}.")
SCORES_HEADER = ("| protocol | split | pages | bits per byte | byte perplexity | word perplexity "
                 "| perplexity per {per} |")
FIRST_PAGES, ALL_PAGES = "first {n}", "all {n}"
NOT_SCORED = ("Not scored in fp32 yet: `h2q evaluate` the run (fp32 is its default), "
              "then export it again.")
USE = """## Use

```python
from transformers import pipeline
generate = pipeline("text-generation", model="{name}")
# a {context}-token context: "hole" keeps the prompt's last tokens, leaving room for the
# {new_tokens} new ones (generation_config.json), however long the prompt
print(generate("The meaning of life is", handle_long_generation="hole"))
```

```bash
lm_eval --model hf --model_args pretrained={name} --tasks wikitext
```
"""
NOTES = (
    "Notes: the config is GPT-2's with `activation_function: gelu` (exact GELU) and "
    "`layer_norm_epsilon: 1e-5`, as trained. The tokenizer adds no `<bos>` itself; "
    "lm-evaluation-harness starts every rolling window with the BOS token "
    "(`{bos}`), as `h2q evaluate` "
    "does, so both give the same scores. Generation samples with the run's own "
    "temperature {temperature} and top-k {top_k}.")

# --- the card's numbers -------------------------------------------------------------------------

# The recipe fields the card shows, in this order (those the checkpoint records).
RECIPE_FIELDS = ("tokenizer", "data_config", "train_data_config", "steps", "schedule_steps",
                 "reading", "warmup", "batch_size", "grad_accum", "lr", "min_lr",
                 "weight_decay", "grad_clip", "dropout", "seed")
# A score column: the metric and its format.
SCORE_COLUMNS = (("bits_per_byte", ".4f"), ("byte_perplexity", ".4f"),
                 ("word_perplexity", ".6g"), ("token_perplexity", ".4f"))


def stored_scores(weights: Path) -> dict:
    """``{protocol: {split: result}}`` from the ``evaluation.json`` beside ``weights``, only
    the entries scored on exactly these weights (same sha256 as ``h2q evaluate`` keys), in
    fp32 (the precision lm-eval's numbers are reproduced in: the card says they agree), and
    sound as ``h2q evaluate`` checks a stored entry (``stored_results.result_problem``: an edited
    number, a string or a missing metric is left out, never printed or a traceback)."""
    from h2q_lib.evaluation.checkpoint_identity import checkpoint_identity
    from h2q_lib.evaluation.stored_results import result_problem

    stored = read_json(weights.parent / "evaluation.json") or {}
    sha = checkpoint_identity(weights)["weights_sha256"]
    found: dict = {}
    for protocol, entries in stored.items():
        for split, entry in (entries.items() if isinstance(entries, dict) else ()):
            key = entry.get("key", {}) if isinstance(entry, dict) else {}
            if not isinstance(key, dict) or key.get("precision") != "fp32" \
                    or result_problem(entry.get("result")) is not None:
                continue
            if key.get("weights_sha256") == sha:
                found.setdefault(protocol, {})[split] = {
                    **entry["result"], "max_documents": key.get("max_documents")}
    return found


def recipe_rows(meta: dict) -> list[tuple[str, str]]:
    """``(field, value)`` of the recipe table: the recorded ``RECIPE_FIELDS``, the tokens per
    step (batch x accumulation x context) and the training precision."""
    args, recipe = meta["model_args"], meta.get("recipe") or {}
    rows = [(f"`{k}`", f"{recipe[k]}") for k in RECIPE_FIELDS if recipe.get(k) is not None]
    if {"batch_size", "grad_accum"} <= set(recipe):
        per_step = recipe["batch_size"] * recipe["grad_accum"] * args["block_size"]
        rows.append((TOKENS_PER_STEP, f"{per_step:,}"))
    if meta.get("precision"):
        rows.append((TRAINING_PRECISION, f"{meta['precision']} on {meta.get('device', '?')}"))
    return rows


def score_cell(metrics: dict, name: str, spec: str) -> str:
    """A metric formatted by ``spec``; null is a perplexity that overflowed (a diverged run):
    ∞, or — for another metric."""
    value = metrics.get(name)
    if value is None:
        return "∞" if name.endswith("perplexity") else "—"
    return format(value, spec)


def score_rows(scores: dict) -> list[tuple[str, ...]]:
    """One row a stored (protocol, split): the pages scored and ``SCORE_COLUMNS``."""
    rows = []
    for protocol, splits in scores.items():
        for split, r in splits.items():
            pages = (FIRST_PAGES if r.get("max_documents") else ALL_PAGES).format(
                n=r["documents"])
            rows.append((protocol, split, pages, *(score_cell(r["metrics"], name, spec)
                                                   for name, spec in SCORE_COLUMNS)))
    return rows


# --- the card -----------------------------------------------------------------------------------


def _table_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def model_card(name: str, meta: dict, tokenizer, n_params: int, scores: dict,
               source: str) -> str:
    """``README.md`` of an export: what the model is, its recipe and its scores."""
    args, recipe = meta["model_args"], meta.get("recipe") or {}
    char = tokenizer.name == "char"
    per = PER_TOKEN["char" if char else "gpt2"]
    ending = AFTER_STEPS.format(step=meta["step"]) if "step" in meta else "."
    lines = [FRONT_MATTER.format(character_tag=", character-level" if char else ""), "",
             f"# {name}", "",
             INTRO.format(n_params=n_params, n_layer=args["n_layer"], n_head=args["n_head"],
                          n_embd=args["n_embd"], n_ff=args["n_ff"],
                          block_size=args["block_size"], vocab_size=args["vocab_size"],
                          source=source, ending=ending), ""]
    lines += [CHARACTER_TOKENS.format(n_chars=len(tokenizer.chars)) if char else BPE_TOKENS, ""]
    lines += ["## Recipe", ""] + (["| field | value |", "|---|---|"] if recipe else [NO_RECIPE])
    lines += [_table_row(row) for row in recipe_rows(meta)]
    lines += ["", "## Scores", ""]
    rows = score_rows(scores)
    if rows:
        lines += [SCORED.format(per=per), "", SCORES_HEADER.format(per=per),
                  "|---|---|---|---|---|---|---|", *map(_table_row, rows)]
    else:
        lines += [NOT_SCORED]
    lines += ["", USE.format(name=name, context=args["block_size"],
                             new_tokens=new_tokens(recipe, args["block_size"])),
              NOTES.format(bos="<bos>" if char else "<|endoftext|>",
                           temperature=recipe.get("temperature", 0.8),
                           top_k=recipe.get("top_k", 40)), ""]
    return "\n".join(lines)
