"""How work is timed (the benchmark, and the attention rule at a run's start): the device
synchronised before each reading, the best of a few calls after a warm-up, and two or more
steps in turns (``paired_step_seconds``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def sync_device(device: str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU does not)."""
    if device == "cuda":
        torch.cuda.synchronize()


def best_seconds(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Best-of-``repeats`` seconds of ``fn()`` after one warm-up call."""
    fn()
    sync_device(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync_device(device)
        best = min(best, time.perf_counter() - t0)
    return best


def paired_step_seconds(steps: dict[str, Callable[[], object]], rounds: int,
                        device: str) -> dict[str, list[float]]:
    """Seconds of each named step, run in turns: one call of each a round, the order
    reversed every other round, after one warm-up call each. A slow spell of a shared
    machine then falls on both sides of a round, so ratios within a round are fair."""
    names = list(steps)
    for name in names:
        steps[name]()
    sync_device(device)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            steps[name]()
            sync_device(device)
            seconds[name].append(time.perf_counter() - t0)
    return seconds
