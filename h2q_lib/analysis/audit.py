"""The report's claims, checked one at a time.

Each ``check_*`` is a pure function of the claims (``ReportClaims``) and, where it needs
them, numbers the caller measured from data; it returns one ``AuditRow`` whose verdict is
"consistent", "inconsistent" or "not checkable here" (with the reason in ``detail``).
``run_audit`` runs them all; ``audit_table`` makes the book's table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Protocol

import pandas as pd

from h2q_lib.analysis.report_rows import EVALUATION, row_kind
from h2q_lib.claims.completion_report import ReportClaims
from h2q_lib.claims.gpt2_baselines import WIKITEXT103_WORDS
from h2q_lib.core.errors import ConfigError
from h2q_lib.evaluation.metrics import bits_per_token, word_perplexity
from h2q_lib.model.gpt import count_parameters, vocab_size_for_parameters

CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"
NOT_CHECKABLE = "not checkable here"
VERDICTS = (CONSISTENT, INCONSISTENT, NOT_CHECKABLE)

MB = 1_000_000  # the report's "MB": decimal megabytes
FP32_BYTES = 4
MEASUREMENT_KEYS = (
    "valid_char_tokens",  # report preprocessing + char tokenizer (<bos>/<eos>), validation
    "train_char_tokens",  # the same on the full training split
    "valid_words",  # WikiText words of the validation split
    "test_char_tokens",
    "test_words",
)


@dataclass(frozen=True)
class AuditRow:
    """One checked claim."""

    claim: str
    check: str
    evidence: str
    verdict: str
    detail: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ConfigError("verdict", self.verdict, "one of " + ", ".join(VERDICTS))


def _verdict(ok: bool) -> str:
    return CONSISTENT if ok else INCONSISTENT


def _rounds_to(value: float, stated: float, decimals: int) -> bool:
    """True when ``stated`` is ``value`` at the report's printed precision of ``decimals``
    places, rounded or cut off: |v − s| < 10^-k (one unit of the last printed digit). A
    difference below that is the print's, not an error of the report."""
    return abs(value - stated) < 10.0**-decimals - 1e-12


# --- model and batch --------------------------------------------------------------------------


def check_parameter_count(claims: ReportClaims) -> AuditRow:
    """N(listed architecture, stated vocab) == stated parameters (``count_parameters``)."""
    n = count_parameters(claims.model_config())
    return AuditRow(
        claim=f"{claims.parameters:,} parameters with vocab {claims.vocab_size:,}",
        check="count_parameters(listed architecture, stated vocab)",
        evidence=f"{n:,} computed vs {claims.parameters:,} stated",
        verdict=_verdict(n == claims.parameters),
        detail=(
            f"The listed architecture (d={claims.n_embd}, {claims.n_layer} layers, ff "
            f"{claims.n_ff}, {claims.seq_len} positions, tied head) with a {claims.vocab_size:,}"
            f"-entry vocabulary has {n:,} parameters; the embedding alone is "
            f"{claims.vocab_size * claims.n_embd:,}."
        ),
    )


def check_implied_vocab(claims: ReportClaims) -> AuditRow:
    """V = (N - N(V=0)) / d from ``vocab_size_for_parameters``; a real model gives an integer."""
    v = vocab_size_for_parameters(claims.parameters, claims.model_config())
    ok = v >= 1 and float(v).is_integer()
    return AuditRow(
        claim=f"{claims.parameters:,} parameters for the listed architecture",
        check="vocabulary that the parameter count implies",
        evidence=f"implied vocab = {int(v)} exactly" if ok else f"implied vocab = {v:.4f}",
        verdict=_verdict(ok),
        detail=(
            f"Only V = {v:g} makes the listed architecture count {claims.parameters:,} "
            "parameters. "
            + (
                f"An integer: the count is that of a real model with a {int(v)}-symbol "
                "vocabulary, i.e. a character-level tokenizer, not 50,000 words."
                if ok
                else "Not a positive integer, so no vocabulary fits this count."
            )
        ),
    )


def check_effective_batch(claims: ReportClaims) -> AuditRow:
    """effective batch == batch × gradient accumulation."""
    eff = claims.batch_size * claims.grad_accum
    return AuditRow(
        claim=f"effective batch {claims.effective_batch}",
        check="batch × accumulation",
        evidence=f"{claims.batch_size} × {claims.grad_accum} = {eff}",
        verdict=_verdict(eff == claims.effective_batch),
        detail="Sequences per optimizer step.",
    )


