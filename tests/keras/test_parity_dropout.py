"""dropout / recurrent_dropout semantics, checked statistically against TF's.

Weights are chosen so the masks show in the output (see facts.json "dropout"
and tools/goldens_keras.py dropout_facts): units == features == n, linear
activations, f = 0, o = 1, inputs all ones, so h_t = i_t * c-gate input.
TF: one mask per call, the same at every step, new on every call, inverted
(scaled by 1/(1-p)); implementation=1 draws an independent mask per gate,
implementation=2 one shared mask; the returned h is never dropped; inference
(training=False or eval()) gives exactly the no-dropout result.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from keras_parity_helpers import assert_close, facts, load, make_layer, manifest, weight_names

N, B, T, P = 32, 128, 4, 0.5
F = facts()


def _mask_layer(impl, both, **kw):
    layer = make_layer({"units": N, "activation": None, "recurrent_activation": None,
                        "dropout": P, "implementation": impl, "return_sequences": True,
                        "input_dim": N, **kw})
    k = np.zeros((N, 4 * N), "float32")
    b = np.zeros(4 * N, "float32")
    k[:, 2 * N:3 * N] = np.eye(N)
    if both:
        k[:, :N] = np.eye(N)
    else:
        b[:N] = 1
    b[3 * N:] = 1
    layer.set_weights([k, np.zeros((N, 4 * N), "float32"), b])
    return layer


@pytest.mark.parametrize("impl", [1, 2])
@pytest.mark.parametrize("both", [False, True], ids=["c_only", "i_and_c"])
def test_input_dropout_masks(impl, both):
    tf_obs = F["dropout"][f"impl{impl}_{'i_and_c' if both else 'c_only'}"]
    # independent i and c masks (impl 1) keep (1-p)^2 of the units, a shared one (1-p)
    expected = (1 - P) ** 2 if (both and impl == 1) else 1 - P
    assert abs(tf_obs["nonzero_fraction"] - expected) < 0.03  # guards the facts themselves
    torch.manual_seed(0)
    layer = _mask_layer(impl, both)
    layer.train()
    x = torch.ones(B, T, N)
    h1 = layer(x).detach().numpy()  # training=None -> layer.training (True)
    assert (h1 == h1[:, :1]).all(), "mask must be the same at every time step"
    vals = np.unique(np.round(h1, 5))
    np.testing.assert_allclose(vals, tf_obs["distinct_values"], rtol=1e-6,
                               err_msg="inverted dropout scaling 1/(1-p) per dropped product")
    frac = float((h1[:, 0] != 0).mean())
    assert abs(frac - expected) < 0.05, f"kept fraction {frac}, TF {tf_obs['nonzero_fraction']}"
    h2 = layer(x, training=True).detach().numpy()
    assert (h1 != h2).any(), "a new mask must be drawn on each call"
    assert (h2 == h2[:, :1]).all()


def test_recurrent_dropout_mask_and_returned_h_not_dropped():
    obs = F["dropout"]["recurrent"]
    assert obs["implementation_after_recurrent_dropout"] == 1
    torch.manual_seed(1)
    layer = make_layer({"units": N, "activation": None, "recurrent_activation": None,
                        "recurrent_dropout": P, "implementation": 2,
                        "return_sequences": True, "input_dim": N})
    assert layer.implementation == 1
    r = np.zeros((N, 4 * N), "float32")
    r[:, 2 * N:3 * N] = np.eye(N)
    b = np.zeros(4 * N, "float32")
    b[:N] = 1
    b[2 * N:] = 1
    layer.set_weights([np.zeros((N, 4 * N), "float32"), r, b])
    h = layer(torch.ones(B, T, N), training=True).detach().numpy().transpose(0, 2, 1)
    assert (h[:, :, 0] == 1).all(), "returned h (step 1) must not be dropped"
    kept = h[:, :, 1] != 1
    np.testing.assert_allclose(h[kept], np.broadcast_to(obs["expected_kept_trajectory"],
                                                        h[kept].shape), rtol=1e-6,
                               err_msg="same recurrent mask every step, scaled 1/(1-p)")
    assert (h[~kept] == 1).all()
    assert abs(kept.mean() - (1 - P)) < 0.05


@pytest.mark.parametrize("name", ["dropout_inference", "dropout_inference_impl2_seq"])
def test_inference_equals_no_dropout(name):
    case = next(c for c in manifest()["forward"] if c["name"] == name)
    d = load(case)
    layer = make_layer(case["layer"], case["dtype"])
    layer.build(d["x"].shape)
    layer.set_weights([d[n] for n in weight_names(d)])
    assert_close(layer(torch.tensor(d["x"]), training=False), d["out_0"], "float32",
                 "training=False")
    layer.eval()
    assert_close(layer(torch.tensor(d["x"])), d["out_0"], "float32", "eval()")
    # exactly (bit for bit) the output of the same layer without dropout
    plain_spec = {k: v for k, v in case["layer"].items() if "dropout" not in k}
    plain_spec["implementation"] = layer.implementation
    plain = make_layer(plain_spec, case["dtype"])
    plain.build(d["x"].shape)
    plain.set_weights([d[n] for n in weight_names(d)])
    x = torch.tensor(d["x"])
    assert torch.equal(layer(x, training=False), plain(x, training=False))
    torch.manual_seed(0)
    layer.train()
    got = layer(torch.tensor(d["x"])).detach().numpy()
    assert not np.allclose(got, d["out_0"]), "train mode must apply dropout"


@pytest.mark.parametrize("value", ["1.5", "-0.5", "0.25", "1.0"])
def test_rates_clamped(value):
    exp_d, exp_r = F["dropout_clamp"][value]
    assert make_layer({"units": 2, "dropout": float(value)}).dropout == exp_d
    assert make_layer({"units": 2, "recurrent_dropout": float(value)}).recurrent_dropout == exp_r


def test_recurrent_dropout_forces_implementation_1():
    assert F["recurrent_dropout_forces_impl1"] == 1 and F["dropout_keeps_impl2"] == 2
    assert make_layer({"units": 2, "recurrent_dropout": 0.1, "implementation": 2}).implementation == 1
    assert make_layer({"units": 2, "dropout": 0.1, "implementation": 2}).implementation == 2
    assert make_layer({"units": 2, "implementation": 2}).implementation == 2


RATE_ONE = [(impl, kw) for impl in (1, 2)
            for kw in ({"dropout": 1.0}, {"recurrent_dropout": 1.0}, {"dropout": 1.5})]


@pytest.mark.parametrize("impl,kw", RATE_ONE, ids=[f"impl{i}-{k}" for i, k in RATE_ONE])
def test_rate_one_raises_in_training_only(impl, kw):
    key = f"rate_one_training_impl{impl}_" + "_".join(f"{k}{v}" for k, v in kw.items())
    assert F["errors"][key]["type"] == "ValueError"
    assert F["errors"][key.replace("training", "inference")] is None
    layer = make_layer({"units": 4, "implementation": impl, "input_dim": 3, **kw})
    x = np.ones((2, 5, 3), "float32")
    layer(x, training=False)
    layer.eval()
    layer(x)
    with pytest.raises(ValueError):
        layer(x, training=True)
    layer.train()
    with pytest.raises(ValueError):
        layer(x)
