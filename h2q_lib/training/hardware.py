"""The machine a run uses: devices, the precision rule, autocast and peak memory.

The precision rule (``choose_precision``), one for training, evaluation and the benchmark:

- a precision asked for by name is used as asked (fp16 is refused on the CPU);
- ``auto`` on MPS is fp16 with a gradient scaler; on CUDA bf16 where the GPU supports it,
  else fp16;
- ``auto`` on the CPU is bf16 only where a bf16 matrix product is really faster than an
  fp32 one on this machine, else fp32. CPUs with native bf16 (AVX-512 BF16, AMX, ARM's
  BF16 extension) run it 2-4x faster than fp32; CPUs without it (AVX2-only x86-64) emulate
  it, about 50x slower than fp32. Flags in /proc/cpuinfo do not say which kernels torch
  will dispatch to (``ONEDNN_MAX_CPU_ISA`` can cap them), so the rule measures: one
  512 x 512 product in each type, best of a few, well under a second even where bf16 is
  emulated. bf16 is chosen when it is at least ``BF16_MIN_SPEEDUP`` times faster; the
  measured ratio goes into the reason, which runs and notebooks record.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from h2q_lib.core.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# bf16 must beat fp32 clearly: a native-bf16 CPU measures 2.9-4.4x here, an emulating one
# 0.01-0.02x, so the threshold sits far from both and noise cannot flip the choice.
BF16_MIN_SPEEDUP = 1.5
_PROBE_SIZE = 512


def available_devices() -> list[str]:
    """Devices torch can use here, the preferred first (MPS, then CUDA, then the CPU)."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.insert(0, "mps")
    return devices


def pick_device(requested: str = "auto") -> str:
    """``auto`` picks MPS, then CUDA, then CPU; a forced device must be available."""
    available = available_devices()
    if requested == "auto":
        return available[0]
    if requested not in DEVICES:
        raise ConfigError("device", requested, "one of " + ", ".join(DEVICES))
    if requested not in available:
        raise ConfigError("device", requested, "one available here: auto, " + ", ".join(available))
    return requested


def cpu_capability() -> str:
    """torch's CPU kernel level (``AVX2``, ``AVX512``, ...) and the bf16 flags the CPU lists."""
    level = torch.backends.cpu.get_cpu_capability()
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                break
    listed = sorted(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    return level + (" (" + ", ".join(listed) + ")" if listed else ", no bf16 flag")


def _best_seconds(fn, repeats: int, budget_s: float) -> float:
    fn()  # warm-up: kernel selection and first-touch allocation
    best = float("inf")
    spent = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        took = time.perf_counter() - t0
        best, spent = min(best, took), spent + took
        if spent > budget_s:
            break
    return best


@functools.cache
def measured_bf16_speedup(threads: int | None = None) -> float:
    """(bf16 rate) / (fp32 rate) of a 512 x 512 matrix product on this CPU (best of a few).

    ``threads`` is only a cache key: the answer depends on torch's thread count.
    """
    a = torch.randn(_PROBE_SIZE, _PROBE_SIZE)
    b = torch.randn(_PROBE_SIZE, _PROBE_SIZE)
    fp32 = _best_seconds(lambda: a @ b, repeats=5, budget_s=0.2)
    a16, b16 = a.bfloat16(), b.bfloat16()
    bf16 = _best_seconds(lambda: a16 @ b16, repeats=3, budget_s=0.3)
    return fp32 / bf16


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses and why (both recorded in summaries and notebooks)."""

    precision: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def choose_precision(device: str, requested: str = "auto", speedup=None) -> PrecisionChoice:
    """The precision rule of the module docstring.

    ``speedup`` (a function returning bf16/fp32 on this CPU) is for tests; by default the
    ratio is measured once per process and thread count.
    """
    if requested not in PRECISIONS:
        raise ConfigError("precision", requested, "one of " + ", ".join(PRECISIONS))
    if requested != "auto":
        if requested == "fp16" and device == "cpu":
            raise ConfigError("precision", requested, "auto, bf16 or fp32 on the CPU")
        return PrecisionChoice(requested, "asked for")
    if device == "mps":
        return PrecisionChoice("fp16", "MPS: fp16 autocast with a gradient scaler")
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "CUDA GPU with bf16 support")
        return PrecisionChoice("fp16", "CUDA GPU without bf16: fp16 with a gradient scaler")
    ratio = (speedup or (lambda: measured_bf16_speedup(torch.get_num_threads())))()
    where = f"CPU {cpu_capability()}"
    if ratio >= BF16_MIN_SPEEDUP:
        return PrecisionChoice(
            "bf16", f"{where}: a bf16 matrix product measured {ratio:.2f}x as fast as fp32")
    return PrecisionChoice(
        "fp32", f"{where}: bf16 measured {ratio:.2f}x fp32 (below {BF16_MIN_SPEEDUP}x), "
        "so fp32")


def autocast(device: str, precision: str):
    """``torch.autocast`` for bf16/fp16; nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device, dtype=dtype)


def peak_rss_gb() -> float | None:
    """Peak resident memory of this process so far, in GB (None where it cannot be read)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return peak / 1e9 if sys.platform == "darwin" else peak * 1024 / 1e9


def total_memory_bytes(device: str) -> int | None:
    """The memory a run on ``device`` can use at most: the GPU's on CUDA, else the machine's
    RAM (None where it cannot be read)."""
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def machine_description() -> dict:
    """What a result was measured on: processor, cores, torch threads and CPU capability."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "processor": model,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": cpu_capability(),
        "devices_available": available_devices(),
    }
