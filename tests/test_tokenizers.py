"""Tests for h2q_lib.data.tokenizers: char, word50k and gpt2, with property-based round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from h2q_lib.data import wikitext as data
from h2q_lib.data.tokenizers import (
    CHAR_SPECIALS,
    TOKENIZER_NAMES,
    CharTokenizer,
    GPT2Tokenizer,
    WordTokenizer,
    build_tokenizer,
    encode_stream,
    tokenizer_from_dict,
)

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def valid_text(valid_split: data.Split) -> str:
    return valid_split.text()


@pytest.fixture(scope="module")
def char_tok(valid_text: str) -> CharTokenizer:
    return CharTokenizer.train([valid_text])


@pytest.fixture(scope="module")
def word_tok(valid_split: data.Split) -> WordTokenizer:
    return WordTokenizer.train([data.report_text(valid_split.lines[:400])])


@pytest.fixture(scope="module")
def gpt2_tok() -> GPT2Tokenizer:
    return GPT2Tokenizer()


def _normalize_words(text: str) -> str:
    return "\n".join(" ".join(line.split()) for line in text.split("\n"))


# --- char ----------------------------------------------------------------------------------


def test_char_default_vocab_is_127(char_tok, valid_text):
    assert len(set(valid_text)) > 123  # so the cap is what decides the size
    assert char_tok.vocab_size == 127
    assert len(char_tok.chars) == 123
    assert char_tok.itos[:4] == list(CHAR_SPECIALS) == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert (char_tok.pad_id, char_tok.unk_id, char_tok.bos_id, char_tok.eos_id) == (0, 1, 2, 3)
    assert char_tok.encode("abc").dtype == np.uint8


def test_char_round_trip_in_vocabulary(char_tok, valid_split):
    text = data.report_text(valid_split.lines[:60])
    text = "".join(c for c in text if c in char_tok.chars)
    assert len(text) > 10_000
    ids = char_tok.encode(text)
    assert len(ids) == len(text)
    assert char_tok.unk_id not in ids
    assert char_tok.decode(ids) == text


def test_char_unknown_characters_are_unk_consistently(char_tok):
    unknown = ["\u4e2d", "\U0001f600", "\x00"]
    for c in unknown:
        assert c not in char_tok.chars
    ids = char_tok.encode("a\u4e2db\U0001f600\u4e2d\x00")
    assert ids.tolist() == [
        char_tok.encode("a")[0],
        1,
        char_tok.encode("b")[0],
        1,
        1,
        1,
    ]
    assert char_tok.decode(ids) == "a\ufffdb\ufffd\ufffd\ufffd"
    # specials other than <unk> decode to nothing
    assert char_tok.decode([0, 2, 3]) == ""


def test_char_train_ranks_by_frequency_then_code_point():
    # Counts: z=2, y=2, x=2, w=1, q=3. First seen order is z, y, x, w, q, so a missing
    # tie-break (stable sort) would give q, z, y, x, ...
    tok = CharTokenizer.train(["zzyyxxw", "qqq"], vocab_size=4 + 4)
    assert tok.chars == ["q", "x", "y", "z"]
    assert tok.vocab_size == 8
    assert "w" not in tok.chars and tok.encode("w").tolist() == [tok.unk_id]


def test_char_rejects_bad_inputs():
    with pytest.raises(ValueError):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError):
        CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="vocab_size"):
        CharTokenizer.train(["abc"], vocab_size=4)


@given(st.text(max_size=200))
@PROPERTY
def test_char_property_unknown_is_unk(char_tok, text):
    ids = char_tok.encode(text)
    assert len(ids) == len(text)
    for c, i in zip(text, ids.tolist(), strict=True):
        if c in char_tok.chars:
            assert char_tok.itos[i] == c
        else:
            assert i == char_tok.unk_id
    expected = "".join(c if c in char_tok.chars else "\ufffd" for c in text)
    assert char_tok.decode(ids) == expected


@given(st.data())
@PROPERTY
def test_char_property_round_trip_in_vocabulary(char_tok, drawn):
    chars = drawn.draw(st.lists(st.sampled_from(char_tok.chars), max_size=200))
    text = "".join(chars)
    ids = char_tok.encode(text)
    assert char_tok.unk_id not in ids.tolist()
    assert char_tok.decode(ids) == text


@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=50))
@PROPERTY
def test_char_property_outside_vocab_all_unk(char_tok, text):
    outside = "".join(c for c in text if c not in char_tok.chars)
    assert char_tok.encode(outside).tolist() == [char_tok.unk_id] * len(outside)


# --- word50k -------------------------------------------------------------------------------


def test_word_vocab_is_capped():
    text = " ".join(f"w{i}" for i in range(500)) + "\n" + " ".join(["w7"] * 3 + ["w3"] * 2)
    tok = WordTokenizer.train([text], vocab_size=10)
    assert tok.vocab_size == 10
    assert len(tok.itos) == 10 and len(tok.words) == 8
    assert tok.words[:2] == ["w7", "w3"]
    # ties (count 1) are alphabetical
    assert tok.words[2:] == sorted(f"w{i}" for i in range(500) if i not in (3, 7))[:6]


def test_word_train_ties_alphabetical_and_specials_excluded():
    tok = WordTokenizer.train(["c c b b a <unk> <unk> <unk> <eol>"], vocab_size=100)
    assert tok.words == ["b", "c", "a"]
    assert tok.itos[:2] == ["<unk>", "<eol>"]


def test_word_unknown_words_and_newlines(word_tok):
    known = word_tok.words[:3]
    text = f"{known[0]} zzqqxx {known[1]}\n{known[2]} zzqqxx\n\n"
    ids = word_tok.encode(text).tolist()
    assert ids == [
        word_tok.stoi[known[0]],
        word_tok.unk_id,
        word_tok.stoi[known[1]],
        word_tok.eol_id,
        word_tok.stoi[known[2]],
        word_tok.unk_id,
        word_tok.eol_id,
        word_tok.eol_id,
    ]
    assert (word_tok.unk_id, word_tok.eol_id) == (0, 1)
    assert word_tok.decode(ids) == f"{known[0]} <unk> {known[1]}\n{known[2]} <unk>\n\n"


def test_word_round_trip_of_normalized_text(valid_split):
    text = data.report_text(valid_split.lines)
    tok = WordTokenizer.train([text])
    assert len(tok.words) == len(set(text.split())) < 50_000  # nothing was cut
    norm = _normalize_words(text)
    ids = tok.encode(norm)
    assert tok.unk_id not in ids.tolist()
    assert ids.tolist().count(tok.eol_id) == norm.count("\n")
    assert tok.decode(ids) == norm
    # Extra spaces are normalized away.
    messy = "  " + norm[:500].replace(" ", "   ") + " "
    assert tok.decode(tok.encode(messy)) == _normalize_words(messy)


WORD_CHARS = st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc"))


@given(st.data())
@PROPERTY
def test_word_property_round_trip(word_tok, drawn):
    words = drawn.draw(st.lists(st.sampled_from(word_tok.words), max_size=60))
    seps = drawn.draw(
        st.lists(st.sampled_from([" ", "\n"]), min_size=len(words), max_size=len(words))
    )
    text = "".join(w + s for w, s in zip(words, seps, strict=True))[:-1]
    ids = word_tok.encode(text)
    assert word_tok.unk_id not in ids.tolist()
    assert word_tok.decode(ids) == text


@given(st.lists(st.text(WORD_CHARS, min_size=1, max_size=12), min_size=1, max_size=20))
@PROPERTY
def test_word_property_oov_is_unk(word_tok, candidates):
    oov = [w for w in candidates if w.split() == [w] and w not in word_tok.stoi]
    text = " ".join(oov + oov[::-1])
    ids = word_tok.encode(text).tolist()
    assert ids == [word_tok.unk_id] * (2 * len(oov))
    for w in oov:
        assert word_tok.encode(w).tolist() == [word_tok.unk_id]


# --- gpt2 ----------------------------------------------------------------------------------


def test_gpt2_known_ids(gpt2_tok):
    assert gpt2_tok.encode("Hello world").tolist() == [15496, 995]
    assert gpt2_tok.encode("Hello world").dtype == np.uint16
    assert gpt2_tok.vocab_size == 50_257
    assert gpt2_tok.bos_id == gpt2_tok.eos_id == 50_256
    assert gpt2_tok.decode([50_256]) == "<|endoftext|>"
    # encode() is ordinary text: the special's spelling is not the special id.
    assert 50_256 not in gpt2_tok.encode("<|endoftext|>").tolist()
    assert encode_stream(gpt2_tok, "Hello world").tolist() == [50_256, 15496, 995, 50_256]


def test_gpt2_encode_batch_equals_encode(gpt2_tok, valid_split):
    texts = valid_split.lines[:80] + ["", "Hello world", "ünïcödé 😀"]
    batch = gpt2_tok.encode_batch(texts, num_threads=2)
    assert len(batch) == len(texts)
    for text, ids in zip(texts, batch, strict=True):
        assert ids.dtype == np.uint16
        assert ids.tolist() == gpt2_tok.encode(text).tolist()


@given(st.text(max_size=200))
@PROPERTY
def test_gpt2_property_round_trip(gpt2_tok, text):
    assert gpt2_tok.decode(gpt2_tok.encode(text)) == text


# --- serialization and construction --------------------------------------------------------


@pytest.mark.parametrize("which", ["char", "word50k", "gpt2"])
def test_to_dict_round_trip(which, char_tok, word_tok, gpt2_tok):
    tok = {"char": char_tok, "word50k": word_tok, "gpt2": gpt2_tok}[which]
    saved = json.loads(json.dumps(tok.to_dict()))
    back = tokenizer_from_dict(saved)
    assert type(back) is type(tok)
    assert back.name == tok.name == which
    assert back.vocab_size == tok.vocab_size
    assert back.fingerprint() == tok.fingerprint()
    sample = "The lobster , H. americanus ; ünïcödé\nsecond line"
    assert back.encode(sample).tolist() == tok.encode(sample).tolist()


def test_fingerprint_changes_with_vocabulary(char_tok, word_tok):
    assert CharTokenizer(char_tok.chars[::-1]).fingerprint() != char_tok.fingerprint()
    assert WordTokenizer(word_tok.words[:-1]).fingerprint() != word_tok.fingerprint()


def test_tokenizer_from_dict_unknown_name():
    with pytest.raises(ValueError, match="tokenizer"):
        tokenizer_from_dict({"name": "bpe"})


def test_build_tokenizer(valid_text):
    assert TOKENIZER_NAMES == ("char", "word50k", "gpt2")
    char = build_tokenizer("char", [valid_text])
    assert isinstance(char, CharTokenizer) and char.vocab_size == 127
    word = build_tokenizer("word50k", ["a b b"])
    assert isinstance(word, WordTokenizer) and word.words == ["b", "a"]
    assert isinstance(build_tokenizer("gpt2"), GPT2Tokenizer)
    with pytest.raises(ValueError, match="training text"):
        build_tokenizer("char")


def test_build_tokenizer_unknown_name():
    # build_tokenizer raises a plain ValueError (not errors.ConfigError); check the message.
    with pytest.raises(ValueError) as info:
        build_tokenizer("nope")
    msg = str(info.value)
    assert "tokenizer='nope'" in msg
    for name in ("char", "word50k", "gpt2"):
        assert name in msg
