"""The ``fused`` kernel: one ``torch.autograd.Function`` over the whole sequence.

:func:`run_fused` has exactly the semantics of
:func:`lstmcompat._engine.reference.run_reference` (same arguments, same
results, same gradients up to floating-point rounding), for every
:class:`~lstmcompat._engine.spec.CellSpec` whose activations have a
hand-written derivative (:mod:`._acts`).

Forward: one GEMM projects the inputs of all steps (per-gate or shared input
dropout masks applied), then a time loop does, per step, one recurrent GEMM
and one fused pointwise pass and keeps what backward needs (gate
pre-activations, cell states, and the pre-clip values when clipping). Backward
runs the loop in reverse (pointwise gradient plus ``dh = dz @ R.T`` per step)
and then forms ``dW``, ``dR``, ``db``, ``dx``, ``dP`` and the peephole gradients
as single large GEMMs or sums over all steps. Without autograd, an inference
path runs the same loop and saves nothing.

The two time loops come from a *backend*: the compiled C++ extension
(:mod:`._extension`) when it is available and implements the activations, else the
pure-PyTorch loops of :mod:`._loops`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ..precision import operand, products
from ..spec import CellSpec, Dropout, Weights
from . import _loops
from ._ops import capturing, distinct, register_backend, run_backward, run_forward
from ._types import BackwardResult, ForwardResult, Grads, Saved


class Backend(Protocol):
    name: str

    def forward_loop(self, spec: CellSpec, Z: torch.Tensor, R: torch.Tensor, h0: torch.Tensor,
                     c0: torch.Tensor, dmh: torch.Tensor | None, peep: torch.Tensor | None,
                     P: torch.Tensor | None, mask: torch.Tensor | None, save: bool,
                     bias: torch.Tensor | None = None) -> ForwardResult: ...

    def backward_loop(self, spec: CellSpec, Z: torch.Tensor, C: torch.Tensor,
                      Cpre: torch.Tensor, Rpre: torch.Tensor, c0: torch.Tensor, R: torch.Tensor,
                      dmh: torch.Tensor | None, peep: torch.Tensor | None,
                      P: torch.Tensor | None, mask: torch.Tensor | None, dout: torch.Tensor,
                      dhT: torch.Tensor, dcT: torch.Tensor, lean: bool = False
                      ) -> BackwardResult: ...


class TorchBackend:
    """The pure-PyTorch time loops (:mod:`._loops`); runs wherever torch runs."""

    name = "torch"
    forward_loop = staticmethod(_loops.forward_loop)
    backward_loop = staticmethod(_loops.backward_loop)


TORCH_BACKEND = TorchBackend()
register_backend(TORCH_BACKEND.name, TORCH_BACKEND)


def _effective_bias(spec: CellSpec, b: torch.Tensor | None, like: torch.Tensor
                    ) -> torch.Tensor | None:
    """The bias with the forget bias folded in (``None`` when there is neither)."""
    if spec.forget_bias == 0.0:
        return b
    u = spec.units
    fb = like.new_zeros(4 * u)
    # through a float64 tensor: a value past the dtype's range rounds as the
    # reference's `z + forget_bias` does, instead of failing a Python-scalar fill
    fb[u:2 * u] = torch.tensor(spec.forget_bias, dtype=torch.float64)
    return fb if b is None else b + fb


def _project(spec: CellSpec, x: torch.Tensor, W: torch.Tensor, dmx: torch.Tensor | None
             ) -> torch.Tensor:
    """``Z = (x * dmx[k]) @ W_k`` for all steps at once: ``(T, B, 4u)``, fresh memory
    (with ``spec.matmul_dtype``, low-precision products: :func:`~..precision.products`).

    The bias is not added here: the time loop adds it (``addmm``'s bias would cost
    a full extra pass over ``Z``; the compiled loop adds it in its pointwise pass)."""
    T, B, D = x.shape
    u = spec.units
    md = spec.matmul_dtype
    if dmx is not None and dmx.shape[0] == 1:
        x = x * dmx[0]
        dmx = None
    if dmx is None:
        Z = products(x.reshape(T * B, D), W, md)
    else:
        Z = torch.cat([products((x * dmx[k]).reshape(T * B, D), W[:, k * u:(k + 1) * u], md)
                       for k in range(4)], dim=1)
    return Z.view(T, B, 4 * u)


def _inputs(spec: CellSpec, backend: Backend, x: torch.Tensor, W: torch.Tensor,
            dmx: torch.Tensor | None, dmh: torch.Tensor | None
            ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """``(Z, xw)`` for :func:`run_forward`: the input product of all steps, or, where
    the backend computes it in its loop (``input_in_loop``), fresh memory for the
    pre-activations and ``(x, W)`` (a shared input dropout mask applied to ``x``)."""
    fuse = getattr(backend, "input_in_loop", None)
    if fuse is not None and (dmx is None or dmx.shape[0] == 1) and not capturing() \
            and fuse(spec, x.dtype, dmh):
        T, B, _ = x.shape
        return x.new_empty(T, B, 4 * spec.units), (x if dmx is None else x * dmx[0], W)
    return _project(spec, x, W, dmx), None


def _peep(spec: CellSpec, w_i: Any, w_f: Any, w_o: Any) -> torch.Tensor | None:
    if not spec.use_peepholes:
        return None
    return torch.stack([w_i, w_f, w_o])


class FusedLSTMFunction(torch.autograd.Function):
    """Whole-sequence LSTM with a hand-written backward (see the module docstring).

    ``x`` is time-major in processing order; ``mask`` (bool ``(T, B)``) too.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, W: torch.Tensor, R: torch.Tensor,
                b: torch.Tensor | None, h0: torch.Tensor, c0: torch.Tensor,
                w_i: torch.Tensor | None, w_f: torch.Tensor | None, w_o: torch.Tensor | None,
                P: torch.Tensor | None, dmx: torch.Tensor | None, dmh: torch.Tensor | None,
                mask: torch.Tensor | None, spec: CellSpec, backend: Backend
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        peep = _peep(spec, w_i, w_f, w_o)
        Z, xw = _inputs(spec, backend, x, W, dmx, dmh)
        res = run_forward(backend, spec, Z, R, h0, c0, dmh, peep, P, mask, True,
                          _effective_bias(spec, b, W), xw)
        ctx.spec, ctx.backend = spec, backend
        ctx.has_b = b is not None
        ctx.save_for_backward(*Saved(x, W, R, h0, c0, peep, P, dmx, dmh, mask, Z, res.C,
                                     res.Cpre, res.Hs, res.Rpre, res.XH))
        return res.outputs, res.h, res.c

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor | None, dhT: torch.Tensor | None,
                 dcT: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        saved = Saved(*ctx.saved_tensors)
        need = Grads(*ctx.needs_input_grad[:len(Grads._fields)])
        grads = _grads(ctx.spec, ctx.backend, need, ctx.has_b, saved, dout, dhT, dcT)
        return (*grads, None, None, None, None, None)


