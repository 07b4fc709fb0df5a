"""The sentences of the training chapter (``notebooks/02_train.ipynb``): the run beside the
report's table read out row by row, and what a table without rows says instead, filled with
the values that ``book.training_tables`` computed."""

from __future__ import annotations

import pandas as pd

from h2q_lib.book.training_tables import training_loss_readings
from h2q_lib.book.wording import present

# Said instead of a table without rows.
NO_SHARED_ROWS = "This run reached none of the report's rows at the report's tokens per step."
NO_CHECKPOINTS = ("The run folder keeps no checkpoint or weights file: they are never "
                  "committed, and a finished run's folder is read, not retrained.")


def beside_reading(beside: pd.DataFrame) -> str:
    """Markdown: at each shared report row (``beside_report``), ours against the report's
    (ours − report); a training-log row with every reading of our training loss and their
    range."""
    if beside.empty:
        return ("This run is not at the report's tokens per step, so none of its steps is one "
                "of the report's table.")
    parts = []
    for step, row in beside.iterrows():
        if row["kind of row"] == "evaluation":
            parts.append(f"step {step:,} (an evaluation row): our validation loss "
                         f"{row['our validation loss']:.4f} against the report's "
                         f"{row['report loss']:.4f}, ours − report "
                         f"{row['ours − report']:+.4f} ({row['relative']:+.1%})")
        else:
            values = training_loss_readings(row)
            diffs = [v - row["report loss"] for _, v in values]
            read = ", ".join(f"{v:.4f} ({label})" for label, v in values)
            parts.append(f"step {step:,} (a training-log row, no Perplexity): our training "
                         f"loss reads {read} against the report's {row['report loss']:.4f}, "
                         f"ours − report from {min(diffs):+.3f} to {max(diffs):+.3f} nats "
                         "depending on which the report's logger printed")
    return "**Reading.** " + "; ".join(parts) + "."


def train_finding(values: dict) -> str:
    """The training chapter's finding: what was rerun, and where it stands at row 500."""
    text = (f"The report's recipe, rerun for its first {values['steps']:,} of 6,350 steps "
            f"({values['tokens_seen']:,} tokens, {values['train_minutes']:.0f} minutes on "
            f"{values['train_device']}), ends at validation loss {values['best_val_loss']:.3f}.")
    if present(values, "at500_diff"):
        text += (f" At the report's row 500, an evaluation, it is {values['at500_diff']:+.3f} "
                 f"nats from the report's {values['at500_report']:.4f} (ours − report): the "
                 "report's loss fell far faster than its stated recipe falls here; the "
                 "readings chapter tests why.")
    else:
        text += " It stops before the report's first evaluation row (step 500)."
    return text
