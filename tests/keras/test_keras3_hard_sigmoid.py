"""``recurrent_activation="keras3_hard_sigmoid"`` reproduces a Keras 3 LSTM's ``hard_sigmoid``.

The golden (``tests/goldens/keras3_hard_sigmoid.json``, ``tools/goldens_keras3_activation.py``)
is a Keras 3 ``keras.layers.LSTM(3, recurrent_activation="hard_sigmoid")`` with fixed
weights on a fixed input large enough to saturate the gates: its sequence, states and
the gradients of ``sum(seq * w)`` w.r.t. the input and the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmcompat

GOLDEN = json.loads(
    (Path(__file__).resolve().parents[1] / "goldens" / "keras3_hard_sigmoid.json").read_text())
CASE = GOLDEN["lstm"]


def _layer() -> lstmcompat.LSTM:
    cfg = dict(CASE["config"])
    assert cfg.pop("recurrent_activation") == "hard_sigmoid"
    layer = lstmcompat.LSTM(**cfg, recurrent_activation="keras3_hard_sigmoid")
    layer.build(tuple(np.shape(CASE["x"])))
    layer.set_weights([np.asarray(w, np.float32) for w in CASE["weights"]])
    return layer


@pytest.mark.parametrize("kernel", [None, "reference", "fused"])
def test_lstm_matches_keras3(kernel, force_kernel) -> None:
    force_kernel(kernel)
    layer = _layer()
    x = torch.tensor(CASE["x"], requires_grad=True)
    seq, h, c = layer(x, training=False)
    if kernel is not None:
        assert layer.last_kernel[0] == kernel
    for name, got in (("seq", seq), ("h", h), ("c", c)):
        np.testing.assert_allclose(got.detach().numpy(), CASE[name], rtol=1e-6, atol=1e-6,
                                   err_msg=name)
    loss = (seq * torch.tensor(CASE["loss_weights"])).sum()
    grads = torch.autograd.grad(loss, [x, layer.kernel, layer.recurrent_kernel, layer.bias])
    for name, got, want in zip(["x", "kernel", "recurrent_kernel", "bias"], grads,
                               [CASE["grad_x"], *CASE["grad_weights"]], strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_golden_saturates_the_gates() -> None:
    """The input drives gate pre-activations past both kinks (else the test proves little)."""
    layer = _layer()
    x = torch.tensor(CASE["x"])
    z = x @ layer.kernel.detach() + layer.bias.detach()
    assert (z < -3).any() and (z > 3).any() and ((z > -3) & (z < 3)).any()


def test_tf_keras_hard_sigmoid_differs() -> None:
    cfg = dict(CASE["config"])
    layer = lstmcompat.LSTM(**cfg)
    layer.build(tuple(np.shape(CASE["x"])))
    layer.set_weights([np.asarray(w, np.float32) for w in CASE["weights"]])
    seq = layer(torch.tensor(CASE["x"]))[0]
    assert not np.allclose(seq.detach().numpy(), CASE["seq"], atol=1e-3)


def test_config_round_trip_keeps_the_name() -> None:
    layer = _layer()
    cfg = layer.get_config()
    assert cfg["recurrent_activation"] == "keras3_hard_sigmoid"
    again = lstmcompat.LSTM.from_config(cfg)
    assert again.get_config()["recurrent_activation"] == "keras3_hard_sigmoid"
    both = lstmcompat.LSTM(2, activation="keras3_hard_sigmoid")
    assert both.get_config()["activation"] == "keras3_hard_sigmoid"


def test_tf1_cell_takes_it_as_activation() -> None:
    cell = lstmcompat.LSTMCell(3, activation="keras3_hard_sigmoid")
    x = torch.randn(2, 4, dtype=torch.float64) * 4
    state = cell.zero_state(2, torch.float64)
    out, new = cell(x, state)
    assert cell.get_config()["activation"] == "keras3_hard_sigmoid"
    # by hand: TF1 gates i, j, f, o; new_c = sig(f + 1) c + sig(i) act(j); h = sig(o) act(c)
    k, b = (w.detach() for w in cell.weights[:2])
    i, j, f, o = (torch.cat([x, state.h], 1) @ k + b).chunk(4, 1)
    act = lstmcompat._activations.keras3_hard_sigmoid
    c = torch.sigmoid(f + 1.0) * state.c + torch.sigmoid(i) * act(j)
    torch.testing.assert_close(new.c, c)
    torch.testing.assert_close(out, torch.sigmoid(o) * act(c))
