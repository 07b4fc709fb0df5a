"""A schedule-aware loss law fitted to runs' validation curves: Tissue et al. (2024).

"Scaling Law with Learning Rate Annealing" writes the validation loss after step s as

    L(s) = L0 + A · S1(s)^(−α) − C · S2(s)
    S1(s) = Σ_{i≤s} η_i                                   forward area: the summed rate
    S2(s) = Σ_{i≤s} m_i,   m_i = λ·m_{i−1} + (η_{i−1} − η_i)   annealing area, λ = 0.999

so one set of four constants (L0, A, α, C) describes every learning-rate schedule: the rate's
area drives a power law, and each decrease of the rate adds a further drop that builds up
over the following steps (the momentum λ). We chose it over the multi-power law of Luo et
al. (2025) because it has four constants where that law has seven, and our runs are few and
short: the law has to be pinned down by two or three curves of ten points each.

Our choices where the paper leaves room, stated once here and in the book:
- η_i is the rate the optimizer applied at step i, warm-up included, so S1 is the whole area
  under the rate curve; S2 counts decreases only (a rising rate in warm-up anneals nothing).
- Only points past the early plateau are fitted: a character model first learns character
  frequencies and bigrams within ~100 steps (``min_step``), then sits on a plateau near 2.45
  nats until it starts to use longer contexts, and falls off it at a step that depends on
  the schedule. Neither phase is a power law in S1, so a fit may also keep only the points
  below the plateau (``max_loss``), the part of each curve the law describes.
- The band is the 2.5–97.5 percentile range over refits on bootstrap resamples of the
  fitted points: it reflects their scatter and the few curves, nothing the law cannot see
  (text repeated after one epoch, a different training text, a different machine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from h2q_lib.training.profiles import TrainConfig
from h2q_lib.training.readings import lr_at

MOMENTUM = 0.999  # λ: the paper's default decay of the annealing momentum


def rates(cfg: TrainConfig, steps: int) -> np.ndarray:
    """The learning rate applied at optimizer steps 0 … ``steps`` − 1 under ``cfg``."""
    return np.array([lr_at(s, cfg) for s in range(steps)], dtype=float)


def areas(lr: np.ndarray, momentum: float = MOMENTUM) -> tuple[np.ndarray, np.ndarray]:
    """``(S1, S2)`` after each step: ``S1[k]``, ``S2[k]`` are the areas after k + 1 steps.

    S1[k] = Σ_{i≤k} η_i;  m_i = λ·m_{i−1} + max(η_{i−1} − η_i, 0);  S2[k] = Σ_{i≤k} m_i.
    """
    lr = np.asarray(lr, dtype=float)
    drops = np.maximum(np.concatenate([[0.0], lr[:-1] - lr[1:]]), 0.0)[: len(lr)]
    momentum_terms = np.empty_like(lr)
    m = 0.0
    for i, drop in enumerate(drops):
        m = momentum * m + drop
        momentum_terms[i] = m
    return np.cumsum(lr), np.cumsum(momentum_terms)


@dataclass(frozen=True)
class Curve:
    """A run's validation losses at its evaluation steps, and the rates it trained with."""

    name: str
    steps: np.ndarray  # steps done at each evaluation (1-based)
    losses: np.ndarray
    lr: np.ndarray  # the rate of every optimizer step up to the last evaluation

    @classmethod
    def from_run(cls, name: str, config: dict, log: list[dict]) -> Curve:
        """The curve of a run folder's ``config.json`` recipe and ``log.jsonl`` records."""
        cfg = TrainConfig.from_dict(config, f"{name}/config.json")
        evals = [r for r in log if r.get("val_loss") is not None]
        steps = np.array([r["step"] for r in evals], dtype=int)
        return cls(name, steps, np.array([r["val_loss"] for r in evals], dtype=float),
                   rates(cfg, int(steps.max()) if len(steps) else 0))

    def areas_at(self, momentum: float = MOMENTUM) -> tuple[np.ndarray, np.ndarray]:
        s1, s2 = areas(self.lr, momentum)
        return s1[self.steps - 1], s2[self.steps - 1]


