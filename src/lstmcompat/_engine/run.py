"""The engine's entry points: ``run`` one LSTM recurrence over a sequence, or start a
module's single-step ``Stream``, each through :func:`~.dispatch.decide`.

Nothing here knows a kernel by name: what a kernel can do, and how it runs, is
in its :class:`~.dispatch.Kernel` record (:mod:`.kernels`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from . import kernels as _kernels  # noqa: F401 - registers the kernels
from .dispatch import (
    KERNEL_ENV,
    DropoutKind,
    Kernel,
    MaskKind,
    choose,
    decide,
    facts,
    forced_kernel,
    kernel_record,
    ready,
)
from .precision import autocast_dtype
from .spec import CellSpec, Dropout, Weights, check_weights

__all__ = ["KERNEL_ENV", "Stream", "analyze_mask", "dropout_kind", "run", "run_explained",
           "start_stream"]


def analyze_mask(mask: torch.Tensor | None, time_dim: int) -> tuple[MaskKind, torch.Tensor | None]:
    """Classify a bool mask: ``("none", None)`` when absent or all true,
    ``("right_padded", lengths)`` when each sequence is a valid prefix (length 0
    included), else ``("general", None)``."""
    if mask is None:
        return "none", None
    if bool(mask.all()):
        return "none", None
    lengths = mask.sum(dim=time_dim)
    T = mask.shape[time_dim]
    steps = torch.arange(T, device=mask.device)
    prefix = steps.unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
    if time_dim == 1:
        prefix = prefix.t()
    if bool((prefix == mask).all()):
        return "right_padded", lengths.to("cpu", torch.int64)
    return "general", None


def _all_finite(*tensors: torch.Tensor | None) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t is not None)


def _cast_dropout(dropout: Dropout | None, dtype: torch.dtype) -> Dropout | None:
    if dropout is None:
        return None
    return Dropout(*(None if m is None else m.to(dtype) for m in dropout))


def dropout_kind(dropout: Dropout | None) -> DropoutKind:
    if dropout is None or (dropout.x is None and dropout.h is None):
        return "none"
    if dropout.h is None and dropout.x.shape[0] == 1:
        return "shared_input"
    return "other"


def run(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor, c0: torch.Tensor, *,
        mask: torch.Tensor | None = None, reverse: bool = False,
        dropout: Dropout | None = None, batch_first: bool = False,
        kernel: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recurrence with the fastest exact kernel (or the one named by ``kernel``).

    The runners' contract (:class:`~.dispatch.Kernel`); ``mask`` is a bool tensor
    ``(T, B)`` (``(B, T)`` when ``batch_first``).
    """
    outputs, h, c, _ = run_explained(spec, x, w, h0, c0, mask=mask, reverse=reverse,
                                     dropout=dropout, batch_first=batch_first, kernel=kernel)
    return outputs, h, c


