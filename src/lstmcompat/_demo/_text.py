"""The demo's training text: the bundled public-domain corpus or a user's file, its
character vocabulary, and random training windows."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

#: The bundled text (package data): public-domain English, typed for this package
#: from the King James Bible (Genesis 1-4, 6-8 and 11:1-9, Ecclesiastes 1:1-11 and
#: 3:1-9, Psalm 23), Shakespeare's sonnets (seventeen of them) and chapter I of Lewis
#: Carroll's *Alice's Adventures in Wonderland* (1865). Typed without a copy at hand:
#: a word or a comma may differ from the printed editions (it is training data).
CORPUS = "corpus.txt"

#: The prompt samples start from when ``--prompt`` is not given (when the text has
#: all its characters; else the text's first character).
DEFAULT_PROMPT = "The "


def corpus_text() -> str:
    """The bundled corpus (about 48 KB of public-domain English).

    Examples:
        >>> from lstmcompat._demo._text import corpus_text
        >>> corpus_text().startswith("THE FIRST BOOK OF MOSES")
        True
    """
    return resources.files(__package__).joinpath(CORPUS).read_text(encoding="utf-8")


def read_text(path: Any | None, min_chars: int) -> str:
    """The training text: the file at ``path`` (UTF-8), or the bundled corpus when
    ``path`` is ``None``.

    Args:
        path: a text file, or ``None`` for :func:`corpus_text`.
        min_chars: the fewest characters the text must have (one training window).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: ``path`` is not UTF-8 text, or has fewer than ``min_chars``
            characters.

    Examples:
        >>> from lstmcompat._demo._text import read_text
        >>> len(read_text(None, 100)) > 40_000
        True
    """
    if path is None:
        return corpus_text()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"`--text` file {str(p)!r} does not exist")
    if p.is_dir():
        raise IsADirectoryError(f"`--text` {str(p)!r} is a directory, not a text file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"`--text` file {str(p)!r} is not UTF-8 text ({e.reason} at byte "
                         f"{e.start})") from None
    if len(text) < min_chars:
        raise ValueError(f"`--text` file {str(p)!r} has {len(text)} characters; the demo "
                         f"needs at least {min_chars} (--seq-len + 1): give a longer text "
                         f"or a smaller --seq-len")
    return text


@dataclass(frozen=True)
class Vocabulary:
    """The characters of a text, sorted; a character's id is its index.

    Examples:
        >>> from lstmcompat._demo._text import Vocabulary
        >>> v = Vocabulary.of("abca")
        >>> v.chars, v.encode("cab").tolist(), v.decode([2, 0])
        ('abc', [2, 0, 1], 'ca')
    """

    chars: str

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str, what: str = "text") -> torch.Tensor:
        """``text`` as a 1-D int64 tensor of ids; ``ValueError`` naming ``what`` for a
        character the vocabulary does not have."""
        index = {c: i for i, c in enumerate(self.chars)}
        missing = sorted(set(text) - index.keys())
        if missing:
            raise ValueError(f"{what} has characters the training text does not: "
                             f"{''.join(missing)!r}")
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    def decode(self, ids: Any) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def default_prompt(vocab: Vocabulary, text: str) -> str:
    """:data:`DEFAULT_PROMPT` when ``vocab`` has its characters, else ``text[0]``."""
    return DEFAULT_PROMPT if set(DEFAULT_PROMPT) <= set(vocab.chars) else text[0]


def batch(ids: torch.Tensor, batch_size: int, seq_len: int,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``ids``: inputs ``(batch, seq_len)`` and the
    next characters as targets (the inputs shifted by one).

    Examples:
        >>> import torch
        >>> from lstmcompat._demo._text import batch
        >>> x, y = batch(torch.arange(10), 2, 3, torch.Generator().manual_seed(0))
        >>> x.shape, bool((y == x + 1).all())
        (torch.Size([2, 3]), True)
    """
    starts = torch.randint(0, len(ids) - seq_len, (batch_size,), generator=generator)
    offsets = torch.arange(seq_len + 1)
    windows = ids[starts[:, None] + offsets]
    return windows[:, :-1], windows[:, 1:]
