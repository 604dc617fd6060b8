"""``layer_from_config`` and ``load_keras_layers`` vs Keras's own configs and outputs.

The goldens (``tests/goldens/keras_configs/{tf_keras,keras3}.json``, from
``tools/goldens_keras_configs.py``) are LSTM layer entries of ``model.get_config()``
as tf_keras (Keras 2) and Keras 3 write them into model files, with fixed weights,
a fixed input and the model's outputs; ``keras3.json`` also holds Keras 3's
activations by name on a grid. ``load_keras_layers`` is tested here against a fake
``Source`` (the file readers are tested with the real files).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmcompat
from lstmcompat import _activations
from lstmcompat._interop import _keras_layers
from lstmcompat._interop._keras_layers import layer_from_config, load_keras_layers
from lstmcompat._interop._source import KerasLayer

GOLDENS = Path(__file__).parents[1] / "goldens" / "keras_configs"
FILES = {2: json.loads((GOLDENS / "tf_keras.json").read_text()),
         3: json.loads((GOLDENS / "keras3.json").read_text())}
CASES = [(v, c) for v, d in FILES.items() for c in d["cases"]]
GOOD = [(v, c) for v, c in CASES if "expect_error" not in c]
# Keras 3's zero_output_for_mask=True was refused before lstmcompat's LSTM had it (issue
# 12): now honoured, see test_zero_output_for_mask_is_honoured.
HONOURED_NOW = ("zero_output_for_mask",)
BAD = [(v, c) for v, c in CASES if "expect_error" in c and c["name"] not in HONOURED_NOW]
TOL = {"float32": 1e-6, "float64": 1e-12}


def _ids(cases):
    return [f"keras{v}-{c['name']}" for v, c in cases]


def _built(version: int, case: dict) -> lstmcompat.LSTM:
    entry = case["entry"]
    layer = layer_from_config(entry["class_name"], entry["config"], version)
    weights = [np.asarray(w, case["dtype"]) for w in case["weights"]]
    layer.build((None, None, weights[0].shape[0]))
    layer.set_weights(weights)
    return layer


def test_goldens_cover_both_versions_and_the_cases() -> None:
    assert FILES[2]["keras_version"] == 2 and FILES[3]["keras_version"] == 3
    names = {v: {c["name"] for c in d["cases"]} for v, d in FILES.items()}
    for v in (2, 3):
        assert {"defaults", "hard_sigmoid", "no_bias", "seq_state_backwards",
                "no_unit_forget_bias", "init_reg_constraints", "float64"} <= names[v]


@pytest.mark.parametrize("kernel", [None, "reference"])
@pytest.mark.parametrize(("version", "case"), GOOD, ids=_ids(GOOD))
def test_rebuilt_layer_reproduces_keras(version, case, kernel, force_kernel) -> None:
    force_kernel(kernel)
    layer = _built(version, case)
    x = torch.tensor(np.asarray(case["x"], case["dtype"]))
    outs = layer(x, training=False)
    outs = outs if isinstance(outs, list) else [outs]
    assert len(outs) == len(case["outputs"])
    for i, (got, want) in enumerate(zip(outs, case["outputs"], strict=True)):
        assert got.dtype == getattr(torch, case["dtype"])
        # relu cells grow to ~8: rounding differences scale with the values
        tol = TOL[case["dtype"]] * max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=tol, atol=tol,
                                   err_msg=f"output {i}")


@pytest.mark.parametrize(("version", "case"), GOOD, ids=_ids(GOOD))
def test_config_mapping(version, case) -> None:
    stored = case["entry"]["config"]
    cfg = _built(version, case).get_config()
    for key in ("name", "units", "use_bias", "unit_forget_bias", "return_sequences",
                "return_state", "go_backwards", "stateful", "unroll", "dropout",
                "recurrent_dropout", "trainable"):
        assert cfg[key] == stored[key], key
    if version == 2:
        assert cfg["time_major"] == stored["time_major"]
        assert cfg["implementation"] == stored["implementation"]
        assert cfg["recurrent_activation"] == stored["recurrent_activation"]
    else:
        want = {"hard_sigmoid": "keras3_hard_sigmoid", "silu": "swish"}
        for key in ("activation", "recurrent_activation"):
            assert cfg[key] == want.get(stored[key], stored[key]), key
    for key in ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                "activity_regularizer", "kernel_constraint", "recurrent_constraint",
                "bias_constraint"):
        got, want = cfg[key], stored[key]
        assert (got is None) == (want is None), key
        if want is not None:
            assert got["class_name"] == want["class_name"], key
            for k, v in want["config"].items():
                assert got["config"][k] == pytest.approx(v), (key, k)
    for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
        assert cfg[key]["class_name"] == stored[key]["class_name"], key


def test_hard_sigmoid_keeps_its_meaning_in_each_version() -> None:
    case = {v: next(c for c in FILES[v]["cases"] if c["name"] == "hard_sigmoid")
            for v in (2, 3)}
    assert case[2]["entry"]["config"]["recurrent_activation"] == "hard_sigmoid"
    assert case[3]["entry"]["config"]["recurrent_activation"] == "hard_sigmoid"
    assert _built(2, case[2]).recurrent_activation is _activations.hard_sigmoid
    assert _built(3, case[3]).recurrent_activation is _activations.keras3_hard_sigmoid


@pytest.mark.parametrize(("version", "case"), BAD, ids=_ids(BAD))
def test_configs_that_cannot_be_honoured(version, case) -> None:
    entry = case["entry"]
    with pytest.raises(ValueError, match=f"`{case['expect_error']}`"):
        layer_from_config(entry["class_name"], entry["config"], version)


@pytest.mark.parametrize("name", sorted(FILES[3]["activations"]["by_name"]))
def test_keras3_activation_names_map_to_the_same_math(name) -> None:
    data = FILES[3]["activations"]
    ours = _activations.get(_keras_layers._KERAS3_ACTIVATIONS[name])
    x = torch.tensor(data["x"], requires_grad=True)
    y = ours(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    tol = 3e-6 if name == "mish" else 1e-6  # Eigen's vs torch's tanh (see test_activations)
    want = data["by_name"][name]
    np.testing.assert_allclose(y.detach().numpy(), want["y"], rtol=tol, atol=tol)
    np.testing.assert_allclose(g.numpy(), want["g"], rtol=tol, atol=tol)
    assert set(_keras_layers._KERAS3_ACTIVATIONS) == set(data["by_name"])


def _config(version: int, **changes):
    base = next(c for c in FILES[version]["cases"] if c["name"] == "defaults")
    return {**base["entry"]["config"], **changes}


@pytest.mark.parametrize("version", [2, 3])
def test_unknown_key_is_refused_by_name(version) -> None:
    with pytest.raises(ValueError, match="`go_sideways`"):
        layer_from_config("LSTM", _config(version, go_sideways=True), version)


def test_keras_version_specific_keys() -> None:
    # Keras 3 has no time_major; tf_keras no seed or zero_output_for_mask
    with pytest.raises(ValueError, match="`time_major`"):
        layer_from_config("LSTM", _config(3, time_major=False), 3)
    with pytest.raises(ValueError, match="`seed`"):
        layer_from_config("LSTM", _config(2, seed=3), 2)
    layer = layer_from_config("LSTM", _config(3, seed=3, use_cudnn="auto",
                                              zero_output_for_mask=False), 3)
    assert layer.units == 4
    layer = layer_from_config("LSTM", _config(2, implementation=0,
                                              enable_caching_device=True), 2)
    assert layer.implementation == 1
    layer = layer_from_config("LSTM", _config(3, batch_shape=[2, 5, 3]), 3)
    assert layer.get_config()["batch_input_shape"] == (2, 5, 3)


@pytest.mark.parametrize("value", [
    {"module": "builtins", "class_name": "function", "config": "my_act",
     "registered_name": "function"},
    {"module": "keras.layers", "class_name": "ReLU", "config": {}, "registered_name": None},
    "hard_silu",
])
def test_keras3_activation_without_equivalent(value) -> None:
    with pytest.raises(ValueError, match="`activation`"):
        layer_from_config("LSTM", _config(3, activation=value), 3)


def test_activation_as_function_dict() -> None:
    fn = {"module": "keras.activations", "class_name": "function", "config": "hard_sigmoid",
          "registered_name": "function"}
    layer = layer_from_config("LSTM", _config(3, recurrent_activation=fn), 3)
    assert layer.get_config()["recurrent_activation"] == "keras3_hard_sigmoid"
    layer = layer_from_config("LSTM", _config(2, recurrent_activation=fn), 2)
    assert layer.get_config()["recurrent_activation"] == "hard_sigmoid"


@pytest.mark.parametrize("dtype", [
    "mixed_bfloat16",
    {"module": "keras", "class_name": "QuantizedDTypePolicy",
     "config": {"name": "int8_from_float32", "source_name": "float32"}, "registered_name": None},
    "int32",
])
def test_dtypes_that_cannot_be_honoured(dtype) -> None:
    with pytest.raises(ValueError, match="`dtype`"):
        layer_from_config("LSTM", _config(3, dtype=dtype), 3)


def test_float_dtype_policies() -> None:
    for dtype in ("float64", {"class_name": "FloatDTypePolicy", "config": {"name": "float64"}},
                  {"class_name": "Policy", "config": {"name": "float64"}}):
        assert layer_from_config("LSTM", _config(3, dtype=dtype), 3).dtype == torch.float64


def test_unknown_initializer_regularizer_constraint_are_dropped_with_a_warning() -> None:
    custom = {"module": "my_pkg", "class_name": "MyThing", "config": {},
              "registered_name": "my_pkg>MyThing"}
    for key in ("kernel_initializer", "kernel_regularizer", "bias_constraint"):
        with pytest.warns(UserWarning, match=f"`{key}`.*dropped"):
            layer = layer_from_config("LSTM", _config(3, **{key: custom}), 3)
        default = lstmcompat.LSTM(4).get_config()[key]
        assert layer.get_config()[key] == default


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="`class_name`"):
        layer_from_config("GRU", _config(3), 3)
    with pytest.raises(ValueError, match="`keras_version`"):
        layer_from_config("LSTM", _config(3), 1)
    with pytest.raises(TypeError, match="`config`"):
        layer_from_config("LSTM", [("units", 3)], 3)


# ------------------------------------------------------------------ load_keras_layers

class FakeSource:
    """What the Keras file readers give: layer records and arrays by variable name."""

    def __init__(self, records, arrays, kind="keras_archive"):
        self.path = Path("model.keras")
        self.kind = kind
        self._records, self._arrays = records, arrays

    def keras_layers(self):
        return self._records

    def read(self, name):
        return self._arrays[name]


def _record(version: int, case: dict, name: str):
    entry = case["entry"]
    config = {**entry["config"], "name": name}
    names = tuple(f"{name}/{w}" for w in ("kernel", "recurrent_kernel", "bias"))
    names = names[:len(case["weights"])]
    arrays = {n: np.asarray(w, case["dtype"]) for n, w in zip(names, case["weights"],
                                                             strict=True)}
    return KerasLayer(name, "LSTM", config, names, version), arrays


def _fake(monkeypatch, source):
    monkeypatch.setattr(_keras_layers, "open_source", lambda path: source)


@pytest.mark.parametrize("version", [2, 3])
def test_load_keras_layers_rebuilds_each_lstm(monkeypatch, version) -> None:
    cases = {c["name"]: c for c in FILES[version]["cases"]}
    r1, a1 = _record(version, cases["hard_sigmoid"], "first")
    r2, a2 = _record(version, cases["no_bias"], "second")
    dense = KerasLayer("dense", "Dense", {"units": 2}, ("dense/kernel", "dense/bias"), version)
    _fake(monkeypatch, FakeSource([r2, dense, r1], {**a1, **a2}))
    layers = load_keras_layers("model.keras")
    assert list(layers) == ["second", "first"]  # model order, non-LSTM layers skipped
    for name, record, arrays, case in (("first", r1, a1, cases["hard_sigmoid"]),
                                       ("second", r2, a2, cases["no_bias"])):
        layer = layers[name]
        assert isinstance(layer, lstmcompat.LSTM) and layer.name == name
        for got, wname in zip(layer.get_weights(), record.weights, strict=True):
            assert got.dtype == arrays[wname].dtype
            assert got.tobytes() == arrays[wname].tobytes()  # bit for bit
        out = layer(torch.tensor(np.asarray(case["x"], np.float32)), training=False)
        np.testing.assert_allclose(out.detach().numpy(), case["outputs"][0], atol=1e-6)
    want = "keras3_hard_sigmoid" if version == 3 else "hard_sigmoid"
    assert layers["first"].get_config()["recurrent_activation"] == want


def test_load_keras_layers_skips_unsupported_wrappers_with_a_warning(monkeypatch) -> None:
    case = next(c for c in FILES[3]["cases"] if c["name"] == "defaults")
    r, a = _record(3, case, "lstm")
    bidi = KerasLayer("bidirectional", "Bidirectional", {"layer": {}}, (), 3)
    _fake(monkeypatch, FakeSource([bidi, r], a))
    with pytest.warns(UserWarning, match="'bidirectional' \\(Bidirectional\\) skipped"):
        layers = load_keras_layers("model.keras")
    assert list(layers) == ["lstm"]


def test_load_keras_layers_refuses_weights_only_files(monkeypatch) -> None:
    _fake(monkeypatch, FakeSource(None, {}, kind="keras3_weights"))
    with pytest.raises(ValueError, match="weights-only file.*lstmcompat.restore"):
        load_keras_layers("model.weights.h5")


def test_load_keras_layers_errors(monkeypatch) -> None:
    case = next(c for c in FILES[3]["cases"] if c["name"] == "defaults")
    r, a = _record(3, case, "lstm")
    _fake(monkeypatch, FakeSource([r, r], a))
    with pytest.raises(ValueError, match="two LSTM layers named 'lstm'"):
        load_keras_layers("model.keras")
    short = KerasLayer("lstm", "LSTM", r.config, r.weights[:2], 3)
    _fake(monkeypatch, FakeSource([short], a))
    with pytest.raises(ValueError, match="2 weights"):
        load_keras_layers("model.keras")
    bad = KerasLayer("lstm", "LSTM", {**r.config, "dtype": "mixed_float16"}, r.weights, 3)
    _fake(monkeypatch, FakeSource([bad], a))
    with pytest.raises(ValueError, match="`dtype`"):
        load_keras_layers("model.keras")
    wrong = dict(a, **{"lstm/kernel": np.zeros((3, 8), np.float32)})
    _fake(monkeypatch, FakeSource([r], wrong))
    with pytest.raises(ValueError):
        load_keras_layers("model.keras")


def test_public() -> None:
    assert lstmcompat.load_keras_layers is load_keras_layers
    assert "load_keras_layers" in lstmcompat.__all__
    with pytest.raises(FileNotFoundError):
        lstmcompat.load_keras_layers("/nonexistent/model.keras")


def test_fake_source_matches_the_interface() -> None:
    from lstmcompat._interop import _source

    for attr in ("keras_layers", "read"):
        assert hasattr(_source.Source, attr) and hasattr(FakeSource, attr)


@pytest.mark.parametrize("version", [2, 3])
def test_zero_output_for_mask_is_honoured(version) -> None:
    layer = layer_from_config("LSTM", _config(version, zero_output_for_mask=True,
                                              return_sequences=True), version)
    assert layer.zero_output_for_mask
    out = layer(torch.ones(1, 3, 3), mask=torch.tensor([[True, False, True]]))
    assert torch.equal(out[0, 1], torch.zeros(layer.units))
    assert not layer_from_config("LSTM", _config(version), version).zero_output_for_mask


def test_keras3_zero_output_for_mask_golden_is_honoured() -> None:
    (case,) = [c for v, c in CASES if v == 3 and c["name"] in HONOURED_NOW]
    entry = case["entry"]
    assert layer_from_config(entry["class_name"], entry["config"], 3).zero_output_for_mask
