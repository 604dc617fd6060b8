"""The ``fused`` kernel against the ``reference`` oracle.

Both time-loop backends (pure PyTorch, and the compiled extension when it can
be built here) on a randomized matrix of specs: outputs, final states and the
gradients w.r.t. every input (x, h0, c0, W, R, b, peepholes, projection),
float64 ``gradcheck``, both masking rules, reverse, dropout masks,
batch-first, the inference path and the streaming step.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_cases import (
    ALL_ACTS,
    COMPILED_ACTS,
    KINKS,
    assert_close_all,
    extension,
    kink_case,
    make_case,
    outputs_and_grads,
    with_backend,
)

from lstmcompat._engine import CellSpec, Weights, choose, run, run_reference
from lstmcompat._engine.fused import _extension, fused_cannot, fused_step, run_fused
from lstmcompat._engine.fused._function import TORCH_BACKEND, run_sequence
from lstmcompat._engine.reference import step as reference_step


@pytest.fixture(params=["torch", "cpp"])
def backend(request):
    return TORCH_BACKEND if request.param == "torch" else extension()


@st.composite
def cases(draw, acts):
    units = draw(st.integers(1, 5))
    num_proj = draw(st.sampled_from([None, None, 1, 3, 6]))
    spec = CellSpec(
        units,
        activation=draw(st.sampled_from(acts)),
        recurrent_activation=draw(st.sampled_from(acts)),
        forget_bias=draw(st.sampled_from([0.0, 1.0, -0.5])),
        use_peepholes=draw(st.booleans()),
        cell_clip=draw(st.sampled_from([None, 0.3, 2.0, -1.0, 0.0, float("nan")])),
        num_proj=num_proj,
        proj_clip=draw(st.sampled_from([None, 0.2, 1.5, -0.5, float("nan")])),
        mask_mode=draw(st.sampled_from(["carry", "zero"])),
    )
    return dict(spec=spec, T=draw(st.integers(0, 6)), B=draw(st.integers(1, 3)),
                D=draw(st.integers(1, 4)), seed=draw(st.integers(0, 2**16)),
                mask=draw(st.sampled_from(["none", "right_padded", "general"])),
                dropout=draw(st.sampled_from(["none", "shared_input", "shared", "per_gate"])),
                batch_first=draw(st.booleans()), reverse=draw(st.booleans()))


def check_case(backend, c, dtype=torch.float64, rtol=1e-9, atol=1e-10):
    spec = c["spec"]
    x, w, h0, c0, m, dr = make_case(spec, c["T"], c["B"], c["D"], dtype=dtype, seed=c["seed"],
                                    mask=c["mask"], dropout=c["dropout"],
                                    batch_first=c["batch_first"])
    kw = dict(mask=m, reverse=c["reverse"], dropout=dr, batch_first=c["batch_first"])
    # exponential/selu cells can overflow: the NaN and inf entries must match too
    want = outputs_and_grads(run_reference, spec, x, w, h0, c0, **kw)
    got = outputs_and_grads(with_backend(backend), spec, x, w, h0, c0, **kw)
    assert_close_all(got, want, rtol, atol)


HYP = settings(max_examples=150, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@HYP
@given(c=cases(ALL_ACTS))
def test_torch_loops_match_reference_float64(c):
    check_case(TORCH_BACKEND, c)


@HYP
@given(c=cases(COMPILED_ACTS))
def test_compiled_loops_match_reference_float64(c):
    check_case(extension(), c)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(c=cases(["tanh", "sigmoid", "hard_sigmoid", "keras3_hard_sigmoid", "relu", "linear",
                "softsign"]))
def test_compiled_loops_match_reference_float32(c):
    # float32 exp/tanh in the extension are Cephes approximations (1-2 ulp).
    check_case(extension(), c, dtype=torch.float32, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("act", sorted(KINKS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("nan", [False, True])
def test_kinks_match_reference(backend, act, dtype, nan):
    spec, x, w, h0, c0 = kink_case(act, dtype, nan)
    got = outputs_and_grads(with_backend(backend), spec, x, w, h0, c0)
    want = outputs_and_grads(run_reference, spec, x, w, h0, c0)
    assert_close_all(got, want, rtol=1e-5, atol=1e-6)


GRADCHECK_SPECS = [
    CellSpec(3, recurrent_activation="hard_sigmoid"),
    CellSpec(3, activation="keras3_hard_sigmoid", recurrent_activation="keras3_hard_sigmoid"),
    CellSpec(3, use_peepholes=True, cell_clip=0.4, num_proj=2, proj_clip=0.3, forget_bias=1.0,
             mask_mode="zero"),
    CellSpec(2, activation="elu", recurrent_activation="softsign", num_proj=3),
]


@pytest.mark.parametrize("spec", GRADCHECK_SPECS,
                         ids=["keras", "keras3", "tf1-peep-proj-clip", "elu"])
@pytest.mark.parametrize("mask", ["none", "general"])
def test_gradcheck_float64(backend, spec, mask):
    x, w, h0, c0, m, dr = make_case(spec, 4, 2, 3, mask=mask, dropout="per_gate", seed=3)
    tensors = [t for t in (x, h0, c0, *w) if t is not None]

    def f(x, h0, c0, *ws):
        ws = list(ws)
        wt = Weights(*ws[:6], ws[6] if spec.num_proj is not None else None)
        return run_sequence(spec, backend, x, wt, h0, c0, mask=m, dropout=dr, reverse=True)

    assert torch.autograd.gradcheck(f, tensors, eps=1e-6, atol=1e-6)


def test_inference_path_saves_nothing(backend):
    spec = CellSpec(4, use_peepholes=True, num_proj=2, cell_clip=1.0)
    x, w, h0, c0, m, _ = make_case(spec, 5, 2, 3, mask="general")
    packed = []

    def pack(t):
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.no_grad():
            out, h, c = run_sequence(spec, backend, x, w, h0, c0, mask=m)
        assert out.grad_fn is None and not packed
        want = run_reference(spec, x, w, h0, c0, mask=m)
        # and with autograd the kernel does save tensors
        run_sequence(spec, backend, x, w, h0, c0, mask=m)[0].sum()
        assert packed
    for a, b in zip((out, h, c), want, strict=True):
        torch.testing.assert_close(a, b.detach())


def test_backward_twice_with_retain_graph(backend):
    spec = CellSpec(3, recurrent_activation="hard_sigmoid", use_peepholes=True)
    x, w, h0, c0, _, _ = make_case(spec, 4, 2, 3)
    out, h, c = run_sequence(spec, backend, x, w, h0, c0)
    loss = out.pow(2).sum() + c.sum()
    g1 = torch.autograd.grad(loss, [x, w.R, w.w_f], retain_graph=True)
    g2 = torch.autograd.grad(loss, [x, w.R, w.w_f])
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_only_some_outputs_used(backend):
    spec = CellSpec(3, num_proj=2)
    x, w, h0, c0, _, _ = make_case(spec, 4, 2, 3)
    for pick in range(3):
        got = run_sequence(spec, backend, x, w, h0, c0)[pick].sum()
        want = run_reference(spec, x, w, h0, c0)[pick].sum()
        gg = torch.autograd.grad(got, [x, w.W, w.P, h0])
        gw = torch.autograd.grad(want, [x, w.W, w.P, h0])
        for a, b in zip(gg, gw, strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("spec", [
    CellSpec(5, recurrent_activation="hard_sigmoid", forget_bias=1.0),
    CellSpec(5, use_peepholes=True, cell_clip=0.5, num_proj=3, proj_clip=0.4),
    CellSpec(5, activation="gelu"),
])
@pytest.mark.parametrize("grad", [False, True])
def test_fused_step_matches_reference_step(spec, grad):
    x, w, h, c, _, _ = make_case(spec, 1, 1, 4, dtype=torch.float32)
    x = x[0]
    zx = x @ w.W + w.b
    want_h, want_c = reference_step(spec, zx, h, c, w)
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        got_h, got_c = fused_step(spec, x, w, h, c)
    torch.testing.assert_close(got_h, want_h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_c, want_c, rtol=1e-5, atol=1e-6)
    assert (got_h.grad_fn is not None) == grad


def test_fused_cannot_and_choose():
    ctx = dict(device=torch.device("cpu"), dtype=torch.float32, mask_kind="none",
               dropout_kind="none", reverse=False)
    assert fused_cannot(CellSpec(4, recurrent_activation="hard_sigmoid"), **ctx) is None
    assert "callable" in fused_cannot(CellSpec(4, activation=lambda t: t * 2), **ctx)
    assert "softmax" in fused_cannot(CellSpec(4, activation="softmax"), **ctx)
    assert "CPU" in fused_cannot(CellSpec(4), **{**ctx, "device": torch.device("cuda")})
    assert "dtype" in fused_cannot(CellSpec(4), **{**ctx, "dtype": torch.float16})
    name, why = choose(CellSpec(4, recurrent_activation="hard_sigmoid"))
    assert name == "fused" and "native" in why
    assert choose(CellSpec(4, activation=lambda t: t))[0] == "reference"
    assert choose(CellSpec(4))[0] == "native"
    assert choose(CellSpec(4), device="cuda")[0] in ("native", "reference")


def test_engine_run_with_fused_forced():
    spec = CellSpec(4, use_peepholes=True, num_proj=3, proj_clip=0.5, mask_mode="zero")
    x, w, h0, c0, m, dr = make_case(spec, 6, 3, 2, dtype=torch.float32, mask="right_padded",
                                    dropout="per_gate", batch_first=True)
    kw = dict(mask=m, dropout=dr, batch_first=True, reverse=True)
    got = outputs_and_grads(lambda *a, **k: run(*a, kernel="fused", **k), spec, x, w, h0, c0, **kw)
    want = outputs_and_grads(run_reference, spec, x, w, h0, c0, **kw)
    assert_close_all(got, want, rtol=1e-4, atol=1e-5)


def test_run_fused_picks_a_backend_for_every_activation():
    for act in ALL_ACTS:
        spec = CellSpec(2, activation=act, recurrent_activation="sigmoid")
        x, w, h0, c0, _, _ = make_case(spec, 3, 2, 2)
        got = outputs_and_grads(run_fused, spec, x, w, h0, c0)
        want = outputs_and_grads(run_reference, spec, x, w, h0, c0)
        assert_close_all(got, want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("spec", [
    CellSpec(64, recurrent_activation="hard_sigmoid", mask_mode="carry"),
    CellSpec(64, use_peepholes=True, cell_clip=0.5, num_proj=48, proj_clip=0.3,
             forget_bias=1.0, mask_mode="zero"),
    CellSpec(64, activation="relu", recurrent_activation="sigmoid", num_proj=40),
], ids=["keras", "tf1-all", "relu-proj"])
@pytest.mark.parametrize("dropout", ["none", "shared", "per_gate"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_loops_multithreaded_sizes(spec, dropout, dtype):
    """Sizes large enough that the compiled loops split the units across threads."""
    ext = extension()
    x, w, h0, c0, m, dr = make_case(spec, 5, 32, 6, mask="general", dropout=dropout, seed=7,
                                    dtype=dtype)
    kw = dict(mask=m, dropout=dr, reverse=True)
    want = outputs_and_grads(run_reference, spec, x, w, h0, c0, **kw)
    got = outputs_and_grads(with_backend(ext), spec, x, w, h0, c0, **kw)
    if dtype == torch.float32 and spec.activation == "relu":
        # Unbounded relu cells grow gradients to ~1e6 and amplify float32 rounding up
        # to ~5e-3 relative (measured); a wrong gradient is off by O(1). Compare each
        # tensor relative to its size; float64 checks this spec elementwise at 1e-9.
        for a, b in zip(got, want):
            assert float((a - b).norm()) <= 2e-2 * float(b.norm()) + 1e-6
        return
    tol = (1e-9, 1e-10) if dtype == torch.float64 else (1e-4, 2e-5)
    assert_close_all(got, want, *tol)


@pytest.mark.parametrize("spec", [
    CellSpec(128, recurrent_activation="hard_sigmoid"),
    CellSpec(128, use_peepholes=True, cell_clip=0.5, num_proj=64, proj_clip=0.3,
             forget_bias=1.0),
], ids=["keras", "tf1-all"])
def test_compiled_step_multithreaded_sizes(spec):
    """A step large enough that the compiled step splits the units across threads."""
    extension()
    x, w, h, c, _, _ = make_case(spec, 1, 2, 64, dtype=torch.float32)
    x = x[0]
    want_h, want_c = reference_step(spec, x @ w.W + w.b, h, c, w)
    with torch.no_grad():
        got_h, got_c = fused_step(spec, x, w, h, c)
    torch.testing.assert_close(got_h, want_h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_c, want_c, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(_extension.backend() is None, reason="no compiled extension here")
def test_compiled_ops_refuse_mismatched_shapes() -> None:
    """The ops check every shape they index with: a wrong one is an error, never a read
    past a buffer."""
    ops = _extension.backend().ops
    T, B, U = 3, 2, 8
    Z = torch.randn(T, B, 4 * U)
    h, c = torch.zeros(B, U), torch.zeros(B, U)
    for R, hh, cc in ((torch.randn(U, 30), h, c), (torch.randn(U + 1, 4 * U), h, c),
                      (torch.randn(U, 4 * U), torch.zeros(B, U - 1), c),
                      (torch.randn(U, 4 * U), h, torch.zeros(B + 1, U))):
        with pytest.raises(RuntimeError):
            ops.forward(Z.clone(), R, hh, cc, None, None, None, None, 0, 1, None, None,
                        False, False)
    with pytest.raises(RuntimeError):
        ops.step(torch.randn(B, 5), torch.randn(5, 4 * U), torch.randn(U, 30), None, 0.0, h, c,
                 None, None, 0, 1, None, None)
    with pytest.raises(RuntimeError):  # a (4u, U) kernel seen as neither layout
        ops.forward(Z.clone(), torch.randn(U, 8 * U)[:, ::2], h, c, None, None, None, None,
                    0, 1, None, None, False, False)


@pytest.mark.skipif(_extension.backend() is None, reason="no compiled extension here")
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_compiled_loops_read_either_weight_layout(layout: str) -> None:
    """R row-major or as a transposed view of row-major storage (the Keras front-end's
    gate-major kernels), read in place: same numbers as the reference."""
    g = torch.Generator().manual_seed(7)
    spec = CellSpec(units=40, recurrent_activation="hard_sigmoid", mask_mode="carry")
    W = torch.randn(12, 160, generator=g, dtype=torch.float64) * 0.3
    R = torch.randn(40, 160, generator=g, dtype=torch.float64) * 0.3
    if layout == "transposed":
        W, R = W.t().contiguous().t(), R.t().contiguous().t()
        assert not R.is_contiguous()
    W.requires_grad_()
    R.requires_grad_()
    w = Weights(W=W, R=R, b=torch.randn(160, generator=g, dtype=torch.float64))
    x = torch.randn(9, 3, 12, generator=g, dtype=torch.float64)
    h0 = torch.randn(3, 40, generator=g, dtype=torch.float64)
    got = run(spec, x, w, h0, h0, kernel="fused")
    want = run_reference(spec, x, w, h0, h0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    ga = torch.autograd.grad(got[0].sum(), [W, R])
    gb = torch.autograd.grad(want[0].sum(), [W, R])
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        h1, c1 = fused_step(spec, x[0], w, h0, h0)
        want1 = run_reference(spec, x[:1], w, h0, h0)
    torch.testing.assert_close(h1, want1[1], rtol=1e-10, atol=1e-10)