def _grads(spec: CellSpec, backend: Backend, need: Grads, has_b: bool, saved: Saved,
           dout: torch.Tensor | None, dhT: torch.Tensor | None, dcT: torch.Tensor | None
           ) -> Grads:
    """The backward of the recurrence from what the forward ``saved`` and the gradients
    w.r.t. its outputs (``None``: zero); ``need`` says which gradients are wanted."""
    x, W, R, h0, c0, peep, P, dmx, dmh, mask, Z, C, Cpre, Hs, Rpre, XH = saved
    u = spec.units
    T, B, D = x.shape
    p = R.shape[0]
    if dout is None:
        dout = x.new_zeros(T, B, p)
    if dhT is None:
        dhT = h0.new_zeros(B, p)
    if dcT is None:
        dcT = c0.new_zeros(B, u)
    md = spec.matmul_dtype
    res = run_backward(backend, spec, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask,
                       dout.contiguous(), dhT.contiguous(), dcT.contiguous())
    # the operand of the weight-gradient products (the loop's own copy, when it made one:
    # then from a lean backward there is no float dZ, and db comes with it)
    if res.dZ_lowp is not None and res.dZ_lowp.numel():
        dZl = res.dZ_lowp.view(T * B, 4 * u)
        dZ2 = res.dZ.view(T * B, 4 * u) if res.dZ.numel() else None
    else:
        dZ2 = res.dZ.view(T * B, 4 * u)
        dZl = operand(dZ2, md)
    dx = dW = dR = db = dwi = dwf = dwo = dP = None
    shared_x = dmx is None or dmx.shape[0] == 1
    shared_h = dmh is None or dmh.shape[0] == 1
    if md is not None and need.dW and need.dR and shared_x and shared_h \
            and x.dtype == torch.float32:
        # Low-precision products: dW and dR as one product [x, h_prev]^T dZ (dZ's
        # operand prepared once; each element's sum is the same as apart), its left
        # operand in the low-precision type (each value rounded once, as the product
        # would round it): the forward loop's own when it kept it
        if XH is None:
            XH = x.new_empty(T, B, D + p, dtype=md)
            XH[..., :D] = x if dmx is None else x * dmx[0]
            h = Hs[:-1] if dmh is None else Hs[:-1] * dmh[0]
            XH[0, :, D:] = h0 if dmh is None else h0 * dmh[0]
            XH[1:, :, D:] = h
        dWR = products(XH.view(T * B, D + p).t(), dZl, md)
        dW, dR = dWR[:D], dWR[D:]
        need = need._replace(dW=False, dR=False)
    # Input side: dW = x^T dZ and dx = dZ W^T, gate block by gate block when
    # each gate has its own input dropout mask.
    if shared_x:
        if need.dW:
            xm = x if dmx is None else x * dmx[0]
            dW = products(xm.reshape(T * B, D).t(), dZl, md)
        if need.dx:
            dx = products(dZl, W.t(), md).view(T, B, D)
            if dmx is not None:
                dx = dx * dmx[0]
    else:
        if need.dW:
            dW = torch.cat([products((x * dmx[k]).reshape(T * B, D).t(),
                                     dZl[:, k * u:(k + 1) * u], md) for k in range(4)], dim=1)
        if need.dx:
            dx = sum((products(dZl[:, k * u:(k + 1) * u], W[:, k * u:(k + 1) * u].t(),
                               md).view(T, B, D) * dmx[k]) for k in range(4))
    if need.dR:
        Hprev = torch.cat([h0.unsqueeze(0), Hs[:-1]]).view(T * B, p)
        if dmh is None:
            dR = products(Hprev.t(), dZl, md)
        elif dmh.shape[0] == 1:
            dR = products((Hprev.view(T, B, p) * dmh[0]).view(T * B, p).t(), dZl, md)
        else:
            dR = torch.cat([products((Hprev.view(T, B, p) * dmh[k]).view(T * B, p).t(),
                                     dZl[:, k * u:(k + 1) * u], md) for k in range(4)], dim=1)
    if need.db and has_b:
        db = dZ2.sum(0) if dZ2 is not None else res.db
    if peep is not None:
        dwi, dwf, dwo = res.dpeep.unbind(0)
    if P is not None and need.dP:
        dP = res.HU.view(T * B, u).t() @ res.dRp.view(T * B, p)
    return Grads(dx, dW, dR, db, res.dh0 if need.dh0 else None, res.dc0 if need.dc0 else None,
                 dwi, dwf, dwo, dP)


