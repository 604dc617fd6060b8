"""Keras activation functions by name, with tf_keras's exact math, on torch tensors.

``get(identifier)`` mirrors ``tf.keras.activations.get``: a Keras name, a
callable (returned as is), or ``None`` (linear). ``serialize`` returns the Keras
name of a known activation. ``canonical_name`` maps both names and the torch
functions that compute the same thing to one name, so the engine can recognise
e.g. ``torch.tanh`` as ``"tanh"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]


def tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x)


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """tf_keras's ``clip(0.2 * x + 0.5, 0, 1)`` (not PyTorch's ``x / 6 + 0.5``)."""
    return torch.clamp(x * 0.2 + 0.5, 0.0, 1.0)


def linear(x: torch.Tensor) -> torch.Tensor:
    return x


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


def elu(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x)


def selu(x: torch.Tensor) -> torch.Tensor:
    return F.selu(x)


def softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x)


def softsign(x: torch.Tensor) -> torch.Tensor:
    return F.softsign(x)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def exponential(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x)


def mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(F.softplus(x))


def softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


_BY_NAME: dict[str, Activation] = {
    "tanh": tanh,
    "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "linear": linear,
    "relu": relu,
    "elu": elu,
    "selu": selu,
    "softplus": softplus,
    "softsign": softsign,
    "swish": swish,
    "silu": swish,
    "gelu": gelu,
    "exponential": exponential,
    "mish": mish,
    "softmax": softmax,
}

# Callables (ours and torch's) that compute exactly a named activation.
_NAME_OF: dict[Callable, str] = {fn: name for name, fn in _BY_NAME.items() if name != "silu"}
_NAME_OF.update({
    torch.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    torch.relu: "relu",
    F.relu: "relu",
    F.elu: "elu",
    F.selu: "selu",
    F.softplus: "softplus",
    F.softsign: "softsign",
    F.silu: "swish",
    torch.exp: "exponential",
    F.mish: "mish",
})


def get(identifier: str | Activation | None) -> Activation:
    """Resolve a Keras activation identifier to a callable (``None`` is linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]
        except KeyError:
            raise ValueError(
                f"Unknown activation function: {identifier!r}. Expected one of "
                f"{sorted(_BY_NAME)}, a callable, or None (linear)."
            ) from None
    if isinstance(identifier, dict) and "class_name" in identifier:
        return get(identifier["class_name"])
    if callable(identifier):
        return identifier
    raise TypeError(
        f"Could not interpret activation function identifier: {identifier!r}; "
        "expected a Keras name, a callable or None."
    )


def canonical_name(fn: str | Activation | None) -> str | None:
    """The Keras name of ``fn`` if it is (or computes exactly) a known activation."""
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        get(fn)
        return "swish" if fn == "silu" else fn
    try:
        return _NAME_OF.get(fn)
    except TypeError:  # unhashable callable
        return None


def serialize(fn: str | Activation | None) -> str | Activation:
    """Keras name of a known activation; an unknown callable is returned as is."""
    name = canonical_name(fn)
    return name if name is not None else fn  # type: ignore[return-value]
