"""LSTMCell / MultiRNNCell / LSTMStateTuple behaviour that needs no golden numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tf1_golden_util import GOLDENS

import lstmcompat as L

ZERO_STATE = json.loads((GOLDENS / "zero_state.json").read_text())


def _make(name: str):
    return {
        "plain": lambda: L.LSTMCell(5),
        "proj": lambda: L.LSTMCell(5, num_proj=3),
        "concat_proj": lambda: L.LSTMCell(5, num_proj=7, state_is_tuple=False),
        "multi": lambda: L.MultiRNNCell([L.LSTMCell(5), L.LSTMCell(4, num_proj=2)]),
        "multi_concat": lambda: L.MultiRNNCell(
            [L.LSTMCell(5, state_is_tuple=False),
             L.LSTMCell(4, num_proj=2, state_is_tuple=False)], state_is_tuple=False),
    }[name]()


def _flat(s):
    return [s] if isinstance(s, torch.Tensor) else [t for x in s for t in _flat(x)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", sorted(ZERO_STATE))
def test_zero_state_matches_tensorflow(name: str) -> None:
    exp = ZERO_STATE[name]
    cell = _make(name)
    z = cell.zero_state(3, "float64")
    assert json.loads(json.dumps(cell.state_size)) == exp["state_size"]
    assert cell.output_size == exp["output_size"]
    assert [list(t.shape) for t in _flat(z)] == exp["shapes"]
    assert [str(t.dtype).replace("torch.", "") for t in _flat(z)] == exp["dtypes"]
    assert all(bool((t == 0).all()) for t in _flat(z))
    assert _flat(cell.get_initial_state(inputs=torch.zeros(3, 2, dtype=torch.float64)))[0].shape[0] == 3


def test_state_tuple_is_a_c_h_namedtuple() -> None:
    s = L.LSTMStateTuple(torch.zeros(2, 3), torch.ones(2, 4))
    c, h = s
    assert c is s.c and h is s.h and s[1] is s.h and s._fields == ("c", "h")
    assert s.dtype == torch.float32
    cell = L.LSTMCell(3, num_proj=4)
    assert isinstance(cell.zero_state(2, torch.float32), L.LSTMStateTuple)
    assert cell.state_size == L.LSTMStateTuple(3, 4)
    # a plain (c, h) tuple is accepted as state too
    out, st = cell(torch.zeros(2, 5), (torch.zeros(2, 3), torch.zeros(2, 4)))
    assert isinstance(st, L.LSTMStateTuple) and torch.equal(out, st.h)


def test_weights_order_shapes_and_names() -> None:
    cell = L.LSTMCell(4, use_peepholes=True, num_proj=6)
    assert cell.weights == [] and cell.get_weights() == []
    cell.build((None, 3))
    assert [tuple(w.shape) for w in cell.weights] == [(9, 16), (16,), (4,), (4,), (4,), (4, 6)]
    assert cell.weights == [cell.kernel, cell.bias, cell.w_f_diag, cell.w_i_diag, cell.w_o_diag,
                            cell.proj_kernel]
    assert all(isinstance(w, torch.nn.Parameter) for w in cell.weights)
    assert len(list(cell.parameters())) == 6
    assert cell.dtype == torch.float32


def test_weights_are_built_on_first_call_with_the_input_dtype() -> None:
    cell = L.LSTMCell(4)
    assert not cell.built
    cell(torch.zeros(2, 3, dtype=torch.float64), cell.zero_state(2, torch.float64))
    assert cell.built and cell.kernel.dtype == torch.float64 and cell.kernel.shape == (7, 16)


def test_get_set_weights_round_trip() -> None:
    cell = L.LSTMCell(3, use_peepholes=True, num_proj=2)
    cell.build((None, 4))
    rng = np.random.default_rng(0)
    new = [rng.standard_normal(w.shape).astype(np.float32) for w in cell.get_weights()]
    cell.set_weights(new)
    for a, b in zip(cell.get_weights(), new, strict=True):
        np.testing.assert_array_equal(a, b)
    assert isinstance(cell.get_weights()[0], np.ndarray)


def test_default_initializer_is_glorot_uniform_over_the_fused_kernel() -> None:
    torch.manual_seed(0)
    cell = L.LSTMCell(50, use_peepholes=True, num_proj=30)
    cell.build((None, 70))
    limit = math.sqrt(6 / ((70 + 30) + 200))
    k = cell.kernel.detach()
    assert float(k.abs().max()) <= limit and float(k.abs().max()) > 0.95 * limit
    assert float(cell.proj_kernel.abs().max()) <= math.sqrt(6 / (50 + 30))
    assert float(cell.w_f_diag.abs().max()) <= math.sqrt(6 / 100)  # Keras fans of a vector
    assert torch.all(cell.bias == 0)
    # drawn from torch's RNG: reproducible under a seed
    torch.manual_seed(0)
    again = L.LSTMCell(50, use_peepholes=True, num_proj=30)
    again.build((None, 70))
    assert torch.equal(again.kernel, cell.kernel)


@pytest.mark.parametrize("init", ["ones", lambda shape, dtype: torch.ones(shape, dtype=dtype)])
def test_initializer_argument(init) -> None:
    cell = L.LSTMCell(3, initializer=init, use_peepholes=True, num_proj=2)
    cell.build((None, 2))
    for w in (cell.kernel, cell.w_i_diag, cell.proj_kernel):
        assert torch.all(w == 1)
    assert torch.all(cell.bias == 0)


def test_forget_bias_is_not_stored_and_acts_at_run_time() -> None:
    a, b = L.LSTMCell(3, forget_bias=0.0), L.LSTMCell(3, forget_bias=3.0)
    a.build((None, 2))
    b.build((None, 2))
    assert torch.all(b.bias == 0)
    b.set_weights(a.get_weights())
    x, s = torch.randn(4, 2), L.LSTMStateTuple(torch.randn(4, 3), torch.randn(4, 3))
    (_, sa), (_, sb) = a(x, s), b(x, s)
    assert not torch.allclose(sa.c, sb.c)


def test_activation_none_and_falsy_mean_tanh_and_callables_work() -> None:
    cells = [L.LSTMCell(3, activation=a) for a in (None, "tanh", torch.tanh, "")]
    cells[0].build((None, 2))
    for c in cells[1:]:
        c.build((None, 2))
        c.set_weights(cells[0].get_weights())
    x, s = torch.randn(4, 2), cells[0].zero_state(4, torch.float32)
    ref = cells[0](x, s)[0]
    for c in cells[1:]:
        torch.testing.assert_close(c(x, s)[0], ref, rtol=0, atol=1e-7)
    relu = L.LSTMCell(3, activation="relu")
    relu.build((None, 2))
    relu.set_weights(cells[0].get_weights())
    assert not torch.allclose(relu(x, s)[0], ref)


def test_proj_clip_needs_num_proj_as_in_tensorflow() -> None:
    a, b = L.LSTMCell(3, proj_clip=1e-3), L.LSTMCell(3)
    a.build((None, 2))
    b.build((None, 2))
    b.set_weights(a.get_weights())
    x, s = torch.randn(4, 2) * 3, a.zero_state(4, torch.float32)
    torch.testing.assert_close(a(x, s)[0], b(x, s)[0])
    p = L.LSTMCell(3, num_proj=2, proj_clip=1e-3)
    out = p(x, p.zero_state(4, torch.float32))[0]
    assert bool((out.abs() <= torch.tensor(1e-3)).all()) and float(out.abs().max()) > 9e-4


def test_deprecated_arguments_warn() -> None:
    with pytest.warns(DeprecationWarning, match="num_unit_shards"):
        L.LSTMCell(3, num_unit_shards=2)
    with pytest.warns(DeprecationWarning, match="concatenated state"):
        L.LSTMCell(3, state_is_tuple=False)


def test_concatenated_state_layout_is_c_then_h() -> None:
    cell = L.LSTMCell(3, num_proj=2, state_is_tuple=False)
    out, st = cell(torch.randn(4, 5), torch.zeros(4, 5))
    assert st.shape == (4, 5)
    torch.testing.assert_close(st[:, 3:], out)


def test_config_round_trip() -> None:
    cell = L.LSTMCell(3, use_peepholes=True, cell_clip=0.5, num_proj=2, forget_bias=0.5,
                      activation="relu", name="enc", dtype="float64")
    again = L.LSTMCell.from_config(cell.get_config())
    assert again.get_config() == cell.get_config()
    assert again.name == "enc" and again.dtype == torch.float64


def test_multi_cell_weights_and_shared_cell() -> None:
    c = L.LSTMCell(4)
    with pytest.warns(UserWarning):
        m = L.MultiRNNCell([c, c])
    m(torch.zeros(2, 4), m.zero_state(2, torch.float32))
    assert m.weights == [c.kernel, c.bias, c.kernel, c.bias]  # as TF lists them
    assert len(list(m.parameters())) == 2


def test_cell_is_a_module_that_moves_and_trains() -> None:
    cell = L.LSTMCell(3)
    out, st = L.dynamic_rnn(cell, torch.randn(2, 4, 5), dtype=torch.float32)
    opt = torch.optim.SGD(cell.parameters(), lr=0.1)
    before = cell.kernel.detach().clone()
    (out.sum() + st.c.sum()).backward()
    opt.step()
    assert not torch.equal(before, cell.kernel)
    cell.double()
    out, _ = L.dynamic_rnn(cell, torch.randn(2, 4, 5, dtype=torch.float64), dtype="float64")
    assert out.dtype == torch.float64
