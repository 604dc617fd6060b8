"""The forward time loop as PyTorch's ``scan`` higher-order operator, for ``torch.onnx.export``.

``torch.onnx.export`` (the ``dynamo=True`` exporter) has no ONNX translation for the
custom ops of :mod:`._ops`, and a traced Python loop would fix the sequence length
of the exported graph. Its translation of ``torch._higher_order_ops.scan`` is an
ONNX ``Scan``, which runs any batch and any number of steps: while a model is
exported to ONNX, :func:`._ops.run_forward` runs this loop, so that a
``dynamic_shapes`` time axis stays dynamic in the ONNX file. It is never used in
eager mode, ``torch.compile`` or ``torch.export`` (those run the custom ops).

:func:`forward_loop` has the arguments and results of
:func:`._loops.forward_loop` (see there), with the same step: the same
expressions, written without in-place updates (a ``scan`` body may not mutate
its inputs), so the numbers are those of the pure-PyTorch loop up to
floating-point rounding.
"""

from __future__ import annotations

import torch

from ..reference import clip_by_value
from ..spec import CellSpec
from . import _acts
from ._types import ForwardResult


def forward_loop(spec: CellSpec, Z: torch.Tensor, R: torch.Tensor, h0: torch.Tensor,
                 c0: torch.Tensor, dmh: torch.Tensor | None, peep: torch.Tensor | None,
                 P: torch.Tensor | None, mask: torch.Tensor | None, save: bool,
                 bias: torch.Tensor | None = None) -> ForwardResult:
    """:func:`._loops.forward_loop` as one ``scan`` over time (``Z`` is updated in
    place with the gate pre-activations only when ``save``, as there)."""
    from torch._higher_order_ops.scan import scan

    # No gradient flows through an ONNX export, and the exporter's retracing of a
    # differentiable scan fails: the loop runs on detached values (the exported
    # forward is the same).
    Z_, R, h0, c0, dmh, peep, P, bias = (None if t is None else t.detach()
                                         for t in (Z, R, h0, c0, dmh, peep, P, bias))
    u = spec.units
    act, ract = _acts.forward(spec.activation), _acts.forward(spec.recurrent_activation)
    clip, pclip = spec.cell_clip, spec.proj_clip
    carry = mask is not None and spec.mask_mode == "carry"
    Zb = Z_ if bias is None else Z_ + bias

    def recurrent(h: torch.Tensor) -> torch.Tensor:
        if dmh is None:
            return h @ R
        if dmh.shape[0] == 1:
            return (h * dmh[0]) @ R
        return torch.cat([(h * dmh[k]) @ R[:, k * u:(k + 1) * u] for k in range(4)], dim=1)

    def step(state: tuple, xs: tuple) -> tuple[tuple, tuple]:
        h, c = state[0], state[1]
        z = xs[0] + recurrent(h)
        zi, zf, zg, zo = z[:, :u], z[:, u:2 * u], z[:, 2 * u:3 * u], z[:, 3 * u:]
        if peep is not None:
            zi = zi + peep[0] * c
            zf = zf + peep[1] * c
        i, f, g = ract(zi), ract(zf), act(zg)
        cp = f * c + i * g
        cn = clip_by_value(cp, clip) if clip is not None else cp
        if peep is not None:
            zo = zo + peep[2] * cn
        o = ract(zo)
        hn = o * act(cn)
        if P is not None:
            hn = hn @ P
        r = hn
        if pclip is not None:
            hn = clip_by_value(hn, pclip)
        if mask is None:
            h2, c2, out = hn, cn, hn
            new: tuple = (h2, c2)
        else:
            m = xs[1].unsqueeze(1)
            h2 = torch.where(m, hn, h)
            c2 = torch.where(m, cn, c)
            if carry:
                seen = state[2] | m
                out = torch.where(seen, h2, 0.0)
                new = (h2, c2, seen)
            else:
                out = torch.where(m, hn, 0.0)
                new = (h2, c2)
        ys: tuple = (out.clone(),)  # a scan's outputs may not alias its carries
        if save:
            ys += (torch.cat([zi, zf, zg, zo], dim=1), c2.clone(), h2.clone())
            ys += (cp.clone(),) if clip is not None else ()
            ys += (r.clone(),) if pclip is not None else ()
        return new, ys

    init: tuple = (h0.clone(), c0.clone())  # nor may its inputs alias (one zero state)
    if carry:
        init += (torch.zeros_like(h0[:, :1], dtype=torch.bool),)
    xs = (Zb,) if mask is None else (Zb, mask)
    state, ys = scan(step, init, xs)
    empty = Z.new_empty(0)
    outputs = ys[0]
    if not save:
        return ForwardResult(outputs, state[0], state[1], empty, empty, empty, empty)
    Z.copy_(ys[1])
    C = ys[2]
    Hs = ys[3] if mask is not None else outputs
    rest = iter(ys[4:])
    Cpre = next(rest) if clip is not None else empty
    Rpre = next(rest) if pclip is not None else empty
    return ForwardResult(outputs, state[0], state[1], C, Cpre, Hs, Rpre)