class StepFunction(torch.autograd.Function):
    """One step with autograd, computed by the compiled step on a module's own parameters
    (streaming with gradients).

    ``saved`` is the compiled step's result, ``(h', c', Z, Cpre, Rpre)``, computed
    by the caller (the streamer, without a second dispatch) on ``params`` (the
    module's own parameters, in its own layout, read in place). The forward
    records it; the backward derives the canonical weights with
    ``weights(*params)``, forms the canonical gradients as
    :class:`FusedLSTMFunction` does and ``adjoint(dW, dR, db, dw_i, dw_f, dw_o,
    dP)`` maps them onto ``params``. The parameters are saved for backward, so
    an in-place change between forward and backward raises autograd's error,
    as for any PyTorch op. Same numbers as :class:`FusedLSTMFunction` on one step.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, saved: tuple,
                spec: CellSpec, backend: Backend, weights: Any, adjoint: Any,
                *params: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        # the compiled step already ran (the streamer calls it with save): record it
        h1, c1, Z, Cpre, Rpre = saved
        ctx.spec, ctx.backend, ctx.weights, ctx.adjoint = spec, backend, weights, adjoint
        ctx.present = tuple(p is not None for p in params)
        ctx.save_for_backward(x, h0, c0, Z, c1, Cpre, h1, Rpre,
                              *(p for p in params if p is not None))
        return h1, c1

    @staticmethod
    def backward(ctx: Any, dh: torch.Tensor | None, dc: torch.Tensor | None
                 ) -> tuple[torch.Tensor | None, ...]:
        x, h0, c0, Z, c1, Cpre, h1, Rpre, *kept = ctx.saved_tensors
        it = iter(kept)
        params = [next(it) if present else None for present in ctx.present]
        spec = ctx.spec
        w = ctx.weights(*params)
        W, R, b = w.W.detach(), w.R.detach(), None if w.b is None else w.b.detach()
        peep = _peep(spec, w.w_i, w.w_f, w.w_o)
        peep = None if peep is None else peep.detach()
        P = w.P.detach() if spec.num_proj is not None and w.P is not None else None
        need = ctx.needs_input_grad
        weights = any(need[8:])
        wanted = Grads(dx=need[0], dW=weights, dR=weights, db=weights, dh0=need[1],
                       dc0=need[2], dw_i=False, dw_f=False, dw_o=False, dP=weights)
        saved = Saved(x=x.unsqueeze(0), W=W, R=R, h0=h0, c0=c0, peep=peep, P=P, dmx=None,
                      dmh=None, mask=None, Z=Z.unsqueeze(0), C=c1.unsqueeze(0),
                      Cpre=Cpre.unsqueeze(0), Hs=h1.unsqueeze(0),
                      Rpre=Rpre.unsqueeze(0) if Rpre.numel() else Rpre)
        g = _grads(spec, ctx.backend, wanted, b is not None, saved, None, dh, dc)
        pgrads = (ctx.adjoint(g.dW, g.dR, g.db, g.dw_i, g.dw_f, g.dw_o, g.dP) if weights
                  else (None,) * (len(need) - 8))
        return (None if g.dx is None else g.dx[0], g.dh0, g.dc0, None, None, None, None, None,
                *pgrads)


def run_sequence(spec: CellSpec, backend: Backend, x: torch.Tensor, w: Weights,
                 h0: torch.Tensor, c0: torch.Tensor, *, mask: torch.Tensor | None = None,
                 reverse: bool = False, dropout: Dropout | None = None,
                 batch_first: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`run_fused` with an explicit backend."""
    if batch_first:
        x = x.transpose(0, 1)
        mask = None if mask is None else mask.transpose(0, 1)
    T = x.shape[0]
    if T == 0:
        return run_empty(spec, x, h0, c0, batch_first)
    if reverse:
        x = x.flip(0)
        mask = None if mask is None else mask.flip(0)
    if mask is not None:
        mask = mask.to(torch.bool).contiguous()
    dmx = dropout.x if dropout is not None else None
    dmh = dropout.h if dropout is not None else None
    tensors = (x, w.W, w.R, w.b, h0, c0, w.w_i, w.w_f, w.w_o, w.P)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        args = [x, w.W, w.R, w.b, h0, c0, w.w_i if spec.use_peepholes else None,
                w.w_f if spec.use_peepholes else None, w.w_o if spec.use_peepholes else None,
                w.P if spec.num_proj is not None else None, dmx, dmh, mask]
        if capturing():
            args = distinct(args)
        outputs, h, c = FusedLSTMFunction.apply(*args, spec, backend)
    else:
        with torch.no_grad():
            Z, xw = _inputs(spec, backend, x, w.W, dmx, dmh)
            peep = _peep(spec, w.w_i, w.w_f, w.w_o)
            P = w.P if spec.num_proj is not None else None
            res = run_forward(backend, spec, Z, w.R, h0, c0, dmh, peep, P, mask, False,
                              _effective_bias(spec, w.b, w.W), xw)
            outputs, h, c = res.outputs, res.h, res.c
    if batch_first:
        outputs = outputs.transpose(0, 1)
    return outputs, h, c


def run_empty(spec: CellSpec, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
              batch_first: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A sequence of no steps, as the reference: empty outputs, the initial state."""
    outputs = x.new_zeros(0, x.shape[1], spec.output_size)
    if batch_first:
        outputs = outputs.transpose(0, 1)
    return outputs, h0, c0
