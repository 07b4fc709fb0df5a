"""The audit's checks of the report's token counts: validation and training tokens against
characters and words measured here, the sequences they cut into, and the GPT-2 comparison
put on WikiText words."""

from __future__ import annotations

import math

from h2q_lib.analysis.audit_row import NOT_CHECKABLE, AuditRow, verdict_of
from h2q_lib.claims.completion_report import ReportClaims
from h2q_lib.claims.gpt2_baselines import WIKITEXT103_WORDS
from h2q_lib.evaluation.metrics import bits_per_token, word_perplexity

# --- split sizes ------------------------------------------------------------------------------


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
        verdict=verdict_of(measured_char_tokens == claims.validation_tokens),
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
        verdict=verdict_of(claims.validation_tokens == wikitext_words),
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
        verdict_of(measured_char_tokens == claims.train_tokens), scale,
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
        verdict=verdict_of(ok),
        detail=(
            ("Exact match. " if exact else
             f"No simple formula gives the exact count; {name} is within {abs(diff):,} "
             f"sequences (tolerance {100 * rel_tol:g}%), e.g. a remainder dropped per chunk. ")
            + "Tried: " + "; ".join(f"{k} = {v:,}" for k, v in formulas.items()) + "."
        ),
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
        verdict=verdict_of(ppl < best_baseline),
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
