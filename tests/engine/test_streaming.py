"""The streaming step (packed weights, compiled) against the reference step."""

import pytest
import torch

import lstmcompat as L
from lstmcompat._engine import CellSpec, Weights
from lstmcompat._engine.fused import _build, streaming_stepper
from lstmcompat._engine.reference import step as reference_step

needs_ext = pytest.mark.skipif(_build.backend() is None, reason="no compiled extension here")

SPECS = [
    CellSpec(units=96),
    CellSpec(units=96, recurrent_activation="hard_sigmoid", forget_bias=1.0),
    CellSpec(units=96, use_peepholes=True, cell_clip=0.5, forget_bias=1.0),
    CellSpec(units=96, use_peepholes=True, num_proj=40, proj_clip=0.3),
    CellSpec(units=70, activation="relu", num_proj=130),
]


def _weights(spec, depth, dtype, g):
    u, p = spec.units, spec.output_size

    def r(*s):
        return torch.randn(*s, generator=g, dtype=dtype) * 0.3

    return Weights(W=r(depth, 4 * u), R=r(p, 4 * u), b=r(4 * u),
                   w_i=r(u) if spec.use_peepholes else None,
                   w_f=r(u) if spec.use_peepholes else None,
                   w_o=r(u) if spec.use_peepholes else None,
                   P=r(u, spec.num_proj) if spec.num_proj else None)


@needs_ext
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("spec", SPECS)
def test_packed_step_equals_reference(spec, batch, dtype, threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        depth = 200  # large enough for the step to split units across threads
        w = _weights(spec, depth, dtype, g)
        x = torch.randn(batch, depth, generator=g, dtype=dtype)
        h = torch.randn(batch, spec.output_size, generator=g, dtype=dtype)
        c = torch.randn(batch, spec.units, generator=g, dtype=dtype)
        stepper = streaming_stepper(spec, dtype)
        prepared = stepper.prepare(w)
        with torch.no_grad():
            h1, c1 = stepper.step(x, h, c, prepared)
            zx = x @ w.W + w.b
            h_ref, c_ref = reference_step(spec, zx, h, c, w)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(h1, h_ref, rtol=tol, atol=tol)
        torch.testing.assert_close(c1, c_ref, rtol=tol, atol=tol)
    finally:
        torch.set_num_threads(old)


def test_streaming_cell_equals_the_sequence_path():
    torch.manual_seed(0)
    cell = L.LSTMCell(96, use_peepholes=True, num_proj=48, cell_clip=1.0)
    x = torch.randn(5, 1, 32)
    state = cell.zero_state(1, torch.float32)
    fast, slow = [], []
    with torch.no_grad():
        s = state
        for t in range(5):
            out, s = cell(x[t], s)
            fast.append(out)
        streamed = cell.last_kernel
    s = state
    for t in range(5):  # autograd on: the whole engine path, no streaming shortcut
        out, s = cell(x[t], s)
        slow.append(out.detach())
    torch.testing.assert_close(torch.stack(fast), torch.stack(slow), rtol=1e-5, atol=1e-6)
    if _build.backend() is not None:
        assert "streaming" in streamed[1]
    # the cached weights follow in-place updates of the parameters
    with torch.no_grad():
        cell.kernel.mul_(0.5)
        a, _ = cell(x[0], state)
    b, _ = cell(x[0], state)
    torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rec", ["hard_sigmoid", "sigmoid"])
def test_stateful_keras_streaming_equals_one_sequence(rec):
    torch.manual_seed(0)
    layer = L.LSTM(96, recurrent_activation=rec, stateful=True, return_sequences=True,
                   batch_input_shape=(1, None, 16))
    layer.eval()
    x = torch.randn(1, 6, 16)
    with torch.no_grad():
        whole = layer(x)
        layer.reset_states()
        steps = torch.cat([layer(x[:, t:t + 1]) for t in range(6)], dim=1)
    torch.testing.assert_close(steps, whole, rtol=1e-5, atol=1e-6)
