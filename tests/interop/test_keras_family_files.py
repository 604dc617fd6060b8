"""Files of Bidirectional and CuDNNLSTM: restore, load_keras_layers, to_torch_lstm,
save/load, against the files and numbers tools/goldens_keras_family.py wrote."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmcompat
from lstmcompat import LSTM, Bidirectional, CuDNNLSTM

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "keras_family"


@cache
def _files() -> dict:
    return json.loads((GOLDENS / "manifest.json").read_text())["files"]


def _x(key: str) -> torch.Tensor:
    return torch.tensor(_files()[key]["x"], dtype=torch.float32)


def _close(got, key: str, want: str = "out", atol: float = 1e-6) -> None:
    np.testing.assert_allclose(got.detach().numpy(), np.asarray(_files()[key][want]),
                               rtol=1e-5, atol=atol)


def _weights_equal(module, key: str, want: str = "weights") -> bool:
    return all(np.array_equal(a, np.asarray(b, np.float32))
               for a, b in zip(module.get_weights(), _files()[key][want], strict=True))


@pytest.mark.parametrize("file", ["bidi_model.h5", "bidi_weights.h5", "bidi_ckpt/ckpt"])
def test_restore_bidirectional_lstm(file):
    bi = Bidirectional(LSTM(4, return_sequences=True, recurrent_activation="sigmoid"),
                       merge_mode="sum")
    assert lstmcompat.restore(bi, GOLDENS / file) is bi
    assert _weights_equal(bi, "bidi")
    _close(bi(_x("bidi")), "bidi")


@pytest.mark.parametrize("prefix", ["bidi", "bidi/bidi", "model/layer_with_weights-0"])
def test_restore_bidirectional_by_prefix(prefix):
    file = "bidi_ckpt/ckpt" if prefix.startswith("model") else "bidi_weights.h5"
    bi = Bidirectional(LSTM(4, return_sequences=True, recurrent_activation="sigmoid"),
                       merge_mode="sum")
    lstmcompat.restore(bi, GOLDENS / file, prefix=prefix)
    assert _weights_equal(bi, "bidi")


def test_restore_bidirectional_errors():
    path = GOLDENS / "bidi_model.h5"
    with pytest.raises(ValueError, match="forward layer: `units`"):
        lstmcompat.restore(Bidirectional(LSTM(3)), path)
    with pytest.raises(ValueError, match="no Bidirectional weights .* under prefix 'nope'"):
        lstmcompat.restore(Bidirectional(LSTM(4)), path, prefix="nope")
    with pytest.raises(ValueError, match="no Bidirectional weights"):
        lstmcompat.restore(Bidirectional(LSTM(4)), GOLDENS / "cudnn_model.h5")
    # one direction alone is a weight set of its own
    layer = lstmcompat.restore(LSTM(4), path, prefix="bidi/backward_lstm/lstm_cell")
    assert np.array_equal(layer.get_weights()[0], np.asarray(_files()["bidi"]["weights"][3],
                                                              np.float32))


@pytest.mark.parametrize("file", ["cudnn_model.h5", "cudnn_weights.h5"])
def test_restore_cudnn_lstm(file):
    layer = lstmcompat.restore(CuDNNLSTM(4, return_sequences=True), GOLDENS / file)
    assert _weights_equal(layer, "cudnn")
    _close(layer(_x("cudnn")), "cudnn")


@pytest.mark.parametrize("file", ["cudnn_model.h5", "cudnn_weights.h5"])
def test_cudnn_weights_into_lstm_as_tf_keras_converts_them(file):
    layer = lstmcompat.restore(LSTM(4, return_sequences=True, recurrent_activation="sigmoid"),
                               GOLDENS / file)
    assert _weights_equal(layer, "cudnn", "loaded_into_lstm")  # bit for bit
    _close(layer(_x("cudnn")), "cudnn", "loaded_out")


@pytest.mark.parametrize("kwargs, match", [
    ({}, "`recurrent_activation`: a CuDNNLSTM weight set computes sigmoid"),
    ({"recurrent_activation": "sigmoid", "activation": "relu"},
     "`activation`: a CuDNNLSTM weight set computes tanh"),
    ({"recurrent_activation": "sigmoid", "use_bias": False}, "`use_bias`"),
])
def test_cudnn_weights_only_into_a_sigmoid_tanh_lstm(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lstmcompat.restore(LSTM(4, **kwargs), GOLDENS / "cudnn_model.h5")
    with pytest.raises(ValueError, match=match):
        lstmcompat.restore(LSTM(4, **kwargs), GOLDENS / "cudnn_model.h5", prefix="cu")


def test_lstm_weights_into_cudnn_lstm_as_tf_keras_converts_them():
    lstm = lstmcompat.restore(LSTM(4, return_sequences=True, recurrent_activation="sigmoid"),
                              GOLDENS / "bidi_model.h5", prefix="bidi/forward_lstm/lstm_cell")
    cu = lstmcompat.restore(CuDNNLSTM(4, return_sequences=True), GOLDENS / "bidi_model.h5",
                            prefix="bidi/forward_lstm/lstm_cell")
    x = _x("bidi")
    torch.testing.assert_close(cu(x), lstm(x), rtol=1e-5, atol=1e-6)
    u = 4
    np.testing.assert_array_equal(cu.get_weights()[2][:4 * u], cu.get_weights()[2][4 * u:])


def test_restore_bidirectional_cudnn():
    bi = lstmcompat.restore(Bidirectional(CuDNNLSTM(2)), GOLDENS / "bidi_cudnn_model.h5")
    assert _weights_equal(bi, "bidi_cudnn")
    _close(bi(_x("bidi_cudnn")), "bidi_cudnn")
    as_lstm = lstmcompat.restore(Bidirectional(LSTM(2, recurrent_activation="sigmoid")),
                                 GOLDENS / "bidi_cudnn_model.h5", prefix="bicu")
    _close(as_lstm(_x("bidi_cudnn")), "bidi_cudnn")


@pytest.mark.parametrize("file, key, cls", [("bidi_model.h5", "bidi", Bidirectional),
                                            ("cudnn_model.h5", "cudnn", CuDNNLSTM),
                                            ("bidi_cudnn_model.h5", "bidi_cudnn", Bidirectional)])
def test_load_keras_layers(file, key, cls):
    (name, layer), = lstmcompat.load_keras_layers(GOLDENS / file).items()
    assert type(layer) is cls and name == layer.name
    assert json.loads(json.dumps(layer.get_config())) == _files()[key]["config"]
    assert _weights_equal(layer, key)
    _close(layer(_x(key)), key)


def test_to_torch_lstm_cudnn():
    layer = lstmcompat.restore(CuDNNLSTM(4, return_sequences=True), GOLDENS / "cudnn_model.h5")
    lstm = lstmcompat.to_torch_lstm(layer)
    u = 4
    bias = layer.bias.detach()
    # both biases kept apart, as cuDNN adds them (gate order i, f, c, o = torch's)
    assert torch.equal(lstm.bias_ih_l0, bias[:4 * u]) and torch.equal(lstm.bias_hh_l0,
                                                                       bias[4 * u:])
    _close(lstm(_x("cudnn"))[0], "cudnn")


def test_to_torch_lstm_bidirectional():
    bi = lstmcompat.restore(Bidirectional(CuDNNLSTM(2, return_sequences=True)),
                            GOLDENS / "bidi_cudnn_model.h5")
    lstm = lstmcompat.to_torch_lstm(bi)
    assert lstm.bidirectional
    x = _x("bidi_cudnn")
    torch.testing.assert_close(lstm(x)[0], bi(x), rtol=1e-5, atol=1e-6)
    h = lstm(x)[1][0]
    last = Bidirectional(CuDNNLSTM(2), weights=bi.get_weights())(x)
    torch.testing.assert_close(torch.cat([h[0], h[1]], -1), last, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`merge_mode` is 'sum'"):
        lstmcompat.to_torch_lstm(Bidirectional(CuDNNLSTM(2), merge_mode="sum",
                                               input_shape=(None, 3)))
    with pytest.raises(ValueError, match="`stateful`"):
        lstmcompat.to_torch_lstm(CuDNNLSTM(2, stateful=True, batch_input_shape=(1, 2, 3)))


@pytest.mark.parametrize("make", [
    lambda: CuDNNLSTM(3, return_sequences=True, go_backwards=True, input_shape=(None, 3)),
    lambda: CuDNNLSTM(3, input_dim=3),
    lambda: Bidirectional(LSTM(3, return_sequences=True, kernel_regularizer="l2"),
                          merge_mode="mul", input_shape=(None, 3)),
    lambda: Bidirectional(CuDNNLSTM(3, return_state=True), merge_mode=None,
                          input_shape=(None, 3)),
    lambda: Bidirectional(LSTM(3, return_sequences=True, input_shape=(None, 3)),
                          backward_layer=LSTM(2, go_backwards=True, return_sequences=True,
                                              activation="relu", input_shape=(None, 3))),
    lambda: Bidirectional(LSTM(3)),
], ids=["cudnn", "cudnn_unbuilt", "bidi", "bidi_cudnn_none", "bidi_backward", "bidi_unbuilt"])
def test_save_load_round_trip(tmp_path, make):
    module = make()
    path = tmp_path / "m.safetensors"
    lstmcompat.save(module, path)
    rng = torch.get_rng_state()
    again = lstmcompat.load(path)
    assert torch.equal(rng, torch.get_rng_state())  # the file's weights, no draws
    assert type(again) is type(module) and again.get_config() == module.get_config()
    assert [w.tolist() for w in again.get_weights()] == [w.tolist() for w in module.get_weights()]
    if again.get_weights():
        x = torch.randn(2, 4, 3)
        a, b = module(x), again(x)
        for p, q in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            assert torch.equal(p, q)


@pytest.mark.parametrize("name, file", [("tf_keras_bidi", "model.h5"),
                                        ("keras3_bidi", "model.keras")])
def test_restore_bidirectional_from_the_keras_files_goldens(name, file):
    import base64

    folder = GOLDENS.parent / "keras_files" / name
    layer = json.loads((folder / "expected.json").read_text())["model"]["layers"][
        "bidirectional"]

    def array(d):
        return np.frombuffer(base64.b64decode(d["data"]), d["dtype"]).reshape(d["shape"])

    act = "keras3_hard_sigmoid" if name.startswith("keras3") else "hard_sigmoid"
    bi = Bidirectional(LSTM(2, return_sequences=True, recurrent_activation=act))
    lstmcompat.restore(bi, folder / file)
    got = bi(torch.from_numpy(array(layer["input"]).copy()))
    np.testing.assert_allclose(got.detach().numpy(), array(layer["output"]), rtol=1e-5,
                               atol=1e-6)
