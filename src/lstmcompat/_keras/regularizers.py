"""Keras weight regularizers (``tf_keras.regularizers``) with the same math, on torch.

A regularizer maps a weight tensor to a scalar penalty tensor that is added to the
loss (``layer.losses``). As tf_keras, the factors are stored rounded to float32
(``backend.cast_to_floatx``), so ``L2(0.01).get_config() == {"l2":
0.009999999776482582}`` and the penalty of a float64 weight uses that rounded
factor too.

Examples:
    >>> import torch
    >>> from lstmcompat._keras import regularizers
    >>> float(regularizers.get("l1_l2")(torch.tensor([1.0, -2.0])))  # 0.01*3 + 0.01*5
    0.07999999821186066
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from lstmcompat._keras import from_dict, function_dict, keras_dict

__all__ = [
    "L1",
    "L1L2",
    "L2",
    "OrthogonalRegularizer",
    "Regularizer",
    "deserialize",
    "get",
    "l1",
    "l1_l2",
    "l2",
    "orthogonal_regularizer",
    "serialize",
]

RegularizerLike = Callable[[torch.Tensor], Any]


def _check_penalty_number(x: Any) -> None:
    """As tf_keras: a Python int or float (``bool`` too, ``np.float32`` not), finite."""
    if not isinstance(x, (float, int)):
        raise ValueError(
            f"Value {x} is not a valid regularization penalty number, "
            "expected an int or float value."
        )
    if math.isinf(x) or math.isnan(x):
        raise ValueError(
            f"Value {x} is not a valid regularization penalty number, "
            "an infinite number or NaN are not valid values."
        )


def _floatx(x: float) -> float:
    """``backend.cast_to_floatx``: the factor rounded to float32 (kept as a Python float)."""
    return float(np.float32(x))


class Regularizer:
    """Base class: ``tf.keras.regularizers.Regularizer``.

    ``__call__(x)`` returns the penalty (``0.0`` here); ``get_config()`` the
    constructor arguments.
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor | float:
        return 0.0

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{object.__repr__(self)} does not implement get_config()")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Regularizer:
        """``cls(**config)``."""
        return cls(**config)

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """L1 and L2 penalties: ``tf.keras.regularizers.L1L2`` (``"L1L2"``).

    ``penalty = l1 * sum(abs(x)) + l2 * sum(square(x))``, a terms being left out
    when its factor is 0 (TF computes the L2 term as ``2 * l2 * l2_loss(x)``,
    which is the same number). The string ``"l1_l2"`` gives ``L1L2(0.01, 0.01)``
    (see :func:`l1_l2`); the class defaults are 0.

    Args:
        l1: L1 factor (``None`` means 0).
        l2: L2 factor (``None`` means 0).

    Raises:
        ValueError: A factor that is not a finite Python int/float.
    """

    def __init__(self, l1: float | None = 0.0, l2: float | None = 0.0) -> None:
        l1 = 0.0 if l1 is None else l1
        l2 = 0.0 if l2 is None else l2
        _check_penalty_number(l1)
        _check_penalty_number(l2)
        self.l1 = _floatx(l1)
        self.l2 = _floatx(l2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        regularization = torch.zeros((), dtype=x.dtype, device=x.device)
        if self.l1:
            regularization = regularization + self.l1 * torch.sum(torch.abs(x))
        if self.l2:
            regularization = regularization + self.l2 * torch.sum(torch.square(x))
        return regularization

    def get_config(self) -> dict[str, Any]:
        return {"l1": float(self.l1), "l2": float(self.l2)}


class L1(Regularizer):
    """L1 penalty ``l1 * sum(abs(x))``: ``tf.keras.regularizers.L1`` (``"l1"``, ``"L1"``).

    Args:
        l1: Factor (``None`` means 0.01). The old keyword ``l`` is accepted too.

    Raises:
        TypeError: Unknown keyword arguments.
        ValueError: A factor that is not a finite Python int/float.
    """

    def __init__(self, l1: float | None = 0.01, **kwargs: Any) -> None:
        l1 = kwargs.pop("l", l1)  # backwards compatibility, as tf_keras
        if kwargs:
            raise TypeError(f"Argument(s) not recognized: {kwargs}")
        l1 = 0.01 if l1 is None else l1
        _check_penalty_number(l1)
        self.l1 = _floatx(l1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1 * torch.sum(torch.abs(x))

    def get_config(self) -> dict[str, Any]:
        return {"l1": float(self.l1)}


class L2(Regularizer):
    """L2 penalty ``l2 * sum(square(x))``: ``tf.keras.regularizers.L2`` (``"l2"``, ``"L2"``).

    Note there is no factor 1/2 (TF writes it as ``2 * l2 * tf.nn.l2_loss(x)``).

    Args:
        l2: Factor (``None`` means 0.01). The old keyword ``l`` is accepted too.

    Raises:
        TypeError: Unknown keyword arguments.
        ValueError: A factor that is not a finite Python int/float.
    """

    def __init__(self, l2: float | None = 0.01, **kwargs: Any) -> None:
        l2 = kwargs.pop("l", l2)  # backwards compatibility, as tf_keras
        if kwargs:
            raise TypeError(f"Argument(s) not recognized: {kwargs}")
        l2 = 0.01 if l2 is None else l2
        _check_penalty_number(l2)
        self.l2 = _floatx(l2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2 * torch.sum(torch.square(x))

    def get_config(self) -> dict[str, Any]:
        return {"l2": float(self.l2)}


class OrthogonalRegularizer(Regularizer):
    """``tf.keras.regularizers.OrthogonalRegularizer`` (``"orthogonal_regularizer"``).

    For a 2D weight, L2-normalize its rows (``mode="rows"``) or columns
    (``"columns"``) as ``tf.math.l2_normalize`` (``x * rsqrt(max(sum(x**2),
    1e-12))``), take the Gram matrix ``P`` of those vectors, and return
    ``factor * 0.5 * sum(abs(P - diag(P))) / (n * (n - 1) / 2)``, ``n`` their number.

    Args:
        factor: Factor.
        mode: ``"rows"`` or ``"columns"``.

    Raises:
        ValueError: An invalid ``factor`` or ``mode``; (on call) a weight that is
            not 2D.
    """

    def __init__(self, factor: float = 0.01, mode: str = "rows") -> None:
        _check_penalty_number(factor)
        self.factor = _floatx(factor)
        if mode not in {"rows", "columns"}:
            raise ValueError(
                "Invalid value for argument `mode`. Expected one of "
                f'{{"rows", "columns"}}. Received: mode={mode}'
            )
        self.mode = mode

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() != 2:
            raise ValueError(
                "Inputs to OrthogonalRegularizer must have rank 2. Received: "
                f"inputs.shape == {tuple(inputs.shape)}"
            )
        axis = 1 if self.mode == "rows" else 0
        square_sum = torch.sum(torch.square(inputs), dim=axis, keepdim=True)
        inputs = inputs * torch.rsqrt(torch.clamp_min(square_sum, 1e-12))
        if self.mode == "rows":
            product = inputs @ inputs.T
            size = inputs.shape[0]
        else:
            product = inputs.T @ inputs
            size = inputs.shape[1]
        eye = torch.eye(size, dtype=inputs.dtype, device=inputs.device)
        product_no_diagonal = product * (1.0 - eye)
        num_pairs = size * (size - 1.0) / 2.0
        return self.factor * 0.5 * torch.sum(torch.abs(product_no_diagonal)) / num_pairs

    def get_config(self) -> dict[str, Any]:
        return {"factor": float(self.factor), "mode": self.mode}


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """``tf.keras.regularizers.l1_l2``: ``L1L2`` with defaults 0.01 (what ``"l1_l2"`` gives)."""
    return L1L2(l1=l1, l2=l2)


l1 = L1
l2 = L2
orthogonal_regularizer = OrthogonalRegularizer

ALL_OBJECTS: dict[str, Any] = {
    "Regularizer": Regularizer,
    "L1": L1,
    "L2": L2,
    "L1L2": L1L2,
    "OrthogonalRegularizer": OrthogonalRegularizer,
    "l1": L1,
    "l2": L2,
    "l1_l2": l1_l2,
    "orthogonal_regularizer": OrthogonalRegularizer,
}


def serialize(
    regularizer: RegularizerLike | None, use_legacy_format: bool = False
) -> dict[str, Any] | None:
    """``tf.keras.regularizers.serialize``: the dict a v1 LSTM's ``get_config`` holds.

    Returns:
        ``None`` for ``None``; e.g. ``{"module": "keras.regularizers", "class_name":
        "L2", "config": {"l2": 0.009999999776482582}, "registered_name": None}``;
        for a plain function, ``{"module": "builtins", "class_name": "function",
        "config": fn.__name__, "registered_name": "function"}``.
    """
    if regularizer is None:
        return None
    if isinstance(regularizer, Regularizer):
        return keras_dict(regularizer, "keras.regularizers", use_legacy_format=use_legacy_format)
    if callable(regularizer):
        return function_dict(regularizer)
    raise ValueError(f"Could not interpret regularizer identifier: {regularizer}")


def deserialize(
    config: Mapping[str, Any] | str, custom_objects: Mapping[str, Any] | None = None
) -> Regularizer:
    """``tf.keras.regularizers.deserialize``: a regularizer from a name or config dict."""
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    return from_dict(config, ALL_OBJECTS, "regularizer", custom_objects)


def get(identifier: Any) -> RegularizerLike | None:
    """``tf.keras.regularizers.get``: resolve a regularizer identifier.

    Args:
        identifier: ``None``; a name (``"l1"``, ``"l2"``, ``"l1_l2"``, ``"L1"``,
            ``"L2"``, ``"L1L2"``, ``"orthogonal_regularizer"``,
            ``"OrthogonalRegularizer"``); a ``{"class_name": ..., "config": ...}``
            dict (with or without ``"module"``); a regularizer instance or any
            callable ``weight -> scalar tensor`` (returned as is); a regularizer
            class (instantiated with no arguments).

    Returns:
        The regularizer, or ``None`` for ``None``.

    Raises:
        ValueError: An unknown name or malformed dict, or an identifier of another
            type (``"Could not interpret regularizer identifier: 3"``).
        TypeError: A config with arguments the class does not take.
    """
    if identifier is None:
        return None
    if isinstance(identifier, (str, Mapping)):
        return deserialize(identifier)
    if callable(identifier):
        if isinstance(identifier, type) and issubclass(identifier, Regularizer):
            return identifier()
        return identifier
    raise ValueError(f"Could not interpret regularizer identifier: {identifier}")
