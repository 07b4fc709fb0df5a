"""Tests for h2q_lib.data.wikitext: loading, the report's preprocessing, statistics and
token caches.

The numbers checked against the local files are the ones documented in
``shared/data/wikitext/SOURCES.md`` (line counts, byte sizes, sha256, published word counts)
and the report's 1,120,496 validation tokens.
"""

from __future__ import annotations

import dataclasses
import re
import tracemalloc
from pathlib import Path

import datasets
import numpy as np
import pytest

from h2q_lib.core import offline_hub as hub
from h2q_lib.core.errors import ConfigError, DataUnavailableError
from h2q_lib.data import token_cache
from h2q_lib.data import wikitext as data
from h2q_lib.data.tokenizers import CharTokenizer, GPT2Tokenizer, encode_stream, smallest_uint_dtype

VALID_SHA256 = "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7"
TEST_SHA256 = "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"
REPORT_VALID_TOKENS = 1_120_496
MB = 1_000_000


def _is_article_heading(line: str) -> bool:
    """`` = Title = `` but not `` = = Section = = `` (written independently of data.HEADING)."""
    return line.startswith(" = ") and not line.startswith(" = =") and line.endswith(" = ")


@pytest.fixture(scope="module")
def char_tok(valid_split: data.Split) -> CharTokenizer:
    return CharTokenizer.train([valid_split.text()])


