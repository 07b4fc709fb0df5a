"""The report's claims, checked one at a time, collected in one table.

Each ``check_*`` is a pure function of the claims (``ReportClaims``) and, where it needs
them, numbers the caller measured from data; it returns one ``AuditRow`` (``audit_row``)
whose verdict is "consistent", "inconsistent" or "not checkable here" (with the reason in
``detail``). The checks live by what they check: ``audit_parameters`` (the model's size),
``audit_arithmetic`` (the header's and the losses' arithmetic), ``audit_token_counts`` (the
split sizes and the GPT-2 comparison), ``audit_progress`` (the Progress column) and
``audit_rerun`` (the early losses against reruns). ``run_audit`` runs them all;
``audit_table`` makes the book's table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields

import pandas as pd

from h2q_lib.analysis.audit_arithmetic import (
    check_average_speed,
    check_best_perplexity,
    check_duration,
    check_effective_batch,
    check_epochs,
    check_loss_reduction,
    check_perplexity_rows,
    check_ppl_reduction,
    check_tokens_processed,
)
from h2q_lib.analysis.audit_parameters import (
    check_checkpoint_size,
    check_final_model_size,
    check_implied_vocab,
    check_parameter_count,
)
from h2q_lib.analysis.audit_progress import check_progress_pct
from h2q_lib.analysis.audit_rerun import RERUN_CLAIM, Rerun, check_early_losses_reproduced
from h2q_lib.analysis.audit_row import NOT_CHECKABLE, VERDICTS, AuditRow
from h2q_lib.analysis.audit_token_counts import (
    check_baseline_comparison,
    check_samples,
    check_train_tokens,
    check_validation_tokens,
    check_validation_tokens_are_words,
)
from h2q_lib.claims.completion_report import ReportClaims
from h2q_lib.claims.gpt2_baselines import WIKITEXT103_WORDS
from h2q_lib.core.errors import ConfigError

MEASUREMENT_KEYS = (
    "valid_char_tokens",  # report preprocessing + char tokenizer (<bos>/<eos>), validation
    "train_char_tokens",  # the same on the full training split
    "valid_words",  # WikiText words of the validation split
    "test_char_tokens",
    "test_words",
)


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
