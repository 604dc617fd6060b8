"""The ``fused`` kernel (see :mod:`._function`): whole-sequence autograd.Function,
hand-written backward, compiled time loop when a C++ compiler is available.

Public to the engine: :func:`run_fused` (kernel contract of
:func:`lstmcompat._engine.reference.run_reference`; one step runs through
:func:`fused_step`), the dispatch hooks :func:`fused_cannot`,
:func:`fused_preferred`, :func:`fused_describe` and :func:`stream_cannot` (pure:
they never build or load the extension, see :func:`compiled_loop`), the
streaming capability :func:`streamer`, and :func:`backend_for` /
:func:`extension_status` (which time loop runs, and why; these build the
extension on first use).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ..dispatch import spec_shape
from ..spec import CellSpec, Dropout, Weights
from . import _acts, _ops
from ._function import (
    TORCH_BACKEND,
    Backend,
    FusedLSTMFunction,
    StepFunction,
    run_sequence,
)
from ._ops import capturing

__all__ = [
    "FusedLSTMFunction",
    "backend_for",
    "compiled_loop",
    "extension_status",
    "fused_cannot",
    "fused_describe",
    "fused_preferred",
    "fused_step",
    "prepare",
    "run_fused",
    "stream_cannot",
    "streamer",
]


def extension_status() -> tuple[bool, str]:
    """``(available, why)`` for the compiled extension (builds it on first call)."""
    from . import _extension

    return _extension.status()


def compiled_loop(binding: bool = False) -> tuple[bool, str]:
    """``(expected, why)``: whether the compiled time loop (with ``binding``: also its
    Python ``Streamer`` binding) runs, as far as is known without side effects.

    Once this process has built or loaded the extension, that result; before, an
    expectation from what costs nothing to look up (``LSTMCOMPAT_NO_EXT``, a C++
    compiler on ``PATH``, the Python headers): the first real run builds it, and
    ``choose``'s memo is cleared once it is loaded. Never builds or loads anything.
    """
    from . import _build, _extension

    loaded = _extension.loaded()
    if loaded is not None:
        ext, why = loaded
        if ext is None:
            return False, why
        if binding and ext.module is None:
            return False, "the compiled extension was built without its Python binding"
        return True, why
    if _build._disabled():
        return False, "compiled extension disabled by LSTMCOMPAT_NO_EXT"
    if _build.find_compiler() is None:
        return False, ("compiled extension unavailable: no C++ compiler found "
                       "(set CXX or install g++/clang++)")
    if binding and _build.python_include() is None:
        return False, "no Python headers to build the compiled extension's Python binding"
    return True, "compiled extension not built yet: the first real run builds it"


def prepare(spec: CellSpec, device: torch.device) -> None:
    """``fused``'s first use on ``device``: build or load the compiled extension where
    the time loop would be compiled (never a reason to stop using ``fused``: without
    the extension it runs its pure-PyTorch loop, same numbers)."""
    if torch.device(device).type == "cpu" and _compiles(spec) is None:
        from . import _extension

        _extension.backend()


def _compiles(spec: CellSpec) -> str | None:
    """What of ``spec`` the compiled loop lacks (an activation, the block ops' clip
    gradient: the pure-PyTorch loops run those), or ``None``."""
    for act in (spec.activation, spec.recurrent_activation):
        if _acts.code(act) is None:  # type: ignore[arg-type]
            return f"activation {act!r} is not compiled"
    if spec.cell_clip is not None and spec.cell_clip_gradient != "clip_by_value":
        return "cell_clip_gradient='identity' is not compiled"
    return None


def backend_for(spec: CellSpec, dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu") -> tuple[Backend, str]:
    """The time-loop backend that runs ``spec``, and why: the compiled extension
    when it is available and implements both activations, else pure PyTorch.
    Builds or loads the extension on first use (a real run; ``choose`` uses
    :func:`compiled_loop` instead)."""
    if capturing():  # found once, when the graph is captured
        if torch.onnx.is_in_onnx_export():  # a scan (see ``_ops.run_forward``)
            return TORCH_BACKEND, "a scan of the pure-PyTorch step (an ONNX Scan in torch.onnx.export)"
        key, why = _ops.backend_key(spec_shape(spec), dtype, str(device))
        return _ops.backend_named(key), why
    return _backend_for(spec, dtype, device)


def _backend_for(spec: CellSpec, dtype: torch.dtype, device: torch.device | str
                 ) -> tuple[Backend, str]:
    from . import _extension

    if torch.device(device).type != "cpu":
        return TORCH_BACKEND, "pure-PyTorch loop (not a CPU tensor)"
    missing = _compiles(spec)
    if missing is not None:
        return TORCH_BACKEND, f"pure-PyTorch loop ({missing})"
    ext = _extension.backend()
    if ext is None:
        return TORCH_BACKEND, f"pure-PyTorch loop ({_extension.status()[1]})"
    return ext, "compiled C++ time loop"


def fused_cannot(spec: CellSpec, *, device: torch.device, dtype: torch.dtype,
                 mask_kind: str, dropout_kind: str, reverse: bool) -> str | None:
    """Why ``fused`` cannot run this call exactly, or ``None`` when it can.

    It runs every spec whose activations are element-wise with a known
    derivative, on CPU, in float32/float64. User callables (unknown
    derivative) and ``softmax`` go to ``reference``; CUDA tensors to
    ``native``/``reference``.
    """
    if torch.device(device).type != "cpu":
        return f"device {torch.device(device).type!r} (fused runs on CPU only)"
    if dtype not in (torch.float32, torch.float64):
        return f"dtype {dtype} (fused runs float32 and float64)"
    for field in ("activation", "recurrent_activation"):
        act = getattr(spec, field)
        if not _acts.known(act):
            what = repr(act) if isinstance(act, str) else "a callable"
            return f"{field}={what} has no hand-written derivative"
    return None


def fused_describe(spec: CellSpec, *, device: torch.device, dtype: torch.dtype,
                   **_: object) -> str:
    """Which time loop ``fused`` uses for this call (for ``choose``'s reason; pure)."""
    if torch.device(device).type != "cpu":
        return "pure-PyTorch loop (not a CPU tensor)"
    missing = _compiles(spec)
    if missing is not None:
        return f"pure-PyTorch loop ({missing})"
    ok, why = compiled_loop()
    return "compiled C++ time loop" if ok else f"pure-PyTorch loop ({why})"


def fused_preferred(spec: CellSpec, *, steps: int | None, batch: int | None,
                    device: torch.device, dtype: torch.dtype, grad: bool = False,
                    **_: object) -> str | None:
    """The calls where ``fused`` beats ``native`` (for ``choose``), on CPU with the
    compiled loop: one step or batch 1, where ``torch.lstm``'s per-call setup
    dominates, calls that will be differentiated, where the hand-written
    backward makes forward+backward 10-15% faster than oneDNN's (batch 16-64),
    and bfloat16 products under autocast."""
    lowp = spec.matmul_dtype == torch.bfloat16
    if device.type != "cpu" or not (steps == 1 or batch == 1 or grad or lowp):
        return None
    if _compiles(spec) is not None or not compiled_loop()[0]:
        return None
    if lowp:
        return ("bfloat16 products under autocast, which the compiled loop computes with "
                "bfloat16 GEMMs (torch.lstm would compute in float32)")
    if steps == 1 or batch == 1:
        what = "a single step" if steps == 1 else "batch 1"
        return f"{what} on CPU, where the compiled loop beats torch.lstm's per-call setup"
    return ("training on CPU, where the compiled loop and its hand-written backward beat "
            "torch.lstm's forward+backward")


def run_fused(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor,
              c0: torch.Tensor, *, mask: torch.Tensor | None = None, reverse: bool = False,
              dropout: Dropout | None = None, batch_first: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recurrence with the ``fused`` kernel.

    Same contract and semantics as
    :func:`lstmcompat._engine.reference.run_reference` (outputs, final state and
    gradients w.r.t. ``x``, every weight, ``h0`` and ``c0``). A single step
    without mask or dropout runs through the low-overhead step path
    (:func:`fused_step`), same numbers.
    """
    if torch._C._get_tracing_state() is not None and torch.onnx.is_in_onnx_export():
        # The TorchScript-based exporter (dynamo=False) converts the loops' in-place
        # updates of slices wrongly: it traces the reference's loop instead (the same
        # numbers, a graph for the example's sequence length).
        from ..reference import run_reference

        return run_reference(spec, x, w, h0, c0, mask=mask, reverse=reverse, dropout=dropout,
                             batch_first=batch_first)
    backend, _ = backend_for(spec, x.dtype, x.device)
    time_dim = 1 if batch_first else 0
    if x.shape[time_dim] == 1 and mask is None and (
            dropout is None or (dropout.x is None and dropout.h is None)):
        h, c = _step(spec, backend, x.select(time_dim, 0), w, h0, c0)
        return h.unsqueeze(time_dim), h, c
    return run_sequence(spec, backend, x, w, h0, c0, mask=mask, reverse=reverse,
                        dropout=dropout, batch_first=batch_first)


def fused_step(spec: CellSpec, x: torch.Tensor, w: Weights, h: torch.Tensor,
               c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step ``(x (B, depth), h, c) -> (h', c')`` with low overhead.

    The semantics of :func:`lstmcompat._engine.reference.step` applied to
    ``x @ W + b``. Without autograd (inference, streaming) the compiled
    extension runs the whole step in one call, reading the weights where they
    are; with autograd it is the sequence kernel on one step.
    """
    return _step(spec, backend_for(spec, x.dtype, x.device)[0], x, w, h, c)


def _step(spec: CellSpec, backend: Backend, x: torch.Tensor, w: Weights, h: torch.Tensor,
          c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # the compiled step computes in the weights' type: not for low-precision products
    if backend is not TORCH_BACKEND and spec.matmul_dtype is None and not capturing() \
            and not (torch.is_grad_enabled() and any(
                t is not None and t.requires_grad
                for t in (x, w.W, w.R, w.b, h, c, w.w_i, w.w_f, w.w_o, w.P))):
        peep = (torch.stack([w.w_i, w.w_f, w.w_o]) if spec.use_peepholes  # type: ignore
                else None)
        P = w.P if spec.num_proj is not None else None
        return backend.step(spec, x, w.W, w.R, w.b, h, c, peep, P)  # type: ignore[attr-defined]
    _, h1, c1 = run_sequence(spec, backend, x.unsqueeze(0), w, h, c)
    return h1, c1


def stream_cannot(spec: CellSpec, *, device: torch.device, dtype: torch.dtype,
                  **_: object) -> str | None:
    """Why ``fused`` cannot stream single steps of ``spec`` (``None``: it can): the
    compiled ``Streamer`` runs CPU tensors of float32/float64 with compiled
    activations, and needs the extension's Python binding. Pure."""
    if torch.device(device).type != "cpu":
        return f"device {torch.device(device).type!r} (the compiled Streamer runs CPU tensors)"
    if dtype not in (torch.float32, torch.float64):
        return f"dtype {dtype} (the compiled Streamer runs float32 and float64)"
    missing = _compiles(spec)
    if missing is not None:
        return missing
    ok, why = compiled_loop(binding=True)
    return None if ok else why


#: Roles of a module's parameters for :func:`streamer`, in the compiled Streamer's order.
ROLES = ("W", "R", "b", "w_i", "w_f", "w_o", "P")


def streamer(spec: CellSpec, params: dict, names: tuple[str, ...], roles: dict[str, str],
             weights: Callable[..., Weights], adjoint: Callable[..., tuple] | None = None, *,
             gates: tuple[int, int, int, int] = (0, 1, 2, 3),
             x_time_axis: int = -1) -> object | None:
    """A compiled ``Streamer`` that runs single steps of ``spec`` for one module, or
    ``None`` without the compiled Python binding (or for activations it does not compile).

    ``params`` is the module's parameter dict (``module._parameters``) and ``names``
    the entries the weights derive from; ``roles`` maps each role of :data:`ROLES`
    that the module has to one of ``names`` (no ``"R"``: the rows of ``W`` after
    the input depth are the recurrent kernel, TF1's fused ``[x; h]`` kernel), and
    ``gates[k]`` is the stored column block of canonical gate ``k`` (``i, f, g, o``)
    in ``W``, ``R`` and ``b``. The streamer keeps no copy of any weight: every call
    reads ``params`` and runs the compiled step on the parameters' own storage,
    so a step always sees the weights' current values, however they were changed.
    Its methods:

    - ``step(x, h, c) -> (h', c')``: ``x (batch, depth)`` (``x_time_axis`` 0 or 1:
      a 3-D input with one step on that axis);
    - ``step_stateful(x, buffers, h_name, c_name) -> (h', c')``: the state is read
      from the dict ``buffers`` and fresh copies of the new one written back;

    each returning ``None`` instead when the compiled step does not apply: not
    exactly ``torch.Tensor`` inputs, another dtype or shape, non-CPU tensors, or
    parameters of a dtype, device, shape or layout the step does not run.
    Whether a module streams at all (a forced kernel, say, never does) is
    ``choose``'s decision (``streaming=True``), made before this is called. Strided inputs are copied. The numbers are those of
    :func:`fused_step`. Calls hold the GIL throughout: concurrent calls from
    several threads run one after another.

    When autograd records (grad mode with an input or a parameter requiring
    grad) the step runs as :class:`StepFunction`, with ``weights(*params[names])``
    giving the canonical :class:`Weights` for its backward and ``adjoint(dW, dR,
    db, dw_i, dw_f, dw_o, dP)`` mapping the canonical weight gradients onto
    ``params[names]`` (without ``adjoint``: ``None``).
    """
    from . import _extension

    ext = _extension.backend()
    if ext is None or ext.module is None:
        return None
    act, ract = _acts.code(spec.activation), _acts.code(spec.recurrent_activation)  # type: ignore
    if act is None or ract is None:
        return None
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown streamer roles {sorted(unknown)}; expected {ROLES}")
    index = [names.index(roles[r]) if r in roles else -1 for r in ROLES]
    grad = None if adjoint is None else functools.partial(_grad_step, spec, ext, weights,
                                                          adjoint)
    return ext.module.Streamer(act, ract, spec.forget_bias, spec.cell_clip, spec.proj_clip,
                               params, tuple(names), index, list(gates), spec.units,
                               spec.output_size, grad, x_time_axis)


def _grad_step(spec: CellSpec, backend: Backend, weights: Callable[..., Weights],
               adjoint: Callable[..., tuple], x: torch.Tensor, h: torch.Tensor,
               c: torch.Tensor, saved: tuple, *params: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    return StepFunction.apply(x, h, c, saved, spec, backend, weights, adjoint, *params)
