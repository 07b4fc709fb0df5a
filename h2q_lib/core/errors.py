"""The project's own errors: each says what was wrong and what is allowed."""

from __future__ import annotations


class H2QError(Exception):
    """Base class: an error meant to be read by a person, shown without a traceback."""


class ConfigError(H2QError, ValueError):
    """A parameter with a value that is not allowed."""

    def __init__(self, param: str, value: object, allowed: str):
        self.param, self.value, self.allowed = param, value, allowed
        super().__init__(f"{param}={value!r} is not allowed: expected {allowed}")


class DataUnavailableError(H2QError, FileNotFoundError):
    """No data could be loaded; the message names the ways to provide it."""


class CheckpointError(H2QError):
    """A checkpoint file that cannot be used (truncated, corrupted or unsafe)."""


class TrainingDivergedError(H2QError, FloatingPointError):
    """The loss became NaN or infinite."""
