"""The attention rule: which kernel (``model.attention``) a run's attention uses, chosen by
measurement as the precision rule (``hardware.choose_precision``) chooses the precision.

- A kernel asked for by name (``--attention``) is used as asked.
- ``auto`` times one layer's attention, forward and backward, at the run's shape (its
  micro-batch, heads, context and precision, under the run's autocast) through every
  kernel, in turns over a few passes (``probe_attention``), and takes the fastest only where
  it beats the default (``sdpa``) by more than the probe's own noise and by at least
  ``MIN_GAIN`` (``pick_kernel``); else the default. On one AVX-512 EPYC the written-out form
  runs 1.6x as fast as ``sdpa``, on an AMX Xeon 0.7x, so no single kernel is right for
  every CPU.
- A resumed run keeps the kernel it trained with unless another is asked for by name
  (``session_attention``). The kernel, the reason and the probe's times go into the run's
  session record and summary; none of it is part of the recipe, whose hash is unchanged.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from h2q_lib.model.attention import DEFAULT_KERNEL, KERNELS, causal_attention, check_kernel
from h2q_lib.model.gpt import GPTConfig
from h2q_lib.training.hardware import autocast
from h2q_lib.training.timing import paired_step_seconds

# a kernel replaces the default only when it is at least this much faster (a share of the
# default's time), and more than the probe's spread between passes
MIN_GAIN = 0.05
PROBE_PASSES = 5
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class AttentionChoice:
    """The kernel a run's attention uses, why, and the probe's median milliseconds of one
    layer's forward and backward per kernel (None when nothing was measured)."""

    kernel: str
    reason: str
    probe_ms: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return {"attention": self.kernel, "attention_reason": self.reason,
                "attention_probe_ms": self.probe_ms}


def pick_kernel(passes_ms: dict[str, list[float]], default: str = DEFAULT_KERNEL,
                min_gain: float = MIN_GAIN) -> tuple[str, str]:
    """The kernel the rule takes from timed passes (milliseconds per pass, per kernel), and
    why. A kernel's time is the median m of its passes, its noise (max − min) / m. The
    fastest kernel f replaces the default d only when

        m_f < m_d · (1 − max(min_gain, noise_f, noise_d)).
    """
    median = {k: statistics.median(v) for k, v in passes_ms.items()}
    noise = {k: (max(v) - min(v)) / median[k] for k, v in passes_ms.items()}
    fastest = min(median, key=median.get)
    times = ", ".join(f"{k} {m:.1f} ms" for k, m in median.items())
    if fastest == default:
        return default, f"{default} measured fastest ({times})"
    gain = 1 - median[fastest] / median[default]
    margin = max(min_gain, noise[fastest], noise[default])
    if gain > margin:
        return fastest, (f"{fastest} measured {gain:.0%} faster than {default}, beyond the "
                         f"probe's margin of {margin:.0%} ({times})")
    return default, (f"{fastest} measured {gain:.0%} faster than {default}, within the "
                     f"probe's margin of {margin:.0%}: {default} is kept ({times})")


def attention_inputs(cfg: GPTConfig, batch: int, device: str, precision: str
                     ) -> tuple[torch.Tensor, ...]:
    """q, k, v (requiring gradients) and an output gradient of one layer's attention at the
    model's heads and context for ``batch`` sequences, in ``precision``'s type."""
    dtype = _DTYPES.get(precision, torch.float32)
    shape = (batch, cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(shape, generator=gen).to(device, dtype).requires_grad_()
               for _ in range(3))
    return q, k, v, torch.randn(shape, generator=gen).to(device, dtype)


def attention_under_autocast(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: str,
                             device: str, precision: str) -> torch.Tensor:
    """``causal_attention`` through ``kernel`` under ``precision``'s autocast, as the model's
    forward calls it in a run, the output in the inputs' type."""
    with autocast(device, precision):
        return causal_attention(q, k, v, kernel).to(q.dtype)


def probe_attention(cfg: GPTConfig, batch: int, device: str, precision: str,
                    passes: int = PROBE_PASSES) -> dict[str, list[float]]:
    """Milliseconds of one layer's attention, forward and backward to q, k and v, at the
    model's heads and context for ``batch`` sequences, per kernel and pass (in turns), under
    ``precision``'s autocast as a training step runs it (a softmax autocasts to fp32)."""
    q, k, v, grad_out = attention_inputs(cfg, batch, device, precision)

    def step(kernel: str) -> Callable[[], object]:
        return lambda: torch.autograd.grad(attention_under_autocast(q, k, v, kernel, device,
                                                                    precision),
                                           (q, k, v), grad_out)

    seconds = paired_step_seconds({kernel: step(kernel) for kernel in KERNELS}, passes, device)
    return {kernel: [1e3 * s for s in values] for kernel, values in seconds.items()}


def choose_attention(cfg: GPTConfig, batch: int, device: str, precision: str,
                     requested: str = "auto", probe=probe_attention) -> AttentionChoice:
    """The rule of the module docstring (``probe`` is for tests)."""
    if requested != "auto":
        return AttentionChoice(check_kernel(requested), "asked for by name")
    passes = probe(cfg, batch, device, precision)
    kernel, reason = pick_kernel(passes)
    return AttentionChoice(kernel, reason,
                           {k: round(statistics.median(v), 3) for k, v in passes.items()})


def session_attention(cfg: GPTConfig, batch: int, device: str, precision: str, asked: str,
                      meta: dict | None, probe=probe_attention) -> AttentionChoice:
    """This session's kernel: the run's own on resume (``meta`` of its latest checkpoint)
    when ``asked`` is ``auto``, else the rule. A busy machine measures differently; a
    resumed run goes on as it began, as its precision does."""
    kept = (meta or {}).get("attention")
    if asked == "auto" and kept in KERNELS:
        return AttentionChoice(kept, f"kept from the run's checkpoint at step {meta['step']} "
                                     "(attention auto on resume keeps the run's own)")
    return choose_attention(cfg, batch, device, precision, asked, probe)
