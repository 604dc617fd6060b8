"""The ``reference`` kernel (the oracle) against its own written definition.

Every fast kernel is tested against ``reference``; this file checks the oracle
itself, against an independent NumPy transcription of the equations in the
``spec`` module docstring (float64): peepholes, clips of every sign (and NaN),
projection, both masking rules, reversed processing, per-gate and shared
dropout masks, batch-first, and TF's ``clip_by_value`` with its gradient.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from lstmcompat._engine import CellSpec, Dropout, Weights, run_reference
from lstmcompat._engine.reference import clip_by_value, reference_cannot

_NP_ACTS = {
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "hard_sigmoid": lambda z: np.clip(0.2 * z + 0.5, 0.0, 1.0),
    "relu": lambda z: np.maximum(z, 0.0),
    "linear": lambda z: z,
}


def _np_clip(t: np.ndarray, bound: float) -> np.ndarray:
    return np.maximum(np.minimum(t, bound), -bound)  # TF's clip_by_value(t, -bound, bound)


def _np_run(spec: CellSpec, x, W, R, b, wi, wf, wo, P, h0, c0, mask, reverse, dx, dh):
    """The spec docstring, line by line, in NumPy: x (T, B, D), mask (T, B) or None."""
    act, ract = _NP_ACTS[spec.activation], _NP_ACTS[spec.recurrent_activation]
    u = spec.units
    T = x.shape[0]
    h, c, prev = h0, c0, np.zeros_like(h0)
    outs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        z = []
        for k in range(4):  # canonical gates i, f, g, o
            xk = x[t] * (dx[k if dx.shape[0] == 4 else 0] if dx is not None else 1.0)
            hk = h * (dh[k if dh.shape[0] == 4 else 0] if dh is not None else 1.0)
            z.append(xk @ W[:, k * u:(k + 1) * u] + hk @ R[:, k * u:(k + 1) * u]
                     + b[k * u:(k + 1) * u])
        zi, zf, zg, zo = z
        if spec.use_peepholes:
            zi, zf = zi + wi * c, zf + wf * c
        i = ract(zi)
        f = ract(zf + spec.forget_bias)
        cn = f * c + i * act(zg)
        if spec.cell_clip is not None:
            cn = _np_clip(cn, spec.cell_clip)
        o = ract(zo + wo * cn) if spec.use_peepholes else ract(zo)
        hn = o * act(cn)
        if spec.num_proj is not None:
            hn = hn @ P
        if spec.proj_clip is not None:
            hn = _np_clip(hn, spec.proj_clip)
        if mask is None:
            out, h, c = hn, hn, cn
        else:
            m = mask[t][:, None]
            if spec.mask_mode == "carry":
                out = np.where(m, hn, prev)
                prev = out
            else:
                out = np.where(m, hn, 0.0)
            h, c = np.where(m, hn, h), np.where(m, cn, c)
        outs[t] = out
    order = range(T - 1, -1, -1) if reverse else range(T)
    return np.stack([outs[t] for t in order]) if T else np.zeros((0, *h0.shape)), h, c


_SPECS = [
    CellSpec(3),
    CellSpec(3, forget_bias=1.0, use_peepholes=True, cell_clip=0.4, mask_mode="zero"),
    CellSpec(4, activation="relu", recurrent_activation="hard_sigmoid", num_proj=2,
             proj_clip=0.3),
    CellSpec(2, activation="linear", use_peepholes=True, cell_clip=-0.5, num_proj=5,
             forget_bias=-0.5),
    CellSpec(3, cell_clip=0.0, proj_clip=float("nan"), mask_mode="zero"),
]


@pytest.mark.parametrize("spec", _SPECS, ids=repr)
@pytest.mark.parametrize("mask,reverse,dropout,batch_first", [
    ("none", False, "none", False),
    ("right_padded", False, "none", True),
    ("general", True, "per_gate", False),
    ("general", False, "shared", True),
])
def test_reference_is_the_written_equations(spec, mask, reverse, dropout, batch_first):
    g = torch.Generator().manual_seed(7)
    T, B, D = 5, 3, 4
    u, p = spec.units, spec.output_size

    def t(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    x, h0, c0 = t(T, B, D), t(B, p), t(B, u)
    w = Weights(t(D, 4 * u), t(p, 4 * u), t(4 * u), t(u), t(u), t(u),
                t(u, p) if spec.num_proj is not None else None)
    m = None
    if mask == "right_padded":
        m = torch.arange(T).unsqueeze(1) < torch.tensor([5, 2, 0]).unsqueeze(0)
    elif mask == "general":
        m = torch.rand(T, B, generator=g) < 0.5
    dr = None
    if dropout != "none":
        G = 4 if dropout == "per_gate" else 1
        dr = Dropout((torch.rand(G, B, D, generator=g) < 0.7).double() / 0.7,
                     (torch.rand(G, B, p, generator=g) < 0.7).double() / 0.7)
    out, h, c = run_reference(spec, x.transpose(0, 1) if batch_first else x, w, h0, c0,
                              mask=None if m is None else (m.t() if batch_first else m),
                              reverse=reverse, dropout=dr, batch_first=batch_first)
    if batch_first:
        out = out.transpose(0, 1)
    n = [None if a is None else a.numpy() for a in (x, *w, h0, c0)]
    want = _np_run(spec, *n, None if m is None else m.numpy(), reverse,
                   None if dr is None else dr.x.numpy(), None if dr is None else dr.h.numpy())
    for got, exp in zip((out, h, c), want, strict=True):
        np.testing.assert_allclose(got.numpy(), exp, rtol=1e-12, atol=1e-12)


def test_masked_steps_are_differentiated_with_zero_gradient():
    # TF's `where`: a masked step still runs, its NaN reaches the gradients as 0 * NaN.
    spec = CellSpec(2, mask_mode="zero")
    x = torch.tensor([[[1.0]], [[float("nan")]]], dtype=torch.float64, requires_grad=True)
    w = Weights(*(torch.full(s, 0.1, dtype=torch.float64, requires_grad=True)
                  for s in ((1, 8), (2, 8), (8,))))
    h0 = c0 = torch.zeros(1, 2, dtype=torch.float64)
    out, h, c = run_reference(spec, x, w, h0, c0, mask=torch.tensor([[True], [False]]))
    assert torch.isfinite(out).all() and torch.isfinite(h).all()
    assert out[1].eq(0).all()
    (gx,) = torch.autograd.grad((out.sum() + h.sum() + c.sum()), [x])
    # zero upstream gradient times NaN local derivatives: NaN, back through step 0 too
    assert math.isnan(gx[1, 0, 0].item()) and math.isnan(gx[0, 0, 0].item())
    x2 = x.detach().clone()
    x2[1] = 5.0
    x2.requires_grad_()
    out, h, c = run_reference(spec, x2, w, h0, c0, mask=torch.tensor([[True], [False]]))
    (gx2,) = torch.autograd.grad((out.sum() + h.sum() + c.sum()), [x2])
    assert gx2[1, 0, 0].item() == 0.0 and gx2[0, 0, 0].item() != 0.0


@pytest.mark.parametrize("bound", [0.5, 0.0, -0.5, float("nan"), float("inf")])
def test_clip_by_value_is_tf(bound):
    t = torch.tensor([-1.0, -0.5, 0.0, 0.25, 0.5, 2.0, float("nan")], dtype=torch.float64,
                     requires_grad=True)
    got = clip_by_value(t, bound)
    want = _np_clip(t.detach().numpy(), bound)
    np.testing.assert_array_equal(got.detach().numpy(), want)
    (grad,) = torch.autograd.grad(got.sum(), [t])
    tv = t.detach().numpy()
    with np.errstate(invalid="ignore"):
        passes = (tv <= bound) & (tv >= -bound)  # TF: minimum passes t <= hi, maximum t >= lo
    np.testing.assert_array_equal(grad.numpy(), passes.astype(np.float64))


def test_reference_runs_everything():
    user = CellSpec(2, activation=lambda z: z * 0.5)
    for spec, kind in itertools.product([user, *_SPECS], ["none", "right_padded", "general"]):
        assert reference_cannot(spec, device=torch.device("cpu"), dtype=torch.float16,
                                mask_kind=kind, dropout_kind="other", reverse=True) is None
