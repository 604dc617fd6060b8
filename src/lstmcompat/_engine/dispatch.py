"""Kernel dispatch: one pure function, ``choose``, says which kernel runs a call and why.

An explicit ``kernel=`` choice wins; a kernel that cannot run the call exactly
raises ``ValueError`` (never a silent fallback).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import torch

from .spec import CellSpec

MaskKind = Literal["none", "right_padded", "general"]
DropoutKind = Literal["none", "shared_input", "other"]
KernelName = str

#: Kernels known to the engine, best first. Other modules may register more
#: (``register_kernel``); each entry maps a name to a predicate that returns
#: ``None`` when the kernel can run the call exactly, else the reason it cannot.
_KERNELS: dict[str, Callable[..., str | None]] = {}
_RUNNERS: dict[str, Callable] = {}
_DESCRIBE: dict[str, Callable[..., str]] = {}
_PREFERRED: dict[str, Callable[..., str | None]] = {}
_PRIORITY: list[str] = []


def register_kernel(name: str, runner: Callable, cannot: Callable[..., str | None],
                    priority: int | None = None,
                    describe: Callable[..., str] | None = None,
                    preferred: Callable[..., str | None] | None = None) -> None:
    """Register a kernel ``runner`` with its ``cannot(...) -> reason | None`` predicate.

    ``describe(spec, **ctx) -> str``, when given, adds how the kernel will run
    the call (e.g. which time loop) to ``choose``'s reason. ``preferred(spec,
    steps=, batch=, grad=, **ctx) -> reason | None``, when given, claims calls
    of a shape (or, with ``grad``, calls that will be differentiated) where this
    kernel beats the ones ranked above it (it must also be able to run them
    exactly).
    """
    _KERNELS[name] = cannot
    _RUNNERS[name] = runner
    _choose.cache_clear()
    if describe is not None:
        _DESCRIBE[name] = describe
    if preferred is not None:
        _PREFERRED[name] = preferred
    if name in _PRIORITY:
        _PRIORITY.remove(name)
    _PRIORITY.insert(len(_PRIORITY) if priority is None else priority, name)


def available_kernels() -> list[str]:
    """Names of the registered kernels, in order of preference."""
    return list(_PRIORITY)


def runner(name: str) -> Callable:
    return _RUNNERS[name]


def native_cannot(spec: CellSpec, *, device: torch.device, dtype: torch.dtype,
                  mask_kind: MaskKind, dropout_kind: DropoutKind, reverse: bool) -> str | None:
    """Why ``torch.lstm`` cannot compute this call exactly, or ``None`` when it can."""
    if spec.recurrent_activation != "sigmoid":
        return f"recurrent_activation={spec.recurrent_activation!r} (torch.lstm gates are sigmoid)"
    if spec.activation != "tanh":
        return f"activation={spec.activation!r} (torch.lstm uses tanh)"
    if spec.use_peepholes:
        return "peepholes"
    if spec.cell_clip is not None:
        return "cell_clip"
    if spec.proj_clip is not None:
        return "proj_clip"
    if spec.num_proj is not None and spec.num_proj >= spec.units:
        return f"num_proj={spec.num_proj} >= units={spec.units} (torch.lstm needs proj_size < hidden_size)"
    if dropout_kind == "other":
        return "per-gate or recurrent dropout masks"
    if mask_kind == "general":
        return "a mask that is not a right-padded prefix"
    if mask_kind == "right_padded" and reverse:
        return "a mask with reversed processing"
    if not dtype.is_floating_point:
        return f"dtype {dtype}"
    return None


def reference_cannot(spec: CellSpec, **_: object) -> str | None:
    return None


def _describe(name: str, spec: CellSpec, ctx: dict) -> str:
    fn = _DESCRIBE.get(name)
    return f" [{fn(spec, **ctx)}]" if fn is not None else ""


def choose(spec: CellSpec, *, device: torch.device | str = "cpu",
           dtype: torch.dtype = torch.float32, mask_kind: MaskKind = "none",
           dropout_kind: DropoutKind = "none", reverse: bool = False,
           steps: int | None = None, batch: int | None = None, grad: bool = False,
           kernel: KernelName | None = None) -> tuple[KernelName, str]:
    """Pick the kernel for a call: ``(name, reason)``.

    Pure: it looks only at its arguments and the registered kernels. ``steps``
    and ``batch`` (when known) let a kernel claim the shapes it runs fastest
    (one step or batch 1 on CPU: the compiled ``fused`` loop beats
    ``torch.lstm``'s per-call setup); ``grad`` says the call will be
    differentiated (training on CPU: ``fused``'s hand-written backward beats
    ``torch.lstm``'s). ``kernel`` forces a choice; a forced kernel that cannot
    run the call exactly raises ``ValueError``.
    """
    device = torch.device(device)
    # Only 1 versus more changes the answer.
    steps = None if steps is None else min(int(steps), 2)
    batch = None if batch is None else min(int(batch), 2)
    args = (spec, device, dtype, mask_kind, dropout_kind, reverse, steps, batch, bool(grad),
            kernel)
    try:
        return _choose(*args)
    except TypeError:  # an unhashable user callable in the spec: decide without the memo
        return _choose.__wrapped__(*args)


def clear_choice_cache() -> None:
    """Forget memoised choices (after the set of kernels or their availability changed)."""
    _choose.cache_clear()


@functools.lru_cache(maxsize=1024)
def _choose(spec: CellSpec, device: torch.device, dtype: torch.dtype, mask_kind: MaskKind,
            dropout_kind: DropoutKind, reverse: bool, steps: int | None, batch: int | None,
            grad: bool, kernel: KernelName | None) -> tuple[KernelName, str]:
    ctx = dict(device=device, dtype=dtype, mask_kind=mask_kind, dropout_kind=dropout_kind,
               reverse=reverse)
    if kernel is not None:
        if kernel not in _KERNELS:
            raise ValueError(
                f"Unknown `kernel` {kernel!r}; available kernels: {available_kernels()}."
            )
        why = _KERNELS[kernel](spec, **ctx)
        if why is not None:
            raise ValueError(f"`kernel={kernel!r}` cannot run this call exactly: {why}.")
        return kernel, f"{kernel}: requested explicitly{_describe(kernel, spec, ctx)}"
    rejected = []
    for i, name in enumerate(_PRIORITY):
        why = _KERNELS[name](spec, **ctx)
        if why is None:
            # A kernel ranked lower may claim this call (a shape or use it runs faster).
            for other in _PRIORITY[i + 1:]:
                prefer = _PREFERRED.get(other)
                if prefer is not None and _KERNELS[other](spec, **ctx) is None:
                    claim = prefer(spec, steps=steps, batch=batch, grad=grad, **ctx)
                    if claim is not None:
                        return other, (f"{other}: {claim}{_describe(other, spec, ctx)}"
                                       f" (instead of {name})")
            tail = f" ({'; '.join(rejected)})" if rejected else ""
            return name, (f"{name}: the fastest kernel that is exact for this call"
                          f"{_describe(name, spec, ctx)}{tail}")
        rejected.append(f"not {name}: {why}")
    raise RuntimeError("no kernel registered")  # unreachable: reference takes everything