@pytest.fixture(scope="module")
def gpt2_tok() -> GPT2Tokenizer:
    return GPT2Tokenizer()


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reaches datasets.load_dataset."""

    def forbidden(*args, **kwargs):
        raise AssertionError(f"datasets.load_dataset must not be called here: {args} {kwargs}")

    monkeypatch.setattr(datasets, "load_dataset", forbidden)


def _write_lines(path: Path, lines: list[str], trailing_newline: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""), encoding="utf-8")


# --- the local folder -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "lines", "words", "sha256", "file"),
    [
        ("validation", 3_760, 217_646, VALID_SHA256, "wiki.valid.raw"),
        ("test", 4_358, 245_569, TEST_SHA256, "wiki.test.raw"),
    ],
)
def test_raw_103_valid_test_resolve_to_wikitext2_files(
    data_dir, no_hub, split, lines, words, sha256, file
):
    s = data.load_split(split, config="wikitext-103-raw-v1", data_dir=data_dir)
    assert s.name == split and s.config == "wikitext-103-raw-v1"
    # WikiText-103 raw valid/test *are* the WikiText-2 raw files (the documented identity).
    assert s.origin == f"wikitext-2-raw-v1/{file}"
    assert s.is_slice is False
    assert len(s.lines) == lines
    assert data.wikitext_words(s.lines) == words
    # Split.text() rebuilds the file byte for byte.
    assert s.sha256() == sha256
    assert s.text().encode("utf-8") == (data_dir / "wikitext-2-raw-v1" / file).read_bytes()


def test_default_config_is_raw_103_and_data_dir_may_be_a_string(data_dir, valid_split):
    s = data.load_split("validation", data_dir=str(data_dir), source="local")
    assert s.config == "wikitext-103-raw-v1"
    assert s.lines == valid_split.lines


def test_valid_split_first_text_line(valid_split):
    assert valid_split.lines[0] == " "
    assert valid_split.lines[1] == " = Homarus gammarus = "


def test_tokenized_103_train_is_the_head_slice(data_dir):
    s = data.load_split("train", config="wikitext-103-v1", data_dir=data_dir)
    assert s.is_slice is True
    assert s.origin == "wikitext-103-v1/wiki.train.tokens.head"
    assert len(s.lines) == 9_742
    assert s.lines[1] == " = Valkyria Chronicles III = "


def test_raw_2_train_is_the_head_slice(data_dir):
    s = data.load_split("train", config="wikitext-2-raw-v1", data_dir=data_dir)
    assert s.is_slice is True
    assert s.origin == "wikitext-2-raw-v1/wiki.train.raw.head"
    assert len(s.lines) == 1_000


def test_raw_103_train_is_unavailable_and_names_the_files(data_dir, no_hub):
    with pytest.raises(DataUnavailableError) as info:
        data.load_split("train", config="wikitext-103-raw-v1", data_dir=data_dir)
    msg = str(info.value)
    assert "wikitext-103-raw-v1/wiki.train.raw" in msg
    assert "wikitext-103-raw-v1/wiki.train.raw.head" in msg
    # train is NOT borrowed from WikiText-2 (the training sets differ).
    assert "wikitext-2-raw-v1/" not in msg
    assert "H2Q_DATA_DIR" in msg and "source='hf'" in msg
    assert isinstance(info.value, FileNotFoundError)


TINY = [
    " ",
    " = Tiny Article = ",
    " ",
    " Hello world , ünïcödé — 😀 . ",
    " ",
    " = = Part = = ",
    " x ",
]


def test_tiny_folder_returns_exactly_its_lines(tmp_path, no_hub):
    _write_lines(tmp_path / "wikitext-2-raw-v1" / "wiki.valid.raw", TINY)
    s = data.load_split("validation", config="wikitext-2-raw-v1", data_dir=tmp_path)
    assert s.lines == TINY
    assert s.origin == "wikitext-2-raw-v1/wiki.valid.raw"
    assert s.is_slice is False
    assert s.text() == "\n".join(TINY) + "\n"


def test_tiny_folder_without_final_newline_and_with_empty_last_line(tmp_path):
    _write_lines(tmp_path / "wikitext-2-v1" / "wiki.test.tokens", ["a", "b"], False)
    assert data.load_split("test", "wikitext-2-v1", tmp_path).lines == ["a", "b"]
    _write_lines(tmp_path / "wikitext-2-v1" / "wiki.valid.tokens", ["a", ""])
    assert data.load_split("validation", "wikitext-2-v1", tmp_path).lines == ["a", ""]


def test_tiny_folder_raw_103_valid_falls_back_to_raw_2(tmp_path):
    _write_lines(tmp_path / "wikitext-2-raw-v1" / "wiki.test.raw", ["two"])
    s = data.load_split("test", "wikitext-103-raw-v1", tmp_path)
    assert s.lines == ["two"] and s.origin == "wikitext-2-raw-v1/wiki.test.raw"
    # ... but the config's own folder wins when it has the file.
    _write_lines(tmp_path / "wikitext-103-raw-v1" / "wiki.test.raw", ["own"])
    s = data.load_split("test", "wikitext-103-raw-v1", tmp_path)
    assert s.lines == ["own"] and s.origin == "wikitext-103-raw-v1/wiki.test.raw"


def test_tiny_folder_full_file_preferred_over_head(tmp_path):
    folder = tmp_path / "wikitext-2-v1"
    _write_lines(folder / "wiki.train.tokens.head", ["head"])
    s = data.load_split("train", "wikitext-2-v1", tmp_path)
    assert (s.lines, s.is_slice) == (["head"], True)
    _write_lines(folder / "wiki.train.tokens", ["full", "file"])
    s = data.load_split("train", "wikitext-2-v1", tmp_path)
    assert (s.lines, s.is_slice) == (["full", "file"], False)


def test_env_var_is_used_when_no_data_dir(tmp_path, monkeypatch, no_hub):
    _write_lines(tmp_path / "wikitext-2-raw-v1" / "wiki.valid.raw", TINY)
    monkeypatch.setenv("H2Q_DATA_DIR", str(tmp_path))
    assert data.load_split("validation", "wikitext-2-raw-v1").lines == TINY
    # An explicit data_dir beats the variable.
    other = tmp_path / "other"
    _write_lines(other / "wikitext-2-raw-v1" / "wiki.valid.raw", ["other"])
    assert data.load_split("validation", "wikitext-2-raw-v1", data_dir=other).lines == ["other"]


def test_data_dir_that_is_not_a_folder(tmp_path, no_hub):
    with pytest.raises(DataUnavailableError, match="data_dir"):
        data.load_split("validation", data_dir=tmp_path / "missing")


def test_source_local_without_folder(monkeypatch, no_hub):
    monkeypatch.delenv("H2Q_DATA_DIR", raising=False)
    with pytest.raises(DataUnavailableError, match="H2Q_DATA_DIR"):
        data.load_split("validation", source="local")


@pytest.mark.parametrize(
    ("kwargs", "param", "value", "allowed"),
    [
        ({"split": "valid"}, "split", "valid", data.SPLITS),
        ({"split": "test", "config": "wikitext-3"}, "config", "wikitext-3", data.CONFIGS),
        ({"split": "test", "source": "s3"}, "source", "s3", data.SOURCES),
    ],
)
def test_bad_choices_raise_config_error(tmp_path, no_hub, kwargs, param, value, allowed):
    with pytest.raises(ConfigError) as info:
        data.load_split(data_dir=tmp_path, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.param, err.value) == (param, value)
    msg = str(err)
    assert msg.startswith(f"{param}={value!r}")
    for choice in allowed:
        assert choice in msg


def test_allowed_values_are_the_documented_ones():
    assert data.SPLITS == ("train", "validation", "test")
    assert set(data.CONFIGS) == {
        "wikitext-103-raw-v1",
        "wikitext-103-v1",
        "wikitext-2-raw-v1",
        "wikitext-2-v1",
    }
    assert data.SOURCES == ("auto", "hf", "local")


# --- the Hugging Face path (faked) ------------------------------------------------------------


class FakeLoadDataset:
    def __init__(self, rows: list[str]):
        self.rows = rows
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return datasets.Dataset.from_dict({"text": list(self.rows)})


def test_hf_source_calls_load_dataset_and_normalizes_rows(monkeypatch, tmp_path):
    fake = FakeLoadDataset(["", " = T = \n", "", " a b \n", ""])
    monkeypatch.setattr(data, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    # source="hf" goes to the hub even when a local folder is given.
    s = data.load_split("test", config="wikitext-2-v1", data_dir=tmp_path, source="hf")
    assert fake.calls == [(("Salesforce/wikitext", "wikitext-2-v1"), {"split": "test"})]
    assert s.lines == [" ", " = T = ", " ", " a b ", " "]
    assert (s.name, s.config, s.origin, s.is_slice) == (
        "test",
        "wikitext-2-v1",
        "hf:Salesforce/wikitext",
        False,
    )


def test_hf_rows_rebuild_the_local_file(monkeypatch, valid_split):
    """HF rows (``line + "\\n"``, empty rows ``""``) normalize to the file's own lines."""
    lines = valid_split.lines[:200]
    rows = ["" if line == " " else line + "\n" for line in lines]
    assert "" in rows  # the case that matters is present
    fake = FakeLoadDataset(rows)
    monkeypatch.delenv("H2Q_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    s = data.load_split("validation")  # source="auto" with no folder -> the hub
    assert fake.calls == [(("Salesforce/wikitext", "wikitext-103-raw-v1"), {"split": "validation"})]
    assert s.lines == lines
    assert data.rows_to_lines(rows) == lines


def test_rows_to_lines_cases():
    assert data.rows_to_lines(["", " = T = \n", " a b \n", "\n", "last"]) == [
        " ",
        " = T = ",
        " a b ",
        "",
        "last",
    ]
    assert data.rows_to_lines([]) == []


# --- no data at all ------------------------------------------------------------------------


def _assert_no_data_message(msg: str) -> None:
    assert "H2Q_DATA_DIR" in msg
    assert "data_dir" in msg
    assert "Hugging Face hub" in msg


def _no_connection(*a, **k):
    raise AssertionError("offline: no connection may be tried (failing fast means not waiting)")


def test_offline_without_folder_fails_fast_with_a_useful_message(monkeypatch, no_hub):
    monkeypatch.delenv("H2Q_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub.socket, "create_connection", _no_connection)
    with pytest.raises(DataUnavailableError) as info:
        data.load_split("validation")
    _assert_no_data_message(str(info.value))


def test_unreachable_hub_without_folder(monkeypatch, no_hub):
    monkeypatch.delenv("H2Q_DATA_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(data, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(DataUnavailableError) as info:
        data.load_split("test", config="wikitext-2-v1")
    _assert_no_data_message(str(info.value))
    assert "wiki.test." in str(info.value)


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_hub_reachable_respects_offline_variables(monkeypatch, var):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)

    def no_network(*a, **k):
        raise AssertionError("an offline variable is set: no connection may be tried")

    monkeypatch.setattr(hub.socket, "create_connection", no_network)
    monkeypatch.setenv(var, "1")
    assert hub.hub_reachable() is False


@pytest.mark.parametrize("value, offline", [("0", False), ("false", False), ("", False),
                                            ("1", True), ("yes", True), ("TRUE", True)])
def test_offline_variables_are_parsed_one_way(monkeypatch, value, offline):
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub.offline_by_environment() is offline


def test_hub_probe_answers_from_the_connection(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)

    def refused(*a, **k):
        raise OSError("unreachable")

    monkeypatch.setattr(hub.socket, "create_connection", refused)
    assert hub.hub_reachable() is False
    monkeypatch.setattr(hub.socket, "create_connection",
                        lambda *a, **k: __import__("contextlib").nullcontext())
    assert hub.hub_reachable() is True


# --- the report's preprocessing ------------------------------------------------------------


def test_report_text_gives_the_reports_token_count(valid_split, char_tok):
    text = data.report_text(valid_split.lines)
    ids = encode_stream(char_tok, text)
    assert len(ids) == REPORT_VALID_TOKENS
    assert ids[0] == char_tok.bos_id and ids[-1] == char_tok.eos_id


def test_report_lines_drops_headings_and_empty_lines():
    lines = [" ", " = Title = ", "", " first line . ", " = = Section = = ", "\t", " second "]
    assert data.report_lines(lines) == ["first line .", "second"]
    assert data.report_text(lines) == "first line .\nsecond"
    assert data.report_text([" ", " = T = "]) == ""


def test_report_lines_on_validation(valid_split):
    kept = data.report_lines(valid_split.lines)
    assert all(k and k == k.strip() and not k.startswith("=") for k in kept)
    non_empty = [line for line in valid_split.lines if line.strip()]
    headings = [line for line in non_empty if line.strip().startswith("=")]
    assert sum(_is_article_heading(h) for h in headings) == 60
    assert len(headings) > 60  # section headings are dropped too
    assert len(kept) == len(non_empty) - len(headings)


# --- documents -----------------------------------------------------------------------------


def test_documents_of_validation(valid_split):
    docs = data.documents(valid_split.lines)
    headings = [line for line in valid_split.lines if _is_article_heading(line)]
    assert len(headings) == 60
    assert len(docs) == 60
    assert [doc.split("\n", 1)[0] for doc in docs] == headings
    # wikitext_document_level's pages: joined by "\n" they are the file without its leading
    # " \n"; only the last page ends with a newline
    assert " \n" + "\n".join(docs) == valid_split.text()
    assert docs[-1].endswith("\n") and not any(doc.endswith("\n") for doc in docs[:-1])


def test_documents_small_case():
    lines = [" ", " = A = ", " ", " a1 ", " = = Sec = = ", " a2 ", " ", " = B = ", " ", " b ",
             " = 1 rad / s = ", " b2 "]
    # every title-like line starts a page, even inside a paragraph (as lm-eval's data does);
    # the leading blank line is dropped, the last page keeps the file's final newline
    assert data.article_starts(lines) == [1, 7, 10]
    assert data.documents(lines) == [
        " = A = \n \n a1 \n = = Sec = = \n a2 \n ",
        " = B = \n \n b ",
        " = 1 rad / s = \n b2 \n",
    ]
    assert data.report_documents(lines) == ["a1\na2", "b", "b2"]
    # text before the first title, when not blank, is a page of its own
    assert data.documents([" intro ", " = A = ", " = B = ", " "]) == [
        " intro ", " = A = ", " = B = \n \n"]


# --- statistics ----------------------------------------------------------------------------


def test_corpus_stats_on_validation(data_dir, valid_split, char_tok):
    stats = data.corpus_stats(valid_split, [char_tok])
    path = data_dir / "wikitext-2-raw-v1" / "wiki.valid.raw"
    assert stats["utf8_bytes"] == 1_146_846 == path.stat().st_size
    assert stats["characters"] == len(path.read_text(encoding="utf-8")) == 1_144_748
    assert stats["wikitext_words"] == 217_646
    assert stats["pages"] == 60
    assert stats["lines"] == 3_760
    assert stats["tokens_char"] == REPORT_VALID_TOKENS
    assert stats["report_text_characters"] == REPORT_VALID_TOKENS - 2
    assert stats["is_slice"] is False
    assert stats["tokens_per_byte_char"] == pytest.approx(
        REPORT_VALID_TOKENS / len(data.report_text(valid_split.lines).encode("utf-8"))
    )


def test_wikitext_words_counts_one_eol_per_line():
    assert data.wikitext_words([" a b ", " ", "c"]) == 3 + 1 + 2
    assert data.whitespace_words("a  b\nc") == 3


# --- token caches --------------------------------------------------------------------------


def test_cache_builds_then_reuses(tmp_path, valid_split, char_tok):
    first = token_cache.cached_tokens(valid_split, char_tok, tmp_path)
    assert first.rebuilt is True
    assert first.tokens.dtype == np.uint8 and first.meta["dtype"] == "uint8"
    assert len(first.tokens) == first.meta["num_tokens"] == REPORT_VALID_TOKENS
    expected = encode_stream(char_tok, data.report_text(valid_split.lines))
    assert np.array_equal(first.tokens, expected)
    second = token_cache.cached_tokens(valid_split, char_tok, tmp_path)
    assert second.rebuilt is False
    assert np.array_equal(second.tokens, first.tokens)
    assert second.meta == first.meta


def test_cache_rebuilt_when_source_text_changes(tmp_path, valid_split, char_tok):
    small = dataclasses.replace(valid_split, lines=valid_split.lines[:300])
    before = np.array(token_cache.cached_tokens(small, char_tok, tmp_path).tokens)
    lines = list(small.lines)
    lines[3] = lines[3].replace("lobster", "crab", 1)
    assert lines[3] != small.lines[3]
    changed = dataclasses.replace(small, lines=lines)
    after = token_cache.cached_tokens(changed, char_tok, tmp_path)
    assert after.rebuilt is True
    assert not np.array_equal(after.tokens, before)
    assert np.array_equal(after.tokens, encode_stream(char_tok, data.report_text(lines)))
    assert token_cache.cached_tokens(changed, char_tok, tmp_path).rebuilt is False


def test_cache_rebuilt_when_tokenizer_changes(tmp_path, valid_split, char_tok):
    small = dataclasses.replace(valid_split, lines=valid_split.lines[:300])
    assert token_cache.cached_tokens(small, char_tok, tmp_path).rebuilt is True
    swapped = list(char_tok.chars)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    other = CharTokenizer(swapped)
    assert other.name == char_tok.name and other.fingerprint() != char_tok.fingerprint()
    again = token_cache.cached_tokens(small, other, tmp_path)
    assert again.rebuilt is True
    assert np.array_equal(again.tokens, encode_stream(other, data.report_text(small.lines)))
    # ... and back again.
    assert token_cache.cached_tokens(small, char_tok, tmp_path).rebuilt is True


def test_cache_rebuilt_when_token_file_is_corrupted(tmp_path, valid_split, char_tok):
    small = dataclasses.replace(valid_split, lines=valid_split.lines[:300])
    built = token_cache.cached_tokens(small, char_tok, tmp_path)
    bin_path = tmp_path / f"{small.config}.{small.name}.char.bin"
    assert bin_path.is_file()
    del built
    raw = bytearray(bin_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bin_path.write_bytes(bytes(raw))
    fixed = token_cache.cached_tokens(small, char_tok, tmp_path)
    assert fixed.rebuilt is True
    assert np.array_equal(fixed.tokens, encode_stream(char_tok, data.report_text(small.lines)))
    assert token_cache.cached_tokens(small, char_tok, tmp_path).rebuilt is False


def test_cache_rebuilt_when_metadata_is_unreadable(tmp_path, valid_split, char_tok):
    small = dataclasses.replace(valid_split, lines=valid_split.lines[:100])
    token_cache.cached_tokens(small, char_tok, tmp_path)
    (tmp_path / f"{small.config}.{small.name}.char.json").write_text("{not json")
    assert token_cache.cached_tokens(small, char_tok, tmp_path).rebuilt is True


def test_gpt2_cache_is_uint16(tmp_path, valid_split, gpt2_tok):
    small = dataclasses.replace(valid_split, lines=valid_split.lines[:300])
    cache = token_cache.cached_tokens(small, gpt2_tok, tmp_path)
    assert cache.tokens.dtype == np.uint16 and cache.meta["dtype"] == "uint16"
    assert np.array_equal(cache.tokens, encode_stream(gpt2_tok, data.report_text(small.lines)))
    assert token_cache.cached_tokens(small, gpt2_tok, tmp_path).rebuilt is False


@pytest.mark.parametrize("which", ["char", "gpt2"])
def test_chunked_encoding_equals_whole_text(tmp_path, valid_split, char_tok, gpt2_tok, which):
    tok = char_tok if which == "char" else gpt2_tok
    lines = valid_split.lines[:300]
    path = tmp_path / "tokens.bin"
    n = token_cache.encode_to_file(tok, lines, path, chunk_chars=1000)
    dtype = np.uint8 if which == "char" else np.uint16
    written = np.fromfile(path, dtype=dtype)
    whole = encode_stream(tok, "\n".join(lines))
    assert whole.dtype == dtype
    assert n == len(written) == len(whole)
    assert np.array_equal(written, whole)
    # The report's lines too (what cached_tokens encodes).
    kept = data.report_lines(lines)
    token_cache.encode_to_file(tok, kept, path, chunk_chars=1000)
    assert np.array_equal(np.fromfile(path, dtype=dtype), encode_stream(tok, "\n".join(kept)))


def test_chunked_gpt2_across_consecutive_empty_lines(tmp_path, gpt2_tok):
    lines = ["a", "", "", "b"]
    path = tmp_path / "tokens.bin"
    token_cache.encode_to_file(gpt2_tok, lines, path, chunk_chars=1)
    whole = encode_stream(gpt2_tok, "\n".join(lines))  # [eot, a, '\n\n', '\n', b, eot]
    assert np.fromfile(path, dtype=np.uint16).tolist() == whole.tolist()


@pytest.mark.parametrize("which", ["char", "gpt2"])
def test_chunked_encoding_has_bounded_memory(tmp_path, data_dir, gpt2_tok, which):
    train = data.load_split("train", config="wikitext-103-v1", data_dir=data_dir)
    text_chars = sum(len(line) + 1 for line in train.lines)
    assert text_chars > 2_500_000
    tok = CharTokenizer.train(train.lines[:2000]) if which == "char" else gpt2_tok
    path = tmp_path / "tokens.bin"
    tracemalloc.start()
    try:
        n = token_cache.encode_to_file(tok, train.lines, path, chunk_chars=100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == path.stat().st_size // np.dtype(smallest_uint_dtype(tok.vocab_size)).itemsize
    assert peak < 50 * MB
    # Stricter, so that ignoring chunk_chars would fail: encoding the whole text at once
    # peaks at about 24 MB (char) / 38 MB (gpt2) here, and a Python list of the ids alone
    # would take 8 bytes a token (23 MB for char).
    assert peak < 6 * MB


def test_dtype_choice():
    assert smallest_uint_dtype(127) == np.uint8
    assert smallest_uint_dtype(256) == np.uint8
    assert smallest_uint_dtype(257) == np.uint16
    assert smallest_uint_dtype(50_257) == np.uint16


def test_heading_pattern_matches_only_article_titles():
    assert re.fullmatch(data.HEADING, data.title_key(" = Homarus gammarus = "))
    assert data.is_article_title(" = Homarus gammarus = ")
    for line in (" = = Description = = ", " = = = Diet = = = ", " Homarus = gammarus ", " ",
                 " = = = = Deep = = = = "):
        assert not data.is_article_title(line), line
    assert data.is_article_title(" = 1 henry and capacitance C = ")  # a formula that reads so
