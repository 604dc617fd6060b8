"""Segment-wise checkpointing (``checkpoint_steps``): the same outputs, states and
gradients as one call, for every mask rule, reverse and dropout; less memory kept for
backward; clear errors."""

from __future__ import annotations

import pytest
import torch

import lstmcompat as L
from lstmcompat._engine import CellSpec, Dropout, Weights, run_explained


def _case(mask_mode: str, mask: str, seed: int = 0, T: int = 11, B: int = 4, D: int = 3,
          u: int = 5):
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64

    def r(*s):
        return (torch.randn(*s, generator=g, dtype=dt) * 0.5).requires_grad_()

    spec = CellSpec(u, recurrent_activation="hard_sigmoid", mask_mode=mask_mode,
                    use_peepholes=True, cell_clip=1.5)
    w = Weights(r(D, 4 * u), r(u, 4 * u), r(4 * u), w_i=r(u), w_f=r(u), w_o=r(u))
    x, h0, c0 = r(T, B, D), r(B, u), r(B, u)
    m = None
    if mask == "holes":
        m = torch.rand(T, B, generator=g) < 0.6
        m[:5, 0] = False  # a row whose first valid step is in the second segment
    elif mask == "padded":
        m = torch.arange(T).unsqueeze(1) < torch.tensor([11, 7, 3, 0]).unsqueeze(0)
    return spec, x, w, h0, c0, m


def _all(spec, x, w, h0, c0, m, **kw):
    o, h, c, why = run_explained(spec, x, w, h0, c0, mask=m, **kw)
    loss = (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() + \
        h.sum() * 0.3 - c.sum() * 0.2
    tensors = [x, h0, c0, *(t for t in w if t is not None)]
    return [o, h, c, *torch.autograd.grad(loss, tensors)], why


@pytest.mark.parametrize("mask_mode", ["carry", "zero"])
@pytest.mark.parametrize("mask", ["none", "holes", "padded"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("steps", [1, 4, 5, 10])
def test_segments_give_the_same_numbers(mask_mode, mask, reverse, steps):
    case = _case(mask_mode, mask)
    want, _ = _all(*case, reverse=reverse)
    got, why = _all(*case, reverse=reverse, checkpoint_steps=steps)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)
    assert f"segments of {steps} steps" in why[1]


@pytest.mark.parametrize("kernel", ["fused", "reference"])
def test_segments_with_dropout_and_each_kernel(kernel):
    spec, x, w, h0, c0, m = _case("carry", "holes", seed=2)
    g = torch.Generator().manual_seed(3)
    d = Dropout(x=(torch.rand(4, 4, 3, generator=g) < 0.7).double() / 0.7,
                h=(torch.rand(4, 4, 5, generator=g) < 0.7).double() / 0.7)
    want, _ = _all(spec, x, w, h0, c0, m, dropout=d, kernel=kernel)
    got, why = _all(spec, x, w, h0, c0, m, dropout=d, kernel=kernel, checkpoint_steps=3)
    assert why[0] == kernel
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)


def test_no_segments_without_autograd_or_for_short_sequences():
    spec, x, w, h0, c0, m = _case("carry", "none")
    with torch.no_grad():
        assert "segments" not in run_explained(spec, x, w, h0, c0, checkpoint_steps=3)[3][1]
    assert "segments" not in run_explained(spec, x, w, h0, c0, checkpoint_steps=11)[3][1]


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", True])
def test_bad_checkpoint_steps(bad):
    spec, x, w, h0, c0, _ = _case("carry", "none")
    with pytest.raises(ValueError, match="checkpoint_steps"):
        run_explained(spec, x, w, h0, c0, checkpoint_steps=bad)


def _saved_bytes(fn) -> int:
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def test_keras_layer_and_tf1_cell_take_the_option_and_keep_less():
    torch.manual_seed(0)
    layer = L.LSTM(32, return_sequences=True)
    x = torch.randn(4, 400, 8, requires_grad=True)
    full = _saved_bytes(lambda: layer(x))
    want = layer(x)
    layer.checkpoint_steps = 50
    seg = _saved_bytes(lambda: layer(x))
    got = layer(x)
    assert "segments of 50 steps" in layer.last_kernel[1]
    assert torch.allclose(got, want, atol=1e-6)
    assert seg < full / 3
    (g1,) = torch.autograd.grad(got.sum(), [layer.kernel])
    layer.checkpoint_steps = None
    (g2,) = torch.autograd.grad(layer(x).sum(), [layer.kernel])
    assert torch.allclose(g1, g2, atol=1e-5)

    cell = L.LSTMCell(16, use_peepholes=True)
    cell.checkpoint_steps = 64
    out, _ = L.dynamic_rnn(cell, x, sequence_length=[400, 300, 10, 0], dtype=torch.float32)
    assert "segments of 64 steps" in cell.last_kernel[1]
    cell.checkpoint_steps = None
    ref, _ = L.dynamic_rnn(cell, x, sequence_length=[400, 300, 10, 0], dtype=torch.float32)
    assert torch.allclose(out, ref, atol=1e-6)
