"""The audit's check of the report's early losses against reruns of its recipe, one run per
reading of its schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from h2q_lib.analysis.audit_row import NOT_CHECKABLE, AuditRow, verdict_of
from h2q_lib.analysis.report_rows import EVALUATION, row_kind
from h2q_lib.claims.completion_report import ReportClaims

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
        ours = run.val_losses()
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
        claim, check, " | ".join(evidence), verdict_of(bool(reproducing)),
        verdict_detail + " Each run follows the report's recipe step for step (batch, "
        "architecture, a 127-symbol character vocabulary) under one reading of its schedule "
        "(see the readings chapter), on a different training text (see the training "
        "chapter); ours is a validation loss on the report's validation text.")

