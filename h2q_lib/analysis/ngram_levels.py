"""The loss levels of the simplest character models, for scale: what a model scores that knows
only how often each character occurs (unigram), or only which character follows which
(bigram). A run's validation loss on a plateau is read against them.

Both are cross-entropies in nats per character: counted on the training text, scored on the
validation text, with add-k smoothing so that a pair the training text lacks costs a finite
amount.
"""

from __future__ import annotations

import numpy as np

# Add-k smoothing: small, so that the levels are those of the counts themselves; the bigram
# level moves by under 0.01 nats between k = 0.001 and k = 0.1 on WikiText.
SMOOTHING = 0.01


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def ngram_levels(train: str, valid: str, smoothing: float = SMOOTHING) -> dict[str, float]:
    """Unigram and bigram cross-entropy of ``valid`` under counts from ``train``.

    With V the characters of both texts, c(·) counts in ``train``, N = len(train), k the
    smoothing and x₁…x_M the validation characters:

        unigram = −(1/M) Σᵢ ln[(c(xᵢ) + k) / (N + kV)]
        bigram  = −(1/(M−1)) Σᵢ ln[(c(xᵢ₋₁xᵢ) + k) / (c(xᵢ₋₁) + kV)]

    (the bigram's context count is the character's count in the whole text, which differs
    from its count as a first character by at most one).
    """
    if len(train) < 2 or len(valid) < 2:
        raise ValueError("train and valid need at least 2 characters each")
    codes = np.concatenate([_codes(train), _codes(valid)])
    # compact ids by a lookup table over code points (linear, where np.unique sorts)
    present = np.flatnonzero(np.bincount(codes))
    lookup = np.zeros(int(present[-1]) + 1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    ids, size = lookup[codes], len(present)
    tr, va = ids[:len(train)], ids[len(train):]
    uni = np.bincount(tr, minlength=size).astype(np.float64)
    pairs = np.bincount(tr[:-1] * size + tr[1:], minlength=size * size).astype(np.float64)
    unigram = -np.mean(np.log((uni[va] + smoothing) / (len(tr) + smoothing * size)))
    bigram = -np.mean(np.log((pairs[va[:-1] * size + va[1:]] + smoothing)
                             / (uni[va[:-1]] + smoothing * size)))
    return {"unigram": float(unigram), "bigram": float(bigram)}


def recipe_levels(profile: str, data_dir: str | None = None) -> dict[str, float]:
    """``ngram_levels`` for ``profile``'s recipe: its training text against the validation
    text its runs log their loss on, both as the report preprocessed them (``report_text``)."""
    from h2q_lib.data.wikitext import load_split, report_text
    from h2q_lib.training.profiles import get_profile

    cfg = get_profile(profile)
    return ngram_levels(report_text(load_split("train", cfg.train_data, data_dir).lines),
                        report_text(load_split("validation", cfg.data_config,
                                               data_dir).lines))
