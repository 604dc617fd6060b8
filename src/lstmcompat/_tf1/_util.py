"""Small conversions shared by the TF1 front-end: dtypes, array-likes, initializers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .._dtypes import as_tensor as _as_tensor
from .._dtypes import resolve_dtype
from .._keras import initializers

Initializer = Callable[[Sequence[int], torch.dtype], torch.Tensor]

_GLOROT = initializers.GlorotUniform()
#: TF1's bias initializer (always zeros).
zeros = initializers.Zeros()


def as_dtype(dtype: Any, arg: str = "dtype") -> torch.dtype | None:
    """A ``torch.dtype`` from a ``torch.dtype``, its name, a NumPy dtype, or ``None``."""
    return resolve_dtype(dtype, default=None, arg=arg)


def check_floating(dtype: torch.dtype | None, arg: str | None = None) -> None:
    """TF's ``_check_supported_dtypes``: RNN cells only take floating point.

    ``arg`` names the argument the dtype came from (TF's message does not).
    """
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(
            f"RNN cell only supports floating point inputs, but received dtype: {dtype}"
            + (f" (argument `{arg}`)" if arg else "")
        )


def as_tensor(x: Any, arg: str = "inputs", device: torch.device | None = None) -> torch.Tensor:
    """Array-likes (NumPy arrays, lists) to a tensor, moved to ``device`` when given
    (a meta tensor to a real device raises ``ValueError``); tensors otherwise pass
    through unchanged."""
    return _as_tensor(x, arg, device=device)


def glorot_uniform(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Keras ``glorot_uniform`` over the whole ``shape``, drawn from torch's RNG (TF1's default)."""
    return _GLOROT(tuple(int(s) for s in shape), dtype=dtype)


def get_initializer(identifier: Any) -> Initializer | None:
    """Resolve an ``initializer`` argument through the Keras initializers.

    A Keras name, a ``{"class_name", "config"}`` dict, an initializer object or a
    callable ``(shape, dtype) -> Tensor``; ``None`` stays ``None`` (then the
    scope's initializer, else glorot_uniform, applies).
    """
    if identifier is None:
        return None
    if not isinstance(identifier, (str, dict)) and not callable(identifier):
        raise TypeError(
            f"`initializer` must be a Keras name, a config dict, a callable "
            f"`(shape, dtype) -> Tensor` or None, got {identifier!r}."
        )
    return initializers.get(identifier)
