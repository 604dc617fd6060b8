"""``get_weights`` / ``set_weights`` as TensorFlow's layers have them, shared by both front-ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._dtypes import as_tensor


def _bfloat16_numpy_dtype() -> Any:
    """``ml_dtypes.bfloat16``, or ``None`` when ``ml_dtypes`` cannot be imported."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes.bfloat16


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy copy of ``t`` (bfloat16: see :func:`get_weights`)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        bf16 = _bfloat16_numpy_dtype()
        if bf16 is None:
            return t.float().numpy().copy()
        return t.view(torch.int16).numpy().view(bf16).copy()
    return t.numpy().copy()


def get_weights(params: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """The parameters as NumPy arrays (copies), in order.

    NumPy has no bfloat16: bfloat16 parameters come back as ``ml_dtypes.bfloat16``
    arrays (the same bits) when the optional package ``ml_dtypes`` is
    installed, else as float32 arrays (exact: every bfloat16 value is a
    float32). :func:`set_weights` takes either back without loss.
    """
    return [to_numpy(p) for p in params]


def set_weights(layer_name: str, params: Sequence[torch.Tensor], weights: Sequence[Any],
                shape_message: str) -> None:
    """Copy array-likes into ``params`` after checking count and shapes (TF's ``ValueError``s).

    ``shape_message`` is TF's wording for a shape mismatch, formatted with
    ``name``, ``expected`` and ``got``; nothing is written unless every array fits.
    """
    weights = list(weights)
    if len(weights) != len(params):
        raise ValueError(
            f'You called `set_weights(weights)` on layer "{layer_name}" with a weight list of '
            f"length {len(weights)}, but the layer was expecting {len(params)} weights. "
            f"Provided weights: {str(weights)[:50]}..."
        )
    values = []
    for p, w in zip(params, weights):
        t = as_tensor(w, "weights")
        if tuple(t.shape) != tuple(p.shape):
            raise ValueError(shape_message.format(name=layer_name, expected=tuple(p.shape),
                                                  got=tuple(t.shape)))
        values.append(t)
    with torch.no_grad():
        for p, t in zip(params, values):
            p.copy_(t.to(device=p.device, dtype=p.dtype))


def check_parameters(layer_name: str,
                     expected: Sequence[tuple[str, torch.Tensor | None, tuple[int, ...]]]) -> None:
    """Raise a clear error when a parameter was replaced by one the layer cannot use.

    ``expected`` lists ``(name, parameter, shape)``; every parameter present must
    have its shape and the dtype and device of the first one. Called before each
    engine call, so that a kernel never reads a weight of another shape (a
    replaced ``Parameter``, ``.data`` re-pointed to another size).

    Raises:
        ValueError: a shape or device that does not fit.
        TypeError: a dtype that differs from the other weights'.
    """
    first: torch.Tensor | None = None
    for name, p, shape in expected:
        if p is None:
            continue
        if tuple(p.shape) != tuple(shape):
            raise ValueError(
                f'Layer "{layer_name}": weight `{name}` has shape {tuple(p.shape)}, expected '
                f"{tuple(shape)} (was it replaced by a tensor of another size?)."
            )
        if first is None:
            first = p
            continue
        if p.dtype != first.dtype:
            raise TypeError(
                f'Layer "{layer_name}": weight `{name}` has dtype {p.dtype} but the other '
                f"weights have {first.dtype}; convert the whole module (e.g. `.to(dtype)`)."
            )
        if p.device != first.device:
            raise ValueError(
                f'Layer "{layer_name}": weight `{name}` is on {p.device} but the other '
                f"weights are on {first.device}; move the whole module (`.to(device)`)."
            )

