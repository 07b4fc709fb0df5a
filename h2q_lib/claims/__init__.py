"""What others state, transcribed once as data: the completion report's numbers and recipe,
and the published GPT-2 baselines with their sources."""
