"""Keras activation functions by name, with tf_keras's exact math, on torch tensors.

``get(identifier)`` mirrors ``tf.keras.activations.get`` (tf_keras 2.21): a Keras
name, a callable (returned as is), or ``None`` (linear). ``serialize`` returns the
Keras name of a known activation. ``canonical_name`` maps both names and the torch
functions that compute the same thing to one name, so the engine can recognise
e.g. ``torch.tanh`` as ``"tanh"``.

The names ``get`` accepts are those of tf_keras's activation *functions*:
``elu exponential gelu hard_sigmoid leaky_relu linear log_softmax mish relu relu6
selu sigmoid silu softmax softplus softsign swish tanh`` (``"silu"`` is
``"swish"``), and one name of ours: ``"keras3_hard_sigmoid"``, Keras 3's
``hard_sigmoid`` (``relu6(x + 3) / 6``), which differs from tf_keras's (reading a
Keras 3 config maps its ``"hard_sigmoid"`` to this name). Each function below follows the TF op it stands for, including the
gradient at kinks (e.g. ``hard_sigmoid`` has slope 0.2 at ``x = +-2.5``, ``selu``
has slope ``scale`` at 0). Known difference: tf_keras also resolves the names of
its activation *layers* (``"ReLU"``, ``"ELU"``, ``"LeakyReLU"``, ``"PReLU"``,
``"Softmax"``, ``"ThresholdedReLU"``) to layer objects; those are not supported
here (``ValueError``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]

# tf.nn.selu's constants (the engine's activation table and its compiled switches
# take them from here).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SELU_SCALE_ALPHA = SELU_ALPHA * SELU_SCALE


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.tanh``."""
    return torch.tanh(x)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.sigmoid``: ``1 / (1 + exp(-x))``."""
    return torch.sigmoid(x)


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.hard_sigmoid``: ``clip(0.2 * x + 0.5, 0, 1)``.

    Not PyTorch's ``hardsigmoid`` (``x / 6 + 0.5``). The slope is 0.2 on the closed
    interval ``[-2.5, 2.5]`` (as ``tf.clip_by_value``'s gradient) and 0 outside.
    """
    return torch.clamp(x * 0.2 + 0.5, 0.0, 1.0)


class _Keras3HardSigmoid(torch.autograd.Function):
    """``relu6(x + 3) / 6`` with TensorFlow's gradient (Keras 3's ``hard_sigmoid``).

    TF differentiates ``tf.nn.relu6`` with ``Relu6Grad`` on its output ``r``: the
    upstream gradient *times* the 0/1 mask ``0 < r < 6`` (so a NaN or infinite
    upstream gradient gives NaN where the function is flat), then the division's
    ``/ 6``. Autograd of the same torch expression would select instead, and pass
    the gradient where ``x`` is NaN (TF: 0). The mask is taken from ``s = x + 3``
    (the same float as relu6's input), which is equivalent: ``0 < r < 6`` exactly
    where ``0 < s < 6``, and neither holds for NaN.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        s = x + 3.0
        ctx.save_for_backward(s)
        return F.relu6(s) / 6.0

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (s,) = ctx.saved_tensors
        return (grad * ((s > 0) & (s < 6)).to(grad.dtype)) / 6.0


def keras3_hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 3's ``keras.activations.hard_sigmoid``: ``relu6(x + 3) / 6``.

    As Keras 3's TensorFlow backend computes it, in this order of operations
    (``tf.nn.relu6(x + 3) / 6``, a true division). 0 for ``x <= -3``, 1 for
    ``x >= 3`` (also where ``x + 3`` rounds to 6), NaN for NaN. The gradient is
    TF's: ``(grad * [0 < x + 3 < 6]) / 6``, slope ``1/6`` on the *open* interval
    and 0 at the kinks ``x = -3`` and ``x = 3``, 0 for NaN ``x``, and NaN where a
    NaN or infinite ``grad`` meets the flat parts (a product with 0, as TF's).
    This is the engine activation ``"keras3_hard_sigmoid"``; tf_keras's
    ``"hard_sigmoid"`` is :func:`hard_sigmoid`.
    """
    return _Keras3HardSigmoid.apply(x)


