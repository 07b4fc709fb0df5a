"""The audit's checks of the report's arithmetic: batch, tokens, epochs, duration and speed
from its own header, and its perplexities and reductions from its own losses."""

from __future__ import annotations

import math

from h2q_lib.analysis.audit_row import AuditRow, rounds_to, verdict_of
from h2q_lib.claims.completion_report import ReportClaims

# --- batch, tokens and time -------------------------------------------------------------------


def check_effective_batch(claims: ReportClaims) -> AuditRow:
    """effective batch == batch × gradient accumulation."""
    eff = claims.batch_size * claims.grad_accum
    return AuditRow(
        claim=f"effective batch {claims.effective_batch}",
        check="batch × accumulation",
        evidence=f"{claims.batch_size} × {claims.grad_accum} = {eff}",
        verdict=verdict_of(eff == claims.effective_batch),
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
        verdict=verdict_of(n == claims.tokens_processed),
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
        verdict=verdict_of(ok),
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
        verdict=verdict_of(abs(d - claims.duration_stated_s) < tol_s),
        detail="Wall-clock time, which includes evaluation, sampling and checkpoint saving.",
    )


def check_average_speed(claims: ReportClaims, rel_tol: float = 0.05) -> AuditRow:
    """Stated average speed vs tokens processed / wall-clock duration."""
    d = claims.duration_s()
    speed = claims.tokens_processed / d
    last = claims.progress[-1]
    return AuditRow(
        claim=f"average speed ~{claims.avg_tokens_per_s:,} tok/s",
        check="tokens processed / (end − start)",
        evidence=f"{claims.tokens_processed:,} / {d:,} s = {speed:,.0f} tok/s",
        verdict=verdict_of(math.isclose(claims.avg_tokens_per_s, speed, rel_tol=rel_tol)),
        detail=(
            f"Within {100 * rel_tol:g}% ({100 * (claims.avg_tokens_per_s / speed - 1):+.1f}%). "
            "Wall time includes evaluation and saving, so the training speed can only be "
            f"higher than {speed:,.0f}; the last row's {last.tokens_per_s:,} tok/s, read as a "
            f"running average, means {claims.tokens_processed / last.tokens_per_s:,.0f} s of "
            "training, which fits the wall time."
        ),
    )


# --- losses and perplexities ------------------------------------------------------------------


def check_perplexity_rows(claims: ReportClaims) -> AuditRow:
    """Each progress row with a PPL: PPL == round(exp(Loss), 2)."""
    rows = [r for r in claims.progress if r.perplexity is not None]
    bad = [r for r in rows if not rounds_to(math.exp(r.loss), r.perplexity, 2)]
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
        verdict=verdict_of(not bad),
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
    ok = rounds_to(ppl, claims.best_perplexity, 2) and same_row
    return AuditRow(
        claim=f"best perplexity {claims.best_perplexity} = best validation loss "
        f"{claims.best_val_loss} @ step {claims.best_val_step}",
        check="exp(best validation loss); the table's Loss at that step",
        evidence=f"exp({claims.best_val_loss}) = {ppl:.4f}; table Loss at step "
        f"{claims.best_val_step} = {row.loss if row else 'missing'}",
        verdict=verdict_of(ok),
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
        verdict=verdict_of(rounds_to(printed, claims.loss_reduction_pct, 1)),
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
        verdict=verdict_of(rounds_to(pct, claims.ppl_reduction_pct, 1)),
        detail="Arithmetic only; both are per-character perplexities.",
    )
