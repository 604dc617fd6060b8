"""``BasicLSTMCell``: API, config and float64 gradients (numbers against TF:
``test_family_cells.py``)."""

from __future__ import annotations

import warnings

import pytest
import torch

import lstmcompat as L


def test_weights_sizes_and_names() -> None:
    cell = L.BasicLSTMCell(4)
    assert cell.name == "basic_lstm_cell" and cell.weights == []
    assert cell.state_size == L.LSTMStateTuple(4, 4) and cell.output_size == 4
    cell.build((None, 3))
    assert [tuple(w.shape) for w in cell.weights] == [(7, 16), (16,)]
    assert torch.equal(cell.bias, torch.zeros(16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        concat = L.BasicLSTMCell(4, state_is_tuple=False)
    assert concat.state_size == 8
    assert concat.zero_state(2, "float32").shape == (2, 8)


def test_concatenated_state_warns_at_the_callers_line() -> None:
    with pytest.warns(DeprecationWarning, match="BasicLSTMCell: Using a concatenated") as rec:
        L.BasicLSTMCell(3, state_is_tuple=False)
    assert rec[0].filename == __file__


def test_same_math_as_lstmcell() -> None:
    torch.manual_seed(0)
    basic, full = L.BasicLSTMCell(4, forget_bias=0.3, activation="relu"), L.LSTMCell(
        4, forget_bias=0.3, activation="relu")
    for c in (basic, full):
        c.build((None, 3))
    basic.set_weights(full.get_weights())
    x = torch.randn(2, 5, 3)
    a = L.dynamic_rnn(basic, x, sequence_length=[5, 2], dtype="float32")
    b = L.dynamic_rnn(full, x, sequence_length=[5, 2], dtype="float32")
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    torch.testing.assert_close(a[1].c, b[1].c, rtol=0, atol=0)


def test_config_round_trip() -> None:
    cfg = dict(num_units=3, forget_bias=0.5, state_is_tuple=True, activation="relu",
               reuse=None, name="enc", dtype="float64")
    cell = L.BasicLSTMCell(**cfg)
    assert cell.get_config() == cfg
    again = L.BasicLSTMCell.from_config(cell.get_config())
    assert again.get_config() == cfg and again.dtype == torch.float64


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        L.BasicLSTMCell("4")
    with pytest.raises(ValueError):
        L.BasicLSTMCell(-1)
    with pytest.raises(ValueError):
        L.BasicLSTMCell(3, forget_bias="x")
    with pytest.raises(ValueError, match="floating point"):
        L.BasicLSTMCell(3, dtype="int32")
    cell = L.BasicLSTMCell(3)
    with pytest.raises(ValueError, match="state"):
        cell(torch.zeros(2, 4), torch.zeros(2, 6))
    with pytest.raises(ValueError, match="incompatible"):
        cell(torch.zeros(2, 5), cell.zero_state(2, "float32"))


@pytest.mark.parametrize("kernel", ["reference", "fused"])
def test_float64_gradcheck(kernel, monkeypatch) -> None:
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", kernel)
    torch.manual_seed(2)
    cell = L.BasicLSTMCell(3, forget_bias=0.7, dtype="float64")
    cell.build((None, 2))
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)

    def f(x, c0, h0):  # the weights' gradients are checked against TF's goldens
        out, st = L.dynamic_rnn(cell, x, sequence_length=[4, 2],
                                initial_state=L.LSTMStateTuple(c0, h0))
        return out, st.c, st.h

    assert torch.autograd.gradcheck(f, (x, c0, h0))
    assert cell.last_kernel[0] == kernel
