"""Metrics on hand-checkable cases: a uniform model, known counts, a direct product."""

from __future__ import annotations

import math

import numpy as np
import pytest

from h2q_lib.core.errors import ConfigError
from h2q_lib.evaluation import metrics


@pytest.mark.parametrize("vocab", [2, 127, 50_257])
def test_uniform_model_token_metrics(vocab):
    # A uniform model over V symbols pays ln V nats on every token.
    n = 1_000
    nll = n * math.log(vocab)
    assert metrics.token_perplexity(nll, n) == pytest.approx(vocab, rel=1e-12)
    assert metrics.perplexity(math.log(vocab)) == pytest.approx(vocab, rel=1e-12)
    assert metrics.bits_per_token(math.log(vocab)) == pytest.approx(math.log2(vocab), rel=1e-12)


def test_uniform_bytes_give_eight_bits_per_byte():
    # One token per byte, uniform over 256 byte values: 8 bits/byte, byte PPL 256.
    n = 4_096
    nll = n * math.log(256)
    assert metrics.bits_per_byte(nll, n) == pytest.approx(8.0)
    assert metrics.byte_perplexity(nll, n) == pytest.approx(256.0)


def test_bits_per_byte_with_known_tokens_per_byte():
    # 3 tokens covering 12 bytes (4 bytes/token), each token uniform over 256 ids:
    # 3 · 8 bits / 12 bytes = 2 bits/byte, byte PPL 2**2 = 4, per char (1 byte each) the same.
    nll = 3 * math.log(256)
    assert metrics.bits_per_byte(nll, 12) == pytest.approx(2.0)
    assert metrics.byte_perplexity(nll, 12) == pytest.approx(4.0)
    assert metrics.bits_per_character(nll, 12) == pytest.approx(2.0)


def test_word_perplexity_matches_direct_product():
    # Per-token probabilities of a 7-token text of 3 words: PPL_word = (prod p) ** (-1/3).
    p = np.array([0.5, 0.25, 0.1, 0.8, 0.05, 0.3, 0.9])
    nll = float(-np.log(p).sum())
    direct = float(np.prod(p)) ** (-1 / 3)
    assert metrics.word_perplexity(nll, 3) == pytest.approx(direct, rel=1e-12)
    assert metrics.token_perplexity(nll, 7) == pytest.approx(float(np.prod(p)) ** (-1 / 7))


def test_summarize_puts_one_nll_on_every_axis():
    nll = 1_000.0
    out = metrics.summarize(nll, tokens=400, characters=2_000, utf8_bytes=2_500,
                            whitespace_words=300, wikitext_words=350)
    assert set(out) == {
        "token_perplexity", "bits_per_token", "bits_per_character", "bits_per_byte",
        "byte_perplexity", "word_perplexity", "wikitext_word_perplexity",
    }
    assert out["token_perplexity"] == pytest.approx(math.exp(1000 / 400))
    assert out["bits_per_token"] == pytest.approx(1000 / 400 / math.log(2))
    assert out["bits_per_character"] == pytest.approx(1000 / 2000 / math.log(2))
    assert out["bits_per_byte"] == pytest.approx(1000 / 2500 / math.log(2))
    assert out["byte_perplexity"] == pytest.approx(2 ** out["bits_per_byte"])
    assert out["word_perplexity"] == pytest.approx(math.exp(1000 / 300))
    assert out["wikitext_word_perplexity"] == pytest.approx(math.exp(1000 / 350))


def test_convert_token_loss_of_the_report():
    # The report's best loss, 1.0828 nats per character token, on the validation split.
    out = metrics.convert_token_loss(1.0828, tokens=1_120_496, characters=1_120_496,
                                     utf8_bytes=1_120_496, words=217_646)
    assert out["nll_sum"] == pytest.approx(1.0828 * 1_120_496)
    assert out["token_perplexity"] == pytest.approx(math.exp(1.0828))
    assert out["bits_per_token"] == pytest.approx(1.5621, abs=1e-4)
    assert out["bits_per_character"] == pytest.approx(1.5621, abs=1e-4)
    assert out["word_perplexity"] == pytest.approx(math.exp(1.0828 * 1_120_496 / 217_646))
    assert 263 < out["word_perplexity"] < 265


def test_overflowing_perplexity_is_infinite():
    assert metrics.perplexity(1_000.0) == math.inf
    assert metrics.word_perplexity(1e6, 1) == math.inf


@pytest.mark.parametrize("count", [0, -5, 1.5, True, None, "10"])
def test_bad_counts_raise(count):
    with pytest.raises(ConfigError) as err:
        metrics.token_perplexity(1.0, count)
    assert err.value.param == "n_tokens"
    with pytest.raises(ConfigError):
        metrics.summarize(1.0, 10, 10, 10, count, 10)


@pytest.mark.parametrize("loss", [-0.1, math.nan, math.inf, -math.inf, None, True])
def test_bad_losses_raise(loss):
    with pytest.raises(ConfigError) as err:
        metrics.perplexity(loss)
    assert err.value.param == "loss_nats"
    with pytest.raises(ConfigError):
        metrics.bits_per_byte(loss, 10)
    with pytest.raises(ConfigError):
        metrics.convert_token_loss(loss, 10, 10, 10, 2)


def test_numpy_scalars_are_accepted():
    assert metrics.token_perplexity(np.float64(2 * math.log(3)), np.int64(2)) == pytest.approx(3)
    assert metrics.perplexity(0.0) == 1.0


def test_the_loss_for_a_word_perplexity_inverts_the_word_perplexity():
    from h2q_lib.evaluation.metrics import loss_for_word_perplexity, word_perplexity

    loss = loss_for_word_perplexity(37.5, n_tokens=1_000, n_words=200)
    assert loss == pytest.approx(math.log(37.5) * 200 / 1_000)
    assert word_perplexity(loss * 1_000, 200) == pytest.approx(37.5)
    with pytest.raises(ValueError, match="target=0.5"):
        loss_for_word_perplexity(0.5, 1_000, 200)
