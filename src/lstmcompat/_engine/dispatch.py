"""Kernel dispatch: one pure function, ``choose``, says which kernel runs a call and why.

Every kernel is one :class:`Kernel` record (its runner, what it cannot run, the
calls it claims, how it describes itself, its capabilities), registered in order
of preference (:mod:`.kernels`). ``choose`` looks only at its arguments, the
records and facts that cost no side effect to look up (whether the compiled
extension was built, whether a kernel failed its first-use check): it never
compiles or loads anything. An explicit ``kernel=`` choice wins; a kernel that
cannot run the call exactly raises ``ValueError`` (never a silent fallback).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch

from .spec import CellSpec

MaskKind = Literal["none", "right_padded", "general"]
DropoutKind = Literal["none", "shared_input", "other"]
KernelName = str

#: Environment variable that forces a kernel for every call that names none
#: (e.g. ``LSTMCOMPAT_KERNEL=fused`` to run a test suite through ``fused``).
KERNEL_ENV = "LSTMCOMPAT_KERNEL"


#: Depth of :func:`at_capture_time` calls running (see :func:`capturing`).
_constant_depth = 0


def capturing() -> bool:
    """Whether PyTorch is capturing a graph (``torch.compile``, ``torch.export``)
    around this call, outside a function run at capture time (:func:`at_capture_time`)."""
    return torch.compiler.is_compiling() and not _constant_depth


def at_capture_time(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run once while a graph is captured, its result a constant of the graph
    (``torch.compiler.assume_constant_result``): for the engine's decisions, which
    read facts no graph can trace (a file system, a lock, a first-use check). Its
    arguments must be constants (no ``CellSpec``: pass its fields)."""

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        global _constant_depth
        _constant_depth += 1
        try:
            with _outside_the_trace():
                return fn(*args)
        finally:
            _constant_depth -= 1

    # What torch.compiler.assume_constant_result(run) does, without importing
    # torch._dynamo (and sympy, which adds a warning filter) when lstmcompat is
    # imported; tests/engine/test_capture.py fails if Dynamo stops honouring it.
    run._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return run


def _outside_the_trace() -> Any:
    """A context in which tensors are real again: outside the fake and proxy modes of
    a non-strict ``torch.export`` (and so of ``torch.onnx.export``), which, unlike
    Dynamo, runs a capture-time function inside the trace (a first-use check would
    compute on fake tensors and fail). Nothing to leave in eager mode or under Dynamo."""
    if not torch.compiler.is_compiling():
        return contextlib.nullcontext()
    from torch.utils._python_dispatch import _disable_current_modes

    return _disable_current_modes()


@dataclass(frozen=True)
class Streaming:
    """A kernel's single-step streaming capability: a per-module stepper that runs
    one time step of a module's own parameters with the least per-call work.

    Attributes:
        cannot: ``cannot(spec, *, device, dtype) -> reason | None``: why this
            configuration cannot stream (``None``: it can). Pure, like ``choose``.
        make: ``make(spec, params, names, roles, weights, adjoint, *, gates,
            x_time_axis) -> streamer | None`` builds the stepper (see
            :func:`lstmcompat._engine.fused.streamer`); this is a real first use
            and may build or load what it needs. ``None`` when it cannot.
        describe: how it runs, for ``choose``'s reason.
    """

    cannot: Callable[..., str | None]
    make: Callable[..., Any]
    describe: str


