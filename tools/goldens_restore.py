"""Regenerate the restore goldens: ``tests/goldens/restore/``.

Run with the reference TensorFlow (never a dependency of the library or its tests)::

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_restore.py

One small checkpoint per writer and naming convention that ``lstmcompat.restore``
reads (TF1 cells under ``dynamic_rnn``, ``MultiRNNCell``, ``bidirectional_dynamic_rnn``,
``BasicLSTMCell``, an Adam-trained Saver checkpoint with its slots, compat.v1 Keras
layers under a Saver, the older Keras names without a cell scope, TF2 object
checkpoints of tf_keras models, and the pre-1.2 TF names), each with the inputs
TensorFlow ran and the outputs it computed, in ``expected.json``:

``{case: {"prefix", "modules": [{"class", "kwargs", "prefix"}], "run", "inputs",
"lengths", "outputs": [...], "candidates": [...]}}``. ``candidates`` are the
prefixes of every LSTM weight set in the file, as a user would pass them.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

v1 = tf.compat.v1
OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "restore"
RNG = np.random.default_rng(2024)
B, T, D = 2, 4, 3


def _inputs(depth: int = D) -> np.ndarray:
    return RNG.standard_normal((B, T, depth)).astype(np.float32)


def _set_all(sess, variables, scale: float = 0.5) -> None:
    for v in variables:
        v.load((scale * RNG.standard_normal(v.shape.as_list())).astype(np.float32), sess)


def _session_case(folder: Path, build, saver_vars=None, adam: bool = False, step=None):
    """Build a TF1 graph with ``build(x, lengths) -> outputs``, randomise its trainable
    variables, run it and save it with a Saver (``saver_vars`` renames)."""
    x_val = _inputs()
    len_val = np.array([T, T - 1], np.int32)
    g = tf.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, [B, T, D])
        lengths = v1.placeholder(tf.int32, [B])
        outputs = build(x, lengths)
        if adam:
            loss = tf.add_n([tf.reduce_sum(o) for o in outputs])
            gstep = v1.train.get_or_create_global_step()
            v1.train.AdamOptimizer(0.01).minimize(loss, global_step=gstep)
        names = saver_vars(v1.global_variables()) if saver_vars else None
        saver = v1.train.Saver(names)
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            _set_all(sess, v1.trainable_variables())
            got = sess.run(outputs, {x: x_val, lengths: len_val})
            path = saver.save(sess, str(folder / "model.ckpt"), global_step=step,
                              write_meta_graph=False)
    return path, x_val, len_val, got


def tf1_cell(folder):
    """LSTMCell with peepholes, clip and projection under dynamic_rnn, trained by Adam."""
    def build(x, lengths):
        cell = v1.nn.rnn_cell.LSTMCell(5, use_peepholes=True, cell_clip=0.6, num_proj=2)
        out, st = v1.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
        return [out, st.c, st.h]
    path, x, lens, got = _session_case(folder, build, adam=True, step=20000)
    return path, {"modules": [{"class": "LSTMCell", "prefix": "rnn/lstm_cell", "kwargs": {
        "num_units": 5, "use_peepholes": True, "cell_clip": 0.6, "num_proj": 2}}],
        "run": "dynamic_rnn", "inputs": x, "lengths": lens, "outputs": got,
        "candidates": ["rnn/lstm_cell"]}


def tf1_multi(folder):
    def build(x, lengths):
        cells = [v1.nn.rnn_cell.LSTMCell(4, forget_bias=0.5),
                 v1.nn.rnn_cell.LSTMCell(3, use_peepholes=True)]
        out, st = v1.nn.dynamic_rnn(v1.nn.rnn_cell.MultiRNNCell(cells), x,
                                    sequence_length=lengths, dtype=tf.float32)
        return [out, st[0].c, st[0].h, st[1].c, st[1].h]
    path, x, lens, got = _session_case(folder, build)
    return path, {"modules": [{"class": "MultiRNNCell", "prefix": "rnn/multi_rnn_cell",
                               "cells": [{"num_units": 4, "forget_bias": 0.5},
                                         {"num_units": 3, "use_peepholes": True}]}],
                  "run": "dynamic_rnn", "inputs": x, "lengths": lens, "outputs": got,
                  "candidates": ["rnn/multi_rnn_cell",
                                 "rnn/multi_rnn_cell/cell_0/lstm_cell",
                                 "rnn/multi_rnn_cell/cell_1/lstm_cell"]}


def tf1_bidi(folder):
    def build(x, lengths):
        fw, bw = v1.nn.rnn_cell.LSTMCell(3), v1.nn.rnn_cell.LSTMCell(3, num_proj=2)
        (of, ob), (sf, sb) = v1.nn.bidirectional_dynamic_rnn(
            fw, bw, x, sequence_length=lengths, dtype=tf.float32)
        return [of, ob, sf.c, sf.h, sb.c, sb.h]
    path, x, lens, got = _session_case(folder, build)
    return path, {"modules": [
        {"class": "LSTMCell", "prefix": "bidirectional_rnn/fw/lstm_cell", "kwargs": {"num_units": 3}},
        {"class": "LSTMCell", "prefix": "bidirectional_rnn/bw/lstm_cell",
         "kwargs": {"num_units": 3, "num_proj": 2}}],
        "run": "bidirectional_dynamic_rnn", "inputs": x, "lengths": lens, "outputs": got,
        "candidates": ["bidirectional_rnn/bw/lstm_cell", "bidirectional_rnn/fw/lstm_cell"]}


def tf1_basic(folder):
    """BasicLSTMCell (forget_bias 1, tanh): the same math and layout as LSTMCell."""
    def build(x, lengths):
        cell = v1.nn.rnn_cell.BasicLSTMCell(4)
        out, st = v1.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
        return [out, st.c, st.h]
    path, x, lens, got = _session_case(folder, build)
    return path, {"modules": [{"class": "LSTMCell", "prefix": "rnn/basic_lstm_cell",
                               "kwargs": {"num_units": 4}}],
                  "run": "dynamic_rnn", "inputs": x, "lengths": lens, "outputs": got,
                  "candidates": ["rnn/basic_lstm_cell"]}


def _pre12_names(variables):
    """TF 1.0 names: ``RNN/MultiRNNCell/Cell0/LSTMCell/W_0`` and friends (the scope and
    variable names TF <= 1.0 gave, renamed in 1.1 / 1.2)."""
    out = {}
    for v in variables:
        n = v.op.name
        n = n.replace("rnn/", "RNN/", 1).replace("multi_rnn_cell/cell_", "MultiRNNCell/Cell")
        n = (n.replace("basic_lstm_cell/kernel", "BasicLSTMCell/Linear/Matrix")
             .replace("basic_lstm_cell/bias", "BasicLSTMCell/Linear/Bias")
             .replace("lstm_cell/kernel", "LSTMCell/W_0").replace("lstm_cell/bias", "LSTMCell/B")
             .replace("lstm_cell/w_f_diag", "LSTMCell/W_F_diag")
             .replace("lstm_cell/w_i_diag", "LSTMCell/W_I_diag")
             .replace("lstm_cell/w_o_diag", "LSTMCell/W_O_diag")
             .replace("lstm_cell/projection/kernel", "LSTMCell/W_P_0"))
        out[n] = v
    return out


def tf1_pre12(folder):
    def build(x, lengths):
        cells = [v1.nn.rnn_cell.LSTMCell(4, use_peepholes=True, num_proj=3),
                 v1.nn.rnn_cell.BasicLSTMCell(2)]
        out, st = v1.nn.dynamic_rnn(v1.nn.rnn_cell.MultiRNNCell(cells), x,
                                    sequence_length=lengths, dtype=tf.float32)
        return [out, st[0].c, st[0].h, st[1].c, st[1].h]
    path, x, lens, got = _session_case(folder, build, saver_vars=_pre12_names)
    return path, {"modules": [{"class": "MultiRNNCell", "prefix": "RNN/MultiRNNCell",
                               "cells": [{"num_units": 4, "use_peepholes": True, "num_proj": 3},
                                         {"num_units": 2}]}],
                  "run": "dynamic_rnn", "inputs": x, "lengths": lens, "outputs": got,
                  "candidates": ["RNN/MultiRNNCell", "RNN/MultiRNNCell/Cell0/LSTMCell",
                                 "RNN/MultiRNNCell/Cell1/BasicLSTMCell"]}


def tf11_names(folder):
    """TF 1.1 names (``weights``/``biases``, converted to ``kernel``/``bias`` in 1.2)."""
    def build(x, lengths):
        cell = v1.nn.rnn_cell.LSTMCell(3, num_proj=2)
        out, st = v1.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
        return [out, st.c, st.h]

    def names(variables):
        return {v.op.name.replace("kernel", "weights").replace("/bias", "/biases"): v
                for v in variables}
    path, x, lens, got = _session_case(folder, build, saver_vars=names)
    return path, {"modules": [{"class": "LSTMCell", "prefix": "rnn/lstm_cell",
                               "kwargs": {"num_units": 3, "num_proj": 2}}],
                  "run": "dynamic_rnn", "inputs": x, "lengths": lens, "outputs": got,
                  "candidates": ["rnn/lstm_cell"]}


def _keras_graph_case(folder, saver_vars=None):
    def build(x, lengths):
        a = v1.keras.layers.LSTM(4, return_sequences=True)
        b = v1.keras.layers.LSTM(3, use_bias=False, return_state=True)
        ya = a(x)
        yb, hb, cb = b(ya)
        return [ya, yb, hb, cb]
    return _session_case(folder, build, saver_vars=saver_vars)


def keras_v1_saver(folder):
    """compat.v1 Keras LSTM layers in a TF1 graph, saved by a Saver."""
    path, x, _, got = _keras_graph_case(folder)
    return path, {"modules": [
        {"class": "LSTM", "prefix": "lstm/lstm_cell", "kwargs": {"units": 4, "return_sequences": True}},
        {"class": "LSTM", "prefix": "lstm_1/lstm_cell",
         "kwargs": {"units": 3, "use_bias": False, "return_state": True}}],
        "run": "keras_chain", "inputs": x, "outputs": got,
        "candidates": ["lstm/lstm_cell", "lstm_1/lstm_cell"]}


def keras_old_names(folder):
    """The older Keras names, without the cell scope (``lstm_1/kernel``)."""
    def names(variables):
        return {v.op.name.replace("/lstm_cell", ""): v for v in variables}
    path, x, _, got = _keras_graph_case(folder, names)
    return path, {"modules": [
        {"class": "LSTM", "prefix": "lstm", "kwargs": {"units": 4, "return_sequences": True}},
        {"class": "LSTM", "prefix": "lstm_1",
         "kwargs": {"units": 3, "use_bias": False, "return_state": True}}],
        "run": "keras_chain", "inputs": x, "outputs": got, "candidates": ["lstm", "lstm_1"]}


def _tf_keras_model():
    x = tf_keras.Input((T, D))
    ya = tf_keras.layers.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid")(x)
    yb = tf_keras.layers.LSTM(3, use_bias=False)(ya)
    model = tf_keras.Model(x, [ya, yb])
    model.set_weights([(0.5 * RNG.standard_normal(w.shape)).astype(np.float32)
                       for w in model.get_weights()])
    return model


def _tf2_meta(model, x):
    got = [np.asarray(t) for t in model(x)]
    return {"modules": [
        {"class": "LSTM", "prefix": "lstm/lstm_cell",
         "kwargs": {"units": 4, "return_sequences": True, "recurrent_activation": "hard_sigmoid"}},
        {"class": "LSTM", "prefix": "lstm_1/lstm_cell",
         "kwargs": {"units": 3, "use_bias": False, "recurrent_activation": "sigmoid"}}],
        "run": "keras_chain", "inputs": x, "outputs": got,
        "candidates": ["lstm/lstm_cell", "lstm_1/lstm_cell"]}


def tf2_object(folder):
    """``tf.train.Checkpoint(model=m)`` of a tf_keras model (object-graph keys)."""
    tf_keras.backend.clear_session()
    model, x = _tf_keras_model(), _inputs()
    path = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(folder), 1).save()
    return path, _tf2_meta(model, x)


def tf2_save_weights(folder):
    """tf_keras ``model.save_weights("w")`` in TF format (keys without ``model/``)."""
    tf_keras.backend.clear_session()
    model, x = _tf_keras_model(), _inputs()
    model.save_weights(str(folder / "weights"))
    return str(folder / "weights"), _tf2_meta(model, x)


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(a) for a in v]
    if isinstance(v, dict):
        return {k: _plain(a) for k, a in v.items()}
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    cases = {}
    for fn in (tf1_cell, tf1_multi, tf1_bidi, tf1_basic, tf1_pre12, tf11_names,
               keras_v1_saver, keras_old_names, tf2_object, tf2_save_weights):
        folder = OUT / fn.__name__
        folder.mkdir()
        path, meta = fn(folder)
        v1.train.update_checkpoint_state(str(folder), Path(path).name)
        meta["variables"] = [[n, list(s)] for n, s in tf.train.list_variables(path)]
        meta["prefix"] = str(Path(path).relative_to(OUT))
        cases[fn.__name__] = _plain(meta)
    (OUT / "expected.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
