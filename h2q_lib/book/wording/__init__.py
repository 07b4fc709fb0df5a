"""The book's sentences, one module per chapter: templates filled with values that the
analysis computed, so that a change of wording touches no computation."""
