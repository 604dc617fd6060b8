"""The time loops of the ``fused`` kernel in plain PyTorch (the fallback backend).

Both loops work in *processing order* on time-major tensors; the caller
(:mod:`._function`) flips inputs for ``reverse`` and handles ``batch_first``.
The compiled extension implements exactly the same two functions with the same
arguments and results, so :class:`._function.FusedLSTMFunction` does not care
which backend runs.

Forward arguments (``u`` units, ``p`` output size):

* ``Z`` ``(T, B, 4u)``: the input projection ``x @ W`` of every step. It is
  overwritten, step by step, with the gate pre-activations (bias, recurrent term
  and peepholes included) that backward needs.
* ``bias`` ``(4u,)`` or ``None``: the bias with the forget bias folded in, added
  to every step (the compiled loop adds it in its pointwise pass, which saves a
  pass over ``Z``).
* ``R`` ``(p, 4u)`` (with ``spec.matmul_dtype`` both operands of each recurrent
  product are rounded to it, see :mod:`lstmcompat._engine.precision`),
  ``h0`` ``(B, p)``, ``c0`` ``(B, u)``;
  ``dmh`` ``(G, B, p)`` recurrent dropout masks or ``None``;
  ``peep`` ``(3, u)`` rows ``w_i, w_f, w_o`` or ``None``; ``P`` ``(u, p)`` or ``None``;
  ``mask`` bool ``(T, B)`` or ``None``.

It returns a :class:`~._types.ForwardResult` ``outputs (T, B, p), h, c, C, Cpre, Hs,
Rpre`` where (only when
``save``) ``C`` is the cell state after each step, ``Cpre`` the cell before
the clip (with ``cell_clip``), ``Hs`` the ``h`` state after each step (``outputs``
itself when there is no mask) and ``Rpre`` the output before the projection clip
(with ``proj_clip``). Absent tensors are empty.
"""

from __future__ import annotations

import torch

from ..precision import rounded
from ..reference import clip_by_value
from ..spec import CellSpec
from . import _acts
from ._types import BackwardResult, ForwardResult


def _recurrent_add(z: torch.Tensor, h: torch.Tensor, R: torch.Tensor,
                   dmh: torch.Tensor | None, u: int, md: torch.dtype | None) -> None:
    """``z += (h * dmh[k]) @ R_k`` for each gate ``k`` (in place); with ``md``
    (``spec.matmul_dtype``) the left operand is rounded to it (``R`` comes rounded)."""
    if dmh is None:
        z.addmm_(rounded(h, md), R)
    elif dmh.shape[0] == 1:
        z.addmm_(rounded(h * dmh[0], md), R)
    else:
        for k in range(4):
            z[:, k * u:(k + 1) * u].addmm_(rounded(h * dmh[k], md), R[:, k * u:(k + 1) * u])


def forward_loop(spec: CellSpec, Z: torch.Tensor, R: torch.Tensor, h0: torch.Tensor,
                 c0: torch.Tensor, dmh: torch.Tensor | None, peep: torch.Tensor | None,
                 P: torch.Tensor | None, mask: torch.Tensor | None, save: bool,
                 bias: torch.Tensor | None = None) -> ForwardResult:
    """Run the recurrence over ``Z`` (see the module docstring)."""
    if bias is not None:
        Z.add_(bias)
    R = rounded(R, spec.matmul_dtype)
    T, B, _ = Z.shape
    u = spec.units
    p = R.shape[0]
    act, ract = _acts.forward(spec.activation), _acts.forward(spec.recurrent_activation)
    clip, pclip = spec.cell_clip, spec.proj_clip
    carry = spec.mask_mode == "carry"
    empty = Z.new_empty(0)
    outputs = Z.new_empty(T, B, p)
    C = Z.new_empty(T, B, u) if save else empty
    Cpre = Z.new_empty(T, B, u) if save and clip is not None else empty
    Hs = Z.new_empty(T, B, p) if save and mask is not None else (outputs if save else empty)
    Rpre = Z.new_empty(T, B, p) if save and pclip is not None else empty
    h, c = h0, c0
    seen = None
    for s in range(T):
        z = Z[s]
        _recurrent_add(z, h, R, dmh, u, spec.matmul_dtype)
        if peep is not None:
            z[:, :u].addcmul_(peep[0], c)
            z[:, u:2 * u].addcmul_(peep[1], c)
        i_f = ract(z[:, :2 * u])
        i, f = i_f[:, :u], i_f[:, u:]
        g = act(z[:, 2 * u:3 * u])
        cp = torch.addcmul(f * c, i, g)
        cn = clip_by_value(cp, clip) if clip is not None else cp
        if peep is not None:
            z[:, 3 * u:].addcmul_(peep[2], cn)
        o = ract(z[:, 3 * u:])
        hn = o * act(cn)
        if P is not None:
            hn = hn @ P
        r = hn
        if pclip is not None:
            hn = clip_by_value(hn, pclip)
        if mask is None:
            h, c = hn, cn
            outputs[s] = hn
        else:
            m = mask[s].unsqueeze(1)
            h = torch.where(m, hn, h)
            c = torch.where(m, cn, c)
            if carry:
                seen = m if seen is None else seen | m
                outputs[s] = torch.where(seen, h, 0.0)
            else:
                outputs[s] = torch.where(m, hn, 0.0)
            if save:
                Hs[s] = h
        if save:
            C[s] = c
            if clip is not None:
                Cpre[s] = cp
            if pclip is not None:
                Rpre[s] = r
    return ForwardResult(outputs, h, c, C, Cpre, Hs, Rpre)


