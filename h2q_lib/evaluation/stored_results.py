"""Checks of the entries a run's ``evaluation.json`` stores: whether a stored result is
sound, whether an entry may be reused for this call's key, and what a run folder that
keeps no weights can still show."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from h2q_lib.evaluation.protocols import PROTOCOLS

# The counts a stored result keeps beside its summed NLL (``EvalResult.to_dict``).
COUNTS = ("tokens", "characters", "utf8_bytes", "whitespace_words", "wikitext_words",
          "documents")


def is_finite_number(value: object) -> bool:
    """A JSON number that is finite (not a bool, a string, null, inf or nan)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def result_problem(result: object, complete: bool = True) -> str | None:
    """None when a stored ``result`` is sound, else what is wrong with it (one phrase).

    Sound: metrics that are numbers (null stands for an infinite one) and, where the counts
    are stored (always, when ``complete``), exactly the metrics ``metrics.summarize`` gives
    for its summed NLL and counts: an edited number no longer agrees with the others.
    """
    from h2q_lib.core.run_folder import strict
    from h2q_lib.evaluation import metrics as metrics_mod

    if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict):
        return "has no metrics"
    stored = result["metrics"]
    if not all(v is None or is_finite_number(v) for v in stored.values()):
        return "has a metric that is not a number"
    if not complete and not any(k in result for k in ("nll_sum", *COUNTS)):
        return None
    if not is_finite_number(result.get("nll_sum")) or not all(
            isinstance(result.get(k), int) and not isinstance(result.get(k), bool)
            and result[k] > 0 for k in COUNTS):
        return "lacks its summed NLL or counts"
    try:
        derived = strict(metrics_mod.summarize(
            result["nll_sum"], *(result[k] for k in COUNTS[:-1])))
    except (ValueError, ZeroDivisionError):
        return "has counts that give no metrics"
    if stored != derived:
        return "has metrics that do not follow from its summed NLL and counts (edited?)"
    return None


def entry_problem(entry: object, key: dict) -> str | None:
    """None when a stored entry may be reused for ``key``, else why not (one phrase)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), dict):
        return "is not an entry of h2q's"
    if entry["key"] != key:
        changed = sorted(k for k in set(key) | set(entry["key"])
                         if entry["key"].get(k) != key.get(k))
        return "was scored with a different " + ", ".join(changed)
    return result_problem(entry.get("result"))


def stored_without_weights(run_dir: str | os.PathLike, protocols: Sequence[str] = PROTOCOLS,
                           splits: Sequence[str] = ("validation", "test"),
                           max_documents: int | None = None) -> dict | None:
    """The stored ``evaluation.json`` of a run folder that keeps no weights, or None.

    Weights are never committed, so a run folder from the repository can only show what was
    scored when its weights existed. It is returned only if every asked protocol and split
    has an entry scored on the same number of pages with metrics; which weights
    (sha256) and code scored it stay in each entry's ``key``.
    """
    from h2q_lib.core.run_folder import read_json

    stored = read_json(Path(run_dir) / "evaluation.json")
    if not isinstance(stored, dict):
        return None
    protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
    for protocol in protocols:
        for name in splits:
            entry = stored.get(protocol, {}).get(name) if isinstance(
                stored.get(protocol), dict) else None
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), dict) \
                    or entry["key"].get("max_documents") != max_documents \
                    or result_problem(entry.get("result"), complete=False) is not None:
                return None
    return stored

