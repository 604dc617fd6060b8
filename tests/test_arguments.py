"""Argument handling of both front-ends, against what TensorFlow does.

``goldens/arguments.json`` (written by ``tools/goldens_arguments.py`` with TF
2.21 + tf_keras) records, for each named scenario, the exception type TF raised
or ``null`` when TF accepted the argument. Every scenario has an lstmcompat
counterpart here: either it behaves as TF (same type; TF's
``InvalidArgumentError`` is a ``ValueError``, docs/api.md §4) or it is a listed,
deliberate difference. Each error message must name the argument in backticks.

The memory guard tests run in a subprocess with a timeout and check that the
refusal is fast and allocates nothing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmcompat as L
from lstmcompat import _args

FACTS = json.loads((Path(__file__).parent / "goldens" / "arguments.json").read_text())
TF_TYPES = {"ValueError": ValueError, "TypeError": TypeError, "InvalidArgumentError": ValueError}
X = np.ones((2, 5, 3), "float32")
f32 = torch.float32


def call(layer: L.LSTM, x: object = X, **kw: object) -> object:
    return layer(x, **kw)


def seq(**kw: object) -> list:
    """The counterpart of a tf_keras ``Sequential`` build: the layer builds at construction."""
    return L.LSTM(4, **kw).weights


def run(cell: object, x: object = X, **kw: object) -> object:
    kw.setdefault("dtype", f32)
    return L.dynamic_rnn(cell, x, **kw)


def bidi(**kw: object) -> object:
    return L.bidirectional_dynamic_rnn(L.LSTMCell(4), L.LSTMCell(4), X, dtype=f32, **kw)


def init_returning(value: object) -> Callable:
    return lambda shape, dtype=None, **_: value


def zero_state(batch: object, dtype: object = f32) -> object:
    return L.LSTMCell(4).zero_state(batch, dtype)


def cell_build(shape: object) -> list:
    c = L.LSTMCell(4)
    c.build(shape)
    return c.weights


Scenario = Callable[[], object]

#: Scenarios where lstmcompat does what TF does: name -> (scenario, the argument its
#: error names; None where TF accepts the argument).
SAME: dict[str, tuple[Scenario, str | None]] = {
    "units_np_int64": (lambda: call(L.LSTM(np.int64(4))), None),
    "units_0d_array": (lambda: call(L.LSTM(np.array(4))), None),
    "units_int_tensor": (lambda: call(L.LSTM(torch.tensor(4))), None),
    "units_float": (lambda: call(L.LSTM(2.5)), "units"),
    "units_integral_float": (lambda: call(L.LSTM(4.0)), "units"),
    "units_str": (lambda: call(L.LSTM("4")), "units"),
    "units_none": (lambda: call(L.LSTM(None)), "units"),
    "units_list": (lambda: call(L.LSTM([4])), "units"),
    "input_shape_np_int64": (lambda: seq(input_shape=(None, np.int64(3))), None),
    "input_shape_list": (lambda: seq(input_shape=[None, 3]), None),
    "input_shape_float": (lambda: seq(input_shape=(None, 2.5)), "input_shape"),
    "input_shape_str_entry": (lambda: seq(input_shape=(None, "3")), "input_shape"),
    "input_shape_negative": (lambda: seq(input_shape=(None, -3)), "input_shape"),
    "input_shape_bool_entry": (lambda: seq(input_shape=(None, True)), "input_shape"),
    "input_shape_int": (lambda: seq(input_shape=3), "input_shape"),
    "input_shape_negative_time": (lambda: seq(input_shape=(-1, 3)), "input_shape"),
    "input_dim_negative": (lambda: seq(input_dim=-3), "input_dim"),
    "input_dim_float": (lambda: seq(input_dim=2.5), "input_dim"),
    "input_dim_zero": (lambda: seq(input_dim=0), None),
    "input_length_float": (lambda: seq(input_dim=3, input_length=2.5), "input_length"),
    "input_length_negative": (lambda: seq(input_dim=3, input_length=-1), "input_length"),
    "batch_size_negative": (lambda: seq(input_shape=(None, 3), batch_size=-2), "batch_size"),
    "batch_size_float": (lambda: seq(input_shape=(None, 3), batch_size=2.5), "batch_size"),
    "batch_size_np_int64": (lambda: seq(input_shape=(None, 3), batch_size=np.int64(2)), None),
    "batch_input_shape_float": (lambda: seq(batch_input_shape=(2, None, 3.0)),
                                "batch_input_shape"),
    "dropout_str": (lambda: call(L.LSTM(4, dropout="abc"), training=True), "dropout"),
    "dropout_numeric_str": (lambda: call(L.LSTM(4, dropout="0.5"), training=True), "dropout"),
    "dropout_none": (lambda: call(L.LSTM(4, dropout=None), training=True), "dropout"),
    "dropout_complex": (lambda: call(L.LSTM(4, dropout=1j), training=True), "dropout"),
    "recurrent_dropout_str": (lambda: call(L.LSTM(4, recurrent_dropout="abc"), training=True),
                              "recurrent_dropout"),
    "dropout_np_float32": (lambda: call(L.LSTM(4, dropout=np.float32(0.5)), training=True),
                           None),
    "dropout_negative": (lambda: call(L.LSTM(4, dropout=-1.0), training=True), None),
    "implementation_np_int64": (lambda: call(L.LSTM(4, implementation=np.int64(2))), None),
    "dtype_int": (lambda: call(L.LSTM(4, dtype="int32")), "dtype"),
    "dtype_unknown": (lambda: call(L.LSTM(4, dtype="abc")), "dtype"),
    "from_config_none": (lambda: L.LSTM.from_config(None), "config"),
    "from_config_list": (lambda: L.LSTM.from_config([1]), "config"),
    "initializer_wrong_shape": (lambda: call(L.LSTM(4, kernel_initializer=init_returning(
        torch.zeros(3, 3)))), "kernel_initializer"),
    "initializer_scalar": (lambda: call(L.LSTM(4, kernel_initializer=init_returning(1.0))),
                           "kernel_initializer"),
    "initializer_none": (lambda: call(L.LSTM(4, kernel_initializer=init_returning(None))),
                         "kernel_initializer"),
    "initializer_str": (lambda: call(L.LSTM(4, kernel_initializer=init_returning("abc"))),
                        "kernel_initializer"),
    "initializer_numpy": (lambda: call(L.LSTM(4, kernel_initializer=init_returning(
        np.zeros((3, 16))))), None),
    "zero_steps": (lambda: call(L.LSTM(4), np.ones((2, 0, 3), "float32")), "inputs"),
    "zero_steps_sequences": (lambda: call(L.LSTM(4, return_sequences=True),
                                          np.ones((2, 0, 3), "float32")), "inputs"),
    "zero_batch": (lambda: call(L.LSTM(4), np.ones((0, 5, 3), "float32")), None),
    "zero_features": (lambda: call(L.LSTM(4), np.ones((2, 5, 0), "float32")), None),
    "initial_state_float64": (lambda: call(L.LSTM(4), initial_state=[
        torch.zeros(2, 4, dtype=torch.float64)] * 2), "initial_state"),
    "initial_state_int32": (lambda: call(L.LSTM(4), initial_state=[
        torch.zeros(2, 4, dtype=torch.int32)] * 2), "initial_state"),
    "cell_num_units_np_int64": (lambda: run(L.LSTMCell(np.int64(4))), None),
    "cell_num_units_np_int32": (lambda: run(L.LSTMCell(np.int32(4))), None),
    "cell_num_units_int_tensor": (lambda: run(L.LSTMCell(torch.tensor(4))), None),
    "cell_num_units_float": (lambda: run(L.LSTMCell(2.5)), "num_units"),
    "cell_num_units_integral_float": (lambda: run(L.LSTMCell(4.0)), "num_units"),
    "cell_num_units_str": (lambda: run(L.LSTMCell("4")), "num_units"),
    "cell_num_units_negative": (lambda: run(L.LSTMCell(-1)), "num_units"),
    "cell_num_units_none": (lambda: run(L.LSTMCell(None)), "num_units"),
    "cell_num_proj_np_int64": (lambda: run(L.LSTMCell(4, num_proj=np.int64(2))), None),
    "cell_num_proj_float": (lambda: run(L.LSTMCell(4, num_proj=2.5)), "num_proj"),
    "cell_num_proj_zero": (lambda: run(L.LSTMCell(4, num_proj=0)), "num_proj"),
    "cell_num_proj_negative": (lambda: run(L.LSTMCell(4, num_proj=-1)), "num_proj"),
    "cell_num_proj_str": (lambda: run(L.LSTMCell(4, num_proj="2")), "num_proj"),
    "cell_num_proj_bool": (lambda: run(L.LSTMCell(4, num_proj=True)), "num_proj"),
    "cell_clip_str": (lambda: run(L.LSTMCell(4, cell_clip="abc")), "cell_clip"),
    "cell_clip_list": (lambda: run(L.LSTMCell(4, cell_clip=[1.0])), "cell_clip"),
    "cell_clip_np_float32": (lambda: run(L.LSTMCell(4, cell_clip=np.float32(1.0))), None),
    "proj_clip_str": (lambda: run(L.LSTMCell(4, num_proj=2, proj_clip="abc")), "proj_clip"),
    "forget_bias_none": (lambda: run(L.LSTMCell(4, forget_bias=None)), "forget_bias"),
    "forget_bias_str": (lambda: run(L.LSTMCell(4, forget_bias="abc")), "forget_bias"),
    "forget_bias_list": (lambda: run(L.LSTMCell(4, forget_bias=[1.0, 2.0])), "forget_bias"),
    "forget_bias_np_float32": (lambda: run(L.LSTMCell(4, forget_bias=np.float32(0.5))), None),
    "cell_dtype_int": (lambda: L.LSTMCell(4, dtype=torch.int32), "dtype"),
    "cell_dtype_unknown": (lambda: L.LSTMCell(4, dtype="abc"), "dtype"),
    "cell_build_negative": (lambda: cell_build((None, -3)), "input_shape"),
    "cell_build_zero": (lambda: cell_build((None, 0)), None),
    "zero_state_negative": (lambda: zero_state(-1), "batch_size"),
    "zero_state_zero": (lambda: zero_state(0), None),
    "zero_state_float": (lambda: zero_state(2.5), "batch_size"),
    "zero_state_integral_float": (lambda: zero_state(2.0), "batch_size"),
    "zero_state_np_int64": (lambda: zero_state(np.int64(2)), None),
    "zero_state_int_tensor": (lambda: zero_state(torch.tensor(2)), None),
    "zero_state_str": (lambda: zero_state("2"), "batch_size"),
    "zero_state_none": (lambda: zero_state(None), "batch_size"),
    "zero_state_dtype_none": (lambda: zero_state(2, None), "dtype"),
    "zero_state_dtype_unknown": (lambda: zero_state(2, "abc"), "dtype"),
    "seq_len_negative": (lambda: run(L.LSTMCell(4), sequence_length=[5, -1]), None),
    "seq_len_float": (lambda: run(L.LSTMCell(4), sequence_length=[2.5, 3.0]), None),
    "seq_len_above_time": (lambda: run(L.LSTMCell(4), sequence_length=[6, 7]), None),
    "seq_len_bool": (lambda: run(L.LSTMCell(4), sequence_length=np.array([True, False])), None),
    "seq_len_scalar": (lambda: run(L.LSTMCell(4), sequence_length=5), "sequence_length"),
    "seq_len_wrong_size": (lambda: run(L.LSTMCell(4), sequence_length=[5]), "sequence_length"),
    "bidi_seq_len_negative": (lambda: bidi(sequence_length=[5, -1]), "sequence_length"),
    "bidi_seq_len_float": (lambda: bidi(sequence_length=[2.5, 3.0]), "sequence_length"),
    "dynamic_dtype_unknown": (lambda: run(L.LSTMCell(4), dtype="abc"), "dtype"),
    "dynamic_dtype_int": (lambda: run(L.LSTMCell(4), dtype=torch.int32), "floating point"),
    "dynamic_not_a_cell": (lambda: run(3), "cell"),
    "dynamic_zero_batch": (lambda: run(L.LSTMCell(4), np.ones((0, 5, 3), "float32")), None),
    "dynamic_zero_steps": (lambda: run(L.LSTMCell(4), np.ones((2, 0, 3), "float32")), None),
    # TF's exact message (tests/tf1 compares it), which says what is missing.
    "multi_empty_tuple": (lambda: L.MultiRNNCell(()), "at least one cell"),
    "multi_none": (lambda: L.MultiRNNCell(None), "at least one cell"),
    "multi_iterator": (lambda: L.MultiRNNCell(iter([L.LSTMCell(4)])), "cells"),
}

#: Deliberate differences: name -> (scenario, our exception type, the argument named,
#: why). TF's own outcome is in the facts file; the test checks that it is still what
#: the reason says.
DIFFERENT: dict[str, tuple[Scenario, type[Exception], str, str]] = {
    "units_bool": (lambda: call(L.LSTM(True)), TypeError, "units",
                   "a bool is not a size; TF's ValueError comes from a failed conversion"),
    "dropout_nan": (lambda: L.LSTM(4, dropout=float("nan")), ValueError, "dropout",
                    "TF turns NaN into 0 silently"),
    "implementation_float": (lambda: L.LSTM(4, implementation=1.0), TypeError,
                             "implementation", "TF accepts any value and ignores it"),
    "implementation_3": (lambda: L.LSTM(4, implementation=3), ValueError, "implementation",
                         "TF accepts any value and ignores it"),
    "cell_num_units_zero": (lambda: L.LSTMCell(0), ValueError, "num_units",
                            "TF builds a cell with 0 outputs"),
    "cell_num_units_bool": (lambda: L.LSTMCell(True), TypeError, "num_units",
                            "TF reads True as 1"),
    "forget_bias_bool": (lambda: L.LSTMCell(4, forget_bias=True), ValueError, "forget_bias",
                         "TF reads True as 1.0"),
    "cell_build_float": (lambda: cell_build((None, 2.5)), TypeError, "input_shape",
                         "TF's legacy build turns the tuple into an unknown shape "
                         "(ValueError); a float dimension is a TypeError in TensorShape"),
    "cell_build_np_int64": (lambda: cell_build((None, np.int64(3))), type(None), "",
                            "accepted: TF's legacy build fails on NumPy integers "
                            "(ValueError) that TensorShape accepts everywhere else"),
    "zero_state_bool": (lambda: zero_state(True), TypeError, "batch_size",
                        "TF reads True as 1"),
    "seq_len_str": (lambda: run(L.LSTMCell(4), sequence_length=["a", "b"]), TypeError,
                    "sequence_length", "TF raises its own UnimplementedError"),
    "multi_not_cells": (lambda: L.MultiRNNCell([1]), TypeError, "MultiRNNCell",
                        "TF accepts the list and fails when the stack runs"),
}

#: TF's recorded outcome for each deliberate difference.
TF_OUTCOME = {
    "units_bool": "ValueError", "dropout_nan": None, "implementation_float": None,
    "implementation_3": None, "cell_num_units_zero": None, "cell_num_units_bool": None,
    "forget_bias_bool": None, "cell_build_float": "ValueError",
    "cell_build_np_int64": "ValueError", "zero_state_bool": None,
    "seq_len_str": "UnimplementedError", "multi_not_cells": None,
}


def test_every_recorded_case_is_checked() -> None:
    recorded = sorted(k for k in FACTS if not k.startswith("_"))
    assert sorted([*SAME, *DIFFERENT]) == recorded
    assert not set(SAME) & set(DIFFERENT)


@pytest.mark.parametrize("name", sorted(SAME))
def test_same_outcome_as_tensorflow(name: str) -> None:
    scenario, arg = SAME[name]
    tf_type = FACTS[name]["type"]
    if tf_type is None:
        assert arg is None
        scenario()
        return
    with pytest.raises(TF_TYPES[tf_type]) as info:
        scenario()
    message = str(info.value)
    assert (f"`{arg}`" if arg.isidentifier() else arg) in message, message


@pytest.mark.parametrize("name", sorted(DIFFERENT))
def test_deliberate_differences(name: str) -> None:
    scenario, our_type, arg, _why = DIFFERENT[name]
    assert FACTS[name]["type"] == TF_OUTCOME[name]
    if our_type is type(None):
        scenario()
        return
    with pytest.raises(our_type) as info:
        scenario()
    assert arg in str(info.value)


# ------------------------------------------------------------------ accepted values work
def test_integer_likes_give_the_same_layer_as_ints() -> None:
    for units in (np.int64(4), np.int32(4), torch.tensor(4), np.array(4)):
        layer = L.LSTM(units, input_shape=(None, np.int64(3)), batch_size=torch.tensor(2))
        assert layer.units == 4 and type(layer.units) is int
        assert layer.batch_input_shape == (2, None, 3)
        assert all(type(d) in (int, type(None)) for d in layer.batch_input_shape)
        assert tuple(layer.kernel.shape) == (3, 16)
        assert json.dumps(layer.get_config())  # plain ints: the config serializes
    cell = L.LSTMCell(np.int64(4), num_proj=torch.tensor(2))
    assert cell.state_size == (4, 2) and type(cell.output_size) is int
    st = cell.zero_state(np.int64(3), f32)
    assert tuple(st.c.shape) == (3, 4) and tuple(st.h.shape) == (3, 2)


def test_shape_entries_are_not_truncated() -> None:
    """``input_shape=(None, 2.5)`` once built 2 features silently."""
    with pytest.raises(TypeError, match="`input_shape`.*2.5"):
        L.LSTM(4, input_shape=(None, 2.5))


def test_zero_features_and_zero_batch_run() -> None:
    layer = L.LSTM(4, input_dim=0)
    assert tuple(layer.kernel.shape) == (0, 16)
    assert tuple(layer(np.ones((2, 5, 0), "float32")).shape) == (2, 4)
    assert tuple(L.LSTM(4)(np.ones((0, 5, 3), "float32")).shape) == (0, 4)


def test_rates_are_clamped_as_keras() -> None:
    assert L.LSTM(4, dropout=2).dropout == 1.0
    assert L.LSTM(4, recurrent_dropout=-0.5).recurrent_dropout == 0.0
    assert L.LSTM(4, dropout=np.float32(0.25)).dropout == 0.25
    assert L.LSTM(4, dropout=torch.tensor(0.5)).dropout == 0.5


def test_cell_numbers_are_floats() -> None:
    cell = L.LSTMCell(4, cell_clip=np.float32(1.5), proj_clip=torch.tensor(2.0), num_proj=2,
                      forget_bias=np.int64(2))
    cfg = cell.get_config()
    assert (cfg["cell_clip"], cfg["proj_clip"], cfg["forget_bias"]) == (1.5, 2.0, 2.0)
    assert all(type(cfg[k]) is float for k in ("cell_clip", "proj_clip", "forget_bias"))


def test_sequence_lengths_truncate_as_tf_casts() -> None:
    cell = L.LSTMCell(4)
    x = torch.randn(2, 5, 3)
    out_f, st_f = L.dynamic_rnn(cell, x, sequence_length=[2.7, 3.2], dtype=f32)
    out_i, st_i = L.dynamic_rnn(cell, x, sequence_length=[2, 3], dtype=f32)
    assert torch.equal(out_f, out_i) and torch.equal(st_f.h, st_i.h)
    out_n, st_n = L.dynamic_rnn(cell, x, sequence_length=[-4, 3], dtype=f32)
    out_0, st_0 = L.dynamic_rnn(cell, x, sequence_length=[0, 3], dtype=f32)
    assert torch.equal(out_n, out_0) and torch.equal(st_n.c, st_0.c)


# ------------------------------------------------------------------------ more bad values
def _raises(exc: type[Exception], arg: str, fn: Scenario) -> None:
    with pytest.raises(exc) as info:
        fn()
    assert f"`{arg}`" in str(info.value), str(info.value)


BAD: dict[str, tuple[type[Exception], str, Scenario]] = {
    "keras_units_zero": (ValueError, "units", lambda: L.LSTM(0)),
    "keras_units_float_tensor": (TypeError, "units", lambda: L.LSTM(torch.tensor(4.0))),
    "keras_units_vector_tensor": (TypeError, "units", lambda: L.LSTM(torch.tensor([4]))),
    "keras_units_np_bool": (TypeError, "units", lambda: L.LSTM(np.True_)),
    "keras_batch_input_shape_ndim": (ValueError, "batch_input_shape",
                                     lambda: L.LSTM(4, batch_input_shape=(2, 3))),
    "keras_batch_input_shape_str": (TypeError, "batch_input_shape",
                                    lambda: L.LSTM(4, batch_input_shape="abc")),
    "keras_input_shape_dict": (TypeError, "input_shape",
                               lambda: L.LSTM(4, input_shape={"a": 1})),
    "keras_build_float": (TypeError, "input_shape", lambda: L.LSTM(4).build((2, 5, 2.5))),
    "keras_build_negative": (ValueError, "input_shape", lambda: L.LSTM(4).build((2, 5, -1))),
    "keras_recurrent_dropout_none": (TypeError, "recurrent_dropout",
                                     lambda: L.LSTM(4, recurrent_dropout=None)),
    "keras_dropout_bool": (TypeError, "dropout", lambda: L.LSTM(4, dropout=True)),
    "keras_dropout_vector": (TypeError, "dropout", lambda: L.LSTM(4, dropout=[0.5])),
    "keras_implementation_str": (TypeError, "implementation",
                                 lambda: L.LSTM(4, implementation="1")),
    "keras_dtype_complex": (ValueError, "dtype", lambda: L.LSTM(4, dtype=torch.complex64)),
    "keras_recurrent_initializer_shape": (ValueError, "recurrent_initializer", lambda: L.LSTM(
        4, input_dim=3, recurrent_initializer=init_returning(torch.zeros(4, 4)))),
    "keras_bias_initializer_object": (TypeError, "bias_initializer", lambda: L.LSTM(
        4, input_dim=3, bias_initializer=init_returning(object()))),
    "keras_initializer_complex": (TypeError, "kernel_initializer", lambda: L.LSTM(
        4, input_dim=3, kernel_initializer=init_returning(torch.zeros(3, 16,
                                                                      dtype=torch.complex64)))),
    "keras_from_config_str": (TypeError, "config", lambda: L.LSTM.from_config("units")),
    "keras_initial_state_numpy_f64": (ValueError, "initial_state", lambda: call(
        L.LSTM(4), initial_state=[np.zeros((2, 4))] * 2)),
    "keras_initial_state_not_a_list": (TypeError, "initial_state", lambda: call(
        L.LSTM(4), initial_state=3)),
    "cell_proj_clip_none_num_proj_str": (TypeError, "num_proj",
                                         lambda: L.LSTMCell(4, num_proj="a", proj_clip=1.0)),
    "cell_clip_complex": (TypeError, "cell_clip", lambda: L.LSTMCell(4, cell_clip=1j)),
    "cell_clip_vector_tensor": (TypeError, "cell_clip",
                                lambda: L.LSTMCell(4, cell_clip=torch.ones(2))),
    "cell_from_config_none": (TypeError, "config", lambda: L.LSTMCell.from_config(None)),
    "cell_build_str": (TypeError, "input_shape", lambda: L.LSTMCell(4).build("abc")),
    "cell_build_bool": (TypeError, "input_shape", lambda: L.LSTMCell(4).build((None, True))),
    "cell_initializer_wrong_shape": (ValueError, "initializer", lambda: L.LSTMCell(
        4, initializer=init_returning(torch.zeros(2, 2))).build((None, 3))),
    "cell_initializer_str": (TypeError, "initializer", lambda: L.LSTMCell(
        4, initializer=init_returning("abc")).build((None, 3))),
    "graph_initializer_wrong_shape": (ValueError, "initializer", lambda: _in_graph(
        lambda: L.LSTMCell(4, initializer=init_returning(torch.zeros(2, 2))).build((None, 3)))),
    "get_initial_state_float_batch": (TypeError, "batch_size", lambda: L.LSTMCell(
        4).get_initial_state(batch_size=2.5, dtype=f32)),
    "multi_zero_state_negative": (ValueError, "batch_size", lambda: L.MultiRNNCell(
        [L.LSTMCell(4), L.LSTMCell(3)]).zero_state(-1, f32)),
    "multi_zero_state_dtype_none": (TypeError, "dtype", lambda: L.MultiRNNCell(
        [L.LSTMCell(4)]).zero_state(2, None)),
    "seq_len_nan": (ValueError, "sequence_length",
                    lambda: run(L.LSTMCell(4), sequence_length=[float("nan"), 2])),
    "seq_len_inf": (ValueError, "sequence_length",
                    lambda: run(L.LSTMCell(4), sequence_length=torch.tensor([math.inf, 2]))),
    "seq_len_complex": (TypeError, "sequence_length",
                        lambda: run(L.LSTMCell(4), sequence_length=[1j, 2])),
    "seq_len_ragged": (ValueError, "sequence_length",
                       lambda: run(L.LSTMCell(4), sequence_length=[[1], [2, 3]])),
    "static_seq_len_str": (TypeError, "sequence_length", lambda: L.static_rnn(
        L.LSTMCell(4), list(torch.ones(5, 2, 3)), dtype=f32, sequence_length=["a", "b"])),
    "bidi_seq_len_bool": (ValueError, "sequence_length",
                          lambda: bidi(sequence_length=np.array([True, True]))),
}


def _in_graph(fn: Scenario) -> object:
    with L.Graph():
        return fn()


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_argument_names_itself(name: str) -> None:
    exc, arg, fn = BAD[name]
    _raises(exc, arg, fn)


def test_message_format() -> None:
    with pytest.raises(TypeError) as info:
        _args.positive_int(2.5, "units")
    assert str(info.value) == "`units` must be a positive integer, got 2.5 (float)."
    with pytest.raises(ValueError) as info:
        _args.positive_int(-3, "units")
    assert str(info.value) == "`units` must be a positive integer, got -3."
    assert _args.dimension(0, "input_dim") == 0 and _args.dimension(None, "input_dim") is None
    assert _args.shape(torch.Size([2, 3]), "s") == (2, 3)
    assert _args.shape(np.array([2, 3]), "s") == (2, 3)


# ------------------------------------------------------------------- devices and dtypes
def meta(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape, device="meta")


DEVICE_CASES: dict[str, tuple[str, Scenario]] = {
    "keras_meta_initial_state": ("initial_state", lambda: call(
        L.LSTM(4), initial_state=[meta(2, 4), meta(2, 4)])),
    "keras_meta_inputs_unbuilt": ("inputs", lambda: L.LSTM(4)(meta(2, 5, 3))),
    "keras_meta_inputs_built": ("inputs", lambda: L.LSTM(4, input_dim=3)(meta(2, 5, 3))),
    "keras_meta_mask": ("mask", lambda: call(L.LSTM(4), mask=torch.ones(2, 5, device="meta"))),
    "keras_meta_reset_states": ("states", lambda: L.LSTM(
        4, stateful=True, batch_input_shape=(2, None, 3)).reset_states([meta(2, 4)] * 2)),
    "tf1_meta_initial_state": ("initial_state", lambda: L.dynamic_rnn(
        L.LSTMCell(4), X, initial_state=L.LSTMStateTuple(meta(2, 4), meta(2, 4)))),
    "tf1_meta_step_state": ("state", lambda: L.LSTMCell(4)(
        torch.ones(2, 3), L.LSTMStateTuple(meta(2, 4), meta(2, 4)))),
    "tf1_meta_inputs": ("inputs", lambda: run(L.LSTMCell(4), meta(2, 5, 3))),
    "tf1_inputs_elsewhere_than_weights": ("inputs", lambda: _meta_cell()(
        torch.ones(2, 3), L.LSTMStateTuple(torch.zeros(2, 4), torch.zeros(2, 4)))),
    "tf1_meta_sequence_length": ("sequence_length", lambda: run(
        L.LSTMCell(4), sequence_length=torch.ones(2, device="meta"))),
}


def _meta_cell() -> L.LSTMCell:
    cell = L.LSTMCell(4)
    cell.build((None, 3))
    return cell.to("meta")


@pytest.mark.parametrize("name", sorted(DEVICE_CASES))
def test_meta_and_misplaced_tensors_are_refused(name: str) -> None:
    arg, fn = DEVICE_CASES[name]
    _raises(ValueError, arg, fn)


def test_a_layer_on_the_meta_device_computes_shapes() -> None:
    """Inputs with data move to a meta layer (as they move to a CUDA one): shapes only."""
    layer = L.LSTM(4, input_dim=3, return_sequences=True).to("meta")
    for x in (X, torch.ones(2, 5, 3)):
        out = layer(x)
        assert out.device.type == "meta" and tuple(out.shape) == (2, 5, 4)


def test_states_of_the_layer_dtype_or_lists_are_accepted() -> None:
    layer = L.LSTM(4, input_dim=3)
    a = layer(X, initial_state=[torch.zeros(2, 4), torch.zeros(2, 4)])
    b = layer(X, initial_state=[[[0.0] * 4] * 2, [[0.0] * 4] * 2])  # lists take the layer dtype
    c = layer(X, initial_state=[np.zeros((2, 4), "float32")] * 2)
    assert torch.equal(a, b) and torch.equal(a, c)


# ------------------------------------------------------------------------ memory guard
GUARD_CASES = {
    "keras_units": "L.LSTM(10**8, input_dim=8)",
    "keras_units_on_call": "L.LSTM(10**8)(x)",
    "keras_features": "L.LSTM(4, input_dim=10**12)",
    "keras_overflow": "L.LSTM(2**62, input_dim=3)",
    "keras_stateful_batch": "L.LSTM(4, stateful=True, batch_input_shape=(10**12, None, 3))",
    "cell_build": "L.LSTMCell(10**8).build((None, 3))",
    "cell_overflow": "L.LSTMCell(2**70).build((None, 3))",
    "cell_num_proj": "L.LSTMCell(4, num_proj=10**12).build((None, 3))",
    "cell_dynamic_rnn": "L.dynamic_rnn(L.LSTMCell(10**8), x, dtype='float32')",
    "cell_static_rnn": "L.static_rnn(L.LSTMCell(10**8), [x[:, 0]], dtype='float32')",
    "cell_graph": "graph_case()",
    "zero_state": "L.LSTMCell(4).zero_state(10**15, torch.float32)",
    "multi_zero_state": "L.MultiRNNCell([L.LSTMCell(4)] * 2).zero_state(10**15, torch.float32)",
}

#: Runs every case in one fresh process (a fresh peak RSS to compare with) and
#: prints one JSON line per case: refused?, seconds, peak RSS growth (KiB), message.
_GUARD_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np, torch
    import lstmcompat as L
    from lstmcompat._args import AllocationTooLargeError
    x = np.ones((2, 5, 3), "float32")

    def graph_case():
        with L.Graph():
            L.dynamic_rnn(L.LSTMCell(10**8), x, dtype="float32")

    for name, code in json.loads(sys.argv[1]).items():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        result = {"name": name, "refused": False, "both": False, "message": ""}
        try:
            eval(code)
        except AllocationTooLargeError as e:
            result.update(refused=True, message=str(e),
                          both=isinstance(e, ValueError) and isinstance(e, MemoryError))
        result["seconds"] = time.perf_counter() - start
        result["grown_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(json.dumps(result), flush=True)
""")


