"""The engine's activation table: every element-wise activation with a hand-written
derivative, the one source of truth for the ``fused`` and ``triton`` kernels.

Each :class:`Act` record (``TABLE[name]``, keyed by the Keras activation name as
normalised by :class:`~lstmcompat._engine.spec.CellSpec`) holds:

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
* ``code`` is the activation's number in the compiled switches (``act_f``/``act_g``
  in ``csrc/activations.h``, ``_act``/``_gact`` in :mod:`lstmcompat._engine.gpu._kernels`),
  or ``None`` when only the pure-PyTorch loop implements it;
* ``constants``: the numbers its formulas use (``selu``'s ``alpha`` and ``scale``),
  which the compiled switches take from here: ``csrc/activation_codes.h`` is
  generated from this table (``tools/gen_activation_codes.py``) and the
  Triton kernels import them.

``tests/engine/test_activation_table.py`` ties every compiled switch to this table:
it evaluates each entry's code through the C++ switch (the extension's
``activation`` op) and the Triton one (under Triton's interpreter) and compares
with ``forward``/``backward``, and checks that the generated header is current.

Activations that are not element-wise (``softmax``) or user callables are not
here; ``fused_cannot`` sends them to the ``reference`` kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ... import _activations

Fn = Callable[[torch.Tensor], torch.Tensor]
Backward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

SELU_ALPHA = _activations.SELU_ALPHA
SELU_SCALE = _activations.SELU_SCALE
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


@dataclass(frozen=True)
class Act:
    """One activation of the table (see the module docstring)."""

    name: str
    #: ``backward(grad, x, y)``: the gradient w.r.t. ``x``.
    backward: Backward
    #: The number in the compiled switches, or ``None`` (pure-PyTorch loop only).
    code: int | None
    #: Named constants of its formulas, shared with the compiled switches.
    constants: Mapping[str, float] = field(default_factory=dict)

    @property
    def forward(self) -> Fn:
        """The reference's own function (:func:`lstmcompat._activations.get`)."""
        return _activations.get(self.name)


TABLE: dict[str, Act] = {a.name: a for a in (
    Act("linear", _b_linear, 0),
    Act("tanh", _b_tanh, 1),
    Act("sigmoid", _b_sigmoid, 2),
    Act("hard_sigmoid", _b_hard_sigmoid, 3),
    Act("relu", _b_relu, 4),
    Act("softsign", _b_softsign, 5),
    Act("exponential", _b_exponential, 6),
    Act("elu", _exp_linear(1.0, 1.0), 7),
    Act("selu", _exp_linear(SELU_SCALE, SELU_SCALE * SELU_ALPHA), 8,
        {"alpha": SELU_ALPHA, "scale": SELU_SCALE}),
    Act("swish", _b_swish, 9),
    Act("keras3_hard_sigmoid", _b_keras3_hard_sigmoid, 10),
    Act("softplus", _b_softplus, None),
    Act("gelu", _b_gelu, None),
    Act("mish", _b_mish, None),
)}

KNOWN: frozenset[str] = frozenset(TABLE)
#: The compiled activations, by code.
COMPILED: dict[int, Act] = {a.code: a for a in TABLE.values() if a.code is not None}


def known(name: object) -> bool:
    """Whether ``name`` is an element-wise activation with a hand-written derivative."""
    return isinstance(name, str) and name in TABLE


def forward(name: str) -> Fn:
    return TABLE[name].forward


def backward(name: str) -> Backward:
    """``backward(grad, x, y)``: the gradient w.r.t. ``x`` (see the module docstring)."""
    return TABLE[name].backward


def code(name: str) -> int | None:
    """The compiled extension's number for ``name`` (``None``: pure-PyTorch only)."""
    return TABLE[name].code


#: The C++ header generated from the table.
HEADER = Path(__file__).with_name("csrc") / "activation_codes.h"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def cpp_header() -> str:
    """The text of ``csrc/activation_codes.h``: the codes and constants as C++ names."""
    lines = [
        "// Generated from the activation table in _acts.py by tools/gen_activation_codes.py:",
        "// do not edit (test_activation_table.py checks that it is current).",
        "#pragma once",
        "",
        "namespace lstmcompat {",
        "namespace act {",
        "",
        "// Codes of act_f / act_g (activations.h).",
    ]
    for a in sorted(COMPILED.values(), key=lambda a: a.code):  # type: ignore[arg-type, return-value]
        lines.append(f"constexpr int k{_camel(a.name)} = {a.code};")
    lines.append(f"constexpr int kCount = {max(COMPILED) + 1};")
    lines += ["", "// Constants of their formulas."]
    for a in TABLE.values():
        for key, value in a.constants.items():
            lines.append(f"constexpr double k{_camel(a.name)}{_camel(key)} = {value!r};")
    lines += ["", "}  // namespace act", "}  // namespace lstmcompat", ""]
    return "\n".join(lines)

