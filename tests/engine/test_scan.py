"""The ``scan`` form of the forward time loop (``fused/_scan.py``, what ``torch.onnx.export``
traces) against the pure-PyTorch loop: every result, the saved tensors included, and the
in-place update of ``Z``; and that eager calls never take it."""

from __future__ import annotations

import pytest
import torch

import lstmcompat as L
from lstmcompat._engine import CellSpec
from lstmcompat._engine.fused import _loops, _scan

SPECS = {
    "keras_default": CellSpec(4, recurrent_activation="hard_sigmoid"),
    "peep_proj_clips": CellSpec(4, use_peepholes=True, cell_clip=0.4, num_proj=3, proj_clip=0.3),
    "relu_zero_mask": CellSpec(3, activation="relu", mask_mode="zero"),
    "carry_mask_peep": CellSpec(3, use_peepholes=True, mask_mode="carry"),
}


def _args(spec: CellSpec, T: int, B: int, mask: bool, dropout: int):
    g = torch.Generator().manual_seed(0)
    u, p = spec.units, spec.output_size

    def t(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return dict(Z=t(T, B, 4 * u), R=t(p, 4 * u) * 0.5, h0=t(B, p), c0=t(B, u),
                dmh=(torch.rand(dropout, B, p, generator=g, dtype=torch.float64) > 0.3).double()
                if dropout else None,
                peep=t(3, u) if spec.use_peepholes else None,
                P=t(u, p) if spec.num_proj is not None else None,
                mask=torch.rand(T, B, generator=g) > 0.4 if mask else None, bias=t(4 * u))


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("save", [False, True])
@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("dropout", [0, 1, 4])
def test_scan_loop_equals_the_pure_pytorch_loop(name, save, mask, dropout):
    spec = SPECS[name]
    args = _args(spec, 5, 3, mask, dropout)
    want_Z, got_Z = args["Z"].clone(), args["Z"].clone()
    kw = {k: v for k, v in args.items() if k != "Z"}
    want = _loops.forward_loop(spec, want_Z, save=save, **kw)
    got = _scan.forward_loop(spec, got_Z, save=save, **kw)
    for field, a, b in zip(want._fields, got, want):
        if b is None:  # XH: only the compiled loop keeps it (bfloat16 products)
            assert a is None, field
            continue
        assert a.shape == b.shape, field
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=field)
    if save:  # the gate pre-activations, as backward reads them
        torch.testing.assert_close(got_Z, want_Z, rtol=1e-12, atol=1e-12)
    else:
        assert torch.equal(got_Z, args["Z"])


def test_scan_loop_takes_the_same_state_tensor_as_h0_and_c0():
    spec = CellSpec(3)
    zero = torch.zeros(2, 3)
    Z, R = torch.randn(4, 2, 12), torch.randn(3, 12)
    want = _loops.forward_loop(spec, Z.clone(), R, zero, zero, None, None, None, None, False)
    got = _scan.forward_loop(spec, Z.clone(), R, zero, zero, None, None, None, None, False)
    torch.testing.assert_close(got.outputs, want.outputs)
    torch.testing.assert_close(got.c, want.c)


def test_eager_and_compile_never_run_the_scan_loop(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the scan loop ran outside torch.onnx.export")

    monkeypatch.setattr(_scan, "forward_loop", refuse)
    layer = L.LSTM(4, return_sequences=True, input_shape=(None, 3))
    x = torch.randn(2, 5, 3)
    layer(x).sum().backward()
    with torch.no_grad():
        layer(x)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(x), layer(x))
    finally:
        torch._dynamo.reset()
