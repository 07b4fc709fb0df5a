"""The project's own errors: each says what was wrong and what is allowed."""

from __future__ import annotations

import reprlib

# How much of a bad value a message shows: enough to recognise it (a path, a number, the
# start of a list), never all of it (a YAML alias bomb expands to billions of items)
_SHOWN = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_SHOWN.maxlevel = 3
_SHOWN.maxtuple = _SHOWN.maxlist = _SHOWN.maxarray = _SHOWN.maxdict = 6
_SHOWN.maxset = _SHOWN.maxfrozenset = _SHOWN.maxdeque = 6
_SHOWN.maxstring, _SHOWN.maxlong, _SHOWN.maxother = 300, 60, 300
MAX_SHOWN = 400


def bounded_repr(value: object) -> str:
    """``repr(value)``, shortened with ``...`` to at most ``MAX_SHOWN`` characters without
    building the whole of it first (``reprlib`` stops after a few items and levels)."""
    try:
        text = _SHOWN.repr(value)
    except ValueError:  # an integer past Python's limit on digits converted to text
        return f"<an integer of {value.bit_length():,} bits>" if isinstance(value, int) \
            else f"<{type(value).__name__} that cannot be shown>"
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


class H2QError(Exception):
    """Base class: an error meant to be read by a person, shown without a traceback."""


class ConfigError(H2QError, ValueError):
    """A parameter with a value that is not allowed."""

    def __init__(self, param: str, value: object, allowed: str):
        self.param, self.value, self.allowed = param, value, allowed
        super().__init__(f"{param}={bounded_repr(value)} is not allowed: expected {allowed}")


class DataUnavailableError(H2QError, FileNotFoundError):
    """No data could be loaded; the message names the ways to provide it."""


class CheckpointError(H2QError):
    """A checkpoint file that cannot be used (truncated, corrupted or unsafe)."""


class TrainingDivergedError(H2QError, FloatingPointError):
    """The loss became NaN or infinite."""
