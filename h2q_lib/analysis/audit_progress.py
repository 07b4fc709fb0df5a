"""The audit's check of the report's Progress column: each row's printed percentage against
three clocks (share of steps, share of a 5-hour budget, share of the header's wall time)."""

from __future__ import annotations

import pandas as pd

from h2q_lib.analysis.audit_row import AuditRow, rounds_to, verdict_of
from h2q_lib.claims.completion_report import ReportClaims

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
            entry[f"{name}: matches"] = rounds_to(values[i], row.progress_pct, 1)
        out.append(entry)
    return pd.DataFrame(out)


def _clock_fits(claims: ReportClaims) -> dict[str, list[int]]:
    """For each clock, the steps of the rows whose printed Progress it matches."""
    return {name: [r.step for r, v in zip(claims.progress, values, strict=True)
                   if rounds_to(v, r.progress_pct, 1)]
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
        verdict=verdict_of(not bad),
        detail=detail,
    )
