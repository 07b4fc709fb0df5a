"""SIGINT and SIGTERM while training: remembered, and acted on at the next step boundary.

``StopRequests`` installs the handlers for the length of a run; ``stop_requested`` asks, once
a step, whether a signal arrived (with ``torchrun``, on any process); ``Interrupted`` is the
one-line error a stopped run ends with, its exit code 128 + the signal number.
"""

from __future__ import annotations

import signal
import threading

import torch
import torch.distributed as dist

from h2q_lib.core.errors import H2QError
from h2q_lib.training.distributed import DistInfo


class Interrupted(H2QError):
    """The run was stopped by SIGINT or SIGTERM; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopRequests:
    """SIGINT and SIGTERM while training: remembered, acted on at the next step boundary.

    Before the loop (data, model) a signal stops at once; in the loop the step finishes, a
    checkpoint is written and the run stops with one line. Handlers are restored on exit;
    outside the main thread (where Python allows no handlers) nothing is installed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self.in_loop = False
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        if not self.in_loop:
            raise Interrupted(f"interrupted by {signal.Signals(signum).name} before training "
                              "began; nothing was trained", signum)

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def stop_requested(stops: StopRequests, di: DistInfo) -> bool:
    """A signal arrived on this process (or, with torchrun, on any of them)."""
    if di.world == 1:
        return stops.signum is not None
    flag = torch.tensor([0 if stops.signum is None else stops.signum])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    stops.signum = int(flag) or None
    return stops.signum is not None
