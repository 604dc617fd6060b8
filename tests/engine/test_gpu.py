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
