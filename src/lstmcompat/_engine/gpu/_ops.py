"""The Triton kernels of one time step as ``torch.library.triton_op`` operators.

``lstmcompat::triton_forward_step`` and ``lstmcompat::triton_backward_step`` launch
exactly the kernels that one step of :class:`~lstmcompat._engine.gpu.TritonBackend`'s
time loops launches (the same functions, :func:`~lstmcompat._engine.gpu.forward_step`
and :func:`~lstmcompat._engine.gpu.backward_step`, with every launch wrapped in
:func:`torch.library.wrap_triton`), as functional operators: inputs are not changed,
every result is fresh. ``torch.compile`` sees their kernels (Inductor can schedule
them as its own), ``torch.export`` keeps them as operators, and their fake
implementations give the results' shapes for any batch size.

The time loops themselves launch the kernels directly (a custom operator's dispatch
would add tens of microseconds to every step), and under graph capture a whole
sequence is the opaque ``lstmcompat::forward_loop`` / ``backward_loop`` node of
:mod:`lstmcompat._engine.fused._ops` with the ``"triton"`` backend (one node for any
sequence length; a ``triton_op`` of the whole loop would be traced step by step,
one graph per length).

On CUDA tensors the operators run the compiled kernels; on CPU tensors the same
kernels under Triton's interpreter (:func:`~lstmcompat._engine.gpu.interpreted_kernels`),
which is how they are tested without a GPU. Importing this module needs Triton.

Arguments (one step, ``B`` rows, ``u`` units, ``p`` outputs): ``mask`` and ``omask``
are ``uint8`` ``(B,)`` rows (the step mask, and the rows whose output is their
state: the mask itself for TF1 lengths, the rows seen so far for Keras masks);
``bounds`` is ``(-cell_clip, cell_clip, -proj_clip, proj_clip)`` in the data's
dtype; activations are the codes of the activation table
(:func:`lstmcompat._engine.fused._acts.code`).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch.library import triton_op, wrap_triton

from . import backward_flags, backward_step, forward_flags, forward_step, interpreted_kernels
from . import kernels as compiled_kernels

__all__ = ["triton_backward_step", "triton_forward_step"]

Tensor = torch.Tensor


def _kernels(t: Tensor) -> ModuleType:
    """The compiled kernels for CUDA tensors, the interpreted ones for CPU tensors."""
    return compiled_kernels() if t.device.type == "cuda" else interpreted_kernels()


def _u8(m: Tensor | None, like: Tensor) -> Tensor:
    return like if m is None else m.to(torch.uint8).contiguous()


@triton_op("lstmcompat::triton_forward_step", mutates_args=())
def triton_forward_step(z: Tensor, R: Tensor, h: Tensor, c: Tensor, dmh: Tensor | None,
                        peep: Tensor | None, P: Tensor | None, mask: Tensor | None,
                        omask: Tensor | None, bounds: Tensor, activation: int,
                        recurrent_activation: int, cell_clip: bool, proj_clip: bool
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One forward step: ``(z', h', c', out, cpre, rpre)``.

    ``z`` ``(B, 4u)`` is the step's input projection with the bias; ``z'`` the gate
    pre-activations (recurrent term and peepholes added) that backward reads;
    ``cpre`` ``(B, u)`` the cell before its clip (with ``cell_clip``, else empty) and
    ``rpre`` ``(B, p)`` the output before its clip (with ``proj_clip``, else empty).
    """
    k = _kernels(z)
    B, u, p = z.shape[0], c.shape[1], R.shape[0]
    z = z.contiguous().clone()
    R, h, c = R.contiguous(), h.contiguous(), c.contiguous()
    dmh = None if dmh is None else dmh.contiguous()
    peep = None if peep is None else peep.contiguous()
    flags, tail = forward_flags(activation, recurrent_activation, dmh, peep, P, mask,
                                cell_clip, proj_clip, True)
    c_next, out = z.new_empty(B, u), z.new_empty(B, p)
    h_next = z.new_empty(B, p) if mask is not None else out
    cpre = z.new_empty(B, u) if cell_clip else z.new_empty(0)
    rpre = z.new_empty(B, p) if proj_clip else z.new_empty(0)
    hu = z.new_empty(B, u) if P is not None else z
    rp = z.new_empty(B, p) if P is not None else z
    forward_step(k, wrap_triton, z, R, h, c, dmh, peep, P, _u8(mask, z), _u8(omask, z), bounds,
                 c_next, cpre if cell_clip else z, hu, rp, h_next, out,
                 rpre if proj_clip else z, flags, tail)
    return z, (out.clone() if mask is None else h_next), c_next, out, cpre, rpre


