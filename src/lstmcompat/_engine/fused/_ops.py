"""The ``fused`` time loops as ``torch.library`` custom ops, for graph capture.

``torch.compile`` and ``torch.export`` cannot trace into the compiled C++ loops
(they read data pointers) and would unroll the pure-PyTorch loops step by step
(one graph per sequence length). Under graph capture the time loops therefore
run as two opaque custom ops, ``lstmcompat::forward_loop`` and
``lstmcompat::backward_loop``, with fake (shape-only) implementations, so the
captured graph holds one node per loop and any batch or time length. Their real
implementations call the very same backend functions as eager mode: the numbers
are those of eager. In eager mode the backends are called directly (a custom
op's dispatch would add tens of microseconds to every call). Under
``torch.onnx.export``, whose exporter has no translation for these ops, the forward
loop runs as a ``scan`` instead (:mod:`._scan`), which it writes as an ONNX ``Scan``.

The ops take no :class:`~lstmcompat._engine.spec.CellSpec` (not a tensor
type): its fields travel as plain arguments and the spec is rebuilt inside.
Backends are named (:func:`register_backend`): a captured graph names the
backend that its loops run on, e.g. ``"cpp"`` or ``"torch"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..dispatch import at_capture_time, capturing
from ..spec import CellSpec
from ._types import BackwardResult, ForwardResult

_BACKENDS: dict[str, object] = {}


def register_backend(key: str, backend: object) -> None:
    """Make ``backend`` (a time-loop backend, see :class:`~._function.Backend`)
    callable from the custom ops under the name ``key``."""
    _BACKENDS[key] = backend


def _key(backend: object) -> str:
    return getattr(backend, "key", backend.name)  # type: ignore[attr-defined]


def backend_named(key: str) -> object:
    """The backend registered as ``key`` (the compiled one is loaded on demand: a
    graph captured in one process may run in another)."""
    if key not in _BACKENDS:
        from . import _extension

        if key == "cpp" and _extension.backend() is not None:
            return _extension.backend()
        raise ValueError(f"no lstmcompat time-loop backend named {key!r} in this process; "
                         f"known: {sorted(_BACKENDS)}")
    return _BACKENDS[key]


@at_capture_time
def backend_key(shape: tuple, dtype: torch.dtype, device: str) -> tuple[str, str]:
    """At capture time: the name of the backend that runs a spec of this
    :func:`~..dispatch.spec_shape` and why (building or loading the extension then, as a first eager run would)."""
    from . import _backend_for

    backend, why = _backend_for(CellSpec(*shape), dtype, device)
    return _key(backend), why


#: ``CellSpec.matmul_dtype`` as the ops carry it (a string: a schema has no dtype type).
_MATMUL = {None: "", torch.bfloat16: "bfloat16", torch.float16: "float16"}
_MATMUL_DTYPE = {v: k for k, v in _MATMUL.items()}


def _spec(activation: str, recurrent_activation: str, units: int, peepholes: bool,
          cell_clip: float | None, num_proj: int | None, proj_clip: float | None,
          carry: bool, clip_gradient: str, matmul: str) -> CellSpec:
    return CellSpec(units, activation=activation, recurrent_activation=recurrent_activation,
                    use_peepholes=peepholes, cell_clip=cell_clip, num_proj=num_proj,
                    proj_clip=proj_clip, mask_mode="carry" if carry else "zero",
                    cell_clip_gradient=clip_gradient,  # type: ignore[arg-type]
                    matmul_dtype=_MATMUL_DTYPE[matmul])


def _fields(spec: CellSpec) -> tuple:
    if not (isinstance(spec.activation, str) and isinstance(spec.recurrent_activation, str)):
        raise TypeError("graph capture needs named activations (the fused loops' table)")
    return (spec.activation, spec.recurrent_activation, spec.cell_clip, spec.proj_clip,
            spec.mask_mode == "carry", spec.cell_clip_gradient, _MATMUL[spec.matmul_dtype])


def distinct(tensors: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """``tensors`` with repeats replaced by copies (graph capture refuses an
    ``autograd.Function`` given one tensor twice, e.g. one zero state as ``h0`` and ``c0``)."""
    seen: list[torch.Tensor] = []
    out = []
    for t in tensors:
        if t is not None and any(t is s for s in seen):
            t = t.clone()
        elif t is not None:
            seen.append(t)
        out.append(t)
    return out


def _unaliased(outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor | None]
               ) -> tuple[torch.Tensor, ...]:
    """``outputs`` with copies where one shares memory with an input or an earlier
    output (a custom op's results may alias neither; the loops return one empty
    tensor for every absent result, and may return a state that is a view)."""

    def key(t: torch.Tensor) -> int:
        return t.untyped_storage().data_ptr()

    taken = {key(t) for t in inputs if t is not None and t.numel()}
    seen: list[torch.Tensor] = [t for t in inputs if t is not None]
    out = []
    for t in outputs:
        if any(t is s for s in seen) or (t.numel() and key(t) in taken):
            t = t.clone()
        if t.numel():
            taken.add(key(t))
        seen.append(t)
        out.append(t)
    return tuple(out)


@torch.library.custom_op("lstmcompat::forward_loop", mutates_args=("Z",))
def forward_loop(backend: str, Z: torch.Tensor, R: torch.Tensor, h0: torch.Tensor,
                 c0: torch.Tensor, dmh: torch.Tensor | None, peep: torch.Tensor | None,
                 P: torch.Tensor | None, mask: torch.Tensor | None, bias: torch.Tensor | None,
                 activation: str, recurrent_activation: str, cell_clip: float | None,
                 proj_clip: float | None, carry: bool, clip_gradient: str, matmul: str,
                 save: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                            torch.Tensor, torch.Tensor, torch.Tensor]:
    """A backend's ``forward_loop`` (``Z`` is updated in place, as there); ``Hs`` comes
    back empty where it would be the outputs themselves (see :func:`run_forward`)."""
    spec = _spec(activation, recurrent_activation, c0.shape[1], peep is not None, cell_clip,
                 None if P is None else P.shape[1], proj_clip, carry, clip_gradient, matmul)
    res = backend_named(backend).forward_loop(spec, Z, R, h0, c0, dmh, peep, P, mask, save, bias)
    res = res._replace(Hs=Z.new_empty(0)) if res.Hs is res.outputs else res
    # (the seven results: XH comes only with the input product in the loop, never here)
    return _unaliased(tuple(res)[:7], (Z, R, h0, c0, dmh, peep, P, mask, bias))  # type: ignore


@forward_loop.register_fake
def _(backend, Z, R, h0, c0, dmh, peep, P, mask, bias, activation, recurrent_activation,
      cell_clip, proj_clip, carry, clip_gradient, matmul, save):
    T, B, _ = Z.shape
    u, p = c0.shape[1], R.shape[0]

    def empty(*shape: int) -> torch.Tensor:
        return Z.new_empty(shape)

    return (empty(T, B, p), empty(B, p), empty(B, u),
            empty(T, B, u) if save else empty(0),
            empty(T, B, u) if save and cell_clip is not None else empty(0),
            empty(T, B, p) if save and mask is not None else empty(0),
            empty(T, B, p) if save and proj_clip is not None else empty(0))


@torch.library.custom_op("lstmcompat::backward_loop", mutates_args=())
def backward_loop(backend: str, Z: torch.Tensor, C: torch.Tensor, Cpre: torch.Tensor,
                  Rpre: torch.Tensor, c0: torch.Tensor, R: torch.Tensor,
                  dmh: torch.Tensor | None, peep: torch.Tensor | None, P: torch.Tensor | None,
                  mask: torch.Tensor | None, dout: torch.Tensor, dhT: torch.Tensor,
                  dcT: torch.Tensor, activation: str, recurrent_activation: str,
                  cell_clip: float | None, proj_clip: float | None, carry: bool,
                  clip_gradient: str, matmul: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                             torch.Tensor, torch.Tensor]:
    """A backend's ``backward_loop``."""
    spec = _spec(activation, recurrent_activation, c0.shape[1], peep is not None, cell_clip,
                 None if P is None else P.shape[1], proj_clip, carry, clip_gradient, matmul)
    res = backend_named(backend).backward_loop(spec, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask,
                                          dout, dhT, dcT)
    # (not the loop's low-precision copy of dZ: the op returns the six results)
    return _unaliased(tuple(res)[:6], (Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask, dout,
                                      dhT, dcT))  # type: ignore


