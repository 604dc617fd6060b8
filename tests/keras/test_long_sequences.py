"""Long sequences: 10,000-step sequences train without NaN, and the memory kept for
backward grows linearly in time (a constant number of bytes per step)."""

from __future__ import annotations

import pytest
import torch

import lstmcompat as L
from lstmcompat.bench.suite import saved_bytes


def test_ten_thousand_steps_train_without_nan():
    torch.manual_seed(0)
    layer = L.LSTM(8, return_sequences=True, input_shape=(None, 4))
    cell = L.LSTMCell(6, use_peepholes=True, cell_clip=3.0, num_proj=5)
    x = torch.randn(2, 10_000, 4)
    L.dynamic_rnn(cell, layer(x[:, :1]), dtype=torch.float32)  # built
    params = [*layer.parameters(), *cell.parameters()]
    opt = torch.optim.SGD(params, lr=1e-3)
    for _ in range(3):
        out, state = L.dynamic_rnn(cell, layer(x), dtype=torch.float32,
                                   sequence_length=[10_000, 7_000])
        loss = out.pow(2).mean() + state.h.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p.grad).all() for p in params)
        opt.step()
    assert all(torch.isfinite(p).all() for p in params)


def _saved(layer, T):
    x = torch.randn(3, T, 4, requires_grad=True)

    def train():
        layer(x).sum().backward()

    return saved_bytes(train)


@pytest.mark.parametrize("kernel", [None, "fused", "reference"])
def test_saved_memory_is_linear_in_time(kernel):
    layer = L.LSTM(16, return_sequences=True, input_shape=(None, 4), engine_kernel=kernel)
    b1, b2, b4 = (_saved(layer, T) for T in (1_000, 2_000, 4_000))
    assert b4 - b2 == 2 * (b2 - b1)  # exactly linear, whatever the kernel
    assert kernel is None or layer.last_kernel[0] == kernel
    if layer.last_kernel[0] == "fused":  # the default kernel's own accounting
        # what one step keeps: its gate pre-activations (4u), cell state and output (u
        # each), its input (d): 4 bytes each, for each of the 3 sequences
        assert (b2 - b1) / 1_000 == 3 * 4 * (4 * 16 + 16 + 16 + 4)
