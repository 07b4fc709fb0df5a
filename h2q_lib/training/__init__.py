"""Training a run: the recipe and its profiles, the readings of the report's schedule, the
hardware and precision rule, checkpoints, and the trainer that writes a run folder (its
modules in the order a run uses them: ARCHITECTURE.md)."""
