"""Load the compiled ``fused`` library that :mod:`._build` built, once per process,
and adapt its ops to the time-loop contract of :mod:`._loops`.

:func:`backend` builds (through :func:`._build.build`, which only ever returns a
library verified against its size/hash record) and loads the library on first
call: as the Python module ``_fused_ext`` where it was built with the pybind11
``Streamer``, else with ``torch.ops.load_library``. Any failure (no compiler, a
compile error, a library that does not load) is remembered with its reason and
the pure-PyTorch loops run instead; :func:`status` says why, and
:func:`loaded` says what happened without ever building or loading.
:class:`ExtensionBackend` calls ``torch.ops.lstmcompat_fused.{forward,backward,step}``
with the weights read in place and returns named results (:mod:`._types`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch

from ..spec import CellSpec
from . import _acts, _build
from ._ops import register_backend
from ._types import BackwardResult, ForwardResult

_OPS_NAMESPACE = "lstmcompat_fused"
#: Name of the extension module (``PYBIND11_MODULE`` in ``stream.cpp``).
_MODULE = "_fused_ext"

_lock = threading.Lock()
_state: tuple[ExtensionBackend | None, str] | None = None
_log = logging.getLogger("lstmcompat")


def _load() -> tuple[ExtensionBackend | None, str]:
    if _build._disabled():
        return None, "compiled extension disabled by LSTMCOMPAT_NO_EXT"
    try:
        path = _build.build()  # verified against its record: never map an unchecked file
    except Exception as e:  # no compiler, a compile error: run the pure-PyTorch loops
        return None, f"compiled extension unavailable: {_build._first_line(e)}"
    try:
        module = _import_module(path)
        if module is None:
            torch.ops.load_library(str(path))
        getattr(torch.ops, _OPS_NAMESPACE).forward  # noqa: B018 - check registration
    except Exception as e:  # a missing symbol, a foreign file: the pure-PyTorch loops
        why = _build._first_line(e)
        _log.warning("lstmcompat: the compiled fused LSTM kernel %s could not be loaded (%s); "
                     "running the pure-PyTorch loops (delete it to rebuild it)", path, why)
        return None, f"compiled extension unavailable: loading {path} failed: {why}"
    ext = ExtensionBackend(module)
    return ext, f"compiled extension loaded from {path} ({', '.join(ext.features())})"


def _import_module(path: Path) -> object | None:
    """Import the library as the Python module ``_fused_ext`` (which also registers
    the ops); ``None`` when it was built without the Python binding."""
    import importlib.machinery
    import importlib.util

    name = f"{__package__}.{_MODULE}"
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    if spec is None:
        return None
    try:
        module = importlib.util.module_from_spec(spec)
    except ImportError as e:
        if "PyInit" in str(e) or "export function" in str(e):
            return None
        raise
    loader.exec_module(module)
    return module


def status() -> tuple[bool, str]:
    """``(available, why)``; builds or loads the extension on first call."""
    ext, why = _get()
    return ext is not None, why


def backend() -> ExtensionBackend | None:
    """The compiled backend, or ``None`` when it is unavailable (see :func:`status`)."""
    return _get()[0]


def loaded() -> tuple[ExtensionBackend | None, str] | None:
    """What :func:`backend` and :func:`status` found, if this process has built or
    loaded the extension (or failed to), else ``None``; never builds or loads."""
    return _state


def _get() -> tuple[ExtensionBackend | None, str]:
    global _state
    if _state is None:
        with _lock:
            if _state is None:
                _state = _load()
                from ..dispatch import clear_choice_cache

                clear_choice_cache()  # choose read an expectation; now the fact is known
    return _state


def _reset() -> None:
    """Forget the load result (tests use it to re-read ``LSTMCOMPAT_NO_EXT``)."""
    global _state
    _state = None
    from ..dispatch import clear_choice_cache

    clear_choice_cache()  # choose's reasons name the time loop


#: The compiled loops' code of each ``CellSpec.matmul_dtype`` (their ``lowp``).
_LOWP = {None: 0, torch.bfloat16: 1, torch.float16: 2}


def _opt(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.contiguous()


def _in_place(t: torch.Tensor) -> torch.Tensor:
    """A weight as the compiled loops read it: ``t`` itself when it is a matrix with
    one unit stride (contiguous, or a transposed view such as the Keras front-end's
    gate-major kernels), else a contiguous copy made for this call.

    Nothing derived from a weight is kept between calls, so every call computes
    with the weights' current values, however they were changed (in-place ops,
    ``.data`` writes, writes through NumPy views)."""
    if t.dim() == 2:
        r, c = t.shape
        rs, cs = t.stride()
        if r <= 1 or c <= 1 or (cs == 1 and rs >= c) or (rs == 1 and cs >= r):
            return t
    return t.contiguous()


class ExtensionBackend:
    """The compiled time loops, same contract as :mod:`._loops`."""

    name = "cpp"

    def __init__(self, module: object | None = None) -> None:
        self.ops = getattr(torch.ops, _OPS_NAMESPACE)
        register_backend(self.name, self)
        #: The Python binding (``Streamer``), or ``None`` when built without it.
        self.module = module
        #: Whether low-precision products run as MKL's bfloat16 GEMMs (the loops', and
        #: ``ops.mm_bf16``); else as float GEMMs of rounded operands.
        self.bf16_gemm = "bf16-gemm" in self.features()

    def features(self) -> list[str]:
        """What the library compiled in: ``blas``, ``mkl-packed-gemm``, ``bf16-gemm``,
        ``openmp``, ``avx512``/``avx2``."""
        return list(self.ops.features())

    @staticmethod
    def _codes(spec: CellSpec) -> tuple[int, int]:
        return _acts.code(spec.activation), _acts.code(spec.recurrent_activation)  # type: ignore

    def forward_loop(self, spec: CellSpec, Z: torch.Tensor, R: torch.Tensor, h0: torch.Tensor,
                     c0: torch.Tensor, dmh: torch.Tensor | None, peep: torch.Tensor | None,
                     P: torch.Tensor | None, mask: torch.Tensor | None, save: bool,
                     bias: torch.Tensor | None = None,
                     xw: tuple[torch.Tensor, torch.Tensor] | None = None) -> ForwardResult:
        """The loop; with ``xw = (x, W)`` (where :meth:`input_in_loop`) it also computes
        the input product, and ``Z`` need hold nothing (it receives the
        pre-activations)."""
        act, ract = self._codes(spec)
        x, W = (None, None) if xw is None else (xw[0].contiguous(), _in_place(xw[1]))
        res = self.ops.forward(Z, _in_place(R), h0.contiguous(), c0.contiguous(), _opt(dmh),
                               _opt(peep), _opt(P), mask, act, ract, spec.cell_clip,
                               spec.proj_clip, spec.mask_mode == "carry", save, _opt(bias),
                               _LOWP[spec.matmul_dtype], x, W)
        res = ForwardResult(*res)
        if save and mask is None:  # the h states are the outputs
            res = res._replace(Hs=res.outputs)
        return res

    def input_in_loop(self, spec: CellSpec, dtype: torch.dtype, dmh: torch.Tensor | None
                      ) -> bool:
        """Whether :meth:`forward_loop` takes ``xw``: bfloat16 products with a bfloat16
        GEMM in this build, float32, no recurrent dropout. Each step then multiplies
        ``[x_s, h]`` by ``[W; R]`` at once: no separate pass writes the input product
        of all steps and none reads it back."""
        return (self.bf16_gemm and spec.matmul_dtype == torch.bfloat16
                and dtype == torch.float32 and dmh is None)

    def backward_loop(self, spec: CellSpec, Z: torch.Tensor, C: torch.Tensor,
                      Cpre: torch.Tensor, Rpre: torch.Tensor, c0: torch.Tensor, R: torch.Tensor,
                      dmh: torch.Tensor | None, peep: torch.Tensor | None,
                      P: torch.Tensor | None, mask: torch.Tensor | None, dout: torch.Tensor,
                      dhT: torch.Tensor, dcT: torch.Tensor, lean: bool = False
                      ) -> BackwardResult:
        act, ract = self._codes(spec)
        return BackwardResult(*self.ops.backward(
            Z, C, Cpre, Rpre, c0.contiguous(), _in_place(R), _opt(dmh), _opt(peep), _opt(P),
            mask, dout, dhT, dcT, act, ract, spec.cell_clip, spec.proj_clip,
            spec.mask_mode == "carry", _LOWP[spec.matmul_dtype], lean))

    def step(self, spec: CellSpec, x: torch.Tensor, W: torch.Tensor, R: torch.Tensor,
             b: torch.Tensor | None, h: torch.Tensor, c: torch.Tensor,
             peep: torch.Tensor | None, P: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One inference step (the forget bias is added inside; W and R read in place)."""
        act, ract = self._codes(spec)
        h1, c1 = self.ops.step(x.contiguous(), _in_place(W), _in_place(R), b, spec.forget_bias,
                               h.contiguous(), c.contiguous(), _opt(peep), _opt(P), act, ract,
                               spec.cell_clip, spec.proj_clip)
        return h1, c1
