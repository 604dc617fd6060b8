"""Forward values and gradients of lstmcompat.LSTM against TensorFlow goldens.

Each case (tests/goldens/keras/manifest.json, "forward") is a
tf.compat.v1.keras.layers.LSTM with deterministic weights loaded by
set_weights, called with training=False, and the gradients of
sum_k sum(w_k * returned_k) over every returned tensor with respect to the
inputs, the initial states (when given) and kernel / recurrent_kernel / bias.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from keras_parity_helpers import (
    TORCH_DTYPES,
    as_list,
    assert_close,
    load,
    make_layer,
    manifest,
    weight_names,
)

CASES = manifest()["forward"]
IDS = [c["name"] for c in CASES]


def _setup(case):
    d = load(case)
    layer = make_layer(case["layer"], case["dtype"])
    layer.build(tuple(d["x"].shape))
    layer.set_weights([d[n] for n in weight_names(d)])
    return d, layer


def _call(layer, case, x, mask, h0, c0, **kw):
    if case["initial_state"] == "kw":
        return layer(x, mask=mask, initial_state=[h0, c0], **kw)
    if case["initial_state"] == "list":
        return layer([x, h0, c0], mask=mask, **kw)
    return layer(x, mask=mask, **kw)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_outputs_and_gradients(case):
    d, layer = _setup(case)
    x = torch.tensor(d["x"], requires_grad=True)
    mask = torch.tensor(d["mask"]) if "mask" in d else None
    h0 = c0 = None
    srcs = [x]
    if case["initial_state"]:
        h0 = torch.tensor(d["h0"], requires_grad=True)
        c0 = torch.tensor(d["c0"], requires_grad=True)
        srcs += [h0, c0]
    out = _call(layer, case, x, mask, h0, c0, training=False)
    if case["n_outputs"] > 1:
        assert isinstance(out, list), f"return_state must give a list, got {type(out)}"
    else:
        assert isinstance(out, torch.Tensor), f"expected one tensor, got {type(out)}"
    outs = as_list(out)
    assert len(outs) == case["n_outputs"]
    dt = case["dtype"]
    for i, o in enumerate(outs):
        assert o.dtype == TORCH_DTYPES[case["out_dtype"]], f"out_{i} dtype {o.dtype}"
        assert list(o.shape) == case["out_shapes"][i]
        assert_close(o, d[f"out_{i}"], dt, f"{case['name']} out_{i}")

    loss = sum((o * torch.as_tensor(d[f"w_{i}"], dtype=o.dtype)).sum() for i, o in enumerate(outs))
    assert_close(loss, d["loss"], dt, "weighted sum")
    params = [getattr(layer, n) for n in weight_names(d)]
    grads = torch.autograd.grad(loss, srcs + params, allow_unused=True)
    for name, src, g in zip(case["grads"], srcs + params, grads, strict=True):
        g = torch.zeros_like(src) if g is None else g
        assert_close(g, d[f"grad_{name}"], dt, f"{case['name']} d/d{name}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_numpy_inputs_and_eval_mode(case):
    """NumPy array-likes are accepted; training=None follows layer.training (eval)."""
    d, layer = _setup(case)
    layer.eval()
    out = _call(layer, case, d["x"], d.get("mask"), d.get("h0"), d.get("c0"))
    for i, o in enumerate(as_list(out)):
        assert isinstance(o, torch.Tensor)
        assert_close(o, d[f"out_{i}"], case["dtype"], f"{case['name']} out_{i} (numpy, eval)")


BACKWARD_CASES = [c for c in CASES if c["name"] in (
    "default", "return_both", "mask_go_backwards", "init_state_kw", "f64_seq_state_init",
    "no_bias", "impl2")]


@pytest.mark.parametrize("case", BACKWARD_CASES, ids=[c["name"] for c in BACKWARD_CASES])
def test_backward_populates_param_grads(case):
    d, layer = _setup(case)
    x = torch.tensor(d["x"])
    h0 = torch.tensor(d["h0"]) if "h0" in d else None
    c0 = torch.tensor(d["c0"]) if "c0" in d else None
    mask = torch.tensor(d["mask"]) if "mask" in d else None
    outs = as_list(_call(layer, case, x, mask, h0, c0, training=False))
    loss = sum((o * torch.as_tensor(d[f"w_{i}"])).sum() for i, o in enumerate(outs))
    loss.backward()
    for n in weight_names(d):
        assert getattr(layer, n).grad is not None, n
        assert_close(getattr(layer, n).grad, d[f"grad_{n}"], case["dtype"], f"{n}.grad")


def test_weights_round_trip_exactly():
    case = next(c for c in CASES if c["name"] == "default")
    d, layer = _setup(case)
    got = layer.get_weights()
    assert len(got) == 3
    for g, n in zip(got, weight_names(d), strict=True):
        assert isinstance(g, np.ndarray)
        assert g.dtype == d[n].dtype
        np.testing.assert_array_equal(g, d[n])
