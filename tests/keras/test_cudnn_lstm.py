"""lstmcompat.CuDNNLSTM: cuDNN's equations (a plain NumPy version, float64) and
TensorFlow's numbers through tf_keras's own CuDNNLSTM -> LSTM weight conversion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from keras_family_helpers import cases, close, load, loss_of, manifest

from lstmcompat import LSTM, CuDNNLSTM
from lstmcompat._keras.cudnn_lstm import cudnn_to_keras, keras_to_cudnn

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def cudnn_numpy(x, kernel, recurrent_kernel, bias, h, c):
    """cuDNN's LSTM equations on its own reading of the weights (batch-major x)."""
    d, u = kernel.shape[0], recurrent_kernel.shape[0]
    W = [kernel[:, g * u:(g + 1) * u].reshape(u, d) for g in range(4)]  # row-major (u, d)
    Rm = [recurrent_kernel[:, g * u:(g + 1) * u] for g in range(4)]  # (u, u) as stored
    bx, bh = bias[:4 * u].reshape(4, u), bias[4 * u:].reshape(4, u)
    outs = []
    for t in range(x.shape[1]):
        z = [x[:, t] @ W[g].T + bx[g] + h @ Rm[g].T + bh[g] for g in range(4)]
        i, f, o = _sigmoid(z[0]), _sigmoid(z[1]), _sigmoid(z[3])
        c = f * c + i * np.tanh(z[2])
        h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs, 1), h, c


@pytest.mark.parametrize("seed", range(3))
def test_float64_equals_cudnn_equations(seed):
    rng = np.random.default_rng(seed)
    B, T, F, U = 3, 6, 4, 5
    k, r, b = (rng.standard_normal(s) * 0.5 for s in ((F, 4 * U), (U, 4 * U), (8 * U,)))
    x = rng.standard_normal((B, T, F))
    h0, c0 = rng.standard_normal((B, U)) * 0.5, rng.standard_normal((B, U)) * 0.5
    layer = CuDNNLSTM(U, return_sequences=True, return_state=True, dtype="float64")
    layer.build((None, None, F))
    layer.set_weights([k, r, b])
    out, h, c = layer(torch.from_numpy(x), initial_state=[torch.from_numpy(h0),
                                                          torch.from_numpy(c0)])
    want = cudnn_numpy(x, k, r, b, h0, c0)
    for got, w in zip((out, h, c), want):
        np.testing.assert_allclose(got.detach().numpy(), w, rtol=1e-12, atol=1e-12)


def test_conversion_is_tf_keras_conversion_bit_for_bit():
    for entry in cases("cudnn"):
        a = load(entry)
        got = cudnn_to_keras(*(torch.from_numpy(a[n]) for n in
                               ("kernel", "recurrent_kernel", "bias")))
        for g, n in zip(got, ("lstm_kernel", "lstm_recurrent_kernel", "lstm_bias")):
            assert np.array_equal(g.numpy(), a[n]), (entry["name"], n)


def test_keras_to_cudnn_inverts_the_kernels():
    rng = np.random.default_rng(0)
    k, r, b = (torch.from_numpy(rng.standard_normal(s)) for s in ((3, 8), (2, 8), (16,)))
    k2, r2, b2 = cudnn_to_keras(*keras_to_cudnn(*cudnn_to_keras(k, r, b)))
    kk, rr, bb = cudnn_to_keras(k, r, b)
    assert torch.equal(k2, kk) and torch.equal(r2, rr)
    torch.testing.assert_close(b2, bb)
    assert torch.equal(keras_to_cudnn(k, r, None)[2], torch.zeros(16, dtype=k.dtype))


def _run(layer, entry, a, requires_grad=False):
    x = torch.tensor(a["x"], requires_grad=requires_grad)
    n = 2 if entry["initial_state"] else 0
    states = [torch.tensor(a[f"state_{i}"], requires_grad=requires_grad) for i in range(n)]
    if entry["initial_state"] == "kw":
        out = layer(x, initial_state=states)
    elif entry["initial_state"] == "list":
        out = layer([x, *states])
    else:
        out = layer(x)
    return x, states, (out if isinstance(out, list) else [out])


def _layer(entry, a, **kw):
    layer = CuDNNLSTM(entry["units"], **entry["flags"], dtype=DTYPES[entry["dtype"]], **kw)
    layer.build((None, None, a["kernel"].shape[0]))
    layer.set_weights([a["kernel"], a["recurrent_kernel"], a["bias"]])
    return layer


@pytest.mark.parametrize("entry", cases("cudnn"), ids=lambda e: e["name"])
def test_outputs_and_gradients_match_converted_tensorflow(entry):
    a = load(entry)
    layer = _layer(entry, a)
    x, states, outs = _run(layer, entry, a, requires_grad=True)
    assert len(outs) == entry["n_outputs"]
    for i, o in enumerate(outs):
        close(o, a[f"out_{i}"], entry["dtype"], f"output {i}")
    srcs = [x, *states, *layer.trainable_weights]
    for i, g in enumerate(torch.autograd.grad(loss_of(outs, a), srcs)):
        close(g, a[f"grad_{i}"], entry["dtype"], f"gradient {i}")


