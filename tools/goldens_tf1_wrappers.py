"""Regenerate the goldens of user cells and cell wrappers: ``tests/goldens/tf1_wrappers/``.

Run with the reference TensorFlow (never a dependency of the library or its tests)::

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_tf1_wrappers.py

Each case builds, in a fresh ``tf.Graph`` (graph mode), cells of the user's own
(``MyGRUCell``, ``MyLSTMCell``: subclasses of ``RNNCell`` creating their weights
with ``add_weight`` in ``build``) and lstmcompat's wrapped cells
(``ResidualWrapper``, ``DeviceWrapper``, ``DropoutWrapper`` with keep
probabilities 1), sets every variable from a seeded NumPy generator, runs
``dynamic_rnn`` / ``static_rnn`` / ``bidirectional_dynamic_rnn``, and saves
(``<case>.npz``) the inputs, the variables by TF name, the outputs, the final
state leaves (``tf.nest.flatten`` order) and the gradients of
``sum(out * w_out) + sum_i sum(state_i * w_state_i)`` with respect to the
inputs and every variable (``multi_mixed_len`` also as a Saver checkpoint,
for ``restore``). ``errors.json`` records the exception type and
message TF raises for bad wrapper arguments.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

v1 = tf.compat.v1
v1.disable_eager_execution()
v1.logging.set_verbosity(v1.logging.ERROR)
rnn_cell = v1.nn.rnn_cell

OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "tf1_wrappers"
B, T, D = 3, 5, 3
LENGTHS = [5, 2, 0]


class MyGRUCell(rnn_cell.RNNCell):
    """A GRU written as a user's RNNCell (the same cell is in the tests, in torch)."""

    def __init__(self, units, name=None):
        super().__init__(name=name)
        self._u = units

    @property
    def state_size(self):
        return self._u

    @property
    def output_size(self):
        return self._u

    def build(self, inputs_shape):
        d, u = inputs_shape[-1], self._u
        self._gk = self.add_weight("gates/kernel", [d + u, 2 * u])
        self._gb = self.add_weight("gates/bias", [2 * u], initializer=v1.ones_initializer())
        self._ck = self.add_weight("candidate/kernel", [d + u, u])
        self._cb = self.add_weight("candidate/bias", [u], initializer=v1.zeros_initializer())
        self.built = True

    def call(self, inputs, state):
        g = tf.sigmoid(tf.matmul(tf.concat([inputs, state], 1), self._gk) + self._gb)
        r, z = tf.split(g, 2, axis=1)
        c = tf.tanh(tf.matmul(tf.concat([inputs, r * state], 1), self._ck) + self._cb)
        h = z * state + (1 - z) * c
        return h, h


class MyLSTMCell(rnn_cell.RNNCell):
    """An LSTM with an LSTMStateTuple state, written as a user's RNNCell."""

    def __init__(self, units, name=None):
        super().__init__(name=name)
        self._u = units

    @property
    def state_size(self):
        return rnn_cell.LSTMStateTuple(self._u, self._u)

    @property
    def output_size(self):
        return self._u

    def build(self, inputs_shape):
        d, u = inputs_shape[-1], self._u
        self._k = self.add_weight("kernel", [d + u, 4 * u])
        self._b = self.add_weight("bias", [4 * u], initializer=v1.zeros_initializer())
        self.built = True

    def call(self, inputs, state):
        c, h = state
        i, j, f, o = tf.split(tf.matmul(tf.concat([inputs, h], 1), self._k) + self._b, 4, 1)
        c2 = tf.sigmoid(f + 1.0) * c + tf.sigmoid(i) * tf.tanh(j)
        h2 = tf.sigmoid(o) * tf.tanh(c2)
        return h2, rnn_cell.LSTMStateTuple(c2, h2)


def _lstm(u):
    return rnn_cell.LSTMCell(u)


