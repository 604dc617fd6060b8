"""One interface over every weight file lstmcompat reads.

Each foreign format lives in a private module of its own (``_tf_checkpoint``,
``_keras_files``, ``_safetensors``) and offers a :class:`Source`: the file's
variables in the order its writer lists them, a reader for one variable, the
other names a variable is known by (TF2's object graph, HDF5 weight names), and,
where the file carries one, the model config. :func:`open_source` picks the
format by looking at the path and the file's first bytes; ``list_variables``,
``load_variables``, ``restore`` and ``load_keras_layers`` sit on top of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

Kind = Literal["tf_checkpoint", "keras_h5", "keras3_weights", "keras_archive", "lstmcompat"]


@dataclass(frozen=True)
class KerasLayer:
    """One layer of a Keras model config, with its weights' variable names.

    Attributes:
        name: the layer's name in the model (``"lstm"``, ``"lstm_1"``).
        class_name: the config's class name (``"LSTM"``, ``"Bidirectional"``, ...).
        config: the layer's ``config`` dict as the file stores it.
        weights: names (as :meth:`Source.variables` gives them) of the layer's
            weights in the layer's ``weights`` order (kernel, recurrent_kernel,
            bias for an LSTM).
        keras_version: ``2`` for tf_keras files, ``3`` for Keras 3 files (their
            activation names differ: Keras 3's ``hard_sigmoid`` is ``relu6(x+3)/6``).
    """

    name: str
    class_name: str
    config: dict[str, Any]
    weights: tuple[str, ...]
    keras_version: int


class Source(Protocol):
    """A weight file, opened and validated (no variable read yet)."""

    path: Path
    kind: Kind

    def variables(self) -> list[tuple[str, tuple[int, ...]]]:
        """``[(name, shape), ...]`` as ``list_variables`` returns them."""

    def read(self, name: str) -> np.ndarray | bytes:
        """One variable, as ``load_variables`` returns it (``KeyError`` if absent)."""

    def aliases(self) -> dict[str, tuple[str, ...]]:
        """Other names of variables, for name matching: ``{file name: (alias, ...)}``
        (e.g. a TF2 object-checkpoint key's Keras ``full_name``)."""

    def keras_layers(self) -> list[KerasLayer] | None:
        """The model's layers when the file carries a Keras model config, else ``None``."""

    def module_config(self) -> dict[str, Any] | None:
        """The saved module's class and config for files written by ``save``, else ``None``."""

    def dtype_name(self, name: str) -> str:
        """A variable's dtype name (``"float32"``, ``"string"``), without reading its data."""


@dataclass
class Opener:
    """How to recognise and open one format: ``sniff(path, head)`` gets the path and
    the file's first 16 bytes (``b""`` for a directory or a missing file)."""

    kind: Kind
    sniff: Callable[[Path, bytes], bool]
    open: Callable[[Path], Source]
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_OPENERS: list[Opener] = []


def register(opener: Opener) -> None:
    """Add a format (called once by each format module at import)."""
    _OPENERS.append(opener)


def _check_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike naming a checkpoint or weight "
                        f"file, got {type(path).__name__}")
    return Path(os.fspath(path))


def open_source(path: Any) -> Source:
    """Open ``path`` with the first format that recognises it.

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: nothing at ``path``.
        ValueError: a file no reader recognises, or a corrupt one.
    """
    p = _check_path(path)
    _load_formats()
    head = b""
    if p.is_file():
        with open(p, "rb") as f:
            head = f.read(16)
    for opener in _OPENERS:
        if opener.sniff(p, head):
            return opener.open(p)
    if not p.exists() and not Path(str(p) + ".index").exists():
        raise FileNotFoundError(
            f"no checkpoint or weight file at {str(p)!r}: expected a TF checkpoint prefix "
            f"(with {str(p) + '.index'!r}), a directory with a `checkpoint` file, a Keras "
            f"HDF5 / .keras / .weights.h5 file, or a file written by lstmcompat.save")
    if p.is_file() and ".data-" in p.name:
        raise ValueError(f"{str(p)!r} is a TF checkpoint data shard: pass the checkpoint "
                         f"prefix (the name before '.data-'), or its '.index' file")
    known = ", ".join(o.description or o.kind for o in _OPENERS)
    raise ValueError(f"{str(p)!r} is not a file lstmcompat can read (it reads: {known})")


def _load_formats() -> None:
    """Import the format modules (each registers itself; cheap: no optional dependency
    is imported before a file of its format is opened)."""
    from . import _keras_files, _safetensors, _tf_checkpoint  # noqa: F401
