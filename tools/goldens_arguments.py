"""Record how TensorFlow treats unusual or bad arguments: ``tests/goldens/arguments.json``.

Run with the reference TensorFlow (never a dependency of the library or its tests)::

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_arguments.py

Each case runs one scenario in eager mode (``tf.compat.v1.keras.layers.LSTM``
through a ``Sequential`` model or a call, ``tf.compat.v1.nn.rnn_cell.LSTMCell``
through ``dynamic_rnn``, since TF checks most arguments only when it builds or
runs) and records ``{"type": <exception class name or null>, "message": <first
250 characters>}``. ``tests/test_arguments.py`` runs the lstmcompat counterpart
of every case (same name) and checks the same outcome (TF's
``InvalidArgumentError`` is a ``ValueError`` there) or a documented deliberate
difference.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

v1 = tf.compat.v1
LSTM = v1.keras.layers.LSTM
Cell = v1.nn.rnn_cell.LSTMCell
OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "arguments.json"
X = np.ones((2, 5, 3), "float32")


def seq(**kw: object) -> object:
    """A Sequential model builds the layer from its shape arguments."""
    return tf_keras.Sequential([LSTM(4, **kw)]).weights


def call(layer: object, x: object = X, **kw: object) -> object:
    return layer(x, **kw)


def run(cell: object, x: object = X, **kw: object) -> object:
    kw.setdefault("dtype", tf.float32)
    return v1.nn.dynamic_rnn(cell, x, **kw)


def bidi(**kw: object) -> object:
    return v1.nn.bidirectional_dynamic_rnn(Cell(4), Cell(4), X, dtype=tf.float32, **kw)


def init_returning(value: object) -> Callable:
    return lambda shape, dtype=None, **_: value


def zero_state(batch: object, dtype: object = tf.float32) -> object:
    return Cell(4).zero_state(batch, dtype)


def cell_build(shape: object) -> object:
    c = Cell(4)
    c.build(shape)
    return c.weights


S24 = tf.zeros((2, 4))
CASES: dict[str, Callable[[], object]] = {
    # -- Keras LSTM: units
    "units_np_int64": lambda: call(LSTM(np.int64(4))),
    "units_0d_array": lambda: call(LSTM(np.array(4))),
    "units_int_tensor": lambda: call(LSTM(tf.constant(4))),
    "units_float": lambda: call(LSTM(2.5)),
    "units_integral_float": lambda: call(LSTM(4.0)),
    "units_str": lambda: call(LSTM("4")),
    "units_none": lambda: call(LSTM(None)),
    "units_list": lambda: call(LSTM([4])),
    "units_bool": lambda: call(LSTM(True)),
    # -- Keras LSTM: shape arguments
    "input_shape_np_int64": lambda: seq(input_shape=(None, np.int64(3))),
    "input_shape_list": lambda: seq(input_shape=[None, 3]),
    "input_shape_float": lambda: seq(input_shape=(None, 2.5)),
    "input_shape_str_entry": lambda: seq(input_shape=(None, "3")),
    "input_shape_negative": lambda: seq(input_shape=(None, -3)),
    "input_shape_bool_entry": lambda: seq(input_shape=(None, True)),
    "input_shape_int": lambda: seq(input_shape=3),
    "input_shape_negative_time": lambda: seq(input_shape=(-1, 3)),
    "input_dim_negative": lambda: seq(input_dim=-3),
    "input_dim_float": lambda: seq(input_dim=2.5),
    "input_dim_zero": lambda: seq(input_dim=0),
    "input_length_float": lambda: seq(input_dim=3, input_length=2.5),
    "input_length_negative": lambda: seq(input_dim=3, input_length=-1),
    "batch_size_negative": lambda: seq(input_shape=(None, 3), batch_size=-2),
    "batch_size_float": lambda: seq(input_shape=(None, 3), batch_size=2.5),
    "batch_size_np_int64": lambda: seq(input_shape=(None, 3), batch_size=np.int64(2)),
    "batch_input_shape_float": lambda: seq(batch_input_shape=(2, None, 3.0)),
    # -- Keras LSTM: rates, implementation, dtype
    "dropout_str": lambda: call(LSTM(4, dropout="abc"), training=True),
    "dropout_numeric_str": lambda: call(LSTM(4, dropout="0.5"), training=True),
    "dropout_none": lambda: call(LSTM(4, dropout=None), training=True),
    "dropout_complex": lambda: call(LSTM(4, dropout=1j), training=True),
    "recurrent_dropout_str": lambda: call(LSTM(4, recurrent_dropout="abc"), training=True),
    "dropout_np_float32": lambda: call(LSTM(4, dropout=np.float32(0.5)), training=True),
    "dropout_negative": lambda: call(LSTM(4, dropout=-1.0), training=True),
    "dropout_nan": lambda: call(LSTM(4, dropout=float("nan")), training=True),
    "implementation_float": lambda: call(LSTM(4, implementation=1.0)),
    "implementation_3": lambda: call(LSTM(4, implementation=3)),
    "implementation_np_int64": lambda: call(LSTM(4, implementation=np.int64(2))),
    "dtype_int": lambda: call(LSTM(4, dtype="int32")),
    "dtype_unknown": lambda: call(LSTM(4, dtype="abc")),
    # -- Keras LSTM: from_config, initializers
    "from_config_none": lambda: LSTM.from_config(None),
    "from_config_list": lambda: LSTM.from_config([1]),
    "initializer_wrong_shape": lambda: call(LSTM(4, kernel_initializer=init_returning(
        tf.zeros((3, 3))))),
    "initializer_scalar": lambda: call(LSTM(4, kernel_initializer=init_returning(1.0))),
    "initializer_none": lambda: call(LSTM(4, kernel_initializer=init_returning(None))),
    "initializer_str": lambda: call(LSTM(4, kernel_initializer=init_returning("abc"))),
    "initializer_numpy": lambda: call(LSTM(4, kernel_initializer=init_returning(
        np.zeros((3, 16))))),
    # -- Keras LSTM: call-time shapes and states
    "zero_steps": lambda: call(LSTM(4), np.ones((2, 0, 3), "float32")),
    "zero_steps_sequences": lambda: call(LSTM(4, return_sequences=True),
                                         np.ones((2, 0, 3), "float32")),
    "zero_batch": lambda: call(LSTM(4), np.ones((0, 5, 3), "float32")),
    "zero_features": lambda: call(LSTM(4), np.ones((2, 5, 0), "float32")),
    "initial_state_float64": lambda: call(LSTM(4), initial_state=[tf.zeros((2, 4),
                                                                           tf.float64)] * 2),
    "initial_state_int32": lambda: call(LSTM(4), initial_state=[tf.zeros((2, 4), tf.int32)] * 2),
    # -- TF1 LSTMCell constructor (checked by TF when the cell runs)
    "cell_num_units_np_int64": lambda: run(Cell(np.int64(4))),
    "cell_num_units_np_int32": lambda: run(Cell(np.int32(4))),
    "cell_num_units_int_tensor": lambda: run(Cell(tf.constant(4))),
    "cell_num_units_float": lambda: run(Cell(2.5)),
    "cell_num_units_integral_float": lambda: run(Cell(4.0)),
    "cell_num_units_str": lambda: run(Cell("4")),
    "cell_num_units_negative": lambda: run(Cell(-1)),
    "cell_num_units_none": lambda: run(Cell(None)),
    "cell_num_units_zero": lambda: run(Cell(0)),
    "cell_num_units_bool": lambda: run(Cell(True)),
    "cell_num_proj_np_int64": lambda: run(Cell(4, num_proj=np.int64(2))),
    "cell_num_proj_float": lambda: run(Cell(4, num_proj=2.5)),
    "cell_num_proj_zero": lambda: run(Cell(4, num_proj=0)),
    "cell_num_proj_negative": lambda: run(Cell(4, num_proj=-1)),
    "cell_num_proj_str": lambda: run(Cell(4, num_proj="2")),
    "cell_num_proj_bool": lambda: run(Cell(4, num_proj=True)),
    "cell_clip_str": lambda: run(Cell(4, cell_clip="abc")),
    "cell_clip_list": lambda: run(Cell(4, cell_clip=[1.0])),
    "cell_clip_np_float32": lambda: run(Cell(4, cell_clip=np.float32(1.0))),
    "proj_clip_str": lambda: run(Cell(4, num_proj=2, proj_clip="abc")),
    "forget_bias_none": lambda: run(Cell(4, forget_bias=None)),
    "forget_bias_str": lambda: run(Cell(4, forget_bias="abc")),
    "forget_bias_list": lambda: run(Cell(4, forget_bias=[1.0, 2.0])),
    "forget_bias_np_float32": lambda: run(Cell(4, forget_bias=np.float32(0.5))),
    "forget_bias_bool": lambda: run(Cell(4, forget_bias=True)),
    "cell_dtype_int": lambda: Cell(4, dtype=tf.int32),
    "cell_dtype_unknown": lambda: Cell(4, dtype="abc"),
    # -- TF1 build and zero_state
    "cell_build_negative": lambda: cell_build((None, -3)),
    "cell_build_zero": lambda: cell_build((None, 0)),
    "cell_build_float": lambda: cell_build((None, 2.5)),
    "cell_build_np_int64": lambda: cell_build((None, np.int64(3))),
    "zero_state_negative": lambda: zero_state(-1),
    "zero_state_zero": lambda: zero_state(0),
    "zero_state_float": lambda: zero_state(2.5),
    "zero_state_integral_float": lambda: zero_state(2.0),
    "zero_state_np_int64": lambda: zero_state(np.int64(2)),
    "zero_state_int_tensor": lambda: zero_state(tf.constant(2)),
    "zero_state_str": lambda: zero_state("2"),
    "zero_state_none": lambda: zero_state(None),
    "zero_state_bool": lambda: zero_state(True),
    "zero_state_dtype_none": lambda: zero_state(2, None),
    "zero_state_dtype_unknown": lambda: zero_state(2, "abc"),
    # -- TF1 runners
    "seq_len_negative": lambda: run(Cell(4), sequence_length=[5, -1]),
    "seq_len_float": lambda: run(Cell(4), sequence_length=[2.5, 3.0]),
    "seq_len_above_time": lambda: run(Cell(4), sequence_length=[6, 7]),
    "seq_len_bool": lambda: run(Cell(4), sequence_length=np.array([True, False])),
    "seq_len_str": lambda: run(Cell(4), sequence_length=["a", "b"]),
    "seq_len_scalar": lambda: run(Cell(4), sequence_length=5),
    "seq_len_wrong_size": lambda: run(Cell(4), sequence_length=[5]),
    "bidi_seq_len_negative": lambda: bidi(sequence_length=[5, -1]),
    "bidi_seq_len_float": lambda: bidi(sequence_length=[2.5, 3.0]),
    "dynamic_dtype_unknown": lambda: run(Cell(4), dtype="abc"),
    "dynamic_dtype_int": lambda: run(Cell(4), dtype=tf.int32),
    "dynamic_not_a_cell": lambda: run(3),
    "dynamic_zero_batch": lambda: run(Cell(4), np.ones((0, 5, 3), "float32")),
    "dynamic_zero_steps": lambda: run(Cell(4), np.ones((2, 0, 3), "float32")),
    "multi_empty_tuple": lambda: v1.nn.rnn_cell.MultiRNNCell(()),
    "multi_none": lambda: v1.nn.rnn_cell.MultiRNNCell(None),
    "multi_iterator": lambda: v1.nn.rnn_cell.MultiRNNCell(iter([Cell(4)])),
    "multi_not_cells": lambda: v1.nn.rnn_cell.MultiRNNCell([1]),
}


def outcome(fn: Callable[[], object]) -> dict:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - recording whatever TF raises
        message = re.sub(r"0x[0-9a-f]+", "0x...", " ".join(str(e).split()))
        return {"type": type(e).__name__, "message": message[:250]}
    return {"type": None, "message": ""}


def main() -> None:
    facts = {name: outcome(fn) for name, fn in CASES.items()}
    facts["_about"] = {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__}
    OUT.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
