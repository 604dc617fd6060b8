"""Activations the ``fused`` kernel knows how to differentiate by hand.

Each entry maps a Keras activation name (as normalised by
:class:`~lstmcompat._engine.spec.CellSpec`) to ``(forward, derivative, code)``:

* ``forward(x)`` is the very function the reference uses
  (:func:`lstmcompat._activations.get`), so forward values agree bit for bit
  in the pure-PyTorch path;
* ``derivative(x, y)`` is ``d forward / dx`` at ``x`` (``y = forward(x)``),
  written to match what ``torch.autograd`` computes for the reference's
  expression (e.g. ``hard_sigmoid`` passes the gradient where
  ``0 <= 0.2*x + 0.5 <= 1``, inclusive, as ``torch.clamp`` does);
* ``code`` is the activation's number in the compiled extension, or ``None``
  when only the pure-PyTorch loop implements it.

Activations that are not element-wise (``softmax``) or user callables are not
here; ``fused_cannot`` sends them to the ``reference`` kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ... import _activations

Fn = Callable[[torch.Tensor], torch.Tensor]
Deriv = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _d_linear(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(x)


def _d_tanh(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 1 - y * y


def _d_sigmoid(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return y * (1 - y)


def _d_hard_sigmoid(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    t = x * 0.2 + 0.5  # the same expression (and rounding) as the forward
    return ((t >= 0) & (t <= 1)).to(x.dtype) * 0.2


def _d_relu(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (y > 0).to(x.dtype)


def _d_elu(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, torch.ones_like(x), torch.exp(x))


def _d_selu(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, torch.full_like(x, _SELU_SCALE),
                       torch.exp(x) * (_SELU_SCALE * _SELU_ALPHA))


def _d_softplus(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = torch.exp(x)
    return torch.where(x > 20, torch.ones_like(x), z / (z + 1))


def _d_softsign(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = 1 + x.abs()
    return 1 / (d * d)


def _d_swish(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s + x * (s * (1 - s))


def _d_gelu(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0))) + x * torch.exp(-0.5 * x * x) / math.sqrt(
        2.0 * math.pi)


def _d_exponential(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return y


def _d_mish(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    sp = F.softplus(x)
    t = torch.tanh(sp)
    z = torch.exp(x)
    dsp = torch.where(x > 20, torch.ones_like(x), z / (z + 1))
    return t + x * (1 - t * t) * dsp


#: name -> (derivative, extension code or None)
_TABLE: dict[str, tuple[Deriv, int | None]] = {
    "linear": (_d_linear, 0),
    "tanh": (_d_tanh, 1),
    "sigmoid": (_d_sigmoid, 2),
    "hard_sigmoid": (_d_hard_sigmoid, 3),
    "relu": (_d_relu, 4),
    "softsign": (_d_softsign, 5),
    "exponential": (_d_exponential, 6),
    "elu": (_d_elu, 7),
    "selu": (_d_selu, 8),
    "swish": (_d_swish, 9),
    "softplus": (_d_softplus, None),
    "gelu": (_d_gelu, None),
    "mish": (_d_mish, None),
}

KNOWN: frozenset[str] = frozenset(_TABLE)


def known(name: object) -> bool:
    """Whether ``name`` is an element-wise activation with a hand-written derivative."""
    return isinstance(name, str) and name in _TABLE


def forward(name: str) -> Fn:
    return _activations.get(name)


def derivative(name: str) -> Deriv:
    return _TABLE[name][0]


def code(name: str) -> int | None:
    """The compiled extension's number for ``name`` (``None``: pure-PyTorch only)."""
    return _TABLE[name][1]
