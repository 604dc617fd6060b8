"""What the time loops of the ``fused`` kernel take and give, by name.

Every backend (:mod:`._loops`, the compiled extension of :mod:`._extension`, the
Triton loops of :mod:`lstmcompat._engine.gpu`) returns :class:`ForwardResult`
from ``forward_loop`` and :class:`BackwardResult` from ``backward_loop``;
:class:`Saved` is what the forward keeps for the backward and :class:`Grads`
the backward's result, in the order of
:class:`~._function.FusedLSTMFunction`'s differentiable inputs. Shapes: ``T``
steps, ``B`` batch, ``u`` units, ``p`` output size (``num_proj`` or ``u``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class ForwardResult(NamedTuple):
    """A forward time loop's results (absent tensors are empty)."""

    #: ``(T, B, p)``: the outputs of every step.
    outputs: torch.Tensor
    #: ``(B, p)``, ``(B, u)``: the final state.
    h: torch.Tensor
    c: torch.Tensor
    #: ``(T, B, u)``, only when saving: the cell state after each step.
    C: torch.Tensor
    #: ``(T, B, u)``, only when saving with ``cell_clip``: the cell before the clip.
    Cpre: torch.Tensor
    #: ``(T, B, p)``, only when saving: the ``h`` state after each step (``outputs``
    #: itself without a mask).
    Hs: torch.Tensor
    #: ``(T, B, p)``, only when saving with ``proj_clip``: the output before the clip.
    Rpre: torch.Tensor
    #: ``(T, B, D + p)`` in the products' low-precision type, when saving with the
    #: input product in the loop: each step's left operand ``[x_s, h_{s-1}]`` (the
    #: weight gradients' operand ``[x, h_prev]``, as the products rounded it); else
    #: ``None``.
    XH: torch.Tensor | None = None


class BackwardResult(NamedTuple):
    """A backward time loop's results (absent tensors are empty)."""

    #: ``(T, B, 4u)``: the gradient w.r.t. the gate pre-activations ``Z`` (empty from a
    #: ``lean`` backward, which gives ``dZ_lowp`` and ``db`` instead).
    dZ: torch.Tensor
    #: ``(B, p)``, ``(B, u)``: the gradients w.r.t. the initial state.
    dh0: torch.Tensor
    dc0: torch.Tensor
    #: ``(T, B, u)``, with a projection: ``o * act(c')`` of each step.
    HU: torch.Tensor
    #: ``(T, B, p)``, with a projection: the gradient w.r.t. each step's output
    #: before the projection clip.
    dRp: torch.Tensor
    #: ``(3, u)``, with peepholes: the gradients w.r.t. ``w_i, w_f, w_o``.
    dpeep: torch.Tensor
    #: ``dZ`` in ``spec.matmul_dtype``, when the loop made it (the compiled loop's
    #: bfloat16 copy, which its own products used); else ``None`` or empty.
    dZ_lowp: torch.Tensor | None = None
    #: ``(4u,)``: the bias gradient, summed by the loop when it kept no float ``dZ``
    #: (the compiled loop's ``lean`` backward: ``dZ`` is then empty); else ``None`` or
    #: empty.
    db: torch.Tensor | None = None


class Saved(NamedTuple):
    """What the forward keeps for the backward: its inputs (time-major, in processing
    order) and the forward loop's saved tensors."""

    x: torch.Tensor
    W: torch.Tensor
    R: torch.Tensor
    h0: torch.Tensor
    c0: torch.Tensor
    peep: torch.Tensor | None
    P: torch.Tensor | None
    dmx: torch.Tensor | None
    dmh: torch.Tensor | None
    mask: torch.Tensor | None
    Z: torch.Tensor
    C: torch.Tensor
    Cpre: torch.Tensor
    Hs: torch.Tensor
    Rpre: torch.Tensor
    #: :attr:`ForwardResult.XH` (``None`` when the forward made none).
    XH: torch.Tensor | None = None


class Grads(NamedTuple):
    """Gradients w.r.t. the differentiable inputs (``None``: not wanted or not there);
    also, as booleans, which of them are wanted."""

    dx: torch.Tensor | None
    dW: torch.Tensor | None
    dR: torch.Tensor | None
    db: torch.Tensor | None
    dh0: torch.Tensor | None
    dc0: torch.Tensor | None
    dw_i: torch.Tensor | None
    dw_f: torch.Tensor | None
    dw_o: torch.Tensor | None
    dP: torch.Tensor | None