def _dyn(make, lengths=True, time_major=False, init=False):
    def run(x, rng):
        cell = make()
        xs = tf.transpose(x, [1, 0, 2]) if time_major else x
        kw = {"dtype": tf.float32}
        feeds = {}
        if init:
            zs = cell.zero_state(B, tf.float32)
            flat = tf.nest.flatten(zs)
            vals = [rng.uniform(-1, 1, z.shape.as_list()).astype(np.float32) for z in flat]
            kw["initial_state"] = tf.nest.pack_sequence_as(zs, [tf.constant(v) for v in vals])
            feeds = {f"init_{i}": v for i, v in enumerate(vals)}
        out, st = v1.nn.dynamic_rnn(cell, xs, sequence_length=LENGTHS if lengths else None,
                                    time_major=time_major, **kw)
        if time_major:
            out = tf.transpose(out, [1, 0, 2])
        return out, st, feeds
    return run


def _static(make):
    def run(x, rng):
        outs, st = v1.nn.static_rnn(make(), tf.unstack(x, axis=1), sequence_length=LENGTHS,
                                    dtype=tf.float32)
        return tf.stack(outs, 1), st, {}
    return run


def _bidi(make_fw, make_bw):
    def run(x, rng):
        (of, ob), (sf, sb) = v1.nn.bidirectional_dynamic_rnn(
            make_fw(), make_bw(), x, sequence_length=LENGTHS, dtype=tf.float32)
        return tf.concat([of, ob], 2), (sf, sb), {}
    return run


CASES = {
    "dyn_gru_len": _dyn(lambda: MyGRUCell(4)),
    "dyn_gru_tm_init": _dyn(lambda: MyGRUCell(4), lengths=False, time_major=True, init=True),
    "dyn_gru_named": _dyn(lambda: MyGRUCell(4, name="custom_gru"), lengths=True),
    "dyn_mylstm_len_init": _dyn(lambda: MyLSTMCell(4), init=True),
    "static_gru_len": _static(lambda: MyGRUCell(4)),
    "bidi_gru_len": _bidi(lambda: MyGRUCell(4), lambda: MyLSTMCell(2)),
    "multi_mixed_len": _dyn(lambda: rnn_cell.MultiRNNCell(
        [MyGRUCell(4), _lstm(3), MyLSTMCell(2)])),
    "residual_lstm_len": _dyn(lambda: rnn_cell.ResidualWrapper(_lstm(3))),
    "residual_fn_len": _dyn(lambda: rnn_cell.ResidualWrapper(
        _lstm(3), residual_fn=lambda i, o: o - 0.5 * i)),
    "residual_gru_len": _dyn(lambda: rnn_cell.ResidualWrapper(MyGRUCell(3))),
    "residual_static_len": _static(lambda: rnn_cell.ResidualWrapper(_lstm(3))),
    "multi_residual_len": _dyn(lambda: rnn_cell.MultiRNNCell(
        [_lstm(3), rnn_cell.ResidualWrapper(_lstm(3))])),
    "device_lstm_len": _dyn(lambda: rnn_cell.DeviceWrapper(_lstm(4), "/cpu:0")),
    "dropout1_lstm_len": _dyn(lambda: rnn_cell.DropoutWrapper(_lstm(4))),
    "dropout1_var_gru_len": _dyn(lambda: rnn_cell.DropoutWrapper(
        MyGRUCell(4), variational_recurrent=True, dtype=tf.float32)),
    "multi_wrapped_len": _dyn(lambda: rnn_cell.MultiRNNCell([
        rnn_cell.DeviceWrapper(rnn_cell.DropoutWrapper(_lstm(3)), "/cpu:0"),
        rnn_cell.ResidualWrapper(rnn_cell.DropoutWrapper(_lstm(3))),
        rnn_cell.ResidualWrapper(MyGRUCell(3))])),
    "bidi_wrapped_len": _bidi(lambda: rnn_cell.ResidualWrapper(_lstm(3)),
                              lambda: rnn_cell.DropoutWrapper(MyGRUCell(2))),
}


#: Cases whose variables are also saved as a TF checkpoint (``<case>/model.ckpt``).
CHECKPOINTS = ("multi_mixed_len",)


