"""The device's achievable matrix-multiply rate: the limit that model-FLOPs utilisation and
every ceiling of the performance chapter divide by.

A product of ``m × k`` by ``k × n`` does 2mkn FLOPs; the limit is the fastest rate measured
over two squares and the model's own product shapes, in one number type (``h2q bench``
measures bf16 and fp32 and keeps the faster).
"""

from __future__ import annotations

import time

import torch

from h2q_lib.model.gpt import GPTConfig
from h2q_lib.training.timing import best_seconds, sync_device


def matmul_rate(device: str, dtype: torch.dtype, n: int | None = None, repeats: int = 3,
                shape: tuple[int, int, int] | None = None) -> float:
    """Achievable FLOP/s of an ``m × k`` by ``k × n`` product on random data: 2mkn / seconds.

    ``shape`` is ``(m, k, n)``; without it the product is square, ``n × n``. A type the
    device only emulates (bf16 on an AVX2 CPU, about 50x slower) is timed on one product:
    more would add minutes and no information.
    """
    n = n or (2048 if device == "cpu" else 8192)
    m, k, n = shape or (n, n, n)
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    t0 = time.perf_counter()
    a @ b
    sync_device(device)
    once = time.perf_counter() - t0
    if once > 1.0:
        return 2 * m * k * n / once
    reps = 4 if device == "cpu" else 20

    def run():
        for _ in range(reps):
            a @ b

    return 2 * m * k * n * reps / best_seconds(run, device, repeats)


def model_matmul_shapes(cfg: GPTConfig, rows: int) -> tuple[tuple[int, int, int], ...]:
    """The forward products of the model's weight matrices, ``(rows, in, out)``, one a kind.

    ``rows`` is the tokens of a micro-batch. These are the products a training step spends
    its matrix time in, so the limit is measured on them as well as on a square.
    """
    d, f = cfg.n_embd, cfg.n_ff
    return ((rows, d, 3 * d), (rows, d, d), (rows, d, f), (rows, f, d))


def matmul_limit(device: str, dtype: torch.dtype, cfg: GPTConfig, rows: int,
                 repeats: int = 3) -> float:
    """The fastest FLOP/s measured over a square product and the model's own shapes.

    One square alone can sit far below what the hardware does: on a CPU with AMX, a bf16
    2048² product (power-of-two strides) measured a third of the rate of the model's
    4096 × 512 × 1536. The limit is the best rate this device showed on any of them.
    """
    shapes = ((1024, 1024, 1024), (2048, 2048, 2048), *model_matmul_shapes(cfg, rows))
    if device != "cpu":
        shapes = ((8192, 8192, 8192), *shapes)
    first = matmul_rate(device, dtype, shape=shapes[0], repeats=repeats)
    if 2 * 1024**3 / first > 1.0:  # emulated (bf16 on AVX2): one shape says it all
        return first
    return max(first, *(matmul_rate(device, dtype, shape=s, repeats=repeats)
                        for s in shapes[1:]))
