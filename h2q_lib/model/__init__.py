"""The networks: the report's GPT (read top to bottom in ``gpt.py``) and OpenAI's GPT-2 loaded
through transformers for the baselines."""
