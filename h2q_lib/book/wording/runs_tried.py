"""The readings chapter's sentences on the runs that vary what the report leaves unsaid: the
pre-registered runs (what was predicted, whether it held), where each run left the plateau,
the n-gram levels for scale and the intro's verdict on the unstated settings; filled with
the values ``analysis.preregistration``, ``analysis.plateau_exit`` and
``analysis.ngram_levels`` computed.
"""

from __future__ import annotations

from h2q_lib.analysis.curves import Run
from h2q_lib.analysis.evaluation_rows import TOLERANCE, row_results
from h2q_lib.analysis.plateau_exit import EXIT_LOSS, plateau_exit
from h2q_lib.analysis.preregistration import Preregistered, outcome
from h2q_lib.claims.completion_report import REPORT, ReportClaims

# --- the pre-registered runs ------------------------------------------------------------------


def _predicted(name: str, pred: dict) -> str:
    """What was predicted for a pre-registered run, when and from which clock."""
    clock_fit = pred["clock"]
    points = [p for p in pred["points"] if p["predicted"] is not None]
    if not points:
        return f"**{name}**: the clock predicted none of its steps"
    failed = "" if clock_fit.get("passed_held_out_check", True) else (
        "; the clock had failed its held-out check, so its band, the largest held-out "
        "miss, is wide")
    return (f"**{name}** (`{pred['command']}`): predicted at revision "
            f"{pred['predicted_at_revision']} from the clock fitted on "
            f"{', '.join(clock_fit['fitted_on'])} (p = {clock_fit['p']:g}, band "
            f"±{clock_fit['band_nats']:.3f} nats{failed}), from step {points[0]['step']:,} "
            f"({points[0]['predicted']:.3f}) to step {points[-1]['step']:,} "
            f"({points[-1]['predicted']:.3f})")


def preregistered_reading(entries: list[Preregistered]) -> str:
    """Each pre-registered run in a sentence: what was predicted, when, and whether the
    measurement (once committed) fell inside the band (``preregistration.outcome``)."""
    if not entries:
        return "No run is pre-registered for this profile."
    sentences = []
    for name, pred, run in entries:
        head = _predicted(name, pred)
        measured = outcome(pred, run)
        if measured is None:
            sentences.append(head + "; the run is not committed yet, so nothing is measured.")
            continue
        held, judged, worst = measured
        sentences.append(head + f"; measured to step {run.last_step:,}: the band held at "
                         f"{held} of {judged} steps, the largest miss {worst:.3f} nats.")
    return " ".join(sentences) + (" In the table, ✓ marks a measured loss inside its run's "
                                  "band and ✗ one outside it.")


def preregistered_values(entries: list[Preregistered]) -> dict[str, str]:
    """For the pages: each measured pre-registered run's outcome in a phrase, joined
    (``preregistered_outcome``; empty when none is measured yet)."""
    outcomes = []
    for name, pred, run in entries:
        measured = outcome(pred, run)
        if measured is None:
            continue
        held, judged, worst = measured
        outcomes.append(f"{name} held its band at {held} of {judged} predicted steps "
                        f"(largest miss {worst:.3f} nats)")
    return {"preregistered_outcome": "; ".join(outcomes)}


def exit_reading(runs: list[Run], below: float = EXIT_LOSS) -> str:
    """Where each run left the plateau (``plateau_exit``), in one sentence."""
    exits = [plateau_exit(run, below) for run in runs]
    if not exits:
        return "No run has a validation loss to read an exit from."
    return (f"The validation loss first fell below {below:.2f} nats, off the plateau, "
            + "; ".join(f"for {e.run} {'at ' if e.by is not None and e.after is not None else ''}"
                        f"{e.words}" for e in exits)
            + ". Two runs whose step ranges overlap left at steps their evaluations cannot "
            "tell apart.")


def levels_sentence(levels: dict[str, float]) -> str:
    """The unigram and bigram levels (``ngram_levels``) in a sentence, for scale."""
    return (f"For scale: a model that knows only how often each character occurs scores "
            f"{levels['unigram']:.2f} nats per character on this validation text (the unigram "
            f"level), one that knows only the previous character {levels['bigram']:.2f} (the "
            "bigram level; both counted on the training text).")


def unstated_settings_values(tried: list[Run], stated: Run, step: int = 500,
                             tolerance: float = TOLERANCE,
                             claims: ReportClaims = REPORT) -> dict[str, str]:
    """The intro's verdict on the settings the report leaves unsaid (the pre-registered runs
    ``tried``): whether any reproduces the report's row ``step`` (``RowResult.reproduced``),
    and each run's validation loss there; a run that stopped earlier is set beside the
    ``stated`` run at its own last evaluation instead (run − stated)."""
    if not tried:
        return {"unstated_verdict": "not tested yet",
                "unstated_numbers": "no pre-registered run is committed"}
    reached, short, stated_losses = [], [], stated.val_losses()
    for run in tried:
        result = row_results(run, (step,), claims)[0]
        if result.val_loss is not None:
            reached.append((run.name.split()[0], result))
            continue
        measured = run.val_losses()
        at = max(measured, default=None)
        base = stated_losses.get(at)
        if base is not None:
            short.append(f"{run.name.split()[0]} {measured[at]:.3f} at step {at:,}, "
                         f"{measured[at] - base:+.3f} from the stated run there")
    names = [name for name, r in reached if r.reproduced(tolerance)]
    report = row_results(stated, (step,), claims)[0].report
    verdict = (f"row {step:,} reproduced by {' and '.join(names)}" if names else
               f"none reproduces row {step:,}" if reached else f"no run reached row {step:,}")
    numbers = "; ".join(
        ([f"at step {step:,}: " + ", ".join(f"{name} {r.val_loss:.3f}" for name, r in reached)
          + f" vs the report's {report:.4f}"] if reached else []) + short)
    return {"unstated_verdict": verdict, "unstated_numbers": numbers}