def _case(name, run, seed):
    rng = np.random.default_rng(seed)
    g = tf.Graph()
    with g.as_default():
        x_val = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
        x = tf.constant(x_val)
        out, st, feeds = run(x, rng)
        flat = tf.nest.flatten(st)
        w_out = rng.uniform(-1, 1, out.shape.as_list()).astype(np.float32)
        w_st = [rng.uniform(-1, 1, s.shape.as_list()).astype(np.float32) for s in flat]
        loss = tf.reduce_sum(out * w_out) + sum(tf.reduce_sum(s * w) for s, w in zip(flat, w_st))
        variables = v1.global_variables()
        grads = tf.gradients(loss, [x] + variables)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            values = {}
            for v in variables:
                val = rng.uniform(-0.6, 0.6, v.shape.as_list()).astype(np.float32)
                v.load(val, sess)
                values[v.op.name] = val
            o, s, gs = sess.run([out, flat, grads])
            if name in CHECKPOINTS:
                (OUT / name).mkdir(exist_ok=True)
                v1.train.Saver().save(sess, str(OUT / name / "model.ckpt"),
                                      write_meta_graph=False)
    data = {"x": x_val, "out": o, "w_out": w_out, "g_x": gs[0],
            "names": np.array(json.dumps(list(values)))}
    for k, v in feeds.items():
        data[k] = v
    for i, (sv, wv) in enumerate(zip(s, w_st)):
        data[f"st_{i}"] = sv
        data[f"w_st_{i}"] = wv
    for i, (n, gv) in enumerate(zip(values, gs[1:])):
        data[f"var_{i}"] = values[n]
        data[f"g_var_{i}"] = gv
    np.savez_compressed(OUT / f"{name}.npz", **data)


def _error(fn):
    g = tf.Graph()
    try:
        with g.as_default():
            fn()
            with v1.Session() as sess:
                sess.run(v1.global_variables_initializer())
                sess.run(v1.get_collection("outs"))
    except Exception as e:  # noqa: BLE001 - recording what TF raises
        return {"type": type(e).__name__, "message": str(e).splitlines()[0][:300]}
    return None


def _run_rnn(cell, depth=D):
    out, _ = v1.nn.dynamic_rnn(cell, tf.zeros([B, T, depth]), dtype=tf.float32)
    v1.add_to_collection("outs", out)


ERRORS = {
    "keep_above_1": lambda: rnn_cell.DropoutWrapper(_lstm(4), input_keep_prob=1.5),
    "keep_negative": lambda: rnn_cell.DropoutWrapper(_lstm(4), output_keep_prob=-0.1),
    "state_keep_above_1": lambda: rnn_cell.DropoutWrapper(_lstm(4), state_keep_prob=2),
    "keep_zero_run": lambda: _run_rnn(rnn_cell.DropoutWrapper(_lstm(4), output_keep_prob=0.0)),
    "variational_no_dtype": lambda: rnn_cell.DropoutWrapper(
        _lstm(4), output_keep_prob=0.5, variational_recurrent=True),
    "variational_no_input_size": lambda: rnn_cell.DropoutWrapper(
        _lstm(4), input_keep_prob=0.5, variational_recurrent=True, dtype=tf.float32),
    "filter_not_callable": lambda: rnn_cell.DropoutWrapper(
        _lstm(4), dropout_state_filter_visitor=3),
    "residual_mismatch": lambda: _run_rnn(rnn_cell.ResidualWrapper(_lstm(4))),
    "not_a_cell": lambda: v1.nn.dynamic_rnn(object(), tf.zeros([B, T, D]), dtype=tf.float32),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for k, (name, run) in enumerate(CASES.items()):
        _case(name, run, 1000 + k)
    errors = {name: _error(fn) for name, fn in ERRORS.items()}
    (OUT / "errors.json").write_text(json.dumps(errors, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(CASES)} cases and errors.json to {OUT}")


if __name__ == "__main__":
    main()
