"""User-defined ``RNNCell`` subclasses: TF goldens (names, outputs, states, gradients in
``dynamic_rnn``, ``static_rnn``, ``bidirectional_dynamic_rnn``, ``MultiRNNCell`` mixes),
a plain Python loop, the base class's naming and building rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from wrappers_golden_util import (
    CASES,
    GOLDENS,
    MyGRUCell,
    MyLSTMCell,
    load,
    names_of,
    run_case,
)

import lstmcompat as L

TOL = 2e-5


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    d = load(name)
    tf_names = json.loads(str(d["names"]))
    assert names_of(name, d) == tf_names
    out, leaves, x, variables = run_case(name, d)
    np.testing.assert_allclose(out.detach().numpy(), d["out"], atol=TOL, rtol=TOL)
    assert len(leaves) == len([k for k in d.files if k.startswith("st_")])
    for i, s in enumerate(leaves):
        np.testing.assert_allclose(s.detach().numpy(), d[f"st_{i}"], atol=TOL, rtol=TOL)
    np.testing.assert_allclose(x.grad.numpy(), d["g_x"], atol=TOL, rtol=TOL)
    for i, n in enumerate(tf_names):
        np.testing.assert_allclose(variables[n].grad.numpy(), d[f"g_var_{i}"], atol=TOL,
                                   rtol=TOL, err_msg=n)


def test_restore_a_tf_checkpoint_into_a_graph_with_user_cells():
    d = load("multi_mixed_len")
    tf_names = json.loads(str(d["names"]))
    with L.Graph() as g:
        L.dynamic_rnn(L.MultiRNNCell([MyGRUCell(4), L.LSTMCell(3), MyLSTMCell(2)]),
                      torch.zeros(3, 5, 3), dtype=torch.float32)
    L.restore(g, GOLDENS / "multi_mixed_len" / "model.ckpt")
    for i, n in enumerate(tf_names):
        np.testing.assert_array_equal(g.variables()[n].detach().numpy(), d[f"var_{i}"])


def _loop(cell, x, lengths, state):
    """TF's ``_rnn_step`` written out: zeros and the old state past each length."""
    outs = []
    for t in range(x.shape[1]):
        out, new = cell(x[:, t], state)
        valid = torch.tensor([t < n for n in lengths]).unsqueeze(1)
        outs.append(torch.where(valid, out, torch.zeros_like(out)))
        state = L.LSTMStateTuple(*(torch.where(valid, a, b) for a, b in zip(new, state)))
    return torch.stack(outs, 1), state


@pytest.mark.parametrize("time_major", [False, True])
def test_nested_state_against_a_plain_loop(time_major):
    torch.manual_seed(0)
    cell = MyLSTMCell(3)
    x = torch.randn(4, 6, 2, dtype=torch.float64, requires_grad=True)
    lengths = [6, 0, 3, 1]
    s0 = L.LSTMStateTuple(torch.randn(4, 3, dtype=torch.float64),
                          torch.randn(4, 3, dtype=torch.float64))
    xs = x.transpose(0, 1) if time_major else x
    out, st = L.dynamic_rnn(cell, xs, sequence_length=lengths, initial_state=s0,
                            time_major=time_major)
    out = out.transpose(0, 1) if time_major else out
    ref, rst = _loop(cell, x, lengths, s0)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(st.c, rst.c)
    torch.testing.assert_close(st.h, rst.h)
    torch.testing.assert_close(st.c[1], s0.c[1])  # length 0: the initial state
    g1 = torch.autograd.grad((out * out).sum() + st.c.sum(), [x, cell.kernel])
    g2 = torch.autograd.grad((ref * ref).sum() + rst.c.sum(), [x, cell.kernel])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_lstmcompat_cells_are_rnncells():
    cells = [L.LSTMCell(3), L.MultiRNNCell([L.LSTMCell(3)]), L.DropoutWrapper(L.LSTMCell(3)),
             L.ResidualWrapper(L.LSTMCell(3)), L.DeviceWrapper(L.LSTMCell(3), "cpu")]
    assert all(isinstance(c, L.RNNCell) for c in cells)


class _NotACell(torch.nn.Module):
    state_size = 3
    output_size = 3

    def zero_state(self, b, dtype):
        return torch.zeros(b, 3)

    def forward(self, x, s):
        return x, s


def test_objects_that_are_not_rnncells_raise_type_error():
    x = torch.zeros(2, 3, 3)
    with pytest.raises(TypeError, match="`cell`.*not an RNNCell"):
        L.dynamic_rnn(_NotACell(), x, dtype=torch.float32)
    with pytest.raises(TypeError, match="not an RNNCell"):
        L.static_rnn(_NotACell(), [x[:, 0]], dtype=torch.float32)
    with pytest.raises(TypeError, match="`cell_bw`"):
        L.bidirectional_dynamic_rnn(L.LSTMCell(2), _NotACell(), x, dtype=torch.float32)
    with pytest.raises(TypeError, match="RNNCells in `cells`"):
        L.MultiRNNCell([L.LSTMCell(2), _NotACell()])
    with pytest.raises(TypeError, match="`cell`"):
        L.ResidualWrapper(_NotACell())