@pytest.fixture(scope="module")
def guard_results() -> dict[str, dict]:
    proc = subprocess.run([sys.executable, "-c", _GUARD_SCRIPT, json.dumps(GUARD_CASES)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["name"]: r for r in results}


@pytest.mark.skipif(sys.platform == "win32", reason="resource (peak RSS) is POSIX-only")
@pytest.mark.parametrize("name", sorted(GUARD_CASES))
def test_absurd_sizes_fail_fast_without_allocating(name: str, guard_results: dict) -> None:
    r = guard_results[name]
    assert r["refused"] and r["both"], r
    assert r["seconds"] < 1.0, r
    assert r["grown_kib"] < 50 * 1024, r  # ru_maxrss is in KiB on Linux
    assert "bytes" in r["message"] and "nothing was allocated" in r["message"]


def test_guard_compares_with_the_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_args, "memory_limit", lambda device=None: 10**6)
    layer = L.LSTM(100, input_dim=100)  # (100 + 100 + 1) * 400 * 4 bytes = 321600
    assert tuple(layer.kernel.shape) == (100, 400)
    with pytest.raises(MemoryError) as info:  # (10 + 1000 + 1) * 4000 * 4 bytes
        L.LSTM(1000, input_dim=10)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "16176000 bytes" in message and "1000000 bytes" in message
    assert "kernel (10, 4000)" in message and "recurrent_kernel (1000, 4000)" in message
    with pytest.raises(ValueError, match="num_units`=1000"):
        L.LSTMCell(1000).build((None, 10))
    L.LSTMCell(100).build((None, 100))
    with pytest.raises(MemoryError, match="batch_size`=100000"):
        L.LSTMCell(4).zero_state(100_000, f32)


def test_guard_without_a_known_memory_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the memory size cannot be read, only sizes no tensor can have are refused."""
    monkeypatch.setattr(_args, "memory_limit", lambda device=None: None)
    with pytest.raises(MemoryError, match="largest size a tensor can have"):
        L.LSTM(2**62, input_dim=3)
    assert tuple(L.LSTM(4, input_dim=3).kernel.shape) == (3, 16)


def test_memory_limit_is_read() -> None:
    limit = _args.memory_limit()
    if sys.platform.startswith("linux"):
        assert isinstance(limit, int) and limit > 2**20
    assert _args.memory_limit("meta") is None


@pytest.mark.parametrize("kw", [dict(cell_clip=float("nan")), dict(forget_bias=float("nan")),
                                dict(num_proj=2, proj_clip=float("nan"))])
def test_nan_numbers_tensorflow_accepts_are_accepted(kw: dict) -> None:
    """TF takes a NaN clip bound or forget bias (its formula makes every result NaN)."""
    cell = L.LSTMCell(3, **kw)
    out, _ = L.dynamic_rnn(cell, torch.randn(2, 4, 5), dtype=torch.float32)
    assert torch.isnan(out).all()
