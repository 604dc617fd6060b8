"""Small conversions shared by the TF1 front-end: dtypes, array-likes, initializers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

Initializer = Callable[[Sequence[int], torch.dtype], torch.Tensor]

_DTYPE_NAMES: dict[str, torch.dtype] = {
    "float16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32, "float": torch.float32,
    "float64": torch.float64, "double": torch.float64,
    "int32": torch.int32, "int64": torch.int64,
}


def as_dtype(dtype: Any, arg: str = "dtype") -> torch.dtype | None:
    """A ``torch.dtype`` from a ``torch.dtype``, its name, a NumPy dtype, or ``None``."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, type) and issubclass(dtype, np.generic):
        dtype = np.dtype(dtype)
    name = getattr(dtype, "name", dtype)  # np.dtype and tf.DType expose .name
    if isinstance(name, str):
        key = name.replace("torch.", "")
        if key in _DTYPE_NAMES:
            return _DTYPE_NAMES[key]
    raise TypeError(
        f"`{arg}` must be a torch.dtype or its name (e.g. 'float32', 'float64'), got {dtype!r}."
    )


def check_floating(dtype: torch.dtype | None) -> None:
    """TF's ``_check_supported_dtypes``: RNN cells only take floating point."""
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(
            f"RNN cell only supports floating point inputs, but received dtype: {dtype}"
        )


def as_tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Array-likes (NumPy arrays, lists) to a tensor; tensors pass through (cast to ``dtype``)."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, (list, tuple)) else x)
    if dtype is not None and x.dtype != dtype:
        x = x.to(dtype)
    return x


def glorot_uniform(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Keras ``glorot_uniform`` drawn from torch's RNG: ``U(-l, l)``, ``l = sqrt(6/(fan_in+fan_out))``.

    Fans as Keras computes them: ``(rows, cols)`` for a matrix, ``(n, n)`` for a vector.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        fan_in = fan_out = 1
    elif len(shape) == 1:
        fan_in = fan_out = shape[0]
    else:
        receptive = math.prod(shape[:-2])
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = math.sqrt(6.0 / max(1.0, float(fan_in + fan_out)))
    return torch.empty(shape, dtype=dtype).uniform_(-limit, limit)


def zeros(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.zeros(tuple(shape), dtype=dtype)


def ones(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.ones(tuple(shape), dtype=dtype)


_INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform,
    "zeros": zeros,
    "ones": ones,
}


def get_initializer(identifier: str | Initializer | None) -> Initializer | None:
    """Resolve an ``initializer`` argument; ``None`` stays ``None`` (the scope's or glorot_uniform).

    SWITCH POINT: when ``lstmcompat._keras.initializers.get`` lands, resolve
    strings (and Keras config dicts) through it here; this is the only place the
    TF1 front-end interprets initializer names.
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        try:
            return _INITIALIZERS[identifier]
        except KeyError:
            raise ValueError(
                f"Unknown initializer {identifier!r}: the TF1 front-end knows "
                f"{sorted(_INITIALIZERS)}; pass a callable `(shape, dtype) -> Tensor` otherwise."
            ) from None
    if callable(identifier):
        return identifier
    raise TypeError(
        f"`initializer` must be a Keras name, a callable `(shape, dtype) -> Tensor` or None, "
        f"got {identifier!r}."
    )