def backward_loop(spec: CellSpec, Z: torch.Tensor, C: torch.Tensor, Cpre: torch.Tensor,
                  Rpre: torch.Tensor, c0: torch.Tensor, R: torch.Tensor,
                  dmh: torch.Tensor | None, peep: torch.Tensor | None, P: torch.Tensor | None,
                  mask: torch.Tensor | None, dout: torch.Tensor, dhT: torch.Tensor,
                  dcT: torch.Tensor, lean: bool = False) -> BackwardResult:
    """Gradients of the recurrence, last step first (``lean`` is the compiled loop's
    option; these loops always give ``dZ``).

    Returns ``dZ (T, B, 4u)`` (gradient w.r.t. the gate pre-activations; on masked
    steps 0, or NaN where the step is not finite, as in the reference), ``dh0``,
    ``dc0``, ``HU (T, B, u)`` (the unprojected outputs, with ``P``), ``dRp (T, B, p)``
    (gradient w.r.t. the projected output before its clip, with ``P``) and ``dpeep
    (3, u)`` (gradients of ``w_i, w_f, w_o``, with peepholes); absent tensors are empty.
    """
    T, B, _ = Z.shape
    u = spec.units
    R = rounded(R, spec.matmul_dtype)
    act, ract = _acts.forward(spec.activation), _acts.forward(spec.recurrent_activation)
    bact, bract = _acts.backward(spec.activation), _acts.backward(spec.recurrent_activation)
    clip, pclip = spec.cell_clip, spec.proj_clip
    carry = spec.mask_mode == "carry"
    dZ = torch.empty_like(Z)
    HU = Z.new_empty(T, B, u) if P is not None else Z.new_empty(0)
    dRp = Z.new_empty(T, B, P.shape[1]) if P is not None else Z.new_empty(0)
    Cn = torch.empty_like(C) if mask is not None and peep is not None else C
    dh, dc = dhT, dcT
    acc = None
    for s in range(T - 1, -1, -1):
        z = Z[s]
        cn = C[s]
        cprev = C[s - 1] if s > 0 else c0
        zi, zf, zg, zo = z[:, :u], z[:, u:2 * u], z[:, 2 * u:3 * u], z[:, 3 * u:]
        i, f, g, o = ract(zi), ract(zf), act(zg), ract(zo)
        if mask is None:
            dhn, dcn = dh + dout[s], dc
        else:
            m = mask[s].unsqueeze(1)
            if carry:
                tot = dout[s] if acc is None else dout[s] + acc
                dhn = torch.where(m, dh + tot, 0.0)
                acc = torch.where(m, 0.0, tot)
            else:
                dhn = torch.where(m, dh + dout[s], 0.0)
            dcn = torch.where(m, dc, 0.0)
            # A held row's step still ran (the reference differentiates it with zero
            # gradients, so NaN or inf in it reach the gradients as 0 * NaN): its new
            # cell, which C does not keep, again.
            cp = Cpre[s] if clip is not None else torch.addcmul(f * cprev, i, g)
            cn = torch.where(m, cn, clip_by_value(cp, clip) if clip is not None else cp)
            if Cn is not C:
                Cn[s] = cn
        if pclip is not None:
            rp = Rpre[s]
            dhn = torch.where((rp >= -pclip) & (rp <= pclip), dhn, 0.0)
        a = act(cn)
        if P is not None:
            HU[s] = o * a
            dRp[s] = dhn
            dhu = dhn @ P.t()
        else:
            dhu = dhn
        dz = dZ[s]
        dzo = bract(dhu * a, zo, o)
        dz[:, 3 * u:] = dzo
        dct = dcn + bact(dhu * o, cn, a)
        if peep is not None:
            dct = dct + dzo * peep[2]
        if clip is not None and spec.cell_clip_gradient == "clip_by_value":
            cp = Cpre[s]
            dct = torch.where((cp >= -clip) & (cp <= clip), dct, 0.0)
        dzi = bract(dct * g, zi, i)
        dzf = bract(dct * cprev, zf, f)
        dz[:, :u] = dzi
        dz[:, u:2 * u] = dzf
        dz[:, 2 * u:3 * u] = bact(dct * i, zg, g)
        dcp = dct * f
        if peep is not None:
            dcp = dcp + dzi * peep[0] + dzf * peep[1]
        dzr = rounded(dz, spec.matmul_dtype)
        if dmh is None:
            dhp = dzr @ R.t()
        elif dmh.shape[0] == 1:
            dhp = (dzr @ R.t()) * dmh[0]
        else:
            dhp = sum((dzr[:, k * u:(k + 1) * u] @ R[:, k * u:(k + 1) * u].t()) * dmh[k]
                      for k in range(4))
        if mask is None:
            dh, dc = dhp, dcp
        else:
            dh = dhp + torch.where(m, 0.0, dh)
            dc = dcp + torch.where(m, 0.0, dc)
    dpeep = peephole_grads(dZ, C, c0, u, Cn) if peep is not None else Z.new_empty(0)
    return BackwardResult(dZ, dh, dc, HU, dRp, dpeep)


def peephole_grads(dZ: torch.Tensor, C: torch.Tensor, c0: torch.Tensor, u: int,
                   Cn: torch.Tensor | None = None) -> torch.Tensor:
    """Gradients ``(3, u)`` of ``w_i, w_f, w_o`` from the pre-activation gradients ``dZ``
    and the cell states ``C`` (``c0`` before the first step); ``Cn``, when given, is each
    step's new cell before the mask (``w_o`` reads it; ``C`` holds the previous cell on
    masked rows)."""
    Cprev = torch.cat([c0.unsqueeze(0), C[:-1]])
    return torch.stack([(dZ[..., :u] * Cprev).sum((0, 1)),
                        (dZ[..., u:2 * u] * Cprev).sum((0, 1)),
                        (dZ[..., 3 * u:] * (C if Cn is None else Cn)).sum((0, 1))])
