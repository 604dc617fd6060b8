"""Keras files end to end: ``restore`` and ``load_keras_layers`` reproduce Keras's outputs.

The fixtures (``tests/goldens/keras_files/``, made by ``tools/goldens_keras_files.py``
with tf_keras and Keras 3) carry each LSTM layer's config, input and output as
Keras computed them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmcompat
from lstmcompat._interop._keras_layers import layer_from_config

pytest.importorskip("h5py")

GOLDENS = Path(__file__).parents[1] / "goldens" / "keras_files"
FILES = {"tf_keras_model": "model.h5", "tf_keras_weights": "weights.h5",
         "tf_keras_nested": "model.h5", "tf_keras_bidi": "model.h5",
         "keras3_archive": "model.keras", "keras3_weights": "model.weights.h5",
         "keras3_sharded": "model.weights.json", "keras3_nested": "model.keras",
         "keras3_bidi": "model.keras", "keras3_legacy_h5": "model.h5"}
WITH_CONFIG = {"tf_keras_model", "tf_keras_nested", "keras3_archive", "keras3_nested",
               "keras3_legacy_h5"}


def _case(name):
    return json.loads((GOLDENS / name / "expected.json").read_text())


def _array(entry):
    return np.frombuffer(base64.b64decode(entry["data"]),
                         dtype=np.dtype(entry["dtype"]).newbyteorder("<")).reshape(entry["shape"])


def _lstm_layers(case):
    return {n: l for n, l in case["model"]["layers"].items() if l["class_name"] == "LSTM"}


def _check(module, layer):
    got = module(torch.from_numpy(_array(layer["input"]).copy()))
    got = got[0] if isinstance(got, (list, tuple)) else got
    np.testing.assert_allclose(got.detach().numpy(), _array(layer["output"]), rtol=1e-5,
                               atol=2e-6)


@pytest.mark.parametrize("name", sorted(FILES))
def test_restore_each_lstm_layer(name):
    """A module built from the layer's config, filled by restore(prefix=<layer name>)."""
    case = _case(name)
    layers = _lstm_layers(case)
    if not layers:
        pytest.skip("no plain LSTM layer (Bidirectional: issue 12)")
    for layer_name, layer in layers.items():
        module = layer_from_config("LSTM", layer["config"], case["keras_version"])
        lstmcompat.restore(module, GOLDENS / name / FILES[name], prefix=layer_name)
        _check(module, layer)


@pytest.mark.parametrize("name", sorted(WITH_CONFIG))
def test_load_keras_layers(name):
    case = _case(name)
    got = lstmcompat.load_keras_layers(GOLDENS / name / FILES[name])
    layers = {n: v for n, v in case["model"]["layers"].items()
              if v["class_name"] in ("LSTM", "Bidirectional", "CuDNNLSTM")}
    assert list(got) == list(layers)
    for layer_name, layer in layers.items():
        _check(got[layer_name], layer)


@pytest.mark.parametrize("name", ["tf_keras_bidi", "keras3_bidi"])
def test_bidirectional_halves_restore_by_prefix(name):
    """Each direction of a Bidirectional is an LSTM weight set of its own."""
    path = GOLDENS / name / FILES[name]
    want = lstmcompat.load_variables(path)
    for direction in ("forward", "backward"):
        layer = lstmcompat.restore(lstmcompat.LSTM(2), path,
                                   prefix=f"bidirectional/{direction}_lstm/lstm_cell")
        kernels = [v for k, v in want.items() if direction in k and v.shape == (3, 8)]
        assert any(np.array_equal(layer.kernel.detach().numpy(), k) for k in kernels)


def test_ambiguous_without_prefix_lists_layers():
    path = GOLDENS / "tf_keras_weights" / "weights.h5"
    with pytest.raises(ValueError, match="no weight set .* fits|weight sets"):
        lstmcompat.restore(lstmcompat.LSTM(5), path)
    layer = lstmcompat.restore(lstmcompat.LSTM(3, use_bias=False), path)  # only lstm_1 fits
    np.testing.assert_array_equal(
        layer.recurrent_kernel.detach().numpy(),
        lstmcompat.load_variables(path)["lstm_1/lstm_1/lstm_cell/recurrent_kernel:0"])


@pytest.mark.parametrize("name", sorted(FILES))
def test_inspect_names_every_layer(name, capsys):
    from lstmcompat.__main__ import main
    assert main(["inspect", str(GOLDENS / name / FILES[name])]) == 0
    out = capsys.readouterr().out
    for layer_name in _lstm_layers(_case(name)):
        assert f"prefix '{layer_name}/lstm_cell'" in out
    if name in WITH_CONFIG:
        assert "lstmcompat.load_keras_layers" in out
