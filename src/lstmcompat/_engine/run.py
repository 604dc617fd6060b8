"""The engine's entry point: ``run`` one LSTM recurrence over a sequence."""

from __future__ import annotations

import os

import torch

from .dispatch import (
    DropoutKind,
    MaskKind,
    choose,
    native_cannot,
    reference_cannot,
    register_kernel,
    runner,
)
from .fused import fused_cannot, fused_describe, fused_preferred, fused_step, run_fused
from .gpu import run_triton, triton_cannot
from .native import run_native
from .reference import run_reference
from .spec import CellSpec, Dropout, Weights, check_weights

register_kernel("native", run_native, native_cannot)
register_kernel("reference", run_reference, reference_cannot)
register_kernel("fused", run_fused, fused_cannot, priority=1, describe=fused_describe,
                preferred=fused_preferred)
register_kernel("triton", run_triton, triton_cannot, priority=2)

#: Environment variable that forces a kernel for every call that names none
#: (e.g. ``LSTMCOMPAT_KERNEL=fused`` to run a test suite through ``fused``).
KERNEL_ENV = "LSTMCOMPAT_KERNEL"


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

    Contract as :func:`lstmcompat._engine.reference.run_reference`; ``mask`` is a
    bool tensor ``(T, B)`` (``(B, T)`` when ``batch_first``).
    """
    outputs, h, c, _ = run_explained(spec, x, w, h0, c0, mask=mask, reverse=reverse,
                                     dropout=dropout, batch_first=batch_first, kernel=kernel)
    return outputs, h, c


def run_explained(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor,
                  c0: torch.Tensor, *, mask: torch.Tensor | None = None, reverse: bool = False,
                  dropout: Dropout | None = None, batch_first: bool = False,
                  kernel: str | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, str]]:
    """:func:`run`, also returning ``(kernel_name, reason)`` as given by :func:`choose`."""
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
    mask_kind, lengths = analyze_mask(mask, time_dim)
    dkind = dropout_kind(dropout)
    steps = x.shape[time_dim]
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, h0, c0, *w))
    forced = kernel or os.environ.get(KERNEL_ENV) or None
    ctx = dict(device=x.device, dtype=x.dtype, dropout_kind=dkind, reverse=reverse, steps=steps,
               batch=x.shape[1 - time_dim], grad=grad, kernel=forced)
    name, reason = choose(spec, mask_kind=mask_kind, **ctx)
    if name == "native" and mask_kind == "right_padded" and grad and forced is None \
            and not _all_finite(x, h0, c0, *w):
        # torch.lstm's packed sequences skip the padded steps; the reference (and TF)
        # runs them and carries their NaN or inf into the gradients (as 0 * NaN; the
        # forward values are the same).
        name, reason = choose(spec, mask_kind="general", **ctx)
        reason += " [NaN or inf in the inputs, state or weights: the padded steps run]"
    fn = runner(name)
    if name == "fused" and steps == 1 and mask_kind == "none" and dkind == "none":
        # Streaming: one step through the low-overhead step path (compiled when
        # no gradient is needed), same semantics as the sequence kernel.
        h, c = fused_step(spec, x.select(time_dim, 0), w, h0, c0)
        return h.unsqueeze(time_dim), h, c, (name, reason)
    if name == "native":
        out = fn(spec, x, w, h0, c0, lengths=lengths, reverse=reverse, dropout=dropout,
                 batch_first=batch_first)
    else:
        out = fn(spec, x, w, h0, c0, mask=None if mask_kind == "none" else mask,
                 reverse=reverse, dropout=dropout, batch_first=batch_first)
    return (*out, (name, reason))