def run_explained(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor,
                  c0: torch.Tensor, *, mask: torch.Tensor | None = None, reverse: bool = False,
                  dropout: Dropout | None = None, batch_first: bool = False,
                  kernel: str | None = None, checkpoint_steps: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, str]]:
    """:func:`run`, also returning ``(kernel_name, reason)`` as given by :func:`choose`.

    Under ``torch.autocast`` (float32 weights, an autocast type of ``bfloat16`` or
    ``float16`` for the inputs' device type) the recurrence runs with that type as
    its ``matmul_dtype`` (see :mod:`.precision`): inputs and initial state are taken
    in the weights' type, autocast is off inside, and the outputs come back in the
    autocast type; the final state stays in the weights' type (the cell state is kept
    in float32, also from one call to the next: a stateful layer or a truncated-BPTT
    loop feeds it back without rounding).

    With ``checkpoint_steps`` (an int > 0) and autograd recording, a sequence longer
    than that runs in segments of that many steps, each under
    ``torch.utils.checkpoint``: backward recomputes one segment's forward at a time,
    so what is kept for backward is one segment's tensors plus each segment's inputs
    and final state, for about one more forward pass of time (:func:`_segmented`).
    """
    if checkpoint_steps is not None:
        if isinstance(checkpoint_steps, bool) or not isinstance(checkpoint_steps, int) \
                or checkpoint_steps <= 0:
            raise ValueError("`checkpoint_steps` must be a positive int or None, got "
                             f"{checkpoint_steps!r}.")
    if checkpoint_steps is not None and not torch.compiler.is_compiling():
        steps = x.shape[1 if batch_first else 0]
        if steps > checkpoint_steps and torch.is_grad_enabled() and any(
                t is not None and t.requires_grad for t in (x, h0, c0, *w)):
            return _segmented(spec, x, w, h0, c0, mask=mask, reverse=reverse, dropout=dropout,
                              batch_first=batch_first, kernel=kernel, steps=checkpoint_steps)
    md = None if spec.matmul_dtype is not None else autocast_dtype(x.device.type, w.W.dtype)
    if md is not None:
        dt = w.W.dtype
        with torch.autocast(x.device.type, enabled=False):
            outputs, h, c, why = run_explained(
                dataclasses.replace(spec, matmul_dtype=md), x.to(dt), w, h0.to(dt), c0.to(dt),
                mask=mask, reverse=reverse, dropout=_cast_dropout(dropout, dt),
                batch_first=batch_first, kernel=kernel)
        return outputs.to(md), h, c, why
    time_dim = 1 if batch_first else 0
    if x.shape[time_dim] == 0 or x.shape[1 - time_dim] == 0:
        shape = list(x.shape[:2]) + [spec.output_size]
        return x.new_zeros(shape), h0, c0, ("none", "empty input: nothing to run")
    check_weights(spec, w)  # a kernel must never read a weight of another shape
    if w.W.shape[0] != x.shape[-1]:
        raise ValueError(f"input kernel must be ({x.shape[-1]}, {4 * spec.units}) for inputs "
                         f"of {x.shape[-1]} features, got {tuple(w.W.shape)}")
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.bool()
    capturing = torch.compiler.is_compiling()
    # A captured graph cannot branch on the mask's values: any mask is "general".
    mask_kind = ("none" if mask is None else "general") if capturing else \
        analyze_mask(mask, time_dim)[0]
    dkind = dropout_kind(dropout)
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, h0, c0, *w))
    forced = kernel or forced_kernel()
    ctx = dict(device=x.device, dtype=x.dtype, dropout_kind=dkind, reverse=reverse,
               steps=x.shape[time_dim], batch=x.shape[1 - time_dim], grad=grad, kernel=forced)
    note = ""
    while True:
        known = facts()
        name, reason = choose(spec, mask_kind=mask_kind, **ctx)
        k = kernel_record(name)
        if not ready(k, spec, x.device) or facts() != known:
            # Its first use failed (choose now says so; a forced kernel raises), or
            # preparing it changed what choose knows (a build): decide again.
            continue
        if not k.runs_padded_steps and mask_kind == "right_padded" and grad \
                and forced is None and not capturing and not _all_finite(x, h0, c0, *w):
            # Packed sequences skip the padded steps; the oracle (and TF) runs them and
            # carries their NaN or inf into the gradients (as 0 * NaN; the forward
            # values are the same).
            mask_kind = "general"
            note = " [NaN or inf in the inputs, state or weights: the padded steps run]"
            continue
        break
    out = k.run(spec, x, w, h0, c0, mask=None if mask_kind == "none" else mask,
                reverse=reverse, dropout=dropout, batch_first=batch_first)
    return (*out, (name, reason + note))


