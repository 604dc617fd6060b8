"""``lstmcompat._demo._text``: the bundled corpus, a user's text file, the vocabulary and
the training windows."""

from __future__ import annotations

import pytest
import torch

from lstmcompat._demo._text import (
    DEFAULT_PROMPT,
    Vocabulary,
    batch,
    corpus_text,
    default_prompt,
    read_text,
)


def test_the_corpus_is_bundled_and_small():
    text = corpus_text()
    assert 40_000 < len(text.encode("utf-8")) < 300_000  # "a few hundred KB at most"
    assert text.startswith("THE FIRST BOOK OF MOSES, CALLED GENESIS\n")
    for part in ("In the beginning God created the heaven and the earth.",
                 "Shall I compare thee to a summer's day?",
                 "Alice was beginning to get very tired"):
        assert part in text
    assert text.isascii()
    assert read_text(None, 10) == text


def test_read_text_reads_a_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo wörld, " * 10, encoding="utf-8")
    assert read_text(path, 20) == "héllo wörld, " * 10
    assert read_text(str(path), 130) == "héllo wörld, " * 10  # exactly enough


def test_read_text_errors_name_the_option(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`--text` file '.*missing.txt' does not exist"):
        read_text(tmp_path / "missing.txt", 10)
    short = tmp_path / "short.txt"
    short.write_text("tiny")
    with pytest.raises(ValueError, match=r"has 4 characters; the demo needs at least 10 "
                                         r"\(--seq-len \+ 1\)"):
        read_text(short, 10)
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\xff\xfe\x00abc" * 10)
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        read_text(binary, 1)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        read_text(tmp_path, 1)


def test_vocabulary_round_trip_and_unknown_characters():
    v = Vocabulary.of("hello world")
    assert v.chars == " dehlorw" and len(v) == 8
    ids = v.encode("world")
    assert ids.dtype == torch.int64 and v.decode(ids) == "world"
    with pytest.raises(ValueError, match=r"`--prompt` has characters the training text "
                                         r"does not: 'Xz'"):
        v.encode("zoX", "`--prompt`")


def test_default_prompt_falls_back_to_the_first_character():
    text = corpus_text()
    assert default_prompt(Vocabulary.of(text), text) == DEFAULT_PROMPT
    assert default_prompt(Vocabulary.of("abcabc"), "abcabc") == "a"


def test_batch_windows_are_inside_the_text_and_shifted_by_one():
    ids = torch.arange(50)
    g = torch.Generator().manual_seed(3)
    x, y = batch(ids, 64, 7, g)
    assert x.shape == y.shape == (64, 7)
    assert torch.equal(y, x + 1)  # the next character of each input
    assert int(y.max()) <= 49 and int(x.min()) >= 0
    assert int(x[:, 0].max()) == 42  # every start is drawn, the last one included
    x2, _ = batch(ids, 64, 7, torch.Generator().manual_seed(3))
    assert torch.equal(x, x2)
    # the shortest text that makes a window
    x, y = batch(torch.arange(8), 2, 7, g)
    assert torch.equal(x[0], torch.arange(7)) and torch.equal(y[0], torch.arange(1, 8))