@backward_loop.register_fake
def _(backend, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask, dout, dhT, dcT, activation,
      recurrent_activation, cell_clip, proj_clip, carry, clip_gradient, matmul):
    T, B, _ = Z.shape
    u = c0.shape[1]
    return (torch.empty_like(Z), dhT.new_empty(dhT.shape), c0.new_empty(B, u),
            Z.new_empty(T, B, u) if P is not None else Z.new_empty(0),
            Z.new_empty(T, B, P.shape[1]) if P is not None else Z.new_empty(0),
            Z.new_empty(3, u) if peep is not None else Z.new_empty(0))


def _opaque() -> bool:
    """Whether the loops run as the custom ops: while a graph is captured, except under
    ``torch.onnx.export``, which has no translation for them: there the forward runs as
    one ``scan`` (:mod:`._scan`, an ONNX ``Scan`` of any batch and length)."""
    return capturing() and not torch.onnx.is_in_onnx_export()


def run_forward(backend, spec: CellSpec, Z: torch.Tensor, R: torch.Tensor, h0: torch.Tensor,
                c0: torch.Tensor, dmh: torch.Tensor | None, peep: torch.Tensor | None,
                P: torch.Tensor | None, mask: torch.Tensor | None, save: bool,
                bias: torch.Tensor | None = None,
                xw: tuple[torch.Tensor, torch.Tensor] | None = None) -> ForwardResult:
    """``backend.forward_loop(...)``, through the custom op while a graph is captured
    (under ``torch.onnx.export``: as a ``scan``, see :mod:`._scan`). ``xw``: the input
    product in the loop (the compiled backend's option, never while capturing)."""
    if not capturing():
        kw = {} if xw is None else {"xw": xw}  # (other backends take no xw)
        return backend.forward_loop(spec, Z, R, h0, c0, dmh, peep, P, mask, save, bias, **kw)
    assert xw is None
    if torch.onnx.is_in_onnx_export():
        # An ONNX graph runs no backward: nothing is saved (the saved tensors would be
        # more outputs of the ONNX Scan, computed at every step and never read).
        from . import _scan

        res = _scan.forward_loop(spec, Z, R, h0, c0, dmh, peep, P, mask, False, bias)
        return res._replace(Hs=res.outputs) if save and mask is None else res
    act, ract, clip, pclip, carry, cgrad, matmul = _fields(spec)
    res = ForwardResult(*forward_loop(_key(backend), Z, R, h0, c0, dmh, peep, P, mask, bias, act,
                                      ract, clip, pclip, carry, cgrad, matmul, save))
    if save and mask is None:  # the h states are the outputs
        res = res._replace(Hs=res.outputs)
    return res


def run_backward(backend, spec: CellSpec, Z: torch.Tensor, C: torch.Tensor, Cpre: torch.Tensor,
                 Rpre: torch.Tensor, c0: torch.Tensor, R: torch.Tensor,
                 dmh: torch.Tensor | None, peep: torch.Tensor | None, P: torch.Tensor | None,
                 mask: torch.Tensor | None, dout: torch.Tensor, dhT: torch.Tensor,
                 dcT: torch.Tensor) -> BackwardResult:
    """``backend.backward_loop(...)``, through the custom op while a graph is captured."""
    if not _opaque():
        # lean: the compiled loop may keep dZ only in its low-precision copy (the custom
        # op below always returns dZ: its fake says so)
        return backend.backward_loop(spec, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask, dout,
                                     dhT, dcT, lean=True)
    act, ract, clip, pclip, carry, cgrad, matmul = _fields(spec)
    return BackwardResult(*backward_loop(_key(backend), Z, C, Cpre, Rpre, c0, R, dmh, peep, P,
                                         mask, dout, dhT, dcT, act, ract, clip, pclip, carry,
                                         cgrad, matmul))
