"""``save`` / ``load``: lstmcompat's own safetensors files (config + weights, no pickle)."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmcompat
from lstmcompat import LSTM, LSTMCell, MultiRNNCell
from lstmcompat._interop import _safetensors
from lstmcompat._interop._safetensors import SafetensorsFile, write_file

needs_package = pytest.mark.skipif(importlib.util.find_spec("safetensors") is None,
                                   reason="the safetensors package is not installed")


def _x(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1)).to(dtype)


def _same_params(a: torch.nn.Module, b: torch.nn.Module) -> None:
    wa, wb = a.weights, b.weights
    assert len(wa) == len(wb)
    for p, q in zip(wa, wb):
        assert p.dtype == q.dtype and p.shape == q.shape
        assert torch.equal(p.detach().contiguous().view(torch.int16), q.detach().contiguous()
                           .view(torch.int16)) if p.dtype == torch.bfloat16 else torch.equal(p, q)


def _round_trip(module, tmp_path, name="m.safetensors"):
    path = tmp_path / name
    lstmcompat.save(module, path)
    return lstmcompat.load(path), path


# ------------------------------------------------------------------------------- LSTM


@pytest.mark.parametrize("kwargs", [
    {},
    {"recurrent_activation": "sigmoid", "return_sequences": True, "return_state": True},
    {"use_bias": False, "time_major": True, "return_sequences": True},
    {"go_backwards": True, "unit_forget_bias": False, "activation": "relu"},
    {"kernel_regularizer": "l2", "kernel_constraint": {"class_name": "MaxNorm",
                                                       "config": {"max_value": 2.0}},
     "dropout": 0.25, "recurrent_dropout": 0.5, "implementation": 2},
])
def test_lstm_round_trip(tmp_path, kwargs):
    layer = LSTM(5, input_shape=(None, 3), **kwargs).eval()
    loaded, path = _round_trip(layer, tmp_path)
    assert type(loaded) is LSTM and loaded.get_config() == layer.get_config()
    _same_params(layer, loaded)
    x = _x(2, 6, 3)
    out, got = layer(x), loaded.eval()(x)
    for a, b in zip(out if isinstance(out, list) else [out], got if isinstance(got, list)
                    else [got]):
        assert torch.equal(a, b)
    assert lstmcompat.list_variables(path) == [
        (n, tuple(p.shape)) for n, p in zip(["kernel", "recurrent_kernel", "bias"],
                                            layer.weights)]


def test_lstm_metadata(tmp_path):
    layer = LSTM(4, recurrent_activation="sigmoid", name="enc")
    layer(_x(2, 3, 7))  # built by a call: batch_input_shape stays None
    path = tmp_path / "l.safetensors"
    lstmcompat.save(layer, path)
    meta = SafetensorsFile(path).metadata
    assert set(meta) == {"format", "format_version", "class", "config", "input_depth", "dtype",
                         "lstmcompat_version"}
    assert meta["format"] == "lstmcompat" and meta["format_version"] == "1"
    assert meta["class"] == "LSTM" and meta["input_depth"] == "7" and meta["dtype"] == "float32"
    assert meta["lstmcompat_version"] == lstmcompat.__version__
    assert json.loads(meta["config"]) == layer.get_config()
    from lstmcompat._interop._source import open_source
    info = open_source(path).module_config()
    assert info["class"] == "LSTM" and info["input_depth"] == 7
    assert info["config"] == layer.get_config()
    loaded = lstmcompat.load(path)
    assert loaded.built and loaded.name == "enc" and loaded.kernel.shape == (7, 16)
    # load_variables gives what get_weights gives
    got = lstmcompat.load_variables(path)
    for a, w in zip(got.values(), layer.get_weights()):
        np.testing.assert_array_equal(a, w)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtypes_bit_for_bit(tmp_path, dtype):
    layer = LSTM(3, input_shape=(None, 2), dtype=dtype)
    loaded, _ = _round_trip(layer, tmp_path)
    assert loaded.dtype == dtype
    _same_params(layer, loaded)
    cell = LSTMCell(3, num_proj=2, dtype=dtype)
    cell.build((None, 4))
    loaded, _ = _round_trip(cell, tmp_path, "c.safetensors")
    assert loaded.dtype == dtype
    _same_params(cell, loaded)


def test_converted_module_keeps_its_dtype(tmp_path):
    layer = LSTM(3, input_shape=(None, 2)).double()
    loaded, _ = _round_trip(layer, tmp_path)
    assert loaded.dtype == torch.float64 and loaded.kernel.dtype == torch.float64
    _same_params(layer, loaded)


def test_stateful_lstm(tmp_path):
    layer = LSTM(3, stateful=True, batch_input_shape=(2, None, 4), recurrent_activation="sigmoid")
    layer(_x(2, 3, 4))  # states now non-zero: not saved (as Keras's save_weights)
    loaded, _ = _round_trip(layer, tmp_path)
    assert loaded.stateful and loaded._batch == 2
    assert all(not s.any() for s in loaded.states)
    layer.reset_states()
    x = _x(2, 5, 4)
    assert torch.equal(layer(x), loaded(x))


def test_unbuilt_lstm_saves_config_only(tmp_path):
    layer = LSTM(6, return_sequences=True)
    loaded, path = _round_trip(layer, tmp_path)
    assert not loaded.built and loaded.get_config() == layer.get_config()
    assert lstmcompat.list_variables(path) == []
    assert "input_depth" not in SafetensorsFile(path).metadata


def test_load_does_not_touch_the_global_rng(tmp_path):
    layer = LSTM(5, input_shape=(None, 3))
    lstmcompat.save(layer, tmp_path / "l")
    state = torch.get_rng_state()
    lstmcompat.load(tmp_path / "l")
    assert torch.equal(state, torch.get_rng_state())


# -------------------------------------------------------------------------- LSTMCell


@pytest.mark.parametrize("kwargs", [
    {},
    {"use_peepholes": True, "cell_clip": 1.5, "num_proj": 3, "proj_clip": 0.5,
     "forget_bias": 0.25},
    {"activation": "relu", "initializer": "ones", "name": "enc_cell"},
    {"activation": torch.tanh, "state_is_tuple": False},
    {"initializer": {"class_name": "Orthogonal", "config": {"gain": 2.0}}, "num_proj": 7},
    {"cell_clip": float("nan")},
])
def test_cell_round_trip(tmp_path, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cell = LSTMCell(4, **kwargs)
    x = _x(2, 5, 3)
    out, state = lstmcompat.dynamic_rnn(cell, x, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # load warns nothing
        loaded, path = _round_trip(cell, tmp_path)
    assert type(loaded) is LSTMCell and loaded.built
    _same_params(cell, loaded)
    out2, state2 = lstmcompat.dynamic_rnn(loaded, x, dtype=torch.float32)
    assert torch.equal(out, out2, ) or (torch.isnan(out).all() and torch.isnan(out2).all())
    names = [n for n, _ in lstmcompat.list_variables(path)]
    expected = ["kernel", "bias"]
    if kwargs.get("use_peepholes"):
        expected += ["w_f_diag", "w_i_diag", "w_o_diag"]
    if kwargs.get("num_proj"):
        expected.append("projection/kernel")
    assert names == expected


def test_cell_initializer_object(tmp_path):
    from lstmcompat._keras.initializers import Orthogonal
    cell = LSTMCell(3, initializer=Orthogonal(gain=0.5))
    cell.build((None, 2))
    loaded, _ = _round_trip(cell, tmp_path)
    assert loaded.get_config()["initializer"]["class_name"] == "Orthogonal"
    _same_params(cell, loaded)


def test_cell_auto_reuse(tmp_path):
    cell = LSTMCell(3, reuse=lstmcompat.AUTO_REUSE)
    loaded, _ = _round_trip(cell, tmp_path)
    assert loaded.get_config()["reuse"] is lstmcompat.AUTO_REUSE


def test_unbuilt_cell(tmp_path):
    loaded, path = _round_trip(LSTMCell(3, num_proj=2), tmp_path)
    assert not loaded.built and loaded.get_config()["num_proj"] == 2
    assert lstmcompat.list_variables(path) == []


# ----------------------------------------------------------------------- MultiRNNCell


def test_multi_round_trip_and_names(tmp_path):
    inner = MultiRNNCell([LSTMCell(3), LSTMCell(2, use_peepholes=True)])
    multi = MultiRNNCell([LSTMCell(4, num_proj=3), inner])
    x = _x(2, 5, 6)
    out, state = lstmcompat.dynamic_rnn(multi, x, dtype=torch.float32)
    loaded, path = _round_trip(multi, tmp_path)
    assert type(loaded) is MultiRNNCell and type(loaded.cells[1]) is MultiRNNCell
    out2, state2 = lstmcompat.dynamic_rnn(loaded, x, dtype=torch.float32)
    assert torch.equal(out, out2)
    assert [n for n, _ in lstmcompat.list_variables(path)] == [
        "cell_0/kernel", "cell_0/bias", "cell_0/projection/kernel",
        "cell_1/cell_0/kernel", "cell_1/cell_0/bias",
        "cell_1/cell_1/kernel", "cell_1/cell_1/bias", "cell_1/cell_1/w_f_diag",
        "cell_1/cell_1/w_i_diag", "cell_1/cell_1/w_o_diag"]
    meta = SafetensorsFile(path).metadata
    assert meta["class"] == "MultiRNNCell" and meta["input_depth"] == "6"
    config = json.loads(meta["config"])
    assert config["state_is_tuple"] is True
    assert [c["class"] for c in config["cells"]] == ["LSTMCell", "MultiRNNCell"]
    assert config["cells"][1]["config"]["cells"][1]["input_depth"] == 3


def test_multi_shared_cell_stored_once(tmp_path):
    shared = LSTMCell(3)
    with pytest.warns(UserWarning):
        multi = MultiRNNCell([shared, shared])
    x = _x(2, 4, 3)
    out, _ = lstmcompat.dynamic_rnn(multi, x, dtype=torch.float32)
    loaded, path = _round_trip(multi, tmp_path)
    assert loaded.cells[0] is loaded.cells[1]
    assert [n for n, _ in lstmcompat.list_variables(path)] == ["cell_0/kernel", "cell_0/bias"]
    assert torch.equal(lstmcompat.dynamic_rnn(loaded, x, dtype=torch.float32)[0], out)


def test_multi_concatenated_state(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        multi = MultiRNNCell([LSTMCell(2, state_is_tuple=False)], state_is_tuple=False)
    multi.cells[0].build((None, 3))
    loaded, _ = _round_trip(multi, tmp_path)
    assert loaded._state_is_tuple is False and loaded.cells[0].built


# -------------------------------------------------------------------------- refusals


def test_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="`module` must be one of LSTM, LSTMCell, MultiRNNCell"):
        lstmcompat.save(torch.nn.LSTM(2, 3), tmp_path / "x")

    class MyLSTM(LSTM):
        pass

    with pytest.raises(TypeError, match="got MyLSTM"):
        lstmcompat.save(MyLSTM(2), tmp_path / "x")
    with pytest.raises(TypeError, match="`path`"):
        lstmcompat.save(LSTM(2), 3)
    assert not any(tmp_path.iterdir())


def _fn_activation(x):
    return x * 2


@pytest.mark.parametrize("make, option", [
    (lambda: LSTM(2, activation=_fn_activation), "activation"),
    (lambda: LSTM(2, recurrent_activation=lambda x: x), "recurrent_activation"),
    (lambda: LSTM(2, kernel_initializer=lambda shape, dtype=None: torch.zeros(shape)),
     "kernel_initializer"),
    (lambda: LSTM(2, bias_regularizer=lambda w: w.sum()), "bias_regularizer"),
    (lambda: LSTM(2, recurrent_constraint=lambda w: w), "recurrent_constraint"),
    (lambda: LSTMCell(2, activation=_fn_activation), "activation"),
    (lambda: LSTMCell(2, initializer=lambda shape, dtype=None: torch.zeros(shape)),
     "initializer"),
    (lambda: MultiRNNCell([LSTMCell(2), LSTMCell(2, activation=_fn_activation)]), "activation"),
])
def test_refuses_unnameable_callables(tmp_path, make, option):
    with pytest.raises(ValueError, match=f"`{option}`"):
        lstmcompat.save(make(), tmp_path / "x")
    assert not any(tmp_path.iterdir())


def test_refuses_meta_weights(tmp_path):
    layer = LSTM(2, input_shape=(None, 3)).to("meta")
    with pytest.raises(ValueError, match="meta"):
        lstmcompat.save(layer, tmp_path / "x")


def test_load_refuses_plain_safetensors(tmp_path):
    write_file(tmp_path / "p", [("kernel", torch.ones(2, 8))], {"foo": "bar"})
    with pytest.raises(ValueError, match="without lstmcompat's metadata"):
        lstmcompat.load(tmp_path / "p")


def _saved(tmp_path, module=None):
    path = tmp_path / "s.safetensors"
    lstmcompat.save(module if module is not None else LSTM(3, input_shape=(None, 2)), path)
    f = SafetensorsFile(path)
    return path, f.metadata, {n: f.tensor(n) for n, _ in f.variables()}


def _rewrite(path, metadata, tensors):
    write_file(path, tensors.items(), metadata)


@pytest.mark.parametrize("change, match", [
    ({"format_version": "2"}, "format version '2'"),
    ({"class": "GRU"}, "unknown class 'GRU'"),
    ({"config": "{"}, "not valid JSON"),
    ({"config": "[1, 2]"}, "rebuild"),
    ({"config": '{"units": "a"}'}, "rebuild"),
    ({"config": '{"units": 3, "nonsense": 1}'}, "rebuild"),
    ({"config": '{"units": 3, "dtype": {"config": 5}}'}, "rebuild"),
    ({"input_depth": "-1"}, "input_depth"),
    ({"input_depth": "1e3"}, "input_depth"),
    ({"input_depth": "99999999999999999999"}, "input_depth"),
    ({"input_depth": "5"}, "shape"),
    ({"class": None}, "no `class`"),
    ({"config": None}, "no `config`"),
])
def test_load_refuses_bad_metadata(tmp_path, change, match):
    path, meta, tensors = _saved(tmp_path)
    for k, v in change.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    _rewrite(path, meta, tensors)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        lstmcompat.load(path)
    assert time.perf_counter() - t0 < 5


def test_load_refuses_huge_declared_config(tmp_path):
    # units and depth the tensors do not hold: refused before any allocation
    path, meta, tensors = _saved(tmp_path)
    config = json.loads(meta["config"])
    config["units"] = 2**40
    config.pop("batch_input_shape")
    meta.update(config=json.dumps(config), input_depth=str(2**40))
    _rewrite(path, meta, tensors)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="shape"):
        lstmcompat.load(path)
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.pop("bias"), "no tensor 'bias'"),
    (lambda t: t.update(extra=torch.ones(1)), "does not use"),
    (lambda t: t.update(bias=torch.ones(12, dtype=torch.float64)), "dtype"),
    (lambda t: t.update(bias=torch.ones(13)), "shape"),
])
def test_load_refuses_tensors_that_do_not_fit(tmp_path, edit, match):
    path, meta, tensors = _saved(tmp_path)
    edit(tensors)
    _rewrite(path, meta, tensors)
    with pytest.raises(ValueError, match=match):
        lstmcompat.load(path)


@pytest.mark.parametrize("cells, match", [
    ('{"cells": [], "state_is_tuple": true}', "non-empty"),
    ('{"cells": [{"same_as": 0}], "state_is_tuple": true}', "earlier cell"),
    ('{"cells": [{"class": "LSTMCell"}], "state_is_tuple": true}', "expected"),
    ('{"cells": [{"class": 3, "config": {}, "input_depth": null}], "state_is_tuple": true}',
     "unknown class"),
    ('{"cells": [{"class": "LSTMCell", "config": {"num_units": 2}, "input_depth": true}], '
     '"state_is_tuple": true}', "input_depth"),
])
def test_load_refuses_bad_multi_configs(tmp_path, cells, match):
    path, meta, tensors = _saved(tmp_path, MultiRNNCell([LSTMCell(2)]))
    meta["config"] = cells
    _rewrite(path, meta, {})
    with pytest.raises(ValueError, match=match):
        lstmcompat.load(path)


def test_load_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        lstmcompat.load(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        lstmcompat.load(tmp_path)
    with pytest.raises(TypeError, match="`path`"):
        lstmcompat.load(None)
    (tmp_path / "junk").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="junk"):
        lstmcompat.load(tmp_path / "junk")


# ---------------------------------------------------------------------- atomic writes


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    good = LSTM(3, input_shape=(None, 2))
    lstmcompat.save(good, path)
    before = path.read_bytes()
    real_encode = _safetensors.encode
    written = {}

    def interrupted_encode(tensors, metadata):
        head, chunks = real_encode(tensors, metadata)

        def chunks_then_interrupt():
            yield chunks[0]  # the header and a first tensor reach the temporary file
            written["temp"] = [p.name for p in tmp_path.iterdir() if p.name != path.name]
            raise KeyboardInterrupt  # as Ctrl-C in the middle of the data

        return head, chunks_then_interrupt()

    monkeypatch.setattr(_safetensors, "encode", interrupted_encode)
    with pytest.raises(KeyboardInterrupt):
        lstmcompat.save(LSTM(50, input_shape=(None, 40)), path)
    assert len(written["temp"]) == 1 and written["temp"][0].startswith(".model.safetensors.")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    _same_params(good, lstmcompat.load(path))


def test_failed_fsync_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m"
    lstmcompat.save(LSTMCell(2), path)
    before = path.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="simulated"):
        lstmcompat.save(LSTM(3, input_shape=(None, 2)), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m"]


def test_save_replaces_atomically_and_leaves_no_temp(tmp_path):
    path = tmp_path / "m"
    lstmcompat.save(LSTM(2, input_shape=(None, 2)), path)
    lstmcompat.save(LSTMCell(3), path)
    assert type(lstmcompat.load(path)) is LSTMCell
    assert os.listdir(tmp_path) == ["m"]


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lstmcompat.save(LSTM(2), tmp_path / "no" / "m")


# ------------------------------------------------------------------ other readers


@needs_package
def test_package_reads_a_saved_module(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file
    cell = LSTMCell(4, num_proj=2, use_peepholes=True)
    cell.build((None, 3))
    path = tmp_path / "c.safetensors"
    lstmcompat.save(cell, path)
    got = load_file(path)
    for (name, _), w in zip(lstmcompat.list_variables(path), cell.weights):
        assert torch.equal(got[name], w.detach())
    with safe_open(path, "pt") as f:
        assert f.metadata()["class"] == "LSTMCell"


@needs_package
def test_module_saved_by_the_package_with_our_metadata_loads(tmp_path):
    """A file another writer produced (the package, in its tensor order) loads the same."""
    from safetensors.torch import save_file
    layer = LSTM(3, input_shape=(None, 2), recurrent_activation="sigmoid")
    path = tmp_path / "m"
    lstmcompat.save(layer, path)
    f = SafetensorsFile(path)
    save_file({n: f.tensor(n) for n, _ in f.variables()}, tmp_path / "p", metadata=f.metadata)
    _same_params(layer, lstmcompat.load(tmp_path / "p"))


# --------------------------------------------------------------------------- fuzzing


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_load(tmp_path, data):
    path = tmp_path / "f.safetensors"
    cell = MultiRNNCell([LSTMCell(3, num_proj=2), LSTMCell(2)])
    cell.cells[0].build((None, 2))
    cell.cells[1].build((None, 2))
    lstmcompat.save(cell, path)
    good = path.read_bytes()
    (n,) = struct.unpack("<Q", good[:8])
    bad = bytearray(good)
    # flips weighted to the header, where the config is
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(8, 8 + n - 1) | st.integers(0, len(good) - 1))
        bad[pos] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(bad))
    t0 = time.perf_counter()
    try:
        lstmcompat.load(path)
    except (ValueError, OSError):
        pass
    assert time.perf_counter() - t0 < 5


def test_exported():
    for name in ("save", "load"):
        assert name in lstmcompat.__all__ and getattr(lstmcompat, name).__doc__


def test_load_refuses_a_config_of_too_many_cells(tmp_path):
    path, meta, _ = _saved(tmp_path, MultiRNNCell([LSTMCell(2)]))
    cell = {"class": "LSTMCell", "config": {"num_units": 2}, "input_depth": None}
    meta["config"] = json.dumps({"cells": [cell] + [{"same_as": 0}] * 20_000,
                                 "state_is_tuple": True})
    _rewrite(path, meta, {})
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="more than 10000 cells"):
        lstmcompat.load(path)
    assert time.perf_counter() - t0 < 5


def test_load_refuses_deeply_nested_cells(tmp_path):
    path, meta, _ = _saved(tmp_path, MultiRNNCell([LSTMCell(2)]))
    text = json.dumps({"class": "LSTMCell", "config": {"num_units": 2}, "input_depth": None})
    for _ in range(3000):  # MultiRNNCell in MultiRNNCell ... (JSON itself may refuse it)
        text = ('{"class": "MultiRNNCell", "input_depth": null, "config": {"cells": ['
                + text + '], "state_is_tuple": true}}')
    meta["config"] = '{"cells": [' + text + '], "state_is_tuple": true}'
    _rewrite(path, meta, {})
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="nest|JSON|recursion"):
        lstmcompat.load(path)
    assert time.perf_counter() - t0 < 5


def test_refuses_custom_initializer_class_naming_the_option(tmp_path):
    from lstmcompat._keras import initializers

    class MyInit(initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return torch.zeros(shape, dtype=dtype)

    with pytest.raises(ValueError, match="`kernel_initializer`.*MyInit"):
        lstmcompat.save(LSTM(2, kernel_initializer=MyInit()), tmp_path / "x")
    with pytest.raises(ValueError, match="`initializer`"):
        lstmcompat.save(LSTMCell(2, initializer=MyInit()), tmp_path / "x")
