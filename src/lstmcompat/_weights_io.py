"""``get_weights`` / ``set_weights`` as TensorFlow's layers have them, shared by both front-ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._dtypes import as_tensor


def get_weights(params: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """The parameters as NumPy arrays (copies), in order."""
    return [p.detach().cpu().numpy().copy() for p in params]


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
