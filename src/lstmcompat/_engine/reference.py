"""The ``reference`` kernel: a plain step-by-step autograd loop. It is the oracle.

It implements every :class:`~lstmcompat._engine.spec.CellSpec` (any activation
callable, peepholes, clips, projection, forget bias, both masking rules,
per-gate or shared dropout masks, reversed processing) exactly as written in
the ``spec`` module docstring. Every fast kernel is tested against it.
"""

from __future__ import annotations

import torch

from .precision import lowp_matmul
from .spec import CellSpec, Dropout, Weights


def reference_cannot(spec: CellSpec, **_: object) -> str | None:
    """The oracle runs every spec exactly: ``None``, always."""
    return None


def clip_by_value(t: torch.Tensor, bound: float) -> torch.Tensor:
    """TensorFlow's ``clip_by_value(t, -bound, bound)``: ``maximum(minimum(t, bound), -bound)``.

    For every ``bound`` TF accepts: NaN in ``t`` stays NaN, a NaN ``bound`` gives NaN
    everywhere, and when ``-bound > bound`` (a negative ``bound``) the lower bound
    wins (``-bound`` everywhere). The gradient passes where ``-bound <= t <= bound``
    (TF's ``t <= bound`` of ``minimum`` and ``>= -bound`` of ``maximum``) and is an
    exact 0 elsewhere, NaN ``t`` included. (``torch.clamp(t, lo, hi)`` alone gives
    ``hi`` when ``lo > hi``.)
    """
    return torch.clamp(t, max=bound).clamp(min=-bound)


class _ClipIdentityGradient(torch.autograd.Function):
    """:func:`clip_by_value` forward, identity backward (TF's block ops' cell clip)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, bound: float) -> torch.Tensor:  # type: ignore[override]
        return clip_by_value(t, bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad, None


def clip_cell(spec: CellSpec, c: torch.Tensor) -> torch.Tensor:
    """The cell clip of ``spec`` (``cell_clip`` not ``None``), with its gradient rule."""
    if spec.cell_clip_gradient == "identity":
        return _ClipIdentityGradient.apply(c, spec.cell_clip)
    return clip_by_value(c, spec.cell_clip)


def _project_inputs(x: torch.Tensor, w: Weights, units: int, dx: torch.Tensor | None,
                    md: torch.dtype | None = None) -> torch.Tensor:
    """Input projection of all steps at once: ``(T, B, 4u)`` (products' operands in
    ``md``, see :mod:`.precision`)."""
    if dx is None:
        z = lowp_matmul(x, w.W, md)
    elif dx.shape[0] == 1:
        z = lowp_matmul(x * dx[0], w.W, md)
    else:
        z = torch.cat([lowp_matmul(x * dx[k], w.W[:, k * units:(k + 1) * units], md)
                       for k in range(4)], dim=-1)
    if w.b is not None:
        z = z + w.b
    return z


def _recurrent(h: torch.Tensor, w: Weights, units: int, dh: torch.Tensor | None,
               md: torch.dtype | None = None) -> torch.Tensor:
    if dh is None:
        return lowp_matmul(h, w.R, md)
    if dh.shape[0] == 1:
        return lowp_matmul(h * dh[0], w.R, md)
    return torch.cat([lowp_matmul(h * dh[k], w.R[:, k * units:(k + 1) * units], md)
                      for k in range(4)], dim=-1)


def step(spec: CellSpec, zx: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: Weights,
         dh: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step from the projected input ``zx = x @ W + b`` (``(B, 4u)``).

    Returns the new ``(h, c)`` before any masking.
    """
    u = spec.units
    act = spec.activation_fn()
    ract = spec.recurrent_activation_fn()
    z = zx + _recurrent(h, w, u, dh, spec.matmul_dtype)
    zi, zf, zg, zo = z.split(u, dim=-1)
    if spec.use_peepholes:
        zi = zi + w.w_i * c
        zf = zf + w.w_f * c
    if spec.forget_bias != 0.0:
        zf = zf + spec.forget_bias
    i = ract(zi)
    f = ract(zf)
    c_new = f * c + i * act(zg)
    if spec.cell_clip is not None:
        c_new = clip_cell(spec, c_new)
    if spec.use_peepholes:
        zo = zo + w.w_o * c_new
    o = ract(zo)
    h_new = o * act(c_new)
    if spec.num_proj is not None:
        h_new = h_new @ w.P
    if spec.proj_clip is not None:
        h_new = clip_by_value(h_new, spec.proj_clip)
    return h_new, c_new


def run_reference(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor,
                  c0: torch.Tensor, *, mask: torch.Tensor | None = None,
                  reverse: bool = False, dropout: Dropout | None = None,
                  batch_first: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recurrence over a whole sequence.

    Args:
        spec: the cell's math.
        x: inputs ``(T, B, depth)`` (``(B, T, depth)`` when ``batch_first``).
        w: canonical weights.
        h0, c0: initial state ``(B, out)`` and ``(B, units)``.
        mask: bool ``(T, B)`` (``(B, T)`` when ``batch_first``) or ``None``.
        reverse: process the steps from last to first; outputs are returned in
            processing order (Keras ``go_backwards``).
        dropout: variational dropout masks or ``None``.

    Returns:
        ``(outputs, h, c)``: outputs ``(T, B, out)`` (``(B, T, out)`` when
        ``batch_first``) in processing order, and the final state.
    """
    if batch_first:
        x = x.transpose(0, 1)
        mask = None if mask is None else mask.transpose(0, 1)
    T = x.shape[0]
    dx = dropout.x if dropout is not None else None
    dh = dropout.h if dropout is not None else None
    zx = _project_inputs(x, w, spec.units, dx, spec.matmul_dtype)
    h, c = h0, c0
    prev_out = None
    outs = []
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h_new, c_new = step(spec, zx[t], h, c, w, dh)
        if mask is None:
            out = h_new
            h, c = h_new, c_new
        else:
            m = mask[t].unsqueeze(-1)
            if spec.mask_mode == "carry":
                if prev_out is None:
                    prev_out = torch.zeros_like(h_new)
                out = torch.where(m, h_new, prev_out)
                prev_out = out
            else:
                out = torch.where(m, h_new, torch.zeros_like(h_new))
            h = torch.where(m, h_new, h)
            c = torch.where(m, c_new, c)
        outs.append(out)
    if T == 0:
        out_shape = (0, x.shape[1], spec.output_size)
        outputs = x.new_zeros(out_shape)
    else:
        outputs = torch.stack(outs, dim=0)
    if batch_first:
        outputs = outputs.transpose(0, 1)
    return outputs, h, c
