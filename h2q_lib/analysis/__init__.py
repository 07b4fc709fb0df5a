"""What the measurements say about the report: the audit of its numbers, its rows against
runs, loss curves and the schedule clock, pre-registered runs and the tokenizer experiment."""