@dataclass(frozen=True)
class Kernel:
    """Everything the engine knows about one kernel.

    Attributes:
        name: what ``choose``, ``kernel=`` and ``LSTMCOMPAT_KERNEL`` call it.
        run: the runner, one contract for every kernel: ``run(spec, x, w, h0, c0,
            *, mask, reverse, dropout, batch_first) -> (outputs, h, c)`` with the
            semantics of :func:`lstmcompat._engine.reference.run_reference`;
            ``mask`` is ``None`` when every step is valid, else the bool mask
            (right-padded or general, as ``cannot`` admitted).
        cannot: ``cannot(spec, *, device, dtype, mask_kind, dropout_kind,
            reverse) -> reason | None``: why the kernel cannot run the call
            exactly (``None``: it can). Pure.
        preferred: ``preferred(spec, *, steps, batch, grad, device, dtype, ...)
            -> reason | None``: claims calls (a shape, or calls that will be
            differentiated) where this kernel beats the ones ranked above it;
            only consulted where ``cannot`` admits the call. Pure.
        describe: ``describe(spec, *, device, dtype, ...) -> str``: how the kernel
            will run the call (e.g. which time loop), added to the reason. Pure.
        streaming: the single-step streaming capability, or ``None``.
        first_use: ``first_use(spec, device) -> reason | None``, run once per
            device before the kernel's first real use there (see :func:`ready`):
            it prepares what the kernel needs (builds, compiles) and checks it
            (e.g. a tiny case against the reference). A kernel whose first use
            fails (returns a reason or raises) is no longer chosen for that
            device, with one warning, and ``choose`` says why.
        runs_padded_steps: ``False`` for a kernel that skips the padded steps of
            a right-padded mask (packed sequences): NaN or inf there then does not
            reach the gradients as it does in TensorFlow, so such calls go to
            another kernel.
    """

    name: str
    run: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    cannot: Callable[..., str | None]
    preferred: Callable[..., str | None] | None = None
    describe: Callable[..., str] | None = None
    streaming: Streaming | None = None
    first_use: Callable[[CellSpec, torch.device], str | None] | None = None
    runs_padded_steps: bool = True


class Decision(NamedTuple):
    """``choose``'s answer with what the engine needs besides: ``kernel`` and
    ``reason`` (what ``choose`` returns) and whether the call streams."""

    kernel: KernelName
    reason: str
    streams: bool = False


#: The registered kernels, best first.
_KERNELS: dict[str, Kernel] = {}
#: Kernels whose first-use check failed: ``(name, device) -> why``.
_FAILED: dict[tuple[str, torch.device], str] = {}
#: ``(name, device)`` pairs whose first-use check has run.
_CHECKED: set[tuple[str, torch.device]] = set()
_check_lock = threading.Lock()
#: Bumped whenever a fact that ``choose`` reads changes (see :func:`facts`).
_generation = 0


def register_kernel(kernel: Kernel, *, priority: int | None = None) -> None:
    """Register ``kernel`` (replacing one of the same name) at position ``priority``
    of the order of preference (``None``: last)."""
    order = [k for k in _KERNELS.values() if k.name != kernel.name]
    order.insert(len(order) if priority is None else priority, kernel)
    _KERNELS.clear()
    _KERNELS.update((k.name, k) for k in order)
    clear_choice_cache()


def available_kernels() -> list[str]:
    """Names of the registered kernels, in order of preference."""
    return list(_KERNELS)


def kernel_record(name: str) -> Kernel:
    """The record of the registered kernel ``name``."""
    return _KERNELS[name]


def forced_kernel() -> str | None:
    """The kernel that ``LSTMCOMPAT_KERNEL`` forces, or ``None``."""
    return os.environ.get(KERNEL_ENV) or None


def _describe(k: Kernel, spec: CellSpec, ctx: dict) -> str:
    return f" [{k.describe(spec, **ctx)}]" if k.describe is not None else ""


def _failure(name: str, device: torch.device) -> str | None:
    """Why kernel ``name`` failed its first-use check on ``device`` (a device
    without an index: on any device of its type), or ``None``."""
    if not _FAILED:
        return None
    for (failed, dev), why in _FAILED.items():
        if failed == name and (dev == device or (device.index is None
                                                 and dev.type == device.type)):
            return f"it failed its first-use check on {dev} ({why})"
    return None


def _cannot(k: Kernel, spec: CellSpec, ctx: dict) -> str | None:
    return _failure(k.name, ctx["device"]) or k.cannot(spec, **ctx)


