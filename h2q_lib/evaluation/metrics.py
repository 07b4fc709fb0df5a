"""Language-modelling metrics on one scale: a summed negative log-likelihood in nats.

Every metric divides the same total ``nll_sum = -sum_i ln p(x_i | x_<i)`` by a different
count (model tokens, characters, UTF-8 bytes, words) and then either exponentiates
(a perplexity) or divides by ln 2 (bits per unit), as lm-evaluation-harness does:

    word_perplexity = exp(nll_sum / words)
    byte_perplexity = exp(nll_sum / bytes)
    bits_per_byte   = nll_sum / (bytes · ln 2)

Two models are comparable only on the same axis (same unit, same text, same count).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from h2q_lib.core.errors import ConfigError

LN2 = math.log(2.0)


def _check_loss(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(name, value, "a finite number >= 0 (nats)")
    x = float(value)
    if not math.isfinite(x) or x < 0:
        raise ConfigError(name, value, "a finite number >= 0 (nats)")
    return x


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
        raise ConfigError(name, value, "a positive integer")
    return int(value)


def safe_exp(x: float) -> float:
    """exp(x), or +inf where it overflows a float (a diverged loss has an infinite PPL)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def perplexity(loss_nats: float) -> float:
    """PPL = exp(loss), ``loss`` the mean negative log-likelihood per unit in nats."""
    return safe_exp(_check_loss("loss_nats", loss_nats))


def bits_per_token(loss_nats: float) -> float:
    """bits/token = loss / ln 2, ``loss`` in nats per token."""
    return _check_loss("loss_nats", loss_nats) / LN2


def token_perplexity(nll_sum: float, n_tokens: int) -> float:
    """PPL_token = exp(nll_sum / n_tokens)."""
    nll = _check_loss("nll_sum", nll_sum)
    return safe_exp(nll / _check_count("n_tokens", n_tokens))


def bits_per_character(nll_sum: float, n_chars: int) -> float:
    """bpc = nll_sum / (n_chars · ln 2)."""
    nll = _check_loss("nll_sum", nll_sum)
    return nll / (_check_count("n_chars", n_chars) * LN2)


def bits_per_byte(nll_sum: float, n_bytes: int) -> float:
    """bpb = nll_sum / (n_bytes · ln 2), ``n_bytes`` the UTF-8 bytes of the scored text."""
    nll = _check_loss("nll_sum", nll_sum)
    return nll / (_check_count("n_bytes", n_bytes) * LN2)


def byte_perplexity(nll_sum: float, n_bytes: int) -> float:
    """PPL_byte = exp(nll_sum / n_bytes) = 2 ** bpb."""
    nll = _check_loss("nll_sum", nll_sum)
    return safe_exp(nll / _check_count("n_bytes", n_bytes))


def loss_for_word_perplexity(target: float, n_tokens: int, n_words: int) -> float:
    """The loss per token whose word perplexity is ``target``: from PPL_word =
    exp(loss · n_tokens / n_words), loss = ln(target) · n_words / n_tokens."""
    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 1):
        raise ValueError(f"target={target!r} is not allowed: a finite perplexity above 1")
    return math.log(target) * _check_count("n_words", n_words) / \
        _check_count("n_tokens", n_tokens)


def word_perplexity(nll_sum: float, n_words: int) -> float:
    """PPL_word = exp(nll_sum / n_words), whatever the model's tokens are.

    With ``n_words`` = whitespace words of the original pages this is lm-evaluation-harness's
    ``word_perplexity``; with WikiText's own word count it is the GPT-2 paper's rescaling.
    """
    nll = _check_loss("nll_sum", nll_sum)
    return safe_exp(nll / _check_count("n_words", n_words))


def summarize(
    nll_sum: float,
    tokens: int,
    characters: int,
    utf8_bytes: int,
    whitespace_words: int,
    wikitext_words: int,
) -> dict[str, float]:
    """All metrics of one evaluation from its summed NLL (nats) and the text's counts.

    bits_per_token = (nll_sum / tokens) / ln 2; the other keys as in their functions;
    ``word_perplexity`` divides by whitespace words (lm-eval), ``wikitext_word_perplexity``
    by WikiText's word count (GPT-2 paper, Merity et al. counts).
    """
    nll = _check_loss("nll_sum", nll_sum)
    return {
        "token_perplexity": token_perplexity(nll, tokens),
        "bits_per_token": bits_per_token(nll / _check_count("tokens", tokens)),
        "bits_per_character": bits_per_character(nll, characters),
        "bits_per_byte": bits_per_byte(nll, utf8_bytes),
        "byte_perplexity": byte_perplexity(nll, utf8_bytes),
        "word_perplexity": word_perplexity(nll, whitespace_words),
        "wikitext_word_perplexity": word_perplexity(nll, wikitext_words),
    }


def convert_token_loss(
    loss_per_token: float, tokens: int, characters: int, utf8_bytes: int, words: int
) -> dict[str, float]:
    """Put a claim that gives only a per-token loss on the other axes.

    nll_sum = loss_per_token · tokens, then the formulas above; ``word_perplexity`` is
    exp(nll_sum / words) for whichever word count ``words`` is.
    """
    loss = _check_loss("loss_per_token", loss_per_token)
    nll = loss * _check_count("tokens", tokens)
    return {
        "nll_sum": nll,
        "token_perplexity": token_perplexity(nll, tokens),
        "bits_per_token": bits_per_token(loss),
        "bits_per_character": bits_per_character(nll, characters),
        "bits_per_byte": bits_per_byte(nll, utf8_bytes),
        "byte_perplexity": byte_perplexity(nll, utf8_bytes),
        "word_perplexity": word_perplexity(nll, words),
    }