@triton_forward_step.register_fake
def _(z, R, h, c, dmh, peep, P, mask, omask, bounds, activation, recurrent_activation,
      cell_clip, proj_clip):
    B, u, p = z.shape[0], c.shape[1], R.shape[0]
    return (z.new_empty(B, 4 * u), z.new_empty(B, p), z.new_empty(B, u), z.new_empty(B, p),
            z.new_empty(B, u) if cell_clip else z.new_empty(0),
            z.new_empty(B, p) if proj_clip else z.new_empty(0))


@triton_op("lstmcompat::triton_backward_step", mutates_args=())
def triton_backward_step(z: Tensor, cn: Tensor, cprev: Tensor, cpre: Tensor | None,
                         rpre: Tensor | None, R: Tensor, dmh: Tensor | None,
                         peep: Tensor | None, P: Tensor | None, mask: Tensor | None,
                         dout: Tensor, dh: Tensor, dc: Tensor, acc: Tensor | None,
                         bounds: Tensor, activation: int, recurrent_activation: int,
                         carry: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor,
                                               Tensor]:
    """One backward step: ``(dz, dh_prev, dc_prev, acc', hu, drp, cn_held)``.

    ``z`` (the step's gate pre-activations), ``cn`` (the cell kept after the step),
    ``cprev``, ``cpre`` (with ``cell_clip``) and ``rpre`` (with ``proj_clip``) are what
    the forward saved; ``dout`` the step's output gradient, ``dh``/``dc`` the state's
    after the step, ``acc`` (Keras masks) the output gradient carried over masked
    steps. Results: the pre-activation gradient, the state's gradient before the
    step, ``acc`` updated (else empty), with a projection ``hu = o * act(c')`` and the
    gradient before the projection clip (else empty), with a mask and peepholes the
    held rows' new cell (else empty).
    """
    k = _kernels(z)
    B, u, p = z.shape[0], cn.shape[1], R.shape[0]
    z, cn, cprev = z.contiguous(), cn.contiguous(), cprev.contiguous()
    R, dout, dh = R.contiguous(), dout.contiguous(), dh.contiguous()
    dmh = None if dmh is None else dmh.contiguous()
    peep = None if peep is None else peep.contiguous()
    flags = backward_flags(activation, recurrent_activation, peep, P, mask, cpre is not None,
                           rpre is not None, carry)
    dc = dc.contiguous().clone()
    acc = acc.contiguous().clone() if acc is not None else z.new_empty(0)
    dz, dhp = torch.empty_like(z), z.new_empty(B, p)
    hu = z.new_empty(B, u) if P is not None else z.new_empty(0)
    drp = z.new_empty(B, p) if P is not None else z.new_empty(0)
    dhu = z.new_empty(B, u) if P is not None else z
    cnh = z.new_empty(B, u) if mask is not None and peep is not None else z.new_empty(0)
    backward_step(k, wrap_triton, z, cn, cprev, z if cpre is None else cpre.contiguous(),
                  z if rpre is None else rpre.contiguous(), R, dmh, peep, P, _u8(mask, z),
                  dout, dh, dc, acc if acc.numel() else z, bounds, dz, dhp,
                  hu if P is not None else z, drp if P is not None else z, dhu,
                  cnh if cnh.numel() else z, flags)
    return dz, dhp, dc, acc, hu, drp, cnh


@triton_backward_step.register_fake
def _(z, cn, cprev, cpre, rpre, R, dmh, peep, P, mask, dout, dh, dc, acc, bounds, activation,
      recurrent_activation, carry):
    B, u, p = z.shape[0], cn.shape[1], R.shape[0]
    return (z.new_empty(B, 4 * u), z.new_empty(B, p), z.new_empty(B, u),
            z.new_empty(B, p) if acc is not None else z.new_empty(0),
            z.new_empty(B, u) if P is not None else z.new_empty(0),
            z.new_empty(B, p) if P is not None else z.new_empty(0),
            z.new_empty(B, u) if mask is not None and peep is not None else z.new_empty(0))
