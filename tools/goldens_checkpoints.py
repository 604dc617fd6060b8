"""Regenerate the TF checkpoint goldens: ``tests/goldens/checkpoints/``.

Run with the reference TensorFlow (never a dependency of the library or its tests)::

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_checkpoints.py

Writes a few small tensor-bundle checkpoints (one folder per case, each with
TF's ``checkpoint`` state file) and ``expected.json``: for every case the
prefix, ``tf.train.list_variables`` and, for every variable, the dtype, shape
and raw little-endian bytes (base64) of ``get_tensor`` (strings as a list of
base64 items). ``facts`` records which path forms TF accepts.
"""

from __future__ import annotations

import base64
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
OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "checkpoints"
RNG = np.random.default_rng(1234)


def _set_all(sess, variables):
    for v in variables:
        shape = v.shape.as_list()
        v.load(RNG.standard_normal(shape).astype(v.dtype.as_numpy_dtype), sess)


def tf1_lstm(folder: Path) -> str:
    g = tf.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, [2, 3, 4])
        cell = v1.nn.rnn_cell.LSTMCell(3, use_peepholes=True, num_proj=2)
        v1.nn.dynamic_rnn(cell, x, dtype=tf.float32)
        step = v1.train.get_or_create_global_step()
        saver = v1.train.Saver()
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            _set_all(sess, v1.trainable_variables())
            sess.run(step.assign(7))
            return saver.save(sess, str(folder / "model.ckpt"), global_step=7,
                              write_meta_graph=False)


def tf1_multi(folder: Path) -> str:
    g = tf.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, [2, 3, 4])
        cells = [v1.nn.rnn_cell.LSTMCell(3), v1.nn.rnn_cell.LSTMCell(2, use_peepholes=True)]
        v1.nn.dynamic_rnn(v1.nn.rnn_cell.MultiRNNCell(cells), x, dtype=tf.float32)
        saver = v1.train.Saver()
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            _set_all(sess, v1.trainable_variables())
            return saver.save(sess, str(folder / "model.ckpt"), global_step=1000,
                              write_meta_graph=False)


def tf2_keras(folder: Path) -> str:
    model = tf_keras.Sequential([tf_keras.layers.LSTM(3, input_shape=(5, 2))])
    model.set_weights([RNG.standard_normal(w.shape).astype(np.float32)
                       for w in model.get_weights()])
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(folder), 1)
    return manager.save()


def sharded(folder: Path) -> str:
    g = tf.Graph()
    with g.as_default():
        with tf.device("/cpu:0"):
            a = v1.get_variable("dev0/a", [3, 4], tf.float32)
            b = v1.get_variable("dev0/b", [5], tf.float64)
        with tf.device("/cpu:1"):
            c = v1.get_variable("dev1/c", [2, 2], tf.float32)
            d = v1.get_variable("dev1/d", [4], tf.int64, initializer=v1.zeros_initializer())
        saver = v1.train.Saver(sharded=True)
        config = v1.ConfigProto(device_count={"CPU": 2})
        with v1.Session(graph=g, config=config) as sess:
            sess.run(v1.global_variables_initializer())
            _set_all(sess, [a, b, c])
            d.load(np.array([1, -2, 3, 1 << 40], np.int64), sess)
            return saver.save(sess, str(folder / "model.ckpt"), global_step=3,
                              write_meta_graph=False)


def dtypes(folder: Path) -> str:
    values = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
        "f64": np.array([1 / 3, -2.5, np.pi]),
        "f16": np.array([[0.5, -1.25], [65504.0, 1e-4]], np.float16),
        "bf16": tf.constant([1.5, -3.0, 1e30], tf.bfloat16),
        "i64": np.array([-(1 << 62), 0, 5], np.int64),
        "i32": np.array(-7, np.int32),
        "i16": np.array([-300, 300], np.int16),
        "i8": np.array([-128, 127], np.int8),
        "u8": np.array([0, 255, 7], np.uint8),
        "flag": np.array([True, False, True]),
        "empty": np.zeros((0, 3), np.float32),
        "c64": np.array([1 + 2j, -0.5j], np.complex64),
        "c128": np.array([[1 / 3 - 1j]]),
        "text": tf.constant(b"hello \x00 world"),
        "texts": tf.constant([[b"", b"a"], [b"\xff" * 300, b"lstm"]]),
    }
    variables = {k: tf.Variable(v) for k, v in values.items()}
    return tf.train.Checkpoint(**variables).write(str(folder / "ckpt"))


