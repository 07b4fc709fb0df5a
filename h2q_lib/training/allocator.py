"""The C allocator under a CPU run: glibc keeps large freed blocks instead of unmapping them.

glibc's ``malloc`` serves a large block (from 128 KiB; the threshold rises with use, to at
most 32 MiB) with ``mmap`` and gives it back to the system when it is freed, so the next
one is mapped afresh and the kernel zeroes each of its pages at first touch. The written-out
attention allocates and frees its score tensors (batch × heads × context², 32 MiB in bf16 at
the report's shape) in every layer, forward and backward. Measured on one AVX-512 EPYC at
one thread (one layer's attention, forward and backward, 8 × 512): 239 ms with glibc's
defaults, 124-128 ms with both thresholds at 1 GiB, against SDPA's 190 ms either way; a
whole micro-batch of the report's model, forward and backward: 4.40 s against SDPA's 4.83 s
with the thresholds raised, 4.75 against 4.85 without. The attention rule measures after
this is set, so it measures what the run's steps will see.

Nothing here changes a result: only where freed memory goes. A user's own setting
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``) is kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt's parameter numbers (malloc.h) and the value both are set to
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_BELOW = 1 << 30  # 1 GiB: every tensor of the report's model at its micro-batch
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_done: str | None = None


def keep_freed_memory(device: str) -> str:
    """Raise glibc's mmap and trim thresholds to ``KEEP_BELOW`` for a CPU run (once per
    process); what was done, in words, for the run's session record."""
    global _done
    if device != "cpu":
        return "system default (not a CPU run)"
    if _done is not None:
        return _done
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _done = "system default (not glibc)"
    elif any(name in os.environ for name in USER_SETTINGS):
        _done = "the user's (" + ", ".join(n for n in USER_SETTINGS if n in os.environ) + ")"
    else:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = all(libc.mallopt(option, ctypes.c_int(KEEP_BELOW)) == 1
                 for option in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD))
        _done = ("glibc keeps freed blocks below 1 GiB (mmap and trim thresholds)" if ok
                 else "system default (glibc refused the thresholds)")
    return _done