def _segmented(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor, c0: torch.Tensor,
               *, mask: torch.Tensor | None, reverse: bool, dropout: Dropout | None,
               batch_first: bool, kernel: str | None, steps: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, str]]:
    """:func:`run_explained` in checkpointed segments of ``steps`` steps (same numbers).

    Segments run in processing order (reversed inputs for ``reverse``), each from the
    previous one's final state. Keras's carry-over mask needs one more thing: a
    segment's leading masked steps repeat the previous segment's last output (a
    segment run alone gives zeros there, as a sequence's start does)."""
    from torch.utils.checkpoint import checkpoint

    tdim = 1 if batch_first else 0
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.bool()
    if reverse:
        x = x.flip(tdim)
        mask = None if mask is None else mask.flip(tdim)
    T = x.shape[tdim]
    why: list[tuple[str, str]] = []

    def segment(xs: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                ms: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        o, h, c, reason = run_explained(spec, xs, w, h, c, mask=ms, dropout=dropout,
                                        batch_first=batch_first, kernel=kernel)
        why.append(reason)
        return o, h, c

    outs: list[torch.Tensor] = []
    h, c = h0, c0
    for start in range(0, T, steps):
        n = min(steps, T - start)
        xs = x.narrow(tdim, start, n)
        ms = None if mask is None else mask.narrow(tdim, start, n)
        o, h, c = checkpoint(segment, xs, h, c, ms, use_reentrant=False)
        if ms is not None and spec.mask_mode == "carry" and outs:
            lead = (ms.long().cumsum(tdim) == 0).unsqueeze(-1)  # before its first valid step
            o = torch.where(lead, outs[-1].select(tdim, -1).unsqueeze(tdim), o)
        outs.append(o)
    name, reason = why[-1]
    return (torch.cat(outs, tdim), h, c,
            (name, f"{reason} [checkpointed in segments of {steps} steps]"))


class Stream(NamedTuple):
    """A module's single-step streaming path, as :func:`start_stream` made it.

    ``step(x, h, c)`` and ``step_stateful(x, buffers, h_name, c_name)`` run one
    step (see :class:`~.dispatch.Streaming`), returning ``None``
    when that call does not qualify (then the module takes its general path);
    ``kernel`` is ``choose``'s ``(name, reason)`` for the module's ``last_kernel``.
    """

    step: Callable[..., Any]
    step_stateful: Callable[..., Any]
    kernel: tuple[str, str]


def start_stream(spec: CellSpec, params: dict, names: tuple[str, ...], roles: dict[str, str],
                 weights: Callable[..., Weights], adjoint: Callable[..., tuple] | None = None,
                 *, device: torch.device, dtype: torch.dtype, batch: int | None = None,
                 dropout_kind: DropoutKind = "none", kernel: str | None = None,
                 gates: tuple[int, int, int, int] = (0, 1, 2, 3), x_time_axis: int = -1
                 ) -> Stream | None:
    """The single-step streaming path of one module, if ``choose`` selects one.

    Asked once per configuration of the module (its parameters' ``device`` and
    ``dtype``, ``batch`` when fixed, ``dropout_kind`` in effect, a ``kernel``
    forced by the module or by ``LSTMCOMPAT_KERNEL``): ``choose(...,
    streaming=True)`` decides, and the chosen kernel's streaming capability
    makes the stepper over ``params`` (arguments as its ``make``). ``None``: the
    module takes its general path.
    """
    d = decide(spec, device=device, dtype=dtype, dropout_kind=dropout_kind, batch=batch,
               kernel=kernel or forced_kernel(), streaming=True)
    if not d.streams:
        return None
    k: Kernel = kernel_record(d.kernel)
    known = facts()
    made = k.streaming.make(spec, params, names, roles, weights, adjoint,  # type: ignore
                            gates=gates, x_time_axis=x_time_axis)
    if made is None:
        return None
    if facts() != known:  # making it built what choose had only expected: its reason now
        d = decide(spec, device=device, dtype=dtype, dropout_kind=dropout_kind, batch=batch,
                   kernel=kernel or forced_kernel(), streaming=True)
    return Stream(made.step, made.step_stateful, (d.kernel, d.reason))
