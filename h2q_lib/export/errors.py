"""The errors of an export: a checkpoint that cannot be exported (or an export that does not
match its model), and an export stopped by SIGTERM."""

from __future__ import annotations

from h2q_lib.core.errors import H2QError


class ExportError(H2QError):
    """A checkpoint that cannot be exported, or an export that does not match its model."""


class ExportInterrupted(H2QError):
    """SIGTERM during an export (exit status 143, as a run's)."""

    exit_code = 143
