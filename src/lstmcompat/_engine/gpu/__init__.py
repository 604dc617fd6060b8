"""The ``triton`` kernel: the ``fused`` kernel's algorithm on CUDA, for what cuDNN cannot run.

cuDNN (the ``native`` kernel) has sigmoid gates, tanh, no peepholes, no clips
and no per-gate or recurrent dropout. For the rest (the Keras default
``hard_sigmoid``, TF1 peepholes, ``cell_clip``, ``proj_clip``, ...) this kernel
runs :class:`lstmcompat._engine.fused.FusedLSTMFunction` (the same
``torch.autograd.Function``: one input GEMM for all steps, the hand-written
backward with the weight gradients as whole-sequence GEMMs) with time loops
made of Triton kernels (:mod:`._kernels`): per step, one launch that computes
the recurrent product ``h @ R`` and the whole pointwise step; in backward, one
launch for the pointwise gradient and one for ``dz @ R^T``; with a projection,
cuBLAS for ``@ P`` plus one small launch for its clip and the mask. It has the
semantics of :func:`lstmcompat._engine.reference.run_reference`.

Triton is optional (``pip install lstmcompat[gpu]``) and imported only when a
CUDA call needs it. The kernel is safe before it is proven: before its first
real use on a device, dispatch runs :func:`self_check` (a tiny case against the
reference); if that fails or raises, calls on that device go to the next exact
kernel (``reference``, or ``native`` where exact) with one warning, and
``choose`` says why. The kernels are dtype-generic; on CUDA the kernel is
offered for float32 (float64 goes to ``reference``). Under Triton's
interpreter (``TRITON_INTERPRET=1``) the same kernels run on CPU tensors, which
is how the test suite checks them on machines without a GPU
(:func:`interpreted_backend`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

import torch

from ..fused import _acts, _loops
from ..fused._function import run_sequence
from ..fused._ops import register_backend
from ..fused._types import BackwardResult, ForwardResult
from ..spec import CellSpec, Dropout, Weights

__all__ = ["TritonBackend", "interpreted_backend", "run_triton", "self_check", "triton_cannot"]

#: Block sizes: batch rows, units / output features, and the reduction chunk of
#: the per-step products (tl.dot needs at least 16 in each dimension).
BLOCK_B, BLOCK_U, BLOCK_K = 16, 32, 32


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def triton_available() -> tuple[bool, str]:
    """``(available, why)``: whether Triton can be imported (not whether a GPU exists)."""
    if importlib.util.find_spec("triton") is None:
        return False, "Triton is not installed (pip install 'lstmcompat[gpu]' or triton)"
    return True, "Triton is installed"


def kernels() -> ModuleType:
    """The compiled Triton kernels (imports Triton on first use)."""
    from . import _kernels

    return _kernels


def interpreted_backend() -> TritonBackend:
    """A backend whose kernels run under Triton's interpreter (on CPU tensors).

    Loads a private copy of :mod:`._kernels` with ``TRITON_INTERPRET=1`` (Triton reads
    it when a kernel is defined), leaving Triton itself and the compiled kernels of
    this process alone.
    """
    return TritonBackend(interpreted_kernels())


def interpreted_kernels() -> ModuleType:
    """The private copy of :mod:`._kernels` defined under Triton's interpreter (see
    :func:`interpreted_backend`), loaded on first use."""
    import triton.language  # noqa: F401 - imported normally, before the variable is set

    name = f"{__name__}._kernels_interpreted"
    module = sys.modules.get(name)
    if module is None:
        path = os.path.join(os.path.dirname(__file__), "_kernels.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        before = os.environ.get("TRITON_INTERPRET")
        os.environ["TRITON_INTERPRET"] = "1"
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        finally:
            if before is None:
                del os.environ["TRITON_INTERPRET"]
            else:
                os.environ["TRITON_INTERPRET"] = before
        sys.modules[name] = module
    return module


def triton_cannot(spec: CellSpec, *, device: torch.device, dtype: torch.dtype,
                  **_: object) -> str | None:
    """Why ``triton`` cannot run this call exactly, or ``None`` when it can."""
    if torch.device(device).type != "cuda":
        return f"device {torch.device(device).type!r} (triton runs CUDA tensors)"
    if dtype != torch.float32:
        return f"dtype {dtype} (the Triton kernels run float32)"
    if spec.matmul_dtype is not None:
        return "low-precision products (torch.autocast) are not in the Triton kernels yet"
    if spec.cell_clip is not None and spec.cell_clip_gradient != "clip_by_value":
        return "cell_clip_gradient='identity' (the Triton kernels differentiate clip_by_value)"
    for field in ("activation", "recurrent_activation"):
        act = getattr(spec, field)
        if not _acts.known(act) or _acts.code(act) is None:
            what = repr(act) if isinstance(act, str) else "a callable"
            return f"{field}={what} has no Triton implementation"
    ok, why = triton_available()
    return None if ok else why


def run_triton(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor,
               c0: torch.Tensor, *, mask: torch.Tensor | None = None, reverse: bool = False,
               dropout: Dropout | None = None, batch_first: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recurrence with the ``triton`` kernel (contract of ``run_reference``)."""
    return run_sequence(spec, TritonBackend(), x, w, h0, c0, mask=mask, reverse=reverse,
                        dropout=dropout, batch_first=batch_first)


