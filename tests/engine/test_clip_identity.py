"""``CellSpec.cell_clip_gradient="identity"`` (TF's block ops: the cell clip passes
gradients): the ``fused`` kernel (its PyTorch loop) against the ``reference``."""

from __future__ import annotations

import pytest
import torch

from lstmcompat._engine import CellSpec, Weights, choose, run_explained


def _weights(d: int, u: int, p: int | None, dtype: torch.dtype) -> Weights:
    out = p or u
    return Weights(W=torch.randn(d, 4 * u, dtype=dtype), R=torch.randn(out, 4 * u, dtype=dtype),
                   b=torch.randn(4 * u, dtype=dtype), w_i=torch.randn(u, dtype=dtype),
                   w_f=torch.randn(u, dtype=dtype), w_o=torch.randn(u, dtype=dtype),
                   P=None if p is None else torch.randn(u, p, dtype=dtype))


@pytest.mark.parametrize("mask_mode", ["zero", "carry"])
@pytest.mark.parametrize("num_proj, proj_clip", [(None, None), (2, 0.3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_matches_reference(mask_mode, num_proj, proj_clip, dtype) -> None:
    torch.manual_seed(0)
    spec = CellSpec(units=3, use_peepholes=True, cell_clip=0.2, forget_bias=0.5,
                    num_proj=num_proj, proj_clip=proj_clip, mask_mode=mask_mode,
                    cell_clip_gradient="identity")
    w = _weights(4, 3, num_proj, dtype)
    x = torch.randn(5, 2, 4, dtype=dtype) * 2
    h0 = torch.randn(2, num_proj or 3, dtype=dtype)
    c0 = torch.randn(2, 3, dtype=dtype)
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [0, 0], [1, 0]], dtype=torch.bool)
    results = []
    for kernel in ("fused", "reference"):
        leaves = [t.clone().requires_grad_() for t in (x, h0, c0, *w) if t is not None]
        ww = Weights(*leaves[3:], *([None] if num_proj is None else []))
        out, h, c, used = run_explained(spec, leaves[0], ww, leaves[1], leaves[2], mask=mask,
                                        kernel=kernel)
        assert used[0] == kernel
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view(out.shape)).sum() \
            + (h * 0.3).sum() + (c * -0.7).sum()
        grads = torch.autograd.grad(loss, leaves)
        results.append((out, h, c, grads))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, b in zip(results[0][:3], results[1][:3], strict=True):
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(results[0][3], results[1][3], strict=True):
        torch.testing.assert_close(a, b, **tol)
    # the clip is active here: clip_by_value's gradient differs
    assert results[0][2].abs().max() <= 0.2


def test_the_compiled_loop_is_not_used_for_it() -> None:
    spec = CellSpec(units=3, cell_clip=0.5, cell_clip_gradient="identity")
    name, why = choose(spec, grad=True)
    assert name == "fused", why
    from lstmcompat._engine.fused import backend_for
    assert "cell_clip_gradient='identity' is not compiled" in backend_for(spec)[1]
    assert "cell_clip_gradient" in choose(spec, device="cuda", dtype=torch.float32)[1]