def linear(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.linear``: the identity."""
    return x


def relu(
    x: torch.Tensor, alpha: float = 0.0, max_value: float | None = None, threshold: float = 0.0
) -> torch.Tensor:
    """``tf.keras.activations.relu`` (``backend.relu``), with its optional arguments.

    ``x`` for ``threshold < x < max_value``, ``max_value`` above, and
    ``alpha * (x - threshold)`` below ``threshold``; the defaults give ``max(x, 0)``.
    """
    if alpha != 0.0:
        if max_value is None and threshold == 0:
            return F.leaky_relu(x, alpha)
        negative_part = torch.relu(-x + threshold) if threshold != 0 else torch.relu(-x)
    clip_max = max_value is not None
    if threshold != 0:
        x = x * (x > threshold).to(x.dtype)
    elif max_value == 6:
        x = F.relu6(x)
        clip_max = False
    else:
        x = torch.relu(x)
    if clip_max:
        x = torch.clamp(x, 0.0, max_value)
    if alpha != 0.0:
        x = x - alpha * negative_part
    return x


def relu6(x: torch.Tensor) -> torch.Tensor:
    """``tf.nn.relu6`` (Keras name ``"relu6"``): ``min(max(x, 0), 6)``; slope 0 at 0 and 6."""
    return F.relu6(x)


def leaky_relu(x: torch.Tensor, alpha: float = 0.2) -> torch.Tensor:
    """``tf.nn.leaky_relu`` (Keras name ``"leaky_relu"``): note the default ``alpha=0.2``
    (PyTorch's is 0.01)."""
    return F.leaky_relu(x, alpha)


class _ExpLinear(torch.autograd.Function):
    """``y = pos * x`` for ``x >= 0``, ``neg * (exp(x) - 1)`` for ``x < 0``, with TF's gradient.

    TF's ``EluGrad``/``SeluGrad`` compute the slope from the *output*:
    ``y < 0 ? y + neg : pos``. It differs from ``d/dx`` where ``exp(x) - 1`` rounds
    to 0 (tiny negative ``x``: slope ``pos``, not ``neg``) or to ``-1`` (very
    negative ``x``: slope exactly 0). The backward uses differentiable ops on the
    saved output, so double backward works.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, pos: float, neg: float) -> torch.Tensor:
        y = torch.where(x < 0, neg * (torch.exp(torch.clamp(x, max=0.0)) - 1.0), pos * x)
        ctx.save_for_backward(y)
        ctx.pos, ctx.neg = pos, neg
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (y,) = ctx.saved_tensors
        slope = torch.where(y < 0, y + ctx.neg, torch.full_like(y, ctx.pos))
        return grad * slope, None, None


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``tf.keras.activations.elu``: ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``.

    As ``backend.elu``: ``tf.nn.elu`` (TF's output-based gradient), then
    ``where(x > 0, res, alpha * res)`` when ``alpha != 1``.
    """
    res = _ExpLinear.apply(x, 1.0, 1.0)
    if alpha == 1:
        return res
    return torch.where(x > 0, res, alpha * res)


def selu(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.selu`` (``tf.nn.selu``).

    ``scale * x`` if ``x >= 0`` else ``scale * alpha * (exp(x) - 1)``, with
    ``alpha = 1.6732632...`` and ``scale = 1.0507009...``; the gradient is TF's,
    computed from the output: ``scale`` at 0 and wherever the output rounds to 0
    (``torch.nn.functional.selu`` gives ``scale * alpha`` at 0).
    """
    return _ExpLinear.apply(x, SELU_SCALE, _SELU_SCALE_ALPHA)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.softplus``: ``log(exp(x) + 1)``."""
    return F.softplus(x)


def softsign(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.softsign``: ``x / (abs(x) + 1)``."""
    return F.softsign(x)


def swish(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.swish`` = ``tf.nn.silu``: ``x * sigmoid(x)`` (also ``"silu"``)."""
    return F.silu(x)


silu = swish


def gelu(x: torch.Tensor, approximate: bool = False) -> torch.Tensor:
    """``tf.keras.activations.gelu`` (``tf.nn.gelu``); exact (erf) form by default.

    ``0.5 * x * erfc(-x / sqrt(2))``, as TF writes it (more accurate than
    ``1 + erf(...)`` for negative ``x``); with ``approximate=True``,
    ``0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x**3)))``.
    """
    if approximate:
        return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * torch.pow(x, 3))))
    return 0.5 * x * torch.special.erfc(-x * 0.7071067811865476)


def exponential(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.exponential``: ``exp(x)``."""
    return torch.exp(x)


def mish(x: torch.Tensor) -> torch.Tensor:
    """``tf.keras.activations.mish``: ``x * tanh(softplus(x))``."""
    return x * torch.tanh(F.softplus(x))


def softmax(x: torch.Tensor, axis: int | Sequence[int] = -1) -> torch.Tensor:
    """``tf.keras.activations.softmax`` (``backend.softmax``) over ``axis``.

    Raises:
        ValueError: ``x`` is 1D (or 0D), as tf_keras.
    """
    if x.dim() <= 1:
        raise ValueError(f"Cannot apply softmax to a tensor that is 1D. Received input: {x}")
    if isinstance(axis, int):
        return torch.softmax(x, dim=axis)
    dims = tuple(axis)
    numerator = torch.exp(x - torch.amax(x, dim=dims, keepdim=True))
    return numerator / torch.sum(numerator, dim=dims, keepdim=True)


def log_softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """``tf.nn.log_softmax`` (Keras name ``"log_softmax"``) over ``axis``."""
    return torch.log_softmax(x, dim=axis)


_BY_NAME: dict[str, Activation] = {
    "tanh": tanh,
    "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "keras3_hard_sigmoid": keras3_hard_sigmoid,
    "linear": linear,
    "relu": relu,
    "relu6": relu6,
    "leaky_relu": leaky_relu,
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
    "log_softmax": log_softmax,
}

# Callables (ours and torch's) that compute exactly a named activation.
_NAME_OF: dict[Callable, str] = {fn: name for name, fn in _BY_NAME.items() if name != "silu"}
_NAME_OF.update({
    torch.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    torch.relu: "relu",
    F.relu: "relu",
    F.relu6: "relu6",
    F.elu: "elu",
    F.selu: "selu",
    F.softplus: "softplus",
    F.softsign: "softsign",
    F.silu: "swish",
    torch.exp: "exponential",
    F.mish: "mish",
})

# tf_keras's activation layers, which its get() also resolves (to layer objects).
_LAYER_NAMES = ("ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax", "ThresholdedReLU")


def _unknown(name: Any) -> ValueError:
    hint = (
        " Keras activation layers are not supported; use the function name instead."
        if name in _LAYER_NAMES
        else ""
    )
    return ValueError(
        f"Unknown activation function '{name}' cannot be deserialized. Expected one "
        f"of {sorted(_BY_NAME)}, a callable, or None (linear).{hint}"
    )


def get(identifier: str | Activation | Mapping[str, Any] | None) -> Activation:
    """Resolve a Keras activation identifier: ``tf.keras.activations.get``.

    Args:
        identifier: ``None`` (linear), a Keras name (case-sensitive), the dict
            tf_keras writes for a function (``{"class_name": "function", "config":
            "tanh", ...}``), or any callable (returned as is).

    Returns:
        The activation function.

    Raises:
        ValueError: An unknown name (``"Unknown activation function 'foo' cannot be
            deserialized."``) or a malformed dict, as tf_keras.
        TypeError: An identifier that is neither a name, a dict, a callable nor
            ``None`` (``"Could not interpret activation function identifier: 3"``),
            or a dict naming a function with a dict ``config``, as tf_keras.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]
        except KeyError:
            raise _unknown(identifier) from None
    if isinstance(identifier, Mapping):
        if "class_name" not in identifier or (
            "config" not in identifier and "module" not in identifier
        ):
            raise ValueError(
                f"Improper config format for {dict(identifier)}. Expecting python dict "
                "contains `class_name` and `config` as keys"
            )
        name, config = identifier["class_name"], identifier.get("config")
        if name == "function" and isinstance(config, str):
            return get(config)
        if name in _BY_NAME:
            raise TypeError(
                f"Activation functions are serialized as their name ({name!r}) or as "
                f"{{'class_name': 'function', 'config': {name!r}}}; got {dict(identifier)}."
            )
        raise _unknown(name)
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret activation function identifier: {identifier}")


def canonical_name(fn: str | Activation | None) -> str | None:
    """The Keras name of ``fn`` if it is (or computes exactly) a known activation.

    ``None`` is ``"linear"``; ``"silu"`` and ``torch.nn.functional.silu`` are
    ``"swish"``; an unknown callable gives ``None``; an unknown name raises
    ``ValueError``.
    """
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        get(fn)
        return "swish" if fn == "silu" else fn
    try:
        return _NAME_OF.get(fn)  # type: ignore[arg-type]
    except TypeError:  # unhashable callable
        return None


def serialize(fn: str | Activation | None) -> str | Activation:
    """``tf.keras.activations.serialize``: the Keras name of a known activation.

    ``swish``/``silu`` serialize as ``"swish"``, ``None`` as ``"linear"``, as
    tf_keras. An unknown callable is returned as is (tf_keras writes a
    ``{"class_name": "function", ...}`` dict that it cannot load back by name).
    """
    name = canonical_name(fn)
    return name if name is not None else fn  # type: ignore[return-value]

