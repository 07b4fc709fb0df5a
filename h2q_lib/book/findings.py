"""The finding that opens each chapter: one template per chapter, filled with computed values.

Page wording lives here, apart from the computation: a chapter glues the sentence this
module makes from the values it computed. Where a profile did not compute a value (a smoke
run stops before the report's rows), the sentence says so instead of failing.
"""

from __future__ import annotations

import math


def _have(values: dict, *keys: str) -> bool:
    return all(k in values and values[k] is not None and not (
        isinstance(values[k], float) and math.isnan(values[k])) for k in keys)


def readings_finding(values: dict) -> str:
    """The readings chapter's finding: row 500, row 100, and the clock."""
    parts = []
    if _have(values, "stated_diff500"):
        parts.append(f"At the report's row 500, an evaluation, the stated recipe's rerun is "
                     f"{values['stated_diff500']:+.2f} nats from the report's 1.5178 (run − "
                     f"report); the row is {values['row500_verdict']}.")
    else:
        parts.append("No run of this profile reached the report's row 500.")
    row100 = str(values.get("row100_training_verdict", "not reached"))
    parts.append(f"Row 100, a training-log line, is {row100.split(':')[0].split(' (')[0]} "
                 "under the three readings of a training loss.")
    if values.get("preregistered_outcome"):
        parts.append("Pre-registered before it ran, the clock's forecast was tested: "
                     f"{values['preregistered_outcome']}.")
    if not values.get("clock_fitted"):
        parts.append(f"No schedule clock is fitted: {values.get('clock_missing')}.")
    elif values.get("clock_passed"):
        parts.append(
            f"Counting steps at the peak rate, τ_p = Σ (η/η_peak)^p with p = "
            f"{values['clock_p']:g}, puts the committed runs on one curve: fitted without each "
            f"run in turn, it predicts that run within {values['clock_band']:.3f} nats, where "
            f"the summed rate of Tissue et al.'s law misses by up to {values['s1_worst']:.2f}. "
            f"It is the chapter's predictor inside the range its runs cover (to step "
            f"{values['clock_stated_last_step']:,} of the stated reading); the report's later "
            "rows, its final 1.0828 among them, lie outside it and are not predicted.")
    else:
        parts.append(
            f"No schedule clock passes its held-out check (the fitted τ_p misses a left-out run "
            f"by up to {values['clock_band']:.2f} nats, the summed rate by up to "
            f"{values['s1_worst']:.2f}), so this chapter predicts no row it did not measure.")
    return " ".join(parts)


def cosine_length_sentence(unchanged_rows: tuple[int, ...], reading: str = "one-pass cosine"
                           ) -> str:
    """Which of the report's rows a reading of the cosine's length cannot move."""
    if not unchanged_rows:
        return f"The {reading} reading differs from the stated one from the first step."
    return (f"The {reading} reading applies the stated rates until its warm-up ends, so the "
            f"report's rows up to step {unchanged_rows[-1]:,} cannot depend on it; it changes "
            "only the later rows, where the clock's range ends.")


def train_finding(values: dict) -> str:
    """The training chapter's finding: what was rerun, and where it stands at row 500."""
    text = (f"The report's recipe, rerun for its first {values['steps']:,} of 6,350 steps "
            f"({values['tokens_seen']:,} tokens, {values['train_minutes']:.0f} minutes on "
            f"{values['train_device']}), ends at validation loss {values['best_val_loss']:.3f}.")
    if _have(values, "at500_diff"):
        text += (f" At the report's row 500, an evaluation, it is {values['at500_diff']:+.3f} "
                 f"nats from the report's {values['at500_report']:.4f} (ours − report): the "
                 "report's loss fell far faster than its stated recipe falls here; the "
                 "readings chapter tests why.")
    else:
        text += " It stops before the report's first evaluation row (step 500)."
    return text


def final_loss_values(values: dict, best_step: int = 6_000) -> dict[str, str]:
    """The intro's verdict on the report's final validation loss (row ``best_step``): never
    measured on a CPU here; predicted only by a clock that passed its held-out check and only
    inside its range, else "not predicted" with the reason."""
    longest = values.get("longest_run_steps", 0)
    measured = f"not measured (our longest run stopped at step {longest:,})"
    if not values.get("clock_fitted"):
        return {"final_loss_verdict": measured + "; not predicted",
                "final_loss_why": f"no clock is fitted: {values.get('clock_missing')}"}
    if not values.get("clock_passed"):
        return {"final_loss_verdict": measured + "; not predicted",
                "final_loss_why": f"no clock passed its held-out check (misses up to "
                                  f"{values['clock_band']:.2f} nats)"}
    last = values["clock_stated_last_step"]
    if last < best_step:
        return {"final_loss_verdict": measured + "; not predicted",
                "final_loss_why": f"the clock that passed its held-out check covers the stated "
                                  f"reading only to step {last:,}"}
    return {"final_loss_verdict": measured + "; predicted by the clock",
            "final_loss_why": f"inside the clock's range (to step {last:,})"}


def performance_finding(values: dict) -> str:
    """The performance chapter's finding: the recipe's hours, MFU and the peer ratio."""
    if not _have(values, "perf_recipe_hours"):
        return "No benchmark result is committed: nothing is measured on this page."
    text = (f"On the fastest machine measured ({values['perf_machine']}), the report's "
            f"104,038,400-token recipe takes {values['perf_recipe_hours']:.1f} hours")
    if _have(values, "perf_mfu"):
        text += f", the trainer running at {values['perf_mfu']:.0%} of the measured matrix limit"
    if _have(values, "perf_over_transformers"):
        text += (f" and {values['perf_over_transformers']:.2f}× the training speed of "
                 "transformers' GPT-2 of the same shape")
    return text + ". The report states 5 h 2 min on an Apple MPS GPU."
