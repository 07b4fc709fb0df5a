"""The allocator setting of a CPU run (``training.allocator``, issue #39): glibc keeps large
freed blocks, a user's own setting wins, and every session records what was done."""

from __future__ import annotations

import platform

import pytest

from h2q_lib.training import allocator
from h2q_lib.training.profiles import RuntimeConfig, get_profile
from h2q_lib.training.trainer import train

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.fixture
def fresh(monkeypatch):
    """The module as a new process finds it, with no user setting in the environment."""
    monkeypatch.setattr(allocator, "_done", None)
    for name in allocator.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt: Linux with glibc only")
def test_a_cpu_run_raises_glibcs_thresholds_once(fresh, monkeypatch):
    calls = []
    real = allocator.ctypes.CDLL

    class Counting:
        def __init__(self, name):
            self.libc = real(name)

        def mallopt(self, option, value):
            calls.append((option, value.value))
            return self.libc.mallopt(option, value)

    monkeypatch.setattr(allocator.ctypes, "CDLL", Counting)
    said = allocator.keep_freed_memory("cpu")
    assert said.startswith("glibc keeps freed blocks below 1 GiB")
    assert calls == [(allocator.M_MMAP_THRESHOLD, allocator.KEEP_BELOW),
                     (allocator.M_TRIM_THRESHOLD, allocator.KEEP_BELOW)]
    assert allocator.keep_freed_memory("cpu") == said and len(calls) == 2  # once a process


def test_a_users_own_setting_is_kept(fresh, monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: pytest.fail("mallopt called"))
    said = allocator.keep_freed_memory("cpu")
    assert said in ("the user's (MALLOC_MMAP_THRESHOLD_)", "system default (not glibc)")


def test_a_gpu_run_is_left_alone(fresh, monkeypatch):
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: pytest.fail("mallopt called"))
    assert allocator.keep_freed_memory("cuda") == "system default (not a CPU run)"


def test_every_session_records_the_allocator(tmp_path, data_dir):
    cfg = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                      batch_size=4, grad_accum=1, steps=2, warmup=1, eval_every=2,
                      eval_batches=1, log_every=1, ckpt_every=2, sample_tokens=0)
    summary = train(cfg, tmp_path / "run", RuntimeConfig(
        data_dir=str(data_dir), quiet=True, device="cpu", precision="fp32", attention="sdpa"))
    recorded = [s["allocator"] for s in summary["sessions"]]
    assert recorded == [allocator.keep_freed_memory("cpu")] and recorded[0]