def choose(spec: CellSpec, *, device: torch.device | str = "cpu",
           dtype: torch.dtype = torch.float32, mask_kind: MaskKind = "none",
           dropout_kind: DropoutKind = "none", reverse: bool = False,
           steps: int | None = None, batch: int | None = None, grad: bool = False,
           kernel: KernelName | None = None, streaming: bool = False
           ) -> tuple[KernelName, str]:
    """Pick the kernel for a call: ``(name, reason)``.

    Pure and fast: it looks only at its arguments, the registered kernels and
    facts known without side effects; it never builds or loads anything (the
    first real run does). ``steps`` and ``batch`` (when known) let a kernel claim
    the shapes it runs fastest (one step or batch 1 on CPU: the compiled
    ``fused`` loop beats ``torch.lstm``'s per-call setup); ``grad`` says the call
    will be differentiated (training on CPU: ``fused``'s hand-written backward
    beats ``torch.lstm``'s). ``streaming`` asks for a module's single-step
    streaming path (one step of the module's own parameters per call): the
    reason then also says whether the chosen kernel streams (``"; single-step
    streaming: ..."``) or why not (``"; not streaming: ..."``). ``kernel`` forces
    a choice (its general path: a forced kernel never streams); a forced kernel
    that cannot run the call exactly raises ``ValueError``.
    """
    return decide(spec, device=device, dtype=dtype, mask_kind=mask_kind,
                  dropout_kind=dropout_kind, reverse=reverse, steps=steps, batch=batch,
                  grad=grad, kernel=kernel, streaming=streaming)[:2]


def decide(spec: CellSpec, *, device: torch.device | str = "cpu",
           dtype: torch.dtype = torch.float32, mask_kind: MaskKind = "none",
           dropout_kind: DropoutKind = "none", reverse: bool = False,
           steps: int | None = None, batch: int | None = None, grad: bool = False,
           kernel: KernelName | None = None, streaming: bool = False) -> Decision:
    """:func:`choose` as a :class:`Decision` (which also says whether the call streams)."""
    device = torch.device(device)
    if streaming:
        steps = 1
    if capturing():  # a captured graph runs any size: the choice must hold for every size
        steps = batch = None
    # Only 1 versus more changes the answer.
    steps = None if steps is None else min(int(steps), 2)
    batch = None if batch is None else min(int(batch), 2)
    args = (spec, device, dtype, mask_kind, dropout_kind, reverse, steps, batch, bool(grad),
            kernel, bool(streaming))
    if capturing():
        # A graph being captured: decided once, at capture time, as a constant (what
        # the kernels' hooks look up is not traceable, and is not graph data).
        return Decision(*_decide_constant(spec_shape(spec), *args[1:]))
    try:
        return _decide(*args)
    except TypeError:  # an unhashable user callable in the spec: decide without the memo
        return _decide.__wrapped__(*args)


def spec_shape(spec: CellSpec) -> tuple:
    """``spec``'s fields with every float (the forget bias, the clips) replaced by 0.0:
    what a function run at capture time (:func:`at_capture_time`) can take in place
    of a ``CellSpec``, which it cannot. A captured graph may hold those floats as
    symbols (``dynamic=True``); no decision depends on their values, only on
    whether a clip is there."""
    return tuple(0.0 if isinstance(v, float) else v
                 for v in (getattr(spec, f.name) for f in dataclasses.fields(spec)))


@at_capture_time
def _decide_constant(fields: tuple, *args: Any) -> tuple[KernelName, str, bool]:
    return tuple(_decide(CellSpec(*fields), *args))  # type: ignore[return-value]


def clear_choice_cache() -> None:
    """Forget memoised choices (after the set of kernels or a fact they read changed)."""
    global _generation
    _generation += 1
    _decide.cache_clear()


def facts() -> int:
    """A number that changes whenever what ``choose`` knows changes (the kernels, the
    extension loaded, a failed first use): a caller that prepared a kernel decides
    again when it moved."""
    return _generation


