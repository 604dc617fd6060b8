"""Cases and comparisons shared by the kernel tests (``test_fused``, ``test_triton``,
``test_gpu``, ``test_clip_nan``): random LSTM cases with every input requiring grad,
outputs-and-gradients of a runner, a scaled closeness check, and cells whose gate
pre-activations sit exactly on an activation's kinks."""

from __future__ import annotations

import pytest
import torch

from lstmcompat._engine import CellSpec, Dropout, Weights
from lstmcompat._engine.fused import _acts, _extension
from lstmcompat._engine.fused._function import run_sequence

ALL_ACTS = sorted(_acts.KNOWN)
COMPILED_ACTS = sorted(a for a in _acts.KNOWN if _acts.code(a) is not None)


def extension():
    ext = _extension.backend()
    if ext is None:
        pytest.skip(f"compiled extension unavailable: {_extension.status()[1]}")
    return ext


def make_case(spec: CellSpec, T: int, B: int, D: int, *, dtype=torch.float64, seed: int = 0,
              mask: str = "none", dropout: str = "none", batch_first: bool = False):
    g = torch.Generator().manual_seed(seed)
    u, p = spec.units, spec.output_size

    def t(*shape, scale=0.5):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()

    w = Weights(t(D, 4 * u), t(p, 4 * u), t(4 * u), t(u), t(u), t(u),
                t(u, p) if spec.num_proj is not None else None)
    x = t(B, T, D) if batch_first else t(T, B, D)
    h0, c0 = t(B, p), t(B, u)
    m = None
    if mask == "right_padded":
        lengths = torch.randint(1, T + 1, (B,), generator=g) if T else torch.zeros(B)
        m = torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)
    elif mask == "general":
        m = torch.rand(T, B, generator=g) < 0.6
    if m is not None and batch_first:
        m = m.t().contiguous()
    dr = None
    if dropout != "none":
        G = 1 if dropout == "shared" else 4
        dx = (torch.rand(G, B, D, generator=g) < 0.7).to(dtype) / 0.7
        dh = (torch.rand(G, B, p, generator=g) < 0.7).to(dtype) / 0.7
        dr = Dropout(dx, None if dropout == "shared_input" else dh)
    return x, w, h0, c0, m, dr


def outputs_and_grads(fn, spec, x, w, h0, c0, **kw):
    out, h, c = fn(spec, x, w, h0, c0, **kw)
    inputs = [t for t in (x, h0, c0, *w) if t is not None]
    g = torch.Generator().manual_seed(1)

    def weigh(t):  # the same random weights for any device
        return (t * torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device)).sum()

    loss = weigh(out) + weigh(h) + weigh(c)
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    grads = [torch.zeros_like(t) if gr is None else gr for t, gr in zip(inputs, grads, strict=True)]
    return [out, h, c, *grads]


def assert_close_all(got, want, rtol, atol):
    names = ["outputs", "h", "c", "dx", "dh0", "dc0", "dW", "dR", "db", "dw_i", "dw_f", "dw_o",
             "dP"]
    for name, a, b in zip(names, got, want, strict=False):
        assert a.shape == b.shape, name
        finite = b[torch.isfinite(b)]
        scale = max(1.0, finite.abs().max().item()) if finite.numel() else 1.0
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol * scale, equal_nan=True,
                                   msg=lambda m, name=name: f"{name}: {m}")


def with_backend(backend):
    def fn(spec, x, w, h0, c0, **kw):
        return run_sequence(spec, backend, x, w, h0, c0, **kw)
    return fn


#: The piecewise-linear activations and their kinks (and a neighbour where ``x + 3``
#: rounds to 6 in float32).
KINKS = {
    "hard_sigmoid": [-2.5, 2.5],
    "keras3_hard_sigmoid": [-3.0, 3.0, 2.9999998],
    "relu": [0.0],
}


def kink_case(act: str, dtype: torch.dtype, nan: bool):
    """A cell whose gate pre-activations are exactly ``act``'s kinks, one gate at a time.

    Unit ``4k + j`` has gate ``j`` (of ``i, f, g, o``) at kink ``k`` and the other
    gates at 0.5 (inside every linear piece, so that each kink gets a non-zero
    upstream gradient). ``W`` is the identity and ``R``, ``h0`` zero, so ``z = x + b``
    exactly on every step (``h @ R`` adds zeros). With ``nan`` one more unit has a
    NaN bias entry (and there is one step, since ``NaN * 0`` would spread through
    ``h @ R``).
    """
    kinks = KINKS[act]
    u = 4 * len(kinks) + (1 if nan else 0)
    spec = CellSpec(u, activation=act, recurrent_activation=act, forget_bias=0.0)
    z = torch.full((4, u), 0.5, dtype=dtype)  # gate, unit
    for k, v in enumerate(kinks):
        for j in range(4):
            z[j, 4 * k + j] = v
    T = 1 if nan else 2
    x = z.reshape(1, 1, 4 * u).expand(T, 2, 4 * u).clone().requires_grad_()

    def leaf(t):
        return t.to(dtype).requires_grad_()

    b = torch.zeros(4 * u)
    if nan:
        b[u - 1] = float("nan")  # the last unit's input gate
    w = Weights(leaf(torch.eye(4 * u)), leaf(torch.zeros(u, 4 * u)), leaf(b),
                leaf(torch.zeros(u)), leaf(torch.zeros(u)), leaf(torch.zeros(u)), None)
    h0, c0 = leaf(torch.zeros(2, u)), leaf(torch.full((2, u), 0.5))
    return spec, x, w, h0, c0