@pytest.mark.parametrize("kernel", ["reference", "fused", "native"])
@pytest.mark.parametrize("name", ["cu_state", "cu_backwards", "cu_time_major"])
def test_forced_kernels_agree(monkeypatch, kernel, name):
    entry = next(e for e in cases("cudnn") if e["name"] == name)
    a = load(entry)
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", kernel)
    layer = _layer(entry, a)
    _, _, outs = _run(layer, entry, a)
    for i, o in enumerate(outs):
        close(o, a[f"out_{i}"], entry["dtype"], f"output {i} ({kernel})")
    assert layer.last_kernel[0] == kernel


def test_stateful_calls():
    entry = cases("cudnn", stateful=True)[0]
    a = load(entry)
    layer = CuDNNLSTM(entry["units"], stateful=True, return_sequences=True,
                      batch_input_shape=entry["batch_input_shape"])
    layer.set_weights([a["kernel"], a["recurrent_kernel"], a["bias"]])
    close(layer(torch.from_numpy(a["x1"])), a["out1"], "float32", "call 1")
    close(layer(torch.from_numpy(a["x2"])), a["out2"], "float32", "call 2")
    layer.reset_states()
    close(layer(torch.from_numpy(a["x1"])), a["out1"], "float32", "after reset")


def test_masks_raise_as_tensorflow():
    layer = CuDNNLSTM(2)
    want = "Masking is not supported for CuDNN RNNs."
    assert want in manifest()["errors"]["cudnn_mask"]["message"]
    with pytest.raises(ValueError, match=want):
        layer(torch.zeros(2, 3, 3), mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=want):
        layer(torch.zeros(2, 3, 3), mask=[torch.ones(2, 3, dtype=torch.bool)])


@pytest.mark.parametrize("ufb", [True, False])
def test_built_bias_as_tensorflow(ufb):
    layer = CuDNNLSTM(2, bias_initializer=lambda shape, dtype=None: torch.full(shape, 0.5),
                      unit_forget_bias=ufb)
    layer.build((None, None, 3))
    assert layer.get_weights()[2].tolist() == manifest()["facts"][f"cudnn_bias_ufb_{ufb}"]
    assert [tuple(w.shape) for w in layer.weights] == [(3, 8), (2, 8), (16,)]


def _json(config):
    return json.loads(json.dumps(config))


@pytest.mark.parametrize("key", ["cudnn_default", "cudnn_full", "cudnn_input_shape",
                                 "cudnn_input_dim"])
def test_config_matches_tensorflow_and_round_trips(key):
    tf_config = manifest()["configs"][key]
    layer = CuDNNLSTM.from_config(tf_config)
    assert _json(layer.get_config()) == tf_config
    assert _json(CuDNNLSTM.from_config(layer.get_config()).get_config()) == tf_config


def test_constructed_config_matches_tensorflow():
    import lstmcompat._keras.lstm as lstm_mod
    lstm_mod._UIDS.pop("cu_dnnlstm", None)
    assert _json(CuDNNLSTM(3).get_config()) == manifest()["configs"]["cudnn_default"]
    assert _json(CuDNNLSTM(2, input_dim=4, name="cu3").get_config()) == \
        manifest()["configs"]["cudnn_input_dim"]


def test_not_an_lstm_config():
    with pytest.raises(TypeError):
        CuDNNLSTM.from_config({"units": 2, "activation": "relu"})
    assert not isinstance(LSTM(2), CuDNNLSTM)


def test_gradients_reach_both_bias_halves_equally():
    layer = CuDNNLSTM(3, input_shape=(None, 2))
    layer(torch.randn(2, 4, 2)).sum().backward()
    g = layer.bias.grad
    assert torch.equal(g[:12], g[12:])


def test_stateful_initial_state_always_wins_as_tensorflow_cudnn():
    """TF's _CuDNNRNN.call uses a passed initial_state even over non-zero stored states
    (Keras's LSTM would keep the stored ones)."""
    layer = CuDNNLSTM(2, stateful=True, return_state=True, batch_input_shape=(1, 3, 2))
    x = torch.randn(1, 3, 2)
    layer(x)  # non-zero stored states now
    h0, c0 = torch.full((1, 2), 0.3), torch.full((1, 2), -0.2)
    _, h, c = layer(x, initial_state=[h0, c0])
    fresh = CuDNNLSTM(2, return_state=True, input_shape=(None, 2))
    fresh.set_weights(layer.get_weights())
    _, h2, c2 = fresh(x, initial_state=[h0, c0])
    assert torch.equal(h, h2) and torch.equal(c, c2)
    assert torch.equal(layer.states[0], h)
