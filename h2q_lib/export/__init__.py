"""A run's weights as a Hugging Face GPT-2 folder with its tokenizer and a model card whose
scores come from the run's ``evaluation.json``."""