def test_add_weight_outside_a_graph_registers_parameters():
    cell = MyGRUCell(2)
    out, st = cell(torch.randn(5, 3), torch.zeros(5, 2))
    assert out.shape == (5, 2)
    assert list(dict(cell.named_parameters())) == [
        "gates_kernel", "gates_bias", "candidate_kernel", "candidate_bias"]
    assert [tuple(w.shape) for w in cell.weights] == [(5, 4), (4,), (5, 2), (2,)]
    torch.testing.assert_close(cell._gb, torch.ones(4))
    assert cell.built


def test_build_runs_once_and_the_weights_are_reused():
    class Counting(MyGRUCell):
        builds = 0

        def build(self, inputs_shape):
            type(self).builds += 1
            assert tuple(inputs_shape) == (None, 3)
            assert inputs_shape.as_list() == [None, 3] and inputs_shape.rank == 2
            super().build(inputs_shape)

    cell = Counting(2)
    with L.Graph() as g:
        L.dynamic_rnn(cell, torch.zeros(2, 4, 3), dtype=torch.float32)
        with L.variable_scope("rnn", reuse=True):
            L.dynamic_rnn(cell, torch.zeros(2, 4, 3), dtype=torch.float32, scope="rnn")
    assert Counting.builds == 1
    assert list(g.variables()) == [f"rnn/counting/{n}" for n in (
        "gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias")]


def test_a_second_cell_in_the_same_scope_collides_as_in_tf():
    with L.Graph():
        L.dynamic_rnn(MyGRUCell(2), torch.zeros(2, 4, 3), dtype=torch.float32)
        with pytest.raises(ValueError, match="rnn/my_gru_cell/gates/kernel already exists"):
            L.dynamic_rnn(MyGRUCell(2), torch.zeros(2, 4, 3), dtype=torch.float32)


def test_call_gets_the_scope_when_it_asks_for_it():
    seen = []

    class Scoped(MyGRUCell):
        def call(self, inputs, state, scope=None):
            seen.append(scope.name)
            return super().call(inputs, state)

    with L.Graph():
        L.dynamic_rnn(Scoped(2), torch.zeros(2, 2, 3), dtype=torch.float32, scope="enc")
    assert seen == ["enc/scoped", "enc/scoped"]


def test_default_names_are_tf_snake_case():
    class HTTPCellV2(MyGRUCell):
        pass

    class _Private(MyGRUCell):
        pass

    assert MyGRUCell(1).name == "my_gru_cell"
    assert HTTPCellV2(1).name == "http_cell_v2"
    assert _Private(1).name == "private__private"
    assert MyGRUCell(1, name="enc").name == "enc"
    assert L.LSTMCell(1).name == "lstm_cell"


def test_zero_state_follows_nested_state_sizes():
    class Nested(MyLSTMCell):
        @property
        def state_size(self):
            return (2, L.LSTMStateTuple(3, 4))

    z = Nested(3).zero_state(5, torch.float64)
    assert z[0].shape == (5, 2) and isinstance(z[1], L.LSTMStateTuple)
    assert z[1].c.shape == (5, 3) and z[1].h.dtype == torch.float64
    z2 = Nested(3).get_initial_state(inputs=torch.zeros(5, 7))
    assert z2[1].h.shape == (5, 4)

    class Listed(MyGRUCell):
        state_size = [2, 3]

    z3 = Listed(1).zero_state(2, torch.float32)
    assert isinstance(z3, list) and z3[1].shape == (2, 3)


def test_a_cell_without_call_raises_not_implemented():
    class Empty(L.RNNCell):
        state_size = 2
        output_size = 2

    with pytest.raises(NotImplementedError, match="must define `call"):
        L.dynamic_rnn(Empty(), torch.zeros(1, 2, 3), dtype=torch.float32)


def test_nested_outputs_in_static_rnn():
    class Pair(MyGRUCell):
        @property
        def output_size(self):
            return (self._u, self._u)

        def call(self, inputs, state):
            h, _ = super().call(inputs, state)
            return (h, 2 * h), h

    outs, _ = L.static_rnn(Pair(2), [torch.randn(3, 4)] * 3, sequence_length=[3, 1, 2],
                           dtype=torch.float32)
    assert len(outs) == 3 and isinstance(outs[0], tuple)
    torch.testing.assert_close(outs[1][1], 2 * outs[1][0])
    assert bool((outs[1][0][1] == 0).all()) and bool((outs[2][1][1] == 0).all())
