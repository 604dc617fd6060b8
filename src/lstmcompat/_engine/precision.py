"""Mixed precision (``torch.autocast``): the engine's low-precision products.

Under ``torch.autocast`` a recurrence runs with ``CellSpec.matmul_dtype`` set to the
autocast type (``bfloat16``, or ``float16``): its products -- the input product
``x @ W``, the recurrent product ``h @ R`` of every step, and in backward the same
products of the gradients (``dx``, ``dW``, ``dR`` and ``dz @ R^T``) -- take their
operands rounded to that type and give float32 results. A product of two bfloat16
(or float16) values is exact in float32, so this is a float32 sum of exact products:
what AMX, AVX-512 BF16 and tensor cores compute, and no result is rounded to the low
precision (no step rounds what the next one reads). Everything else stays in the
weights' type (float32): the cell state, the gates and all pointwise work, the bias,
peepholes and the projection ``h @ P``. The outputs are given in the autocast type;
the final state stays float32.

``matmul_dtype`` is part of the math (:class:`~.spec.CellSpec`), so every kernel
computes the same numbers and is tested against the reference, which implements the
rule with :func:`lowp_matmul`: float32 products of rounded operands, independent of
any low-precision GEMM.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["LOW_PRECISION", "autocast_dtype", "lowp_matmul", "operand", "products", "rounded"]

#: The low-precision types a product may take its operands in.
LOW_PRECISION = (torch.bfloat16, torch.float16)


def autocast_dtype(device_type: str, dtype: torch.dtype) -> torch.dtype | None:
    """The low-precision type of the products of a recurrence whose weights are of
    ``dtype`` on a ``device_type`` device: the autocast type while ``torch.autocast``
    is enabled for that device type and ``dtype`` is float32 (autocast leaves
    float64 alone, as it does for ``torch.mm``), else ``None``."""
    if dtype != torch.float32 or device_type == "meta":  # autocast has no meta type
        return None
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know
        return None
    except TypeError:  # torch < 2.4: per-device functions
        enabled = (torch.is_autocast_cpu_enabled() if device_type == "cpu"
                   else torch.is_autocast_enabled() if device_type == "cuda" else False)
    if not enabled:
        return None
    try:
        amp = torch.get_autocast_dtype(device_type)
    except (AttributeError, TypeError):
        amp = (torch.get_autocast_cpu_dtype() if device_type == "cpu"
               else torch.get_autocast_gpu_dtype())
    return amp if amp in LOW_PRECISION else None


def rounded(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``t`` rounded to ``dtype`` (round to nearest even) and back to its own type; ``t``
    itself when ``dtype`` is ``None``."""
    if dtype is None or t.dtype == dtype:
        return t
    return t.to(dtype).to(t.dtype)


def products(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``a @ b`` (2-D, no autograd) with operands in ``dtype`` and a float32 result
    (float64 when an operand is: the engine's tests check the rule there, free of
    float32 rounding); ``a @ b`` itself when ``dtype`` is ``None``. Either operand may
    already be of ``dtype`` (:func:`operand`: one conversion for several products).

    On CPU with the compiled extension, MKL's ``gemm_bf16bf16f32`` (AMX / AVX-512
    BF16; as fast as torch's own bfloat16 ``mm`` here, and its result is float32); on
    CUDA ``torch.mm`` with a float32 result; else a float32 product of the rounded
    operands (the same numbers, slower)."""
    if dtype is None:
        return a @ b
    out = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    if out == torch.float32 and a.device.type == "cpu" and dtype == torch.bfloat16:
        from .fused import _extension

        loaded = _extension.loaded()
        if loaded is not None and loaded[0] is not None and loaded[0].bf16_gemm:
            return loaded[0].ops.mm_bf16(a, b)
    if out == torch.float32 and a.device.type == "cuda":
        try:
            return torch.mm(a.to(dtype), b.to(dtype), out_dtype=out)
        except (TypeError, RuntimeError):
            pass
    return a.to(dtype).to(out) @ b.to(dtype).to(out)


def operand(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``t`` converted once to ``dtype`` for several :func:`products` (``t`` itself when
    ``dtype`` is ``None``)."""
    return t if dtype is None else t.to(dtype)


class _LowpMatmul(torch.autograd.Function):
    """:func:`lowp_matmul`, forward and backward."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        ctx.dtype = dtype
        return rounded(a, dtype) @ rounded(b, dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, b = ctx.saved_tensors
        d = ctx.dtype
        da = db = None
        if ctx.needs_input_grad[0]:
            da = rounded(g, d) @ rounded(b, d).t()
        if ctx.needs_input_grad[1]:
            a2, g2 = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])
            db = rounded(a2, d).t() @ rounded(g2, d)
        return da, db, None


def lowp_matmul(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``a @ b`` (``a`` of any rank, ``b`` 2-D), differentiable, with the operands of
    every product (forward and both gradients) rounded to ``dtype`` and results in
    their own type: the reference's definition, independent of any low-precision
    GEMM; plain ``a @ b`` when ``dtype`` is ``None``."""
    if dtype is None:
        return a @ b
    return _LowpMatmul.apply(a, b, dtype)
