"""How fast the recipe runs and against what limit: the benchmark and its measurements, step
profiles, transformers' GPT-2 as a peer, and the performance chapter's tables, targets and
recipe times (its sentences are in ``book.wording.performance``)."""
