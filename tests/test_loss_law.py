"""The schedule-aware loss law: areas, fit, held-out prediction."""

from __future__ import annotations

import numpy as np
import pytest

from h2q_lib.analysis.loss_law import Curve, areas, fit_law, held_out_errors, law, rates
from h2q_lib.training.profiles import get_profile

TRUE = np.array([1.2, 0.9, 0.45, 60.0])  # L0, A, alpha, C


def synthetic(name: str, cfg, eval_every: int = 25, noise: float = 0.0, seed: int = 0,
              params: np.ndarray = TRUE):
    lr = rates(cfg, cfg.steps)
    steps = np.arange(eval_every, cfg.steps + 1, eval_every)
    s1, s2 = areas(lr)
    losses = law(params, s1[steps - 1], s2[steps - 1])
    losses = losses + np.random.default_rng(seed).normal(0, noise, len(steps))
    return Curve(name, steps, losses, lr)


def test_areas_are_the_summed_rate_and_the_decayed_sum_of_decreases():
    lr = np.array([1.0, 2.0, 2.0, 1.0, 0.5])
    s1, s2 = areas(lr, momentum=0.5)
    assert s1.tolist() == [1.0, 3.0, 5.0, 6.0, 6.5]
    # a rising rate anneals nothing; m = 0, 0, 0, 1, 0.5·1 + 0.5 = 1
    assert s2.tolist() == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_no_steps_have_no_areas():
    s1, s2 = areas(np.array([]))
    assert len(s1) == len(s2) == 0


def test_a_constant_rate_has_no_annealing_area():
    s1, s2 = areas(np.full(10, 3e-4))
    assert s2.max() == 0.0 and s1[-1] == pytest.approx(3e-3)


def test_the_law_fitted_on_two_schedules_predicts_a_third():
    """Fitted on a warm-up-only curve and a finished short cosine, the law predicts the
    micro-batch reading's curve, a schedule it never saw."""
    stated = get_profile("prefix", steps=500)
    short = get_profile("short400")
    micro = get_profile("prefix", steps=500, reading="micro-batch")
    fit = fit_law([synthetic("stated", stated, noise=0.002),
                   synthetic("short400", short, noise=0.002, seed=1)], min_step=50,
                  resamples=40)
    assert fit.params[2] == pytest.approx(TRUE[2], rel=0.2)
    assert fit.params[3] == pytest.approx(TRUE[3], rel=0.2)
    errors = held_out_errors(fit, synthetic("micro", micro))
    assert np.abs(errors).max() < 0.02
    lo, hi = fit.band(rates(micro, 500), np.array([250, 500]))
    assert (lo <= hi).all()


def test_without_a_decaying_schedule_the_annealing_term_is_not_identified():
    """A warm-up-only curve says nothing about C: the fit cannot tell, and the held-out
    finished schedule shows it."""
    stated = get_profile("prefix", steps=500)
    fit = fit_law([synthetic("stated", stated)], min_step=50, resamples=20)
    errors = held_out_errors(fit, synthetic("short400", get_profile("short400")))
    assert np.abs(errors).max() > 0.05


def test_too_few_points_are_one_clear_error():
    cfg = get_profile("prefix", steps=500)
    curve = synthetic("stated", cfg, eval_every=250)
    with pytest.raises(ValueError, match="at least 5 points at step >= 100; the curves give 2"):
        fit_law([curve])


def test_a_curve_is_read_from_a_run_folders_records():
    cfg = get_profile("short400")
    log = [{"step": s, "val_loss": 3.0 - s / 1000} for s in (50, 100)] + [
        {"step": 110, "val_loss": None}]
    curve = Curve.from_run("short400", cfg.to_dict(), log)
    assert curve.steps.tolist() == [50, 100] and len(curve.lr) == 100
    assert curve.lr[0] == pytest.approx(cfg.lr / cfg.warmup)


def test_points_on_a_plateau_can_be_left_out_of_the_fit():
    """Curves that sit on a plateau (2.45) before they follow the law: fitted only below the
    plateau, the law recovers its constants and the selection carries to a held-out run."""
    true = np.array([1.0, 0.4, 0.3, 5.0])  # losses from ~5 down to ~1.5 on these schedules
    schedules = {"stated": get_profile("prefix", steps=500), "short400": get_profile("short400"),
                 "micro": get_profile("prefix", steps=500, reading="micro-batch")}
    curves = {name: synthetic(name, cfg, params=true) for name, cfg in schedules.items()}
    plateau = {name: Curve(name, c.steps, np.minimum(c.losses, 2.45), c.lr)
               for name, c in curves.items()}
    below = fit_law([plateau["stated"], plateau["short400"]], min_step=25, max_loss=2.44,
                    resamples=10)
    assert below.max_loss == 2.44
    assert 5 <= below.points < len(curves["stated"].steps) + len(curves["short400"].steps)
    assert below.params[2] == pytest.approx(true[2], rel=0.1)
    kept = below.selects(plateau["micro"])
    assert 0 < kept.sum() < len(kept) and (plateau["micro"].losses[kept] <= 2.44).all()
    assert np.abs(held_out_errors(below, plateau["micro"])).max() < 0.02
    with pytest.raises(ValueError, match="and loss <= 0.5"):
        fit_law(list(plateau.values()), min_step=25, max_loss=0.5)
