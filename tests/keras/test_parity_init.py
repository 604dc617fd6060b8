"""Initializers of a freshly built layer, statistically (TF's RNG is not reproduced).

TF facts (facts.json "initializers"): glorot_uniform over the fused
(features, 4*units) kernel, limit sqrt(6 / (features + 4*units)); orthogonal
recurrent kernel with R R^T = I over (units, 4*units); unit_forget_bias puts
ones in the forget slice [units:2*units] and bias_initializer elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from keras_parity_helpers import facts, make_layer

F_, U_ = 40, 30


def _fresh(seed=0, **kw):
    torch.manual_seed(seed)
    return make_layer({"units": U_, "input_dim": F_, **kw})


def test_tf_facts_consistent():
    f = facts()["initializers"]
    assert f["kernel_abs_max"] <= f["glorot_limit"]
    assert f["recurrent_rrt_minus_eye_max"] < 1e-5
    u = len(f["default_bias"]) // 4
    assert f["default_bias"] == [0.0] * u + [1.0] * u + [0.0] * 2 * u
    assert all(v == 1.0 for v in f["unit_forget_bias_with_ones"])
    assert all(v == 0.0 for v in f["no_unit_forget_bias_zeros"])


def test_glorot_uniform_kernel_over_fused_shape():
    k = _fresh().get_weights()[0]
    assert k.shape == (F_, 4 * U_) and k.dtype == np.float32
    limit = np.sqrt(6.0 / (F_ + 4 * U_))
    assert np.abs(k).max() <= limit * (1 + 1e-6), "bound uses fan_out = 4*units"
    assert np.abs(k).max() > 0.95 * limit, "too narrow (per-gate or other fan?)"
    assert abs(k.mean()) < 0.1 * limit
    assert k.var() == pytest.approx(limit**2 / 3, rel=0.1)


def test_orthogonal_recurrent_kernel():
    r = _fresh().get_weights()[1].astype("float64")
    assert r.shape == (U_, 4 * U_)
    np.testing.assert_allclose(r @ r.T, np.eye(U_), atol=1e-5)


def test_unit_forget_bias_default():
    b = _fresh().get_weights()[2]
    np.testing.assert_array_equal(b[U_:2 * U_], 1.0)
    np.testing.assert_array_equal(np.r_[b[:U_], b[2 * U_:]], 0.0)


def test_unit_forget_bias_with_other_initializers():
    np.testing.assert_array_equal(_fresh(bias_initializer="ones").get_weights()[2], 1.0)
    np.testing.assert_array_equal(_fresh(unit_forget_bias=False).get_weights()[2], 0.0)
    b = _fresh(bias_initializer="random_uniform").get_weights()[2]
    np.testing.assert_array_equal(b[U_:2 * U_], 1.0)
    rest = np.r_[b[:U_], b[2 * U_:]]
    assert np.abs(rest).max() <= 0.05 and np.unique(rest).size > 1  # RandomUniform(-0.05, 0.05)


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = _fresh(0).get_weights(), _fresh(0).get_weights(), _fresh(1).get_weights()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


def test_float64_layer_weights():
    torch.manual_seed(0)
    layer = make_layer({"units": 3, "input_dim": 2}, "float64")
    assert [w.dtype for w in layer.get_weights()] == [np.float64] * 3
    assert all(w.dtype == torch.float64 for w in layer.weights)


def test_no_bias_has_two_weights():
    layer = _fresh(use_bias=False)
    assert len(layer.weights) == 2 and len(layer.get_weights()) == 2
