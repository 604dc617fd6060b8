"""GPU checks: run where CUDA is available, skipped cleanly elsewhere."""

import pytest
import torch

from lstmcompat._engine import CellSpec, Weights, choose, run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("proj", [None, 3])
def test_native_on_cuda_matches_cpu_reference_without_tf32(proj):
    torch.manual_seed(0)
    spec = CellSpec(units=64, forget_bias=1.0, num_proj=proj)
    p = spec.output_size
    w = Weights(W=torch.randn(32, 256) * 0.2, R=torch.randn(p, 256) * 0.2, b=torch.randn(256) * 0.2,
                P=None if proj is None else torch.randn(64, proj) * 0.2)
    x, h0, c0 = torch.randn(20, 4, 32), torch.randn(4, p), torch.randn(4, 64)
    ref = run(spec, x, w, h0, c0, kernel="reference")
    wc = Weights(*(None if t is None else t.cuda() for t in w))
    assert choose(spec, device="cuda")[0] == "native"
    out = run(spec, x.cuda(), wc, h0.cuda(), c0.cuda())
    for a, b in zip(out, ref):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", [
    CellSpec(64, recurrent_activation="hard_sigmoid", mask_mode="carry"),
    CellSpec(64, activation="keras3_hard_sigmoid", recurrent_activation="keras3_hard_sigmoid",
             mask_mode="carry"),
    CellSpec(64, use_peepholes=True, cell_clip=0.5, num_proj=40, proj_clip=0.3, forget_bias=1.0,
             mask_mode="zero"),
], ids=["keras-hard-sigmoid", "keras3-hard-sigmoid", "tf1-all"])
def test_triton_on_cuda_matches_cpu_reference(spec):
    """The compiled Triton kernels (what cuDNN cannot run): outputs, states and every
    gradient against the CPU reference, with a mask and per-gate dropout."""
    pytest.importorskip("triton")
    from kernel_cases import make_case, outputs_and_grads

    assert choose(spec, device="cuda")[0] == "triton"
    x, w, h0, c0, m, dr = make_case(spec, 12, 20, 24, mask="general", dropout="per_gate",
                                    dtype=torch.float32)
    want = outputs_and_grads(lambda *a, **k: run(*a, kernel="reference", **k), spec,
                             x, w, h0, c0, mask=m, dropout=dr)

    def cuda(t):
        return None if t is None else t.detach().cuda().requires_grad_(t.requires_grad)

    wc = Weights(*(cuda(t) for t in w))
    drc = type(dr)(*(cuda(t) for t in dr))
    got = outputs_and_grads(run, spec, cuda(x), wc, cuda(h0), cuda(c0), mask=m.cuda(),
                            dropout=drc)
    for a, b in zip(got, want):
        scale = max(1.0, b.abs().max().item())
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=2e-5 * scale)


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("act", ["hard_sigmoid", "keras3_hard_sigmoid", "relu"])
def test_triton_on_cuda_at_the_kinks(act, nan):
    """Gate pre-activations exactly at the kinks (compiled comparisons and the
    correctly rounded ``/ 6``) against the CPU reference."""
    pytest.importorskip("triton")
    from kernel_cases import kink_case, outputs_and_grads

    spec, x, w, h0, c0 = kink_case(act, torch.float32, nan)
    assert choose(spec, device="cuda")[0] == "triton"
    want = outputs_and_grads(lambda *a, **k: run(*a, kernel="reference", **k), spec,
                             x, w, h0, c0)

    def cuda(t):
        return None if t is None else t.detach().cuda().requires_grad_(t.requires_grad)

    got = outputs_and_grads(run, spec, cuda(x), Weights(*(cuda(t) for t in w)), cuda(h0),
                            cuda(c0))
    for a, b in zip(got, want):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-5, atol=1e-6, equal_nan=True)