def check_tokens_processed(claims: ReportClaims) -> AuditRow:
    """tokens processed == steps × batch × accumulation × sequence length."""
    n = claims.steps * claims.tokens_per_step()
    return AuditRow(
        claim=f"{claims.tokens_processed:,} tokens processed",
        check="steps × batch × accumulation × sequence length",
        evidence=(
            f"{claims.steps:,} × {claims.batch_size} × {claims.grad_accum} × {claims.seq_len}"
            f" = {n:,}"
        ),
        verdict=_verdict(n == claims.tokens_processed),
        detail="Every step sees full sequences; no padding or packing losses are assumed.",
    )


def check_epochs(claims: ReportClaims, rel_tol: float = 0.05) -> AuditRow:
    """epochs = tokens processed / training-split tokens; compared with the claimed epochs."""
    epochs = claims.tokens_processed / claims.train_tokens
    ok = math.isclose(epochs, claims.epochs, rel_tol=rel_tol)
    return AuditRow(
        claim=f"{claims.epochs:g} epoch of training",
        check="tokens processed / training-split tokens",
        evidence=f"{claims.tokens_processed:,} / {claims.train_tokens:,} = {epochs:.3f} epoch",
        verdict=_verdict(ok),
        detail=(
            f"The run saw {100 * epochs:.1f}% of its own training split "
            f"({claims.steps * claims.effective_batch:,} of {claims.samples:,} samples); "
            f"one epoch would take about {claims.train_tokens / claims.tokens_per_step():,.0f}"
            " steps."
        ),
    )


