"""The audit's checks of the model's size: the parameter count, the vocabulary it implies,
and the file sizes that the parameters make (fp32 weights, and weights plus AdamW state)."""

from __future__ import annotations

import math

from h2q_lib.analysis.audit_row import AuditRow, verdict_of
from h2q_lib.claims.completion_report import ReportClaims
from h2q_lib.model.gpt import count_parameters, vocab_size_for_parameters

MB = 1_000_000  # the report's "MB": decimal megabytes
FP32_BYTES = 4


def check_parameter_count(claims: ReportClaims) -> AuditRow:
    """N(listed architecture, stated vocab) == stated parameters (``count_parameters``)."""
    n = count_parameters(claims.model_config())
    return AuditRow(
        claim=f"{claims.parameters:,} parameters with vocab {claims.vocab_size:,}",
        check="count_parameters(listed architecture, stated vocab)",
        evidence=f"{n:,} computed vs {claims.parameters:,} stated",
        verdict=verdict_of(n == claims.parameters),
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
        verdict=verdict_of(ok),
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


def check_final_model_size(claims: ReportClaims, rel_tol: float = 0.05) -> AuditRow:
    """Final model file vs fp32 weights: 4 B × N (decimal MB)."""
    mb = FP32_BYTES * claims.parameters / MB
    return AuditRow(
        claim=f"final_model.pt is {claims.final_model_mb:g} MB",
        check="fp32 weights = 4 B × parameters",
        evidence=f"4 × {claims.parameters:,} B = {mb:.1f} MB ({mb * MB / 2**20:.1f} MiB)",
        verdict=verdict_of(math.isclose(claims.final_model_mb, mb, rel_tol=rel_tol)),
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
        verdict=verdict_of(math.isclose(claims.checkpoint_mb, mb, rel_tol=rel_tol)),
        detail=(
            f"{claims.checkpoint_mb:g} MB vs {mb:.1f} MB "
            f"({100 * (claims.checkpoint_mb / mb - 1):+.1f}%): the size of a model plus Adam "
            "state at this parameter count, which would be "
            "about twice as large with a 50,000-entry vocabulary."
        ),
    )
