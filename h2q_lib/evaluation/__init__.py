"""Scoring models on WikiText: per-document NLL and its metrics, a checkpoint's stored scores
(``evaluation.json``), the lm-evaluation-harness adapter, and the GPT-2 comparison."""
