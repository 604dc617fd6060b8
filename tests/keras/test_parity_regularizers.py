"""layer.losses against TensorFlow: weight penalties and activity penalties.

TF's order, recorded in the goldens: the activity penalties of the latest call
(one per returned tensor, in return order, each divided by that tensor's first
dimension -- time for time_major sequences), then the kernel, recurrent_kernel
and bias penalties. Activity penalties of earlier calls are gone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from keras_parity_helpers import (
    as_list,
    assert_close,
    facts,
    load,
    make_layer,
    manifest,
    weight_names,
)

CASES = manifest()["regularizers"]
IDS = [c["name"] for c in CASES]


def _run(case):
    d = load(case)
    layer = make_layer(case["layer"], case["dtype"])
    layer.build(d["c0_x"].shape)
    layer.set_weights([d[n] for n in weight_names(d)])
    for k in range(case["calls"]):
        outs = as_list(layer(torch.tensor(d[f"c{k}_x"]), training=False))
        for i, o in enumerate(outs):
            assert_close(o, d[f"c{k}_out_{i}"], case["dtype"], f"call {k} out_{i}")
        yield k, d, layer


def _values(layer):
    losses = list(layer.losses)
    for v in losses:
        assert isinstance(v, torch.Tensor) and v.dim() == 0, f"not a scalar tensor: {v!r}"
    return np.array([float(v.detach()) for v in losses])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_losses_values(case):
    for k, d, layer in _run(case):
        got, exp = _values(layer), d[f"c{k}_losses"]
        assert len(got) == len(exp), f"call {k}: {len(got)} losses, TF has {len(exp)}: {exp}"
        np.testing.assert_allclose(np.sort(got), np.sort(exp), rtol=1e-5, atol=1e-6,
                                   err_msg=f"call {k} (sorted)")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_losses_order(case):
    for k, d, layer in _run(case):
        got, exp = _values(layer), d[f"c{k}_losses"]
        assert len(got) == len(exp)
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6,
                                   err_msg=f"call {k}: TF order is activity (per returned "
                                           "tensor) then kernel, recurrent_kernel, bias")


def test_string_regularizers_default_factors():
    f = facts()["regularizer_strings"]
    assert f["l2"]["l2"] == pytest.approx(0.01) and f["l1"]["l1"] == pytest.approx(0.01)
    assert f["l1_l2"] == pytest.approx({"l1": 0.01, "l2": 0.01})


def test_weight_penalties_before_any_call_and_differentiable():
    layer = make_layer({"units": 4, "kernel_regularizer": "l2", "input_dim": 3})
    k = np.linspace(-1, 1, 48, dtype="float32").reshape(3, 16)
    layer.set_weights([k, np.zeros((4, 16), "float32"), np.zeros(16, "float32")])
    losses = list(layer.losses)
    assert len(losses) == 1
    assert float(losses[0].detach()) == pytest.approx(0.01 * float((k.astype("float64") ** 2).sum()),
                                             rel=1e-6)
    losses[0].backward()
    np.testing.assert_allclose(layer.kernel.grad.numpy(), 0.02 * k, rtol=1e-6, atol=1e-7)
