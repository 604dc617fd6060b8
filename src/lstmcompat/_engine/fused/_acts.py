"""Activations the ``fused`` kernel knows how to differentiate by hand.

Each entry maps a Keras activation name (as normalised by
:class:`~lstmcompat._engine.spec.CellSpec`) to ``(forward, backward, code)``:

* ``forward(x)`` is the very function the reference uses
  (:func:`lstmcompat._activations.get`), so forward values agree bit for bit
  in the pure-PyTorch path;
* ``backward(grad, x, y)`` is the gradient w.r.t. ``x`` given the gradient
  ``grad`` w.r.t. ``y = forward(x)``, written as ``torch.autograd`` computes it
  for the reference's expression: the same formula and the same treatment of
  NaN and infinity. A slope that is a selection is applied as a selection
  (``hard_sigmoid`` passes ``grad`` where ``0 <= 0.2*x + 0.5 <= 1``, inclusive,
  as ``torch.clamp`` does, and gives an exact 0 elsewhere even where ``grad``
  is NaN; ``keras3_hard_sigmoid`` multiplies ``grad`` by the 0/1 mask
  ``0 < x + 3 < 6`` and divides by 6, as its reference (TF's ``Relu6Grad``) does;
  ``relu`` passes it where ``y > 0`` or ``y`` is NaN), and a slope the
  reference computes from the output is computed from the output (``elu``,
  ``selu``);
* ``code`` is the activation's number in the compiled extension, or ``None``
  when only the pure-PyTorch loop implements it.

Activations that are not element-wise (``softmax``) or user callables are not
here; ``fused_cannot`` sends them to the ``reference`` kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ... import _activations

Fn = Callable[[torch.Tensor], torch.Tensor]
Backward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_ERFC_SLOPE = 2.0 / math.sqrt(math.pi)  # -d erfc(u) / du = _ERFC_SLOPE * exp(-u * u)
_GELU_C = 0.7071067811865476  # the constant of the reference's gelu


def _b_linear(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return g


def _b_tanh(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return g * (1 - y * y)  # tanh_backward


def _b_sigmoid(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return g * (1 - y) * y  # sigmoid_backward


def _b_hard_sigmoid(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    t = x * 0.2 + 0.5  # the same expression (and rounding) as the forward
    return torch.where((t >= 0) & (t <= 1), g, 0.0) * 0.2  # clamp's backward, then * 0.2


def _b_keras3_hard_sigmoid(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = x + 3.0  # relu6's input, as in the forward
    return (g * ((s > 0) & (s < 6)).to(g.dtype)) / 6.0  # TF's Relu6Grad (a product), then / 6


def _b_relu(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.where(y <= 0, 0.0, g)  # threshold_backward on the output


def _b_softsign(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # x / (|x| + 1): the quotient's two gradients, the second through abs
    d = x.abs() + 1
    return g / d + (-g * x / (d * d)) * x.sgn()


def _b_exponential(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return g * y


def _exp_linear(pos: float, neg: float) -> Backward:
    def backward(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # the reference's (TF's) slope, from the output
        return g * torch.where(y < 0, y + neg, torch.full_like(y, pos))
    return backward


def _b_swish(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return g * s * (1 + x * (1 - s))  # silu_backward


def _softplus_backward(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    z = torch.exp(x)
    return torch.where(x > 20, g, g * z / (z + 1))  # softplus_backward (threshold 20)


def _b_softplus(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _softplus_backward(g, x)


def _b_gelu(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # 0.5 * x * erfc(-x * c): the product's two gradients, the second through erfc
    u = -x * _GELU_C
    e = torch.special.erfc(u)
    return (g * e) * 0.5 + (g * (0.5 * x)) * (-_ERFC_SLOPE * torch.exp(-u * u)) * -_GELU_C


def _b_mish(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # x * tanh(softplus(x)): the product's two gradients, the second through tanh and softplus
    t = torch.tanh(torch.nn.functional.softplus(x))
    return g * t + _softplus_backward(g * x * (1 - t * t), x)


#: name -> (backward, extension code or None)
_TABLE: dict[str, tuple[Backward, int | None]] = {
    "linear": (_b_linear, 0),
    "tanh": (_b_tanh, 1),
    "sigmoid": (_b_sigmoid, 2),
    "hard_sigmoid": (_b_hard_sigmoid, 3),
    "relu": (_b_relu, 4),
    "softsign": (_b_softsign, 5),
    "exponential": (_b_exponential, 6),
    "elu": (_exp_linear(1.0, 1.0), 7),
    "selu": (_exp_linear(_SELU_SCALE, _SELU_SCALE * _SELU_ALPHA), 8),
    "swish": (_b_swish, 9),
    "keras3_hard_sigmoid": (_b_keras3_hard_sigmoid, 10),
    "softplus": (_b_softplus, None),
    "gelu": (_b_gelu, None),
    "mish": (_b_mish, None),
}

KNOWN: frozenset[str] = frozenset(_TABLE)


def known(name: object) -> bool:
    """Whether ``name`` is an element-wise activation with a hand-written derivative."""
    return isinstance(name, str) and name in _TABLE


def forward(name: str) -> Fn:
    return _activations.get(name)


def backward(name: str) -> Backward:
    """``backward(grad, x, y)``: the gradient w.r.t. ``x`` (see the module docstring)."""
    return _TABLE[name][0]


def code(name: str) -> int | None:
    """The compiled extension's number for ``name`` (``None``: pure-PyTorch only)."""
    return _TABLE[name][1]
