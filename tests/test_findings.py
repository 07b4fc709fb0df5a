"""Each chapter's opening finding: filled from computed values, worded when one is missing."""

from __future__ import annotations

from h2q_lib.bench.performance import headline_values
from h2q_lib.book.wording.performance import performance_finding
from h2q_lib.book.wording.train import train_finding


def test_the_training_finding_states_row_500_or_that_the_run_stopped_before_it():
    values = {"steps": 500, "tokens_seen": 8_192_000, "train_minutes": 81.0,
              "train_device": "cpu (bf16)", "best_val_loss": 2.2946}
    reached = train_finding({**values, "at500_diff": 0.7768, "at500_report": 1.5178})
    assert "first 500 of 6,350 steps" in reached and "+0.777 nats" in reached
    assert "stops before the report's first evaluation row" in train_finding(values)


def test_the_performance_finding_leads_with_the_recipes_hours_on_the_fastest_machine():
    slow = {"machine": "slow", "best_tokens_per_s": 1_000.0, "train_MFU_vs_measured_limit": 0.2,
            "train_over_transformers": 1.01, "device": "cpu"}
    fast = {**slow, "machine": "fast", "best_tokens_per_s": 4_000.0,
            "train_MFU_vs_measured_limit": 0.5}
    values = headline_values([slow, fast])
    assert values["perf_recipe_hours"] == 104_038_400 / 4_000 / 3600
    text = performance_finding(values)
    assert "takes 7.2 hours" in text and "50% of the measured matrix limit" in text
    assert "1.01× the training speed" in text
    assert performance_finding(headline_values([])).startswith("No benchmark result")