def law(params: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """L0 + A · S1^(−α) − C · S2 for ``params`` = (L0, A, α, C)."""
    l0, a, alpha, c = params
    return l0 + a * np.power(s1, -alpha) - c * s2


@dataclass(frozen=True)
class LawFit:
    """The fitted constants, the points they were fitted on, and the bootstrap refits."""

    params: tuple[float, float, float, float]  # L0, A, α, C
    fitted_on: tuple[str, ...]
    points: int
    min_step: int
    rmse: float
    bootstrap: np.ndarray  # (resamples, 4)
    momentum: float = MOMENTUM
    max_loss: float | None = None  # only points at or below it were fitted (None: all)

    def selects(self, curve: Curve) -> np.ndarray:
        """Which of ``curve``'s points this fit's selection keeps (a boolean mask)."""
        keep = curve.steps >= self.min_step
        return keep if self.max_loss is None else keep & (curve.losses <= self.max_loss)

    def covers(self, predicted: np.ndarray) -> np.ndarray:
        """Which predicted losses lie inside what the fit saw: at or below ``max_loss``
        (a fit made only below the plateau says nothing above it); all without a cut."""
        predicted = np.asarray(predicted)
        return np.ones(predicted.shape, dtype=bool) if self.max_loss is None else \
            predicted <= self.max_loss

    def predict(self, lr: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The law's loss after each of ``steps`` (1-based) of the schedule ``lr``."""
        s1, s2 = areas(lr, self.momentum)
        idx = np.asarray(steps, dtype=int) - 1
        return law(np.array(self.params), s1[idx], s2[idx])

    def band(self, lr: np.ndarray, steps: np.ndarray,
             level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ``level`` percentiles of the bootstrap refits' predictions."""
        s1, s2 = areas(lr, self.momentum)
        idx = np.asarray(steps, dtype=int) - 1
        preds = np.array([law(p, s1[idx], s2[idx]) for p in self.bootstrap])
        tail = 100 * (1 - level) / 2
        return np.percentile(preds, tail, axis=0), np.percentile(preds, 100 - tail, axis=0)


def _fit(s1: np.ndarray, s2: np.ndarray, losses: np.ndarray,
         start: np.ndarray | None = None) -> np.ndarray:
    """Least-squares (L0, A, α, C) with L0, A, C ≥ 0 and 0 < α ≤ 3."""
    from scipy.optimize import least_squares

    lower, upper = np.array([0.0, 0.0, 1e-3, 0.0]), np.array([np.inf, np.inf, 3.0, np.inf])
    x0 = start if start is not None else np.array([0.5 * losses.min(), 0.5, 0.3, 0.0])
    x0 = np.clip(x0, lower, upper)
    result = least_squares(lambda p: law(p, s1, s2) - losses, x0, bounds=(lower, upper))
    return result.x


def fit_law(curves: list[Curve], min_step: int = 100, resamples: int = 300,
            seed: int = 0, momentum: float = MOMENTUM, max_loss: float | None = None) -> LawFit:
    """Fit the law to every curve's points at ``step >= min_step`` and, with ``max_loss``,
    loss ≤ ``max_loss`` (at least five points)."""
    s1s, s2s, ys = [], [], []
    for curve in curves:
        keep = curve.steps >= min_step
        if max_loss is not None:
            keep &= curve.losses <= max_loss
        s1, s2 = areas(curve.lr, momentum)
        s1s.append(s1[curve.steps[keep] - 1])
        s2s.append(s2[curve.steps[keep] - 1])
        ys.append(curve.losses[keep])
    s1, s2, y = (np.concatenate(v) if v else np.array([]) for v in (s1s, s2s, ys))
    if len(y) < 5:
        below = "" if max_loss is None else f" and loss <= {max_loss:g}"
        raise ValueError(f"the loss law has 4 constants and needs at least 5 points at step >= "
                         f"{min_step}{below}; the curves give {len(y)}")
    best = _fit(s1, s2, y)
    rng = np.random.default_rng(seed)
    boots = np.array([_fit(s1[pick], s2[pick], y[pick], start=best)
                      for pick in (rng.integers(0, len(y), len(y)) for _ in range(resamples))])
    rmse = float(np.sqrt(np.mean((law(best, s1, s2) - y) ** 2)))
    return LawFit(tuple(float(v) for v in best), tuple(c.name for c in curves), len(y),
                  min_step, rmse, boots, momentum, max_loss)


def held_out_errors(fit: LawFit, curve: Curve) -> np.ndarray:
    """Measured minus predicted loss at each of ``curve``'s points the fit's selection keeps."""
    keep = fit.selects(curve)
    return curve.losses[keep] - fit.predict(curve.lr, curve.steps[keep])
