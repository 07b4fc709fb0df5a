"""How fast the recipe runs and against what limit: the benchmark, step profiles,
transformers' GPT-2 as a peer, and the performance chapter's targets and readings."""
