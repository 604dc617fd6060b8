"""Shapes, weight order and the exception types TensorFlow raises for bad inputs.

facts.json "errors" records the type TF raised for each case; per API.md §4,
TF's InvalidArgumentError is a ValueError here.
"""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch
from keras_parity_helpers import facts, make_layer

ERRORS = facts()["errors"]
SHAPES = facts()["shapes"]


def _expected_type(key):
    t = ERRORS[key]["type"]
    return ValueError if t == "InvalidArgumentError" else getattr(builtins, t)


@pytest.mark.parametrize("rs", [False, True])
@pytest.mark.parametrize("st", [False, True])
@pytest.mark.parametrize("tm", [False, True])
def test_output_shapes(rs, st, tm):
    layer = make_layer({"units": 4, "return_sequences": rs, "return_state": st,
                        "time_major": tm})
    out = layer(np.ones((2, 5, 3), "float32"), training=False)
    outs = out if st else [out]
    if st:
        assert isinstance(out, list)
    assert [list(o.shape) for o in outs] == SHAPES[f"seq{int(rs)}_state{int(st)}_tm{int(tm)}"]


def test_weights_order_and_shapes():
    layer = make_layer({"units": 4, "input_shape": (None, 3)})
    assert [list(w.shape) for w in layer.weights] == SHAPES["weights"]
    assert layer.weights[0] is layer.kernel
    assert layer.weights[1] is layer.recurrent_kernel
    assert layer.weights[2] is layer.bias
    got = layer.get_weights()
    assert all(isinstance(w, np.ndarray) for w in got)
    assert [list(w.shape) for w in got] == SHAPES["weights"]
    for w, p in zip(got, layer.weights, strict=True):
        np.testing.assert_array_equal(w, p.detach().numpy())
    nb = make_layer({"units": 4, "use_bias": False, "input_shape": (None, 3)})
    assert [list(w.shape) for w in nb.weights] == SHAPES["weights_no_bias"]


def test_build_paths():
    """Built at construction when the feature size is known; otherwise on first call/build."""
    for kw in ({"input_dim": 3}, {"input_shape": (None, 3)}, {"input_shape": (5, 3)},
               {"batch_input_shape": (2, None, 3)}):
        layer = make_layer({"units": 4, **kw})
        assert tuple(layer.kernel.shape) == (3, 16), kw
    layer = make_layer({"units": 4})
    layer(torch.ones(2, 5, 3), training=False)
    assert tuple(layer.kernel.shape) == (3, 16)
    layer = make_layer({"units": 4})
    layer.build((2, 5, 3))
    assert tuple(layer.recurrent_kernel.shape) == (4, 16) and tuple(layer.bias.shape) == (16,)


@pytest.mark.parametrize("key,bad", [
    ("set_weights_wrong_shape", [np.zeros((3, 15)), np.zeros((4, 16)), np.zeros(16)]),
    ("set_weights_wrong_shape_bias", [np.zeros((3, 16)), np.zeros((4, 16)), np.zeros(12)]),
    ("set_weights_wrong_count", [np.zeros((3, 16)), np.zeros((4, 16))]),
])
def test_set_weights_validation(key, bad):
    layer = make_layer({"units": 4, "input_dim": 3})
    before = layer.get_weights()
    with pytest.raises(_expected_type(key)):
        layer.set_weights(bad)
    for b, a in zip(before, layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("units", [0, -3])
def test_units_not_positive(units):
    assert ERRORS["units_0"]["type"] == ERRORS["units_negative"]["type"] == "ValueError"
    with pytest.raises(ValueError):
        make_layer({"units": units})


def _built():
    layer = make_layer({"units": 4})
    layer(np.ones((2, 5, 3), "float32"), training=False)
    return layer


X = np.ones((2, 5, 3), "float32")
Z = lambda *s: np.zeros(s, "float32")  # noqa: E731

CALL_ERRORS = {
    "input_2d": lambda l: l(X[:, 0], training=False),
    "input_4d": lambda l: l(X[None], training=False),
    "feature_mismatch_after_build": lambda l: l(np.ones((2, 5, 4), "float32"), training=False),
    "initial_state_one_tensor": lambda l: l(X, initial_state=[Z(2, 4)], training=False),
    "initial_state_three_tensors": lambda l: l(X, initial_state=[Z(2, 4)] * 3, training=False),
    "list_input_one_state": lambda l: l([X, Z(2, 4)], training=False),
    "initial_state_wrong_units": lambda l: l(X, initial_state=[Z(2, 5)] * 2, training=False),
    "initial_state_wrong_batch": lambda l: l(X, initial_state=[Z(3, 4)] * 2, training=False),
}


@pytest.mark.parametrize("key", list(CALL_ERRORS))
def test_call_errors(key):
    exp = _expected_type(key)
    layer = _built() if key not in ("input_2d", "input_4d") else make_layer({"units": 4})
    with pytest.raises(exp):
        CALL_ERRORS[key](layer)


def test_float64_input_into_float32_layer():
    layer = make_layer({"units": 4, "input_dim": 3})
    out = layer(np.ones((2, 5, 3), "float64"), training=False)
    assert out.dtype == torch.float32
    out = layer(torch.ones(2, 5, 3, dtype=torch.float64), training=False)
    assert out.dtype == torch.float32