@functools.lru_cache(maxsize=1024)
def _decide(spec: CellSpec, device: torch.device, dtype: torch.dtype, mask_kind: MaskKind,
            dropout_kind: DropoutKind, reverse: bool, steps: int | None, batch: int | None,
            grad: bool, forced: KernelName | None, streaming: bool) -> Decision:
    ctx = dict(device=device, dtype=dtype, mask_kind=mask_kind, dropout_kind=dropout_kind,
               reverse=reverse)
    name, reason = _pick(spec, ctx, steps, batch, grad, forced)
    if not streaming:
        return Decision(name, reason)
    k = _KERNELS[name]
    why = _why_not_streaming(k, spec, ctx, forced)
    if why is not None:
        return Decision(name, f"{reason}; not streaming: {why}")
    return Decision(name, f"{reason}; single-step streaming: {k.streaming.describe}",  # type: ignore
                    True)


def _why_not_streaming(k: Kernel, spec: CellSpec, ctx: dict,
                       forced: KernelName | None) -> str | None:
    if forced is not None:
        return "a kernel is forced (its general path runs)"
    if ctx["mask_kind"] != "none":
        return "a mask"
    if ctx["dropout_kind"] != "none":
        return "dropout masks"
    if k.streaming is None:
        return f"{k.name} has no single-step streaming path"
    return k.streaming.cannot(spec, device=ctx["device"], dtype=ctx["dtype"])


def _pick(spec: CellSpec, ctx: dict, steps: int | None, batch: int | None, grad: bool,
          forced: KernelName | None) -> tuple[KernelName, str]:
    if forced is not None:
        if forced not in _KERNELS:
            raise ValueError(
                f"Unknown `kernel` {forced!r}; available kernels: {available_kernels()}."
            )
        k = _KERNELS[forced]
        why = _cannot(k, spec, ctx)
        if why is not None:
            raise ValueError(f"`kernel={forced!r}` cannot run this call exactly: {why}.")
        return forced, f"{forced}: requested explicitly{_describe(k, spec, ctx)}"
    rejected = []
    order = list(_KERNELS.values())
    for i, k in enumerate(order):
        why = _cannot(k, spec, ctx)
        if why is None:
            # A kernel ranked lower may claim this call (a shape or use it runs faster).
            for other in order[i + 1:]:
                if other.preferred is not None and _cannot(other, spec, ctx) is None:
                    claim = other.preferred(spec, steps=steps, batch=batch, grad=grad, **ctx)
                    if claim is not None:
                        return other.name, (f"{other.name}: {claim}"
                                            f"{_describe(other, spec, ctx)} (instead of {k.name})")
            tail = f" ({'; '.join(rejected)})" if rejected else ""
            return k.name, (f"{k.name}: the fastest kernel that is exact for this call"
                            f"{_describe(k, spec, ctx)}{tail}")
        rejected.append(f"not {k.name}: {why}")
    raise RuntimeError("no kernel registered")  # unreachable: reference takes everything


def ready(k: Kernel, spec: CellSpec, device: torch.device) -> bool:
    """Run ``k``'s first-use hook on ``device`` unless it ran there: ``True`` when the
    kernel may run, ``False`` when its first use failed (then, once, a warning, and
    ``choose`` no longer picks it for that device and says why)."""
    if k.first_use is None:
        return True
    if capturing():  # a graph being captured: checked at capture time
        return _ready_constant(k.name, spec_shape(spec), str(device))
    key = (k.name, device)
    if key not in _CHECKED:
        with _check_lock:
            if key not in _CHECKED:
                try:
                    why = k.first_use(spec, device)
                except Exception as e:  # a compile error, a driver error: the kernel is unproven
                    text = str(e).strip()
                    why = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
                if why is not None:
                    _FAILED[key] = why
                    clear_choice_cache()
                    warnings.warn(
                        f"lstmcompat: the {k.name!r} kernel failed its first-use check on "
                        f"{device} ({why}); calls go to the next exact kernel "
                        "(lstmcompat.choose says which)", RuntimeWarning, stacklevel=3)
                _CHECKED.add(key)
    return key not in _FAILED


@at_capture_time
def _ready_constant(name: str, fields: tuple, device: str) -> bool:
    return ready(kernel_record(name), CellSpec(*fields), torch.device(device))


def forget_first_use_checks() -> None:
    """Forget the first-use checks' results (tests; after a driver or toolchain change)."""
    with _check_lock:
        _FAILED.clear()
        _CHECKED.clear()
    clear_choice_cache()
