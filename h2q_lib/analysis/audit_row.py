"""One checked claim of the report (``AuditRow``), its three verdicts, and the rounding rule
that every check compares printed numbers by."""

from __future__ import annotations

from dataclasses import dataclass

from h2q_lib.core.errors import ConfigError

CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"
NOT_CHECKABLE = "not checkable here"
VERDICTS = (CONSISTENT, INCONSISTENT, NOT_CHECKABLE)


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


def verdict_of(ok: bool) -> str:
    """CONSISTENT when ``ok``, else INCONSISTENT."""
    return CONSISTENT if ok else INCONSISTENT


def rounds_to(value: float, stated: float, decimals: int) -> bool:
    """True when ``stated`` is ``value`` at the report's printed precision of ``decimals``
    places, rounded or cut off: |v − s| < 10^-k (one unit of the last printed digit). A
    difference below that is the print's, not an error of the report."""
    return abs(value - stated) < 10.0**-decimals - 1e-12