def check_duration(claims: ReportClaims, tol_s: int = 60) -> AuditRow:
    """Stated duration vs end − start of the header's timestamps (to the stated minute)."""
    d = claims.duration_s()
    h, rem = divmod(d, 3600)
    m, s = divmod(rem, 60)
    sh, sm = divmod(claims.duration_stated_s // 60, 60)
    return AuditRow(
        claim=f"duration {sh} h {sm} min",
        check="end time − start time",
        evidence=f"{claims.start_time} → {claims.end_time} = {h} h {m:02d} min {s:02d} s ({d:,} s)",
        verdict=_verdict(abs(d - claims.duration_stated_s) < tol_s),
        detail="Wall-clock time, which includes evaluation, sampling and checkpoint saving.",
    )


# --- files ------------------------------------------------------------------------------------


def check_final_model_size(claims: ReportClaims, rel_tol: float = 0.05) -> AuditRow:
    """Final model file vs fp32 weights: 4 B × N (decimal MB)."""
    mb = FP32_BYTES * claims.parameters / MB
    return AuditRow(
        claim=f"final_model.pt is {claims.final_model_mb:g} MB",
        check="fp32 weights = 4 B × parameters",
        evidence=f"4 × {claims.parameters:,} B = {mb:.1f} MB ({mb * MB / 2**20:.1f} MiB)",
        verdict=_verdict(math.isclose(claims.final_model_mb, mb, rel_tol=rel_tol)),
        detail=(
            f"{claims.final_model_mb:g} MB is {claims.final_model_mb - mb:+.1f} MB from the "
            "fp32 weights: room for small buffers (e.g. a registered causal mask) and the "
            "pickled config, but not for optimizer state. The tied head is stored once."
        ),
    )


def check_checkpoint_size(claims: ReportClaims, rel_tol: float = 0.05) -> AuditRow:
    """Training checkpoint vs fp32 weights + two AdamW moments: 3 × 4 B × N (decimal MB)."""
    mb = 3 * FP32_BYTES * claims.parameters / MB
    return AuditRow(
        claim=f"checkpoints are {claims.checkpoint_mb:g} MB",
        check="weights + AdamW exp_avg + exp_avg_sq = 12 B × parameters",
        evidence=f"12 × {claims.parameters:,} B = {mb:.1f} MB ({mb * MB / 2**20:.1f} MiB)",
        verdict=_verdict(math.isclose(claims.checkpoint_mb, mb, rel_tol=rel_tol)),
        detail=(
            f"{claims.checkpoint_mb:g} MB vs {mb:.1f} MB "
            f"({100 * (claims.checkpoint_mb / mb - 1):+.1f}%): the size of a model plus Adam "
            "state at this parameter count, which would be "
            "about twice as large with a 50,000-entry vocabulary."
        ),
    )


# --- data -------------------------------------------------------------------------------------


def check_validation_tokens(claims: ReportClaims, measured_char_tokens: int | None) -> AuditRow:
    """Stated validation tokens == measured char tokens of the report-preprocessed split."""
    claim = f"validation set: {claims.validation_tokens:,} tokens"
    check = "char tokens of the report-preprocessed validation split (<bos> + chars + <eos>)"
    if measured_char_tokens is None:
        return AuditRow(claim, check, "no measurement given", NOT_CHECKABLE,
                        "The validation split was not measured in this run.")
    return AuditRow(
        claim=claim,
        check=check,
        evidence=f"{measured_char_tokens:,} measured vs {claims.validation_tokens:,} stated",
        verdict=_verdict(measured_char_tokens == claims.validation_tokens),
        detail=(
            "Drop empty lines and '=' headings, strip, join with newlines, count characters "
            "plus <bos>/<eos>: equality means the report's 'tokens' are characters."
        ),
    )


def check_validation_tokens_are_words(
    claims: ReportClaims, wikitext_words: int = WIKITEXT103_WORDS["validation"]
) -> AuditRow:
    """Were the validation 'tokens' words (as a 50,000-word vocabulary implies)?"""
    ratio = claims.validation_tokens / wikitext_words
    return AuditRow(
        claim=f"vocab {claims.vocab_size:,}: {claims.validation_tokens:,} validation tokens",
        check="validation tokens vs WikiText validation words",
        evidence=f"{claims.validation_tokens:,} tokens vs {wikitext_words:,} words "
        f"({ratio:.2f} tokens/word)",
        verdict=_verdict(claims.validation_tokens == wikitext_words),
        detail=(
            f"A word-level vocabulary would give about {wikitext_words:,} tokens (Merity et al. "
            f"2016). {ratio:.2f} tokens per word is the average word length plus a space: "
            "characters, not words."
        ),
    )


def check_train_tokens(claims: ReportClaims, measured_char_tokens: int | None = None) -> AuditRow:
    """Stated training tokens == measured char tokens of the full, report-preprocessed split."""
    claim = f"training set: {claims.train_tokens:,} tokens"
    check = "char tokens of the report-preprocessed training split"
    per_word = claims.train_tokens / WIKITEXT103_WORDS["train"]
    scale = (
        f"WikiText-103 train has {WIKITEXT103_WORDS['train']:,} words and about 540M "
        f"characters; {claims.train_tokens:,} is {per_word:.2f} per word, character scale "
        f"(validation: {claims.validation_tokens / WIKITEXT103_WORDS['validation']:.2f})."
    )
    if measured_char_tokens is None:
        return AuditRow(
            claim, check, "no measurement of the full training split", NOT_CHECKABLE,
            "The full WikiText-103 training split (about 540 MB) is not available here, only "
            "slices of it. " + scale,
        )
    return AuditRow(
        claim, check, f"{measured_char_tokens:,} measured vs {claims.train_tokens:,} stated",
        _verdict(measured_char_tokens == claims.train_tokens), scale,
    )


def _sample_formulas(n: int, t: int) -> dict[str, int]:
    return {
        "N // T (non-overlapping windows)": n // t,
        "(N - 1) // T (inputs + shifted targets)": (n - 1) // t,
        "(N - T - 1) // T + 1 (windows of T + 1, stride T)": (n - t - 1) // t + 1,
        "N - T (stride-1 windows)": n - t,
    }


def check_samples(claims: ReportClaims, rel_tol: float = 1e-3) -> AuditRow:
    """Stated samples vs common ways of cutting N training tokens into T-token sequences."""
    formulas = _sample_formulas(claims.train_tokens, claims.seq_len)
    name, best = min(formulas.items(), key=lambda kv: abs(kv[1] - claims.samples))
    diff = claims.samples - best
    exact = diff == 0
    ok = math.isclose(claims.samples, best, rel_tol=rel_tol)
    return AuditRow(
        claim=f"{claims.samples:,} sequences",
        check=f"training tokens cut into {claims.seq_len}-token sequences",
        evidence=f"closest: {name} = {best:,} ({diff:+,}, {100 * diff / best:+.3f}%)",
        verdict=_verdict(ok),
        detail=(
            ("Exact match. " if exact else
             f"No simple formula gives the exact count; {name} is within {abs(diff):,} "
             f"sequences (tolerance {100 * rel_tol:g}%), e.g. a remainder dropped per chunk. ")
            + "Tried: " + "; ".join(f"{k} = {v:,}" for k, v in formulas.items()) + "."
        ),
    )


# --- losses and perplexities ------------------------------------------------------------------


def check_perplexity_rows(claims: ReportClaims) -> AuditRow:
    """Each progress row with a PPL: PPL == round(exp(Loss), 2)."""
    rows = [r for r in claims.progress if r.perplexity is not None]
    bad = [r for r in rows if not _rounds_to(math.exp(r.loss), r.perplexity, 2)]
    listing = ", ".join(
        f"step {r.step}: exp({r.loss}) = {math.exp(r.loss):.4f} vs {r.perplexity}" for r in bad
    )
    cut = [r for r in rows if r not in bad
           and abs(math.exp(r.loss) - r.perplexity) > 0.005 + 1e-9]
    cut_listing = ", ".join(f"step {r.step}: exp({r.loss}) = {math.exp(r.loss):.4f} printed "
                            f"{r.perplexity} (cut off, not rounded)" for r in cut)
    return AuditRow(
        claim="progress table: Perplexity = exp(Loss)",
        check="exp(Loss) at the printed 2 decimals, for every row with a perplexity",
        evidence=f"{len(rows) - len(bad)} of {len(rows)} rows match"
        + (f"; {listing}" if bad else "") + (f"; {cut_listing}" if cut else ""),
        verdict=_verdict(not bad),
        detail=(
            "The report calls Loss a training loss and PPL a validation perplexity, yet PPL is "
            "exp of the same row's Loss: either the Loss column holds the validation loss at "
            "evaluation steps, or the 'validation' PPL is exp of the training loss. The best "
            "validation loss 1.0828 equals row 6000's Loss, which supports the first reading."
        ),
    )


def check_best_perplexity(claims: ReportClaims) -> AuditRow:
    """best PPL == round(exp(best validation loss), 2), and that loss is the best row's Loss."""
    ppl = math.exp(claims.best_val_loss)
    row = next((r for r in claims.progress if r.step == claims.best_val_step), None)
    same_row = row is not None and row.loss == claims.best_val_loss
    ok = _rounds_to(ppl, claims.best_perplexity, 2) and same_row
    return AuditRow(
        claim=f"best perplexity {claims.best_perplexity} = best validation loss "
        f"{claims.best_val_loss} @ step {claims.best_val_step}",
        check="exp(best validation loss); the table's Loss at that step",
        evidence=f"exp({claims.best_val_loss}) = {ppl:.4f}; table Loss at step "
        f"{claims.best_val_step} = {row.loss if row else 'missing'}",
        verdict=_verdict(ok),
        detail=(
            f"The final loss {claims.final_loss} at step {claims.steps} is higher than the best "
            "validation loss; the 'best' number is the one reported everywhere."
        ),
    )


def _reduction_pct(start: float, end: float) -> float:
    """100 · (end − start) / start."""
    return 100.0 * (end - start) / start


def check_loss_reduction(claims: ReportClaims) -> AuditRow:
    """Stated loss reduction == 100·(end − start)/start with the printed (2-decimal) losses."""
    start, end = claims.progress[0].loss, claims.best_val_loss
    printed = _reduction_pct(round(start, 2), round(end, 2))
    exact = _reduction_pct(start, end)
    return AuditRow(
        claim=f"loss reduction {claims.loss_reduction_pct}%",
        check="100·(end − start)/start, start = first row, end = best validation loss",
        evidence=f"{round(start, 2)} → {round(end, 2)}: {printed:.2f}%; unrounded "
        f"{start} → {end}: {exact:.2f}%",
        verdict=_verdict(_rounds_to(printed, claims.loss_reduction_pct, 1)),
        detail=(
            "Arithmetic only. The start is a step-100 training loss and the end the best "
            "validation loss, not the same quantity."
        ),
    )


def check_ppl_reduction(claims: ReportClaims) -> AuditRow:
    """Stated PPL reduction == 100·(end − start)/start, first reported PPL → best PPL."""
    start = next(r.perplexity for r in claims.progress if r.perplexity is not None)
    end = claims.best_perplexity
    pct = _reduction_pct(start, end)
    return AuditRow(
        claim=f"perplexity reduction {claims.ppl_reduction_pct}%",
        check="100·(end − start)/start, first reported PPL → best PPL",
        evidence=f"{start} → {end}: {pct:.2f}%",
        verdict=_verdict(_rounds_to(pct, claims.ppl_reduction_pct, 1)),
        detail="Arithmetic only; both are per-character perplexities.",
    )


# --- speed and progress -----------------------------------------------------------------------


def check_average_speed(claims: ReportClaims, rel_tol: float = 0.05) -> AuditRow:
    """Stated average speed vs tokens processed / wall-clock duration."""
    d = claims.duration_s()
    speed = claims.tokens_processed / d
    last = claims.progress[-1]
    return AuditRow(
        claim=f"average speed ~{claims.avg_tokens_per_s:,} tok/s",
        check="tokens processed / (end − start)",
        evidence=f"{claims.tokens_processed:,} / {d:,} s = {speed:,.0f} tok/s",
        verdict=_verdict(math.isclose(claims.avg_tokens_per_s, speed, rel_tol=rel_tol)),
        detail=(
            f"Within {100 * rel_tol:g}% ({100 * (claims.avg_tokens_per_s / speed - 1):+.1f}%). "
            "Wall time includes evaluation and saving, so the training speed can only be "
            f"higher than {speed:,.0f}; the last row's {last.tokens_per_s:,} tok/s, read as a "
            f"running average, means {claims.tokens_processed / last.tokens_per_s:,.0f} s of "
            "training, which fits the wall time."
        ),
    )


BUDGET_S = 5 * 3600  # "5 hours": the report's training time, as a budget
STEPS_CLOCK, BUDGET_CLOCK, WALL_CLOCK = "steps clock", "5-hour clock", "wall-time clock"


def progress_clocks(claims: ReportClaims) -> dict[str, list[float]]:
    """What each report row's Progress would be under three clocks, in percent:

    - steps: 100 · step / total steps (the same as the share of the tokens processed, since
      every step takes the same tokens);
    - 5-hour training time: 100 · step · tokens per step / Speed / 5 h, with Speed the row's
      tokens/s read as the average since the start;
    - wall time: the same elapsed time over the header's start-to-end duration.
    """
    per_step = claims.tokens_per_step()
    elapsed = [r.step * per_step / r.tokens_per_s for r in claims.progress]
    return {STEPS_CLOCK: [100 * r.step / claims.steps for r in claims.progress],
            BUDGET_CLOCK: [100 * e / BUDGET_S for e in elapsed],
            WALL_CLOCK: [100 * e / claims.duration_s() for e in elapsed]}


def progress_clock_table(claims: ReportClaims | None = None) -> pd.DataFrame:
    """Row by row: the printed Progress, each clock's value and whether it matches the print
    (within one unit of its last digit, 0.1 point); the report's own claims by default."""
    if claims is None:
        from h2q_lib.claims.completion_report import REPORT as claims
    clocks = progress_clocks(claims)
    out = []
    for i, row in enumerate(claims.progress):
        entry = {"step": row.step, "Progress printed (%)": row.progress_pct}
        for name, values in clocks.items():
            entry[f"{name} (%)"] = values[i]
            entry[f"{name}: matches"] = _rounds_to(values[i], row.progress_pct, 1)
        out.append(entry)
    return pd.DataFrame(out)


def _clock_fits(claims: ReportClaims) -> dict[str, list[int]]:
    """For each clock, the steps of the rows whose printed Progress it matches."""
    return {name: [r.step for r, v in zip(claims.progress, values, strict=True)
                   if _rounds_to(v, r.progress_pct, 1)]
            for name, values in progress_clocks(claims).items()}


def _step_ranges(steps: list[int], all_steps: list[int]) -> str:
    """Steps as runs of consecutive report rows: "100, 3,500–6,350"."""
    groups, current = [], []
    for step in all_steps:
        if step in steps:
            current.append(step)
        elif current:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return ", ".join(f"{g[0]:,}" if len(g) == 1 else f"{g[0]:,}–{g[-1]:,}" for g in groups) \
        or "none"


def progress_budget_values(claims: ReportClaims | None = None) -> dict[str, str | float]:
    """For the pages: the rows the 5-hour clock fits (``budget_rows``) and the last row's
    share of 5 hours in percent (``budget_last_pct``)."""
    if claims is None:
        from h2q_lib.claims.completion_report import REPORT as claims
    steps = [r.step for r in claims.progress]
    return {"budget_rows": _step_ranges(_clock_fits(claims)[BUDGET_CLOCK], steps),
            "budget_last_pct": progress_clocks(claims)[BUDGET_CLOCK][-1]}


def check_progress_pct(claims: ReportClaims | None = None) -> AuditRow:
    """Each row's Progress against three clocks (``progress_clocks``): which rows each fits
    to the printed 0.1 point. Consistent with "share of the run's steps" only if that clock
    fits every row. The report's own claims by default."""
    if claims is None:
        from h2q_lib.claims.completion_report import REPORT as claims
    clocks = progress_clocks(claims)
    all_steps = [r.step for r in claims.progress]
    fits = _clock_fits(claims)
    bad = [r for r in claims.progress if r.step not in fits[STEPS_CLOCK]]
    listing = "; ".join(
        f"{r.step}: {100 * r.step / claims.steps:.1f}% vs {r.progress_pct}% "
        f"(implies {r.step / (r.progress_pct / 100):,.0f} total)" for r in bad)
    budget = fits[BUDGET_CLOCK]
    last = claims.progress[-1]
    evidence = (f"share of steps: {len(claims.progress) - len(bad)} of {len(claims.progress)} "
                "rows match" + (f"; {listing}" if bad else "")
                + f" | share of 5 hours at the row's Speed: rows {_step_ranges(budget, all_steps)}"
                f" match ({len(budget)} of {len(all_steps)}); row {last.step:,}: "
                f"{clocks[BUDGET_CLOCK][-1]:.2f}%"
                f" | share of the header's wall time: rows "
                f"{_step_ranges(fits[WALL_CLOCK], all_steps)} match")
    unexplained = [s for s in all_steps if not any(s in f for f in fits.values())]
    detail = ("Every row is its step's share of the run." if not bad else
              f"Not the share of steps (nor of tokens, the same clock). The elapsed training "
              f"time at the row's Speed, as a share of 5 hours, fits rows "
              f"{_step_ranges(budget, all_steps)} to the printed 0.1 point, and the last row "
              f"is {clocks[BUDGET_CLOCK][-1]:.1f}% of 5 hours: the run was most likely "
              f"stopped by a 5-hour budget, so step {last.step:,} is where the time ran out, "
              "not necessarily the length its cosine was set for."
              + (f" Rows {_step_ranges(unexplained, all_steps)} fit none of the three clocks."
                 if unexplained else ""))
    return AuditRow(
        claim="progress column = share of the run's steps",
        check=f"100 · step / {claims.steps:,}; and two time clocks: step × "
        f"{claims.tokens_per_step():,} tokens / Speed over 5 hours, and over the header's "
        "duration",
        evidence=evidence,
        verdict=_verdict(not bad),
        detail=detail,
    )


# --- the baseline comparison ------------------------------------------------------------------


def check_baseline_comparison(
    claims: ReportClaims,
    valid_tokens: int | None = None,
    valid_words: int | None = None,
    test_tokens: int | None = None,
    test_words: int | None = None,
) -> AuditRow:
    """The claim "2.95 beats GPT-2" with both sides on WikiText words.

    The report's loss is per character token, so
        bits/char = loss / ln 2,
        word PPL  = exp(loss · tokens / words)   (GPT-2's rescaling to dataset words);
    tokens default to the report's validation count, words to WikiText-103 validation words.
    """
    loss = claims.best_val_loss
    tokens = claims.validation_tokens if valid_tokens is None else valid_tokens
    words = WIKITEXT103_WORDS["validation"] if valid_words is None else valid_words
    ppl_valid = word_perplexity(loss * tokens, words)
    bpc = bits_per_token(loss)
    names = ", ".join(f"{b.model} {b.wikitext103_ppl}" for b in claims.baselines)
    small = max(claims.baselines, key=lambda b: b.wikitext103_ppl)  # the smallest GPT-2
    evidence = (
        f"{claims.wikitext103_ppl} per char; loss {loss} nats/char = {bpc:.4f} bits/char; "
        f"validation: exp({loss} × {tokens:,} / {words:,}) = {ppl_valid:.1f} per word"
    )
    # GPT-2's numbers are test-split perplexities: compare on test where its counts are given
    if test_tokens is not None and test_words is not None:
        ppl, split = word_perplexity(loss * test_tokens, test_words), "test"
        evidence += f"; test (same loss per char): {ppl:.1f} per word"
    else:
        ppl, split = ppl_valid, "validation"
    best_baseline = min(b.wikitext103_ppl for b in claims.baselines)
    return AuditRow(
        claim=f"PPL {claims.wikitext103_ppl} on {claims.dataset} vs {names}",
        check="both perplexities per WikiText word",
        evidence=evidence,
        verdict=_verdict(ppl < best_baseline),
        detail=(
            f"{claims.wikitext103_ppl} is a perplexity per character, GPT-2's are per WikiText "
            f"test word (Radford et al. 2019, Table 3). On the {split} split's words the "
            f"report's loss is {ppl:.0f} per word, "
            + (f"below GPT-2's {best_baseline}" if ppl < best_baseline else
               f"{ppl / small.wikitext103_ppl:.1f} times {small.model}'s "
               f"{small.wikitext103_ppl}")
            + f". On characters its {bpc:.2f} bits/char compares with "
            "1.11 (enwik8) / 1.18 (text8) for a 44M character Transformer (Al-Rfou et al.)."
        ),
    )


# --- the report's curve, rerun ---------------------------------------------------------------

RERUN_CLAIM = "the report's early losses come from its recipe with a character vocabulary"


class Rerun(Protocol):
    """A run folder read: its name, ``config.json`` and ``log.jsonl`` (``curves.Run``)."""

    name: str
    config: dict
    log: list[dict]


def _is_report_recipe(config: dict, claims: ReportClaims) -> bool:
    """A run's ``config.json`` is the report's recipe (schedule included), char tokenizer."""
    want = {"n_layer": claims.n_layer, "n_head": claims.n_head, "n_embd": claims.n_embd,
            "n_ff": claims.n_ff, "block_size": claims.seq_len, "batch_size": claims.batch_size,
            "grad_accum": claims.grad_accum, "warmup": claims.warmup_steps,
            "lr": claims.learning_rate, "tokenizer": "char"}
    schedule = config.get("schedule_steps") or config.get("steps")
    return all(config.get(k) == v for k, v in want.items()) and schedule == claims.steps


def check_early_losses_reproduced(claims: ReportClaims, reruns: Sequence[Rerun] = (),
                                  rel_tol: float = 0.05) -> AuditRow:
    """The report's losses at the steps reruns of its recipe reached, one verdict per reading.

    A reading reproduces the report when |our validation loss − report loss| ≤ rel_tol ×
    report loss at every report table step its run evaluated; the claim is consistent when at
    least one reading does. Only reruns of the report's recipe (architecture, batch, 6,350-step
    schedule, character vocabulary) count; each is named by its ``name``.
    """
    claim = RERUN_CLAIM
    check = (f"our validation loss at the report's evaluation rows (those with a Perplexity), "
             f"within {rel_tol:.0%} of the report's, for each reading of its schedule")
    runs = [r for r in reruns if r.config and r.log and _is_report_recipe(r.config, claims)]
    if not runs:
        return AuditRow(claim, check, "no run of the report's recipe given", NOT_CHECKABLE,
                        "Needs a run of the report's recipe (architecture, batch, schedule, "
                        "char tokenizer), e.g. the prefix profile.")
    evidence, reproducing, evaluated = [], [], []
    for run in runs:
        ours = {r["step"]: r["val_loss"] for r in run.log if r.get("val_loss") is not None}
        # evaluation rows only: a training-log row (no Perplexity) is a training loss, read
        # three ways in the readings chapter (report_rows), never against validation loss
        pairs = [(r.step, r.loss, ours[r.step]) for r in claims.progress
                 if r.step in ours and row_kind(r) == EVALUATION]
        if not pairs:
            continue
        evaluated.append(run.name)
        if all(abs(mine - theirs) <= rel_tol * theirs for _, theirs, mine in pairs):
            reproducing.append(run.name)
        evidence.append(f"{run.name}: " + "; ".join(
            f"step {s}: report {theirs:.4f} vs ours {mine:.4f} "
            f"({100 * (mine - theirs) / theirs:+.1f}%)" for s, theirs, mine in pairs))
    if not evaluated:
        return AuditRow(claim, check, "the runs evaluated none of the report's evaluation rows",
                        NOT_CHECKABLE, "Evaluate at the report's steps (eval_every 50 or 100).")
    verdict_detail = (f"Reproduced under the {', '.join(reproducing)} reading at every row "
                      "its run reached." if reproducing else
                      f"No tested reading ({', '.join(evaluated)}) reproduces every row its "
                      "run reached.")
    return AuditRow(
        claim, check, " | ".join(evidence), _verdict(bool(reproducing)),
        verdict_detail + " Each run follows the report's recipe step for step (batch, "
        "architecture, a 127-symbol character vocabulary) under one reading of its schedule "
        "(see the readings chapter), on a different training text (see the training "
        "chapter); ours is a validation loss on the report's validation text.")


def audit_measurements(valid_split, test_split) -> dict:
    """The data measurements the audit takes (``MEASUREMENT_KEYS``) from the raw splits."""
    from h2q_lib.data.wikitext import report_char_tokens, wikitext_words

    return {"valid_char_tokens": report_char_tokens(valid_split.lines),
            "valid_words": wikitext_words(valid_split.lines),
            "test_char_tokens": report_char_tokens(test_split.lines),
            "test_words": wikitext_words(test_split.lines)}


# --- all of it --------------------------------------------------------------------------------


def run_audit(claims: ReportClaims, measurements: dict | None = None,
              reruns: Sequence[Rerun] = ()) -> list[AuditRow]:
    """Every check, in the report's order; ``measurements`` keys are ``MEASUREMENT_KEYS``;
    ``reruns`` are run folders read (``curves.read_runs``), one per reading."""
    m = dict(measurements or {})
    unknown = sorted(set(m) - set(MEASUREMENT_KEYS))
    if unknown:
        raise ConfigError("measurements", unknown, "keys among " + ", ".join(MEASUREMENT_KEYS))
    words = m.get("valid_words")
    return [
        check_parameter_count(claims),
        check_implied_vocab(claims),
        check_effective_batch(claims),
        check_tokens_processed(claims),
        check_epochs(claims),
        check_duration(claims),
        check_average_speed(claims),
        check_progress_pct(claims),
        check_early_losses_reproduced(claims, reruns),
        check_perplexity_rows(claims),
        check_best_perplexity(claims),
        check_loss_reduction(claims),
        check_ppl_reduction(claims),
        check_final_model_size(claims),
        check_checkpoint_size(claims),
        check_validation_tokens(claims, m.get("valid_char_tokens")),
        check_validation_tokens_are_words(
            claims, WIKITEXT103_WORDS["validation"] if words is None else words
        ),
        check_train_tokens(claims, m.get("train_char_tokens")),
        check_samples(claims),
        check_baseline_comparison(
            claims,
            valid_tokens=m.get("valid_char_tokens"),
            valid_words=words,
            test_tokens=m.get("test_char_tokens"),
            test_words=m.get("test_words"),
        ),
    ]


def audit_table(rows: list[AuditRow]) -> pd.DataFrame:
    """The rows as a DataFrame with columns claim, check, evidence, verdict, detail."""
    columns = [f.name for f in fields(AuditRow)]
    return pd.DataFrame([asdict(r) for r in rows], columns=columns)


def audit_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many checks have each verdict (``audit_<verdict>``) and ``audit_total``."""
    counts = table["verdict"].value_counts()
    out = {f"audit_{v.replace(' ', '_')}": int(counts.get(v, 0)) for v in VERDICTS}
    out["audit_total"] = len(table)
    rerun = table[table["claim"] == RERUN_CLAIM]
    out["audit_rerun_verdict"] = str(rerun["verdict"].iloc[0]) if len(rerun) else NOT_CHECKABLE
    return out


def audit_markdown(table: pd.DataFrame) -> str:
    """The audit as a list a reader can scan: each claim in bold with its verdict in colour,
    then what was computed and what it means, in full."""
    colours = {CONSISTENT: "#1e7b34", INCONSISTENT: "#b02a37", NOT_CHECKABLE: "#555555"}
    items = []
    for row in table.itertuples(index=False):
        badge = (f'<span style="background:{colours[row.verdict]};color:white;'
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
