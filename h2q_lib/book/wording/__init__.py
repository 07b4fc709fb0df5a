"""The book's sentences, one module per chapter: templates filled with values that the
analysis computed, so that a change of wording touches no computation."""

from __future__ import annotations

import math


def present(values: dict, *keys: str) -> bool:
    """Whether every key is in ``values`` with a value (not None, not NaN): a profile that
    stopped before a row computes no value for it, and its sentence says so instead."""
    return all(k in values and values[k] is not None and not (
        isinstance(values[k], float) and math.isnan(values[k])) for k in keys)
