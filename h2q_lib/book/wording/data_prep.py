"""The sentences of the data chapter (``notebooks/01_data_prep.ipynb``), filled with the values
that ``book.data_tables`` computed."""

from __future__ import annotations


def peak_memory_sentence(peak_mb: float) -> str:
    """The peak Python memory while the run's token caches were encoded
    (``prepare_run_data``), in MB."""
    return f"peak Python memory while encoding: {peak_mb:.0f} MB"