def partitioned(folder: Path) -> str:
    g = tf.Graph()
    with g.as_default():
        w = v1.get_variable("part/w", [7, 3], tf.float32,
                            partitioner=v1.fixed_size_partitioner(3))
        big = v1.get_variable("part/big", [130, 2], tf.float32,
                              partitioner=v1.fixed_size_partitioner(2))
        v = v1.get_variable("plain", [2], tf.float32)
        saver = v1.train.Saver()
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            _set_all(sess, list(w) + list(big) + [v])
            path = saver.save(sess, str(folder / "model.ckpt"), write_meta_graph=False)
    v1.train.update_checkpoint_state(str(folder), path)
    return path


def _encode(value) -> dict:
    kind = type(value).__name__
    if isinstance(value, bytes):
        return {"type": kind, "dtype": "bytes", "shape": [],
                "strings": [base64.b64encode(value).decode()]}
    value = np.asarray(value)
    out = {"type": kind, "dtype": str(value.dtype), "shape": list(value.shape)}
    if value.dtype == object:
        out["strings"] = [base64.b64encode(s).decode() for s in value.reshape(-1)]
        out["dtype"] = "bytes"
    else:
        out["data"] = base64.b64encode(value.astype(value.dtype.newbyteorder("<")).tobytes()).decode()
    return out


def _accepts(path) -> str:
    try:
        tf.train.list_variables(str(path))
        return "ok"
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"


def _state_file_text() -> str:
    """The ``checkpoint`` file TF writes for a prefix with non-ASCII and quote characters."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        v1.train.update_checkpoint_state(tmp, 'sub/d\u00e9j\u00e0 "q" \\/m.ckpt-1',
                                         all_model_checkpoint_paths=[])
        return (Path(tmp) / "checkpoint").read_text()


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    cases = {}
    for fn in (tf1_lstm, tf1_multi, tf2_keras, sharded, dtypes, partitioned):
        folder = OUT / fn.__name__
        folder.mkdir()
        prefix = fn(folder)
        if not (folder / "checkpoint").exists():
            v1.train.update_checkpoint_state(str(folder), prefix)
        reader = tf.train.load_checkpoint(prefix)
        listing = tf.train.list_variables(prefix)
        cases[fn.__name__] = {
            "prefix": str(Path(prefix).relative_to(OUT)),
            "files": sorted(p.name for p in folder.iterdir()),
            "list": [[name, list(shape)] for name, shape in listing],
            "values": {name: _encode(reader.get_tensor(name)) for name, _ in listing},
        }
    lstm = OUT / cases["tf1_lstm"]["prefix"]
    facts = {
        "prefix": _accepts(lstm),
        "directory": _accepts(lstm.parent),
        "index_file": _accepts(str(lstm) + ".index"),
        "data_file": _accepts(str(lstm) + ".data-00000-of-00001"),
        "missing": _accepts(OUT / "nope" / "model.ckpt"),
        "state_file": _state_file_text(),
    }
    # Rewrite TF's absolute paths in the state files as relative ones (they must
    # not name this machine); the tests write absolute ones themselves.
    for name in cases:
        state = OUT / name / "checkpoint"
        prefix = Path(cases[name]["prefix"]).name
        state.write_text(f'model_checkpoint_path: "{prefix}"\n'
                         f'all_model_checkpoint_paths: "{prefix}"\n')
    (OUT / "expected.json").write_text(json.dumps({"facts": facts, "cases": cases}, indent=1))
    print(json.dumps(facts, indent=1))
    for name, case in cases.items():
        print(name, case["files"], [n for n, _ in case["list"]])


if __name__ == "__main__":
    main()