def self_check(spec: CellSpec, device: torch.device) -> str | None:
    """The ``triton`` kernel's first-use check on ``device``: ``None`` when a tiny case
    of ``spec`` (2 steps, batch 2, forward and backward, float32) computed there agrees
    with the reference (float64 on the CPU), else what differs. A compile or launch
    error propagates (dispatch reports it and stops using the kernel there)."""
    from ..reference import run_reference

    g = torch.Generator().manual_seed(0)
    depth, batch, steps = 3, 2, 2
    u, p = spec.units, spec.output_size

    def r(*shape: int) -> torch.Tensor:
        fan = shape[0] if len(shape) > 1 else 1
        return (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5) / fan ** 0.5

    peep = spec.use_peepholes
    w = Weights(W=r(depth, 4 * u), R=r(p, 4 * u), b=r(4 * u), w_i=r(u) if peep else None,
                w_f=r(u) if peep else None, w_o=r(u) if peep else None,
                P=r(u, p) if spec.num_proj is not None else None)
    x, h0, c0 = r(steps, batch, depth) * 3, r(batch, p), r(batch, u)
    leaves = [x, h0, c0, *(t for t in w if t is not None)]
    seeds = None

    def outputs_and_grads(run: object, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        nonlocal seeds
        tensors = [t.detach().requires_grad_() for t in tensors]
        it = iter(tensors[3:])
        ws = Weights(*(None if t is None else next(it) for t in w))
        out = run(spec, tensors[0], ws, tensors[1], tensors[2])  # type: ignore[operator]
        if seeds is None:
            seeds = [torch.rand(t.shape, generator=g, dtype=torch.float64) - 0.5 for t in out]
        grads = torch.autograd.grad(out, tensors, [s.to(t) for s, t in zip(seeds, out)],
                                    allow_unused=True)
        return [t.detach().double().cpu() for t in (*out, *grads) if t is not None]

    want = outputs_and_grads(run_reference, leaves)
    got = outputs_and_grads(run_triton, [t.to(device, torch.float32) for t in leaves])
    names = ["outputs", "h", "c", "dx", "dh0", "dc0", *(f"d{n}" for n, t in zip(
        Weights._fields, w) if t is not None)]
    if len(got) != len(want):
        return f"{len(got)} results where the reference has {len(want)}"
    for name, a, b in zip(names, got, want):
        if a.shape != b.shape:
            return f"{name} has shape {tuple(a.shape)}, the reference {tuple(b.shape)}"
        if not torch.allclose(a, b, rtol=1e-3, atol=1e-4):
            err = (a - b).abs().nan_to_num(float("inf")).max().item()
            return f"{name} differs from the reference by up to {err:.3g}"
    return None


class TritonBackend:
    """Time loops of Triton kernels, same contract as :mod:`lstmcompat._engine.fused._loops`."""

    name = "triton"

    def __init__(self, module: ModuleType | None = None) -> None:
        self._module = module
        #: The name graph capture's custom ops call it by (see ``fused._ops``).
        self.key = "triton" if module is None else "triton-interpreted"
        register_backend(self.key, self)

    @property
    def k(self) -> ModuleType:
        return self._module if self._module is not None else kernels()

    @staticmethod
    def _shapes(spec: CellSpec, Z: torch.Tensor, R: torch.Tensor, dmh: torch.Tensor | None,
                peep: torch.Tensor | None) -> tuple:
        """``T, B, u, p``, the kernels' weights made contiguous, and the clip flags."""
        T, B, _ = Z.shape
        return (T, B, spec.units, R.shape[0], R.contiguous(),
                None if dmh is None else dmh.contiguous(),
                None if peep is None else peep.contiguous(),
                spec.cell_clip is not None, spec.proj_clip is not None)

    @staticmethod
    def _bounds(spec: CellSpec, like: torch.Tensor) -> torch.Tensor:
        """``(-cell_clip, cell_clip, -proj_clip, proj_clip)`` as a tensor of the data's
        dtype (a float argument would reach the kernels as float32)."""
        clip = spec.cell_clip if spec.cell_clip is not None else 0.0
        pclip = spec.proj_clip if spec.proj_clip is not None else 0.0
        return torch.tensor([-clip, clip, -pclip, pclip], dtype=like.dtype, device=like.device)

    @staticmethod
    def _masks(spec: CellSpec, mask: torch.Tensor | None
               ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The step mask as bytes, and which rows output their state: the mask itself
        ("zero") or every row that has had a valid step ("carry")."""
        if mask is None:
            return None, None
        m8 = mask.to(torch.uint8).contiguous()
        if spec.mask_mode == "carry":
            return m8, (mask.to(torch.int32).cumsum(0) > 0).to(torch.uint8).contiguous()
        return m8, m8

    def forward_loop(self, spec: CellSpec, Z: torch.Tensor, R: torch.Tensor, h0: torch.Tensor,
                     c0: torch.Tensor, dmh: torch.Tensor | None, peep: torch.Tensor | None,
                     P: torch.Tensor | None, mask: torch.Tensor | None, save: bool,
                     bias: torch.Tensor | None = None) -> ForwardResult:
        k = self.k
        if bias is not None:
            Z.add_(bias)
        T, B, u, p, R, dmh, peep, clip, pclip = self._shapes(spec, Z, R, dmh, peep)
        h0, c0 = h0.contiguous(), c0.contiguous()
        empty = Z.new_empty(0)
        outputs = Z.new_empty(T, B, p)
        ring = not save  # inference keeps two states, not T
        C = Z.new_empty(2 if ring else T, B, u)
        Cpre = Z.new_empty(T, B, u) if save and clip else empty
        Hs = Z.new_empty(2 if ring else T, B, p) if mask is not None else outputs
        Rpre = Z.new_empty(T, B, p) if save and pclip else empty
        HU = Z.new_empty(B, u) if P is not None else Z
        RP = Z.new_empty(B, p) if P is not None else Z
        m8, om8 = self._masks(spec, mask)
        bounds = self._bounds(spec, Z)
        flags, tail = forward_flags(_acts.code(spec.activation),  # type: ignore[arg-type]
                                    _acts.code(spec.recurrent_activation),  # type: ignore
                                    dmh, peep, P, mask, clip, pclip, save)
        hs_ring = ring and mask is not None
        for s in range(T):
            h_prev = h0 if s == 0 else Hs[(s - 1) % 2 if hs_ring else s - 1]
            c_prev = c0 if s == 0 else C[(s - 1) % 2 if ring else s - 1]
            h_next = Hs[s % 2 if hs_ring else s]
            c_next = C[s % 2 if ring else s]
            ms = Z if m8 is None else m8[s]
            oms = Z if om8 is None else om8[s]
            rpre = Rpre[s] if save and pclip else Z
            forward_step(k, _direct, Z[s], R, h_prev, c_prev, dmh, peep, P, ms, oms, bounds,
                         c_next, Cpre[s] if save and clip else Z, HU, RP, h_next, outputs[s],
                         rpre, flags, tail)
        last = T - 1
        h = Hs[last % 2 if hs_ring else last].clone()
        c = C[last % 2 if ring else last].clone()
        if not save:
            return ForwardResult(outputs, h, c, empty, empty, empty, empty)
        return ForwardResult(outputs, h, c, C, Cpre, Hs, Rpre)

    def backward_loop(self, spec: CellSpec, Z: torch.Tensor, C: torch.Tensor,
                      Cpre: torch.Tensor, Rpre: torch.Tensor, c0: torch.Tensor, R: torch.Tensor,
                      dmh: torch.Tensor | None, peep: torch.Tensor | None,
                      P: torch.Tensor | None, mask: torch.Tensor | None, dout: torch.Tensor,
                      dhT: torch.Tensor, dcT: torch.Tensor, lean: bool = False
                      ) -> BackwardResult:
        # (lean is the compiled CPU loop's option: dZ is always given here)
        k = self.k
        T, B, u, p, R, dmh, peep, clip, pclip = self._shapes(spec, Z, R, dmh, peep)
        c0, dout = c0.contiguous(), dout.contiguous()
        carry = spec.mask_mode == "carry"
        empty = Z.new_empty(0)
        dZ = torch.empty_like(Z)
        HU = Z.new_empty(T, B, u) if P is not None else empty
        dRp = Z.new_empty(T, B, p) if P is not None else empty
        dh, dhp = dhT.contiguous().clone(), Z.new_empty(B, p)
        dc = dcT.contiguous().clone()
        acc = torch.zeros_like(dh) if mask is not None and carry else Z
        dhu = Z.new_empty(B, u) if P is not None else Z
        # held rows' new cells (C keeps the previous ones), for w_o's gradient
        Cn = torch.empty_like(C) if mask is not None and peep is not None else C
        m8, _ = self._masks(spec, mask)
        bounds = self._bounds(spec, Z)
        step_flags = backward_flags(_acts.code(spec.activation),  # type: ignore[arg-type]
                                    _acts.code(spec.recurrent_activation),  # type: ignore
                                    peep, P, mask, clip, pclip, carry)
        for s in range(T - 1, -1, -1):
            ms = Z if m8 is None else m8[s]
            rpre = Rpre[s] if pclip else Z
            backward_step(k, _direct, Z[s], C[s], c0 if s == 0 else C[s - 1],
                          Cpre[s] if clip else Z, rpre, R, dmh, peep, P, ms, dout[s], dh, dc,
                          acc, bounds, dZ[s], dhp, HU[s] if P is not None else Z,
                          dRp[s] if P is not None else Z, dhu, Cn[s], step_flags)
            dh, dhp = dhp, dh
        dpeep = _loops.peephole_grads(dZ, C, c0, u, Cn) if peep is not None else empty
        return BackwardResult(dZ, dh, dc, HU, dRp, dpeep)


# ------------------------------------------------------------------ one step's launches
# The time loops above and the ``triton_op`` steps of :mod:`._ops` launch the kernels
# of a step through these functions: ``wrap`` is the identity in the loops (direct
# launches) and ``torch.library.wrap_triton`` in the ops. A placeholder tensor (any
# tensor: the kernel does not read it) stands for an absent optional one.


def _direct(kernel: object) -> object:
    return kernel


def forward_flags(act: int, ract: int, dmh: torch.Tensor | None, peep: torch.Tensor | None,
                  P: torch.Tensor | None, mask: torch.Tensor | None, clip: bool, pclip: bool,
                  save: bool) -> tuple[dict, dict]:
    """The constexpr arguments of ``fwd_step`` and ``fwd_proj``."""
    flags = dict(ACT=act, RACT=ract, G=0 if dmh is None else dmh.shape[0],
                 PEEPHOLES=peep is not None, CLIP=clip, PCLIP=pclip, HAS_P=P is not None,
                 HAS_MASK=mask is not None, SAVE_CPRE=bool(save and clip),
                 SAVE_RPRE=bool(save and pclip), BB=BLOCK_B, BU=BLOCK_U, BK=BLOCK_K)
    tail = dict(PCLIP=pclip, HAS_MASK=mask is not None, SAVE_RPRE=bool(save and pclip),
                BB=BLOCK_B, BP=BLOCK_U)
    return flags, tail


def forward_step(k: ModuleType, wrap: object, z: torch.Tensor, R: torch.Tensor,
                 h: torch.Tensor, c: torch.Tensor, dmh: torch.Tensor | None,
                 peep: torch.Tensor | None, P: torch.Tensor | None, m8: torch.Tensor,
                 om8: torch.Tensor, bounds: torch.Tensor, c_next: torch.Tensor,
                 cpre: torch.Tensor, hu: torch.Tensor, rp: torch.Tensor, h_next: torch.Tensor,
                 out: torch.Tensor, rpre: torch.Tensor, flags: dict, tail: dict) -> None:
    """Launch one forward step: ``z`` (B, 4u, the step's input projection plus bias)
    becomes its gate pre-activations; writes ``c_next``, ``h_next`` (with a mask),
    ``out`` and, as ``flags`` say, ``cpre`` and ``rpre``; ``hu`` and ``rp`` (B, u) and
    (B, p) are the projection's scratch buffers."""
    B, u, p = z.shape[0], c.shape[1], R.shape[0]
    grid = (_cdiv(B, BLOCK_B), _cdiv(u, BLOCK_U))
    wrap(k.fwd_step)[grid](  # type: ignore[operator]
        z, R, h, c, z if dmh is None else dmh, z if peep is None else peep, c_next, cpre, hu,
        h_next, out, m8, om8, rpre, B, u, p, bounds, **flags)
    if P is not None:
        torch.mm(hu, P, out=rp)
        wrap(k.fwd_proj)[(_cdiv(B, BLOCK_B), _cdiv(p, BLOCK_U))](  # type: ignore[operator]
            rp, h, h_next, out, m8, om8, rpre, B, p, bounds, **tail)


def backward_flags(act: int, ract: int, peep: torch.Tensor | None, P: torch.Tensor | None,
                   mask: torch.Tensor | None, clip: bool, pclip: bool, carry: bool) -> dict:
    """The constexpr arguments of ``bwd_step`` (``bwd_out`` takes the last three)."""
    return dict(ACT=act, RACT=ract, PEEPHOLES=peep is not None, CLIP=clip, HAS_P=P is not None,
                BB=BLOCK_B, BU=BLOCK_U, HAS_MASK=mask is not None, CARRY=carry, PCLIP=pclip)


def backward_step(k: ModuleType, wrap: object, z: torch.Tensor, cn: torch.Tensor,
                  cprev: torch.Tensor, cpre: torch.Tensor, rpre: torch.Tensor, R: torch.Tensor,
                  dmh: torch.Tensor | None, peep: torch.Tensor | None, P: torch.Tensor | None,
                  m8: torch.Tensor, dout: torch.Tensor, dh: torch.Tensor, dc: torch.Tensor,
                  acc: torch.Tensor, bounds: torch.Tensor, dz: torch.Tensor, dhp: torch.Tensor,
                  hu: torch.Tensor, drp: torch.Tensor, dhu: torch.Tensor, cnh: torch.Tensor,
                  flags: dict) -> None:
    """Launch one backward step: from the gradients ``dh``, ``dc`` after the step (and
    ``dout``, the step's output gradient; ``acc``, a Keras mask's carried one) writes
    ``dz`` and ``dhp`` (the ``h`` gradient before the step) and updates ``dc`` and
    ``acc`` in place; with a projection also ``hu`` and ``drp`` (``dhu`` is scratch);
    with a mask and peepholes ``cnh`` (the held rows' new cells)."""
    B, u, p = z.shape[0], cn.shape[1], R.shape[0]
    grid_p = (_cdiv(B, BLOCK_B), _cdiv(p, BLOCK_U))
    if P is not None:
        wrap(k.bwd_out)[grid_p](dh, dout, acc, m8, rpre, drp, B, p, bounds,  # type: ignore
                                BB=BLOCK_B, BP=BLOCK_U, HAS_MASK=flags["HAS_MASK"],
                                CARRY=flags["CARRY"], PCLIP=flags["PCLIP"])
        torch.mm(drp, P.t(), out=dhu)
    wrap(k.bwd_step)[(_cdiv(B, BLOCK_B), _cdiv(u, BLOCK_U))](  # type: ignore[operator]
        z, cn, cprev, cpre, dhu, dh, dout, acc, rpre, dc, dz, hu,
        z if peep is None else peep, m8, cnh, B, u, bounds, **flags)
    wrap(k.bwd_dh)[grid_p](  # type: ignore[operator]
        dz, R, z if dmh is None else dmh, dh, dhp, m8, B, u, p,
        G=0 if dmh is None else dmh.shape[0], HAS_MASK=flags["HAS_MASK"],
        BB=BLOCK_B, BP=BLOCK_U, BK=BLOCK_K)
