"""TF1 graph-mode naming and reuse, against what TensorFlow does (``naming.json``).

Each scenario below is written once here with lstmcompat and once in
``tools/goldens_tf1.py`` with ``tf.compat.v1``; TF's variable names (or its
error) were recorded, and we must produce the same names in the same order and
raise the same exception type with the same message.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
from tf1_golden_util import GOLDENS

import lstmcompat as L

EXPECTED = json.loads((GOLDENS / "naming.json").read_text())
LSTM = L.LSTMCell
Multi = L.MultiRNNCell
f32 = torch.float32


def x3() -> torch.Tensor:
    return torch.zeros(2, 3, 4)


def x2() -> torch.Tensor:
    return torch.zeros(2, 4)


def twice_new_cell() -> None:
    L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    L.dynamic_rnn(LSTM(5), x3(), dtype=f32)


def twice_same_cell() -> None:
    c = LSTM(5)
    L.dynamic_rnn(c, x3(), dtype=f32)
    L.dynamic_rnn(c, x3(), dtype=f32)


def two_scopes() -> None:
    L.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="a")
    L.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="b")


def reuse_true() -> None:
    with L.variable_scope("enc"):
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    with L.variable_scope("enc", reuse=True):
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)


def reuse_missing() -> None:
    with L.variable_scope("enc", reuse=True):
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)


def reuse_shape() -> None:
    with L.variable_scope("enc"):
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    with L.variable_scope("enc", reuse=True):
        L.dynamic_rnn(LSTM(6), x3(), dtype=f32)


def enc_again() -> None:
    with L.variable_scope("enc"):
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    with L.variable_scope("enc"):
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)


def auto() -> None:
    with L.variable_scope("auto", reuse=L.AUTO_REUSE):
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    with L.variable_scope("auto", reuse=L.AUTO_REUSE):
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="other")


def nested() -> None:
    with L.variable_scope("outer"):
        with L.variable_scope("inner"):
            L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
        L.static_rnn(LSTM(5, name="st"), list(x3().unbind(1)), dtype=f32)


def direct_calls() -> None:
    a, b = LSTM(5), LSTM(5)
    a(x2(), a.zero_state(2, f32))
    b(x2(), b.zero_state(2, f32))
    a(x2(), a.zero_state(2, f32))


def direct_in_scope() -> None:
    with L.variable_scope("s"):
        a, b = LSTM(5), LSTM(5, name="named")
        a(x2(), a.zero_state(2, f32))
        b(x2(), b.zero_state(2, f32))


def multi() -> None:
    L.dynamic_rnn(Multi([LSTM(5), LSTM(3, use_peepholes=True, num_proj=2)]), x3(), dtype=f32)


def multi_shared() -> None:
    c = LSTM(4)
    with pytest.warns(UserWarning, match="same object"):
        m = Multi([c, c])
    L.dynamic_rnn(m, x3(), dtype=f32)


def multi_step() -> None:
    m = Multi([LSTM(5), LSTM(5)])
    m(x2(), m.zero_state(2, f32))


def bidi() -> None:
    L.bidirectional_dynamic_rnn(LSTM(5), LSTM(3), x3(), dtype=f32)


def bidi_scope() -> None:
    L.bidirectional_dynamic_rnn(Multi([LSTM(5), LSTM(5)]), LSTM(3), x3(), dtype=f32,
                                scope="birnn")


def bidi_twice() -> None:
    L.bidirectional_dynamic_rnn(LSTM(5), LSTM(3), x3(), dtype=f32)
    L.bidirectional_dynamic_rnn(LSTM(5), LSTM(3), x3(), dtype=f32)


def cell_reuse_flag() -> None:
    L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    L.dynamic_rnn(LSTM(5, reuse=True), x3(), dtype=f32)


def cell_reuse_flag_missing() -> None:
    L.dynamic_rnn(LSTM(5, reuse=True), x3(), dtype=f32)


def reuse_inherited() -> None:
    with L.variable_scope("a"):
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="r")
    with L.variable_scope("a", reuse=True):
        with L.variable_scope("r"):
            LSTM(5)(x2(), LSTM(5).zero_state(2, f32))


def static_then_dynamic_same_cell() -> None:
    c = LSTM(5)
    L.static_rnn(c, list(x3().unbind(1)), dtype=f32)
    L.dynamic_rnn(c, x3(), dtype=f32, scope="other")


SCENARIOS: dict[str, Callable[[], None]] = {
    "dynamic_default": lambda: L.dynamic_rnn(LSTM(5), x3(), dtype=f32),
    "dynamic_all_weights": lambda: L.dynamic_rnn(LSTM(5, use_peepholes=True, num_proj=3), x3(),
                                                 dtype=f32),
    "dynamic_scope_arg": lambda: L.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="enc"),
    "dynamic_named_cell": lambda: L.dynamic_rnn(LSTM(5, name="foo"), x3(), dtype=f32),
    "dynamic_twice_new_cell": twice_new_cell,
    "dynamic_twice_same_cell": twice_same_cell,
    "dynamic_two_scopes": two_scopes,
    "reuse_true_shares": reuse_true,
    "reuse_true_missing": reuse_missing,
    "reuse_true_wrong_shape": reuse_shape,
    "scope_again_no_reuse": enc_again,
    "auto_reuse": auto,
    "nested_scopes": nested,
    "direct_calls_uniquify": direct_calls,
    "direct_calls_in_scope": direct_in_scope,
    "multi_default": multi,
    "multi_same_cell_twice": multi_shared,
    "multi_direct_call": multi_step,
    "bidi_default": bidi,
    "bidi_scope_multi": bidi_scope,
    "bidi_twice": bidi_twice,
    "cell_reuse_flag_shares": cell_reuse_flag,
    "cell_reuse_flag_missing": cell_reuse_flag_missing,
    "reuse_inherited_by_subscopes": reuse_inherited,
    "same_cell_static_then_dynamic": static_then_dynamic_same_cell,
}


def test_every_recorded_scenario_is_tested() -> None:
    assert sorted(SCENARIOS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_naming_matches_tensorflow(name: str) -> None:
    expected = EXPECTED[name]
    with L.Graph() as g:
        if expected["error"] is None:
            SCENARIOS[name]()
        else:
            assert expected["error"]["type"] == "ValueError"
            with pytest.raises(ValueError) as info:
                SCENARIOS[name]()
            assert str(info.value) == expected["error"]["message"]
    assert list(g.variables()) == expected["names"]


def test_reuse_shares_the_same_parameters() -> None:
    with L.Graph() as g:
        with L.variable_scope("enc"):
            a = LSTM(5)
            L.dynamic_rnn(a, x3(), dtype=f32)
        with L.variable_scope("enc", reuse=True):
            b = LSTM(5)
            L.dynamic_rnn(b, x3(), dtype=f32)
    assert b.kernel is a.kernel and b.bias is a.bias
    assert g.variables()["enc/rnn/lstm_cell/kernel"] is a.kernel
    assert a.scope_name == "enc/rnn/lstm_cell"


def test_variables_are_the_modules_parameters() -> None:
    with L.Graph() as g:
        cell = LSTM(4, use_peepholes=True, num_proj=2)
        L.dynamic_rnn(cell, x3(), dtype=f32)
    names = {id(p): n for n, p in g.variables().items()}
    assert [names[id(p)] for p in cell.weights] == [
        "rnn/lstm_cell/kernel", "rnn/lstm_cell/bias", "rnn/lstm_cell/w_f_diag",
        "rnn/lstm_cell/w_i_diag", "rnn/lstm_cell/w_o_diag", "rnn/lstm_cell/projection/kernel"]
    assert {id(p) for p in cell.parameters()} == set(names)


def test_outside_a_graph_names_are_labels() -> None:
    with L.variable_scope("enc"):
        a = LSTM(5)
        b = LSTM(5)
        L.dynamic_rnn(a, x3(), dtype=f32)
        L.dynamic_rnn(b, x3(), dtype=f32)  # no clash: nothing is registered
    assert a.name == b.name == "lstm_cell"
    assert a.kernel is not b.kernel
    with pytest.raises(ValueError, match="has not been used yet"):
        _ = a.scope_name


def test_graphs_are_independent() -> None:
    with L.Graph() as g1:
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    with L.Graph() as g2:
        L.dynamic_rnn(LSTM(5), x3(), dtype=f32)  # would clash inside g1
    assert list(g1.variables()) == list(g2.variables()) == ["rnn/lstm_cell/kernel",
                                                             "rnn/lstm_cell/bias"]
    assert g1.variables()["rnn/lstm_cell/kernel"] is not g2.variables()["rnn/lstm_cell/kernel"]


def test_as_default_and_scope_initializer() -> None:
    g = L.Graph()
    with g.as_default():
        with L.variable_scope("init", initializer=lambda shape, dtype: torch.full(shape, 0.25,
                                                                                 dtype=dtype)):
            cell = LSTM(3, use_peepholes=True)
            L.dynamic_rnn(cell, x3(), dtype=f32)
    assert torch.all(cell.kernel == 0.25) and torch.all(cell.w_o_diag == 0.25)
    assert torch.all(cell.bias == 0)  # bias is always zeros-initialised
    assert list(g.variables())[0] == "init/rnn/lstm_cell/kernel"


def test_reuse_with_other_dtype_raises() -> None:
    with L.Graph():
        with L.variable_scope("enc"):
            L.dynamic_rnn(LSTM(5), x3(), dtype=f32)
        with L.variable_scope("enc", reuse=True):
            with pytest.raises(ValueError, match="specified dtype float64 and found dtype float32"):
                L.dynamic_rnn(LSTM(5), x3().double(), dtype=torch.float64)

