"""The ``triton`` kernel against ``reference``.

Where there is no GPU the very same Triton kernels run under Triton's interpreter on
CPU tensors (``interpreted_backend``), so their arithmetic, masking, dropout,
projection and backward are checked on every machine with Triton installed; the
compiled kernels on CUDA are checked in ``test_gpu.py``. Without Triton these tests
skip.
"""

from __future__ import annotations

import pytest
import torch
from kernel_cases import (
    KINKS,
    assert_close_all,
    kink_case,
    make_case,
    outputs_and_grads,
    with_backend,
)

from lstmcompat._engine import CellSpec, choose, run, run_reference
from lstmcompat._engine.fused import _acts
from lstmcompat._engine.fused._function import run_sequence
from lstmcompat._engine.gpu import triton_cannot

triton = pytest.importorskip("triton")

TRITON_ACTS = sorted(a for a in _acts.KNOWN if _acts.code(a) is not None)

KERAS = CellSpec(5, recurrent_activation="hard_sigmoid", mask_mode="carry")
TF1_ALL = CellSpec(5, use_peepholes=True, cell_clip=0.5, num_proj=3, proj_clip=0.3,
                   forget_bias=1.0, mask_mode="zero")
CLIP_NOPROJ = CellSpec(4, use_peepholes=True, cell_clip=0.4, proj_clip=0.2, mask_mode="carry")


@pytest.fixture(scope="module")
def interp():
    from lstmcompat._engine.gpu import interpreted_backend

    return interpreted_backend()


@pytest.mark.parametrize("spec", [KERAS, TF1_ALL, CLIP_NOPROJ], ids=["keras", "tf1-all",
                                                                     "clips-noproj"])
