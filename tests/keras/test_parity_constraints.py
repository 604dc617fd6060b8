"""Constraints against TensorFlow: applied after an optimizer step, never in forward.

Golden: kernel_constraint="max_norm" (max 2, axis 0), recurrent_constraint=
"unit_norm" (axis 0), bias_constraint="non_neg"; one tf_keras SGD(0.1)
apply_gradients step (var -= lr*grad; var.assign(constraint(var))) on the loss
sum(w * output). set_weights and forward left the weights untouched in TF.
"""

from __future__ import annotations

import numpy as np
import torch
from keras_parity_helpers import assert_close, load, make_layer, manifest, weight_names

import lstmcompat

CASE = manifest()["constraints"][0]


def _layer():
    d = load(CASE)
    layer = make_layer(CASE["layer"], CASE["dtype"])
    layer.build(d["x"].shape)
    layer.set_weights([d[n] for n in weight_names(d)])
    return d, layer


def test_set_weights_and_forward_do_not_constrain():
    d, layer = _layer()
    for g, n in zip(layer.get_weights(), weight_names(d), strict=True):
        np.testing.assert_array_equal(g, d[n], err_msg=f"set_weights changed {n}")
    out = layer(torch.tensor(d["x"]), training=False)
    assert_close(out, d["out_0"], "float32", "forward with unconstrained weights")
    for g, n in zip(layer.get_weights(), weight_names(d), strict=True):
        np.testing.assert_array_equal(g, d[n], err_msg=f"forward changed {n}")


def test_sgd_step_with_attached_constraints():
    d, layer = _layer()
    opt = torch.optim.SGD(layer.parameters(), lr=CASE["lr"])
    handle = lstmcompat.attach_constraints(opt, layer)
    out = layer(torch.tensor(d["x"]), training=False)
    loss = (out * torch.tensor(d["w_0"])).sum()
    assert_close(loss, d["loss"], "float32", "loss")
    opt.zero_grad()
    loss.backward()
    for n in weight_names(d):
        assert_close(getattr(layer, n).grad, d[f"grad_{n}"], "float32", f"grad {n}")
    opt.step()
    for g, n in zip(layer.get_weights(), weight_names(d), strict=True):
        assert_close(g, d[f"sgd_{n}"], "float32", f"{n} after SGD step + constraint")
    # the handle removes the hook: the next step is a plain SGD step
    handle.remove()
    before = [w.copy() for w in layer.get_weights()]
    opt.zero_grad()
    out = layer(torch.tensor(d["x"]), training=False)
    (out * torch.tensor(d["w_0"])).sum().backward()
    grads = [getattr(layer, n).grad.numpy().copy() for n in weight_names(d)]
    opt.step()
    for g, b, gr, n in zip(layer.get_weights(), before, grads, weight_names(d), strict=True):
        np.testing.assert_allclose(g, b - CASE["lr"] * gr, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{n}: constraint still applied after remove()")


def test_plain_sgd_without_hook_is_unconstrained():
    d, layer = _layer()
    opt = torch.optim.SGD(layer.parameters(), lr=CASE["lr"])
    out = layer(torch.tensor(d["x"]), training=False)
    (out * torch.tensor(d["w_0"])).sum().backward()
    opt.step()
    for g, n in zip(layer.get_weights(), weight_names(d), strict=True):
        assert_close(g, d[n] - CASE["lr"] * d[f"grad_{n}"], "float32", n)


def test_apply_constraints_in_place():
    d, layer = _layer()
    params = [getattr(layer, n) for n in weight_names(d)]
    lstmcompat.apply_constraints(layer)
    for p, n in zip(params, weight_names(d), strict=True):
        assert getattr(layer, n) is p, f"{n} replaced, not updated in place"
        assert_close(p, d[f"constrained_{n}"], "float32", f"constraint({n})")
    # also through a parent module tree
    d, layer = _layer()
    parent = torch.nn.Sequential(torch.nn.Identity(), layer)
    lstmcompat.apply_constraints(parent)
    for n in weight_names(d):
        assert_close(getattr(layer, n), d[f"constrained_{n}"], "float32", f"nested {n}")
