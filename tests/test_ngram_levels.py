"""The unigram and bigram levels, against their formulas computed by hand and by counting."""

from __future__ import annotations

import collections
import itertools
import math
import random

import pytest

from h2q_lib.analysis.ngram_levels import ngram_levels


def test_the_levels_follow_their_formulas_on_a_text_small_enough_to_count_by_hand():
    k = 0.01
    levels = ngram_levels("abab", "ab", smoothing=k)
    assert levels["unigram"] == pytest.approx(math.log(2))  # a and b equally often
    # "ab" occurs twice after the 2 a's: (2 + k) / (2 + 2k)
    assert levels["bigram"] == pytest.approx(-math.log((2 + k) / (2 + 2 * k)))


def test_the_levels_agree_with_plain_counting_and_price_an_unseen_character():
    rng = random.Random(0)
    train = "".join(rng.choice("abcde é\n") for _ in range(5000))
    valid = "".join(rng.choice("abcdeé\nz") for _ in range(800))  # z: not in train
    k = 0.05
    vocab = len(set(train) | set(valid))
    uni, pairs = collections.Counter(train), collections.Counter(itertools.pairwise(train))
    unigram = -sum(math.log((uni[c] + k) / (len(train) + k * vocab)) for c in valid) / len(valid)
    bigram = -sum(math.log((pairs[a, b] + k) / (uni[a] + k * vocab))
                  for a, b in itertools.pairwise(valid)) / (len(valid) - 1)
    levels = ngram_levels(train, valid, smoothing=k)
    assert levels == pytest.approx({"unigram": unigram, "bigram": bigram})
    assert math.isfinite(levels["bigram"]) and levels["bigram"] < levels["unigram"] + 1


def test_texts_too_short_for_a_pair_are_refused():
    with pytest.raises(ValueError, match="at least 2 characters"):
        ngram_levels("a", "ab")


def test_the_levels_sentence_names_both_levels():
    from h2q_lib.book.wording.runs_tried import levels_sentence

    text = levels_sentence({"unigram": 3.1728, "bigram": 2.4746})
    assert "scores 3.17 nats per character" in text and "character 2.47 (the bigram" in text