@pytest.mark.parametrize("mask", ["none", "right_padded", "general"])
@pytest.mark.parametrize("dropout", ["none", "shared", "per_gate"])
def test_matches_reference_float64(interp, spec, mask, dropout):
    x, w, h0, c0, m, dr = make_case(spec, 4, 3, 6, mask=mask, dropout=dropout, seed=3)
    for reverse in (False, True):
        kw = dict(mask=m, dropout=dr, reverse=reverse)
        got = outputs_and_grads(with_backend(interp), spec, x, w, h0, c0, **kw)
        want = outputs_and_grads(run_reference, spec, x, w, h0, c0, **kw)
        assert_close_all(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spec", [
    CellSpec(40, recurrent_activation="hard_sigmoid", mask_mode="carry"),
    CellSpec(40, use_peepholes=True, cell_clip=0.5, num_proj=35, proj_clip=0.3,
             forget_bias=1.0, mask_mode="zero"),
], ids=["keras", "tf1-all"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_several_blocks_per_launch(interp, spec, dtype):
    """Batch 20, 40 units, 35-40 features: two blocks along every grid axis and two
    chunks of the per-step products."""
    x, w, h0, c0, m, dr = make_case(spec, 3, 20, 7, mask="general", dropout="per_gate",
                                    seed=5, dtype=dtype)
    kw = dict(mask=m, dropout=dr, batch_first=False)
    got = outputs_and_grads(with_backend(interp), spec, x, w, h0, c0, **kw)
    want = outputs_and_grads(run_reference, spec, x, w, h0, c0, **kw)
    tol = (1e-10, 1e-12) if dtype == torch.float64 else (1e-4, 2e-5)
    assert_close_all(got, want, *tol)


@pytest.mark.parametrize("field", ["activation", "recurrent_activation"])
@pytest.mark.parametrize("act", TRITON_ACTS)
def test_every_activation(interp, field, act):
    other = "hard_sigmoid" if field == "activation" else "tanh"
    kw = {field: act, ("recurrent_activation" if field == "activation" else "activation"): other}
    spec = CellSpec(3, use_peepholes=True, **kw)
    x, w, h0, c0, _, _ = make_case(spec, 3, 2, 2, seed=11)
    got = outputs_and_grads(with_backend(interp), spec, x, w, h0, c0)
    want = outputs_and_grads(run_reference, spec, x, w, h0, c0)
    assert_close_all(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("act", sorted(KINKS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("nan", [False, True])
def test_kinks_match_reference(interp, act, dtype, nan):
    spec, x, w, h0, c0 = kink_case(act, dtype, nan)
    got = outputs_and_grads(with_backend(interp), spec, x, w, h0, c0)
    want = outputs_and_grads(run_reference, spec, x, w, h0, c0)
    assert_close_all(got, want, rtol=1e-5, atol=1e-6)


def test_float32_keeps_float32_precision(interp):
    """float32 (the dtype the GPU runs): Eigen's tanh and the IEEE products stay
    within float32 rounding of the reference."""
    spec = CellSpec(8, use_peepholes=True, cell_clip=1.0, num_proj=5, proj_clip=0.5)
    x, w, h0, c0, m, _ = make_case(spec, 6, 4, 5, mask="general", dtype=torch.float32)
    got = outputs_and_grads(with_backend(interp), spec, x, w, h0, c0, mask=m)
    want = outputs_and_grads(run_reference, spec, x, w, h0, c0, mask=m)
    assert_close_all(got, want, rtol=1e-5, atol=1e-6)


def test_inference_path_saves_nothing_and_agrees(interp):
    spec = TF1_ALL
    x, w, h0, c0, m, dr = make_case(spec, 5, 3, 4, mask="general", dropout="per_gate")
    with torch.no_grad():
        got = run_sequence(spec, interp, x, w, h0, c0, mask=m, dropout=dr)
        want = run_reference(spec, x, w, h0, c0, mask=m, dropout=dr)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert not a.requires_grad


def test_gradcheck(interp):
    spec = CellSpec(2, use_peepholes=True, cell_clip=0.6, num_proj=2, proj_clip=0.4,
                    recurrent_activation="hard_sigmoid", mask_mode="carry")
    x, w, h0, c0, m, dr = make_case(spec, 3, 2, 2, mask="general", dropout="per_gate", seed=2)
    weights = [t for t in w if t is not None]

    def f(x, h0, c0, *ws):
        return run_sequence(spec, interp, x, type(w)(*ws), h0, c0, mask=m, dropout=dr)

    assert torch.autograd.gradcheck(f, (x, h0, c0, *weights), fast_mode=True)


def test_dispatch_picks_triton_for_cuda_only_where_cudnn_cannot():
    hs = CellSpec(8, recurrent_activation="hard_sigmoid")
    assert choose(hs, device="cuda")[0] == "triton"
    assert choose(TF1_ALL, device="cuda")[0] == "triton"
    assert choose(CellSpec(8, forget_bias=1.0), device="cuda")[0] == "native"
    assert choose(hs, device="cpu")[0] == "fused"
    name, why = choose(hs, device="cuda", dtype=torch.float64)
    assert name == "reference" and "not triton: dtype torch.float64" in why
    assert "a callable" in triton_cannot(CellSpec(4, activation=lambda t: t * 2),
                                         device=torch.device("cuda"), dtype=torch.float32)
    assert "softplus" in triton_cannot(CellSpec(4, activation="softplus"),
                                       device=torch.device("cuda"), dtype=torch.float32)


def test_without_triton_cuda_calls_go_to_reference(monkeypatch):
    from lstmcompat._engine import dispatch, gpu

    monkeypatch.setattr(gpu, "triton_available", lambda: (False, "Triton is not installed"))
    dispatch.clear_choice_cache()
    try:
        name, why = choose(KERAS, device="cuda")
        assert name == "reference" and "not triton: Triton is not installed" in why
    finally:
        monkeypatch.undo()
        dispatch.clear_choice_cache()


def test_forcing_triton_on_cpu_raises():
    x, w, h0, c0, _, _ = make_case(KERAS, 2, 2, 2)
    with pytest.raises(ValueError, match="triton runs CUDA tensors"):
        run(KERAS, x, w, h0, c0, kernel="triton")


@pytest.mark.parametrize("spec", [KERAS, TF1_ALL, CLIP_NOPROJ], ids=["keras", "tf1-all",
                                                                     "clips-noproj"])
def test_self_check_passes_with_the_kernels_and_catches_wrong_numbers(interp, spec,
                                                                      monkeypatch):
    """The first-use check (a tiny case against the reference) passes with the Triton
    kernels (here interpreted on CPU tensors) and names what differs otherwise."""
    from lstmcompat._engine import gpu

    monkeypatch.setattr(gpu, "TritonBackend", lambda: interp)
    assert gpu.self_check(spec, torch.device("cpu")) is None
    good = gpu.run_triton

    def wrong_c(*a, **k):
        out, h, c = good(*a, **k)
        return out, h, c * 1.01

    monkeypatch.setattr(gpu, "run_triton", wrong_c)
    assert gpu.self_check(spec, torch.device("cpu")).startswith("c differs from the reference")

    def wrong_grad(spec, x, w, h0, c0, **k):  # right values, no gradient through h0
        return good(spec, x, w, h0.detach(), c0, **k)

    monkeypatch.setattr(gpu, "run_triton", wrong_grad)
    assert "results where the reference has" in gpu.self_check(spec, torch.device("cpu"))
