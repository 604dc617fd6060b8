"""TensorFlow side of the benchmark, run in TensorFlow's own interpreter.

Reads a JSON job from argv[1], prints one JSON line of results. Measures
``tf.compat.v1.keras.layers.LSTM`` (tf_keras, hard_sigmoid default) and
``tf.compat.v1.nn.dynamic_rnn`` over ``tf.compat.v1.nn.rnn_cell.LSTMCell``
(peepholes, num_proj = units/2, cell_clip), each inside ``tf.function``,
forward and forward+backward (GradientTape w.r.t. the inputs and variables).
Times are min/median over interleaved rounds, in seconds.

Run as a script by :func:`lstmcompat.bench.suite.bench_tf` (``python tf_worker.py JOB``);
TensorFlow and its settings are loaded by :func:`main` only, so importing this file does
nothing.
"""

import json
import os
import sys
import time
import warnings

import numpy as np

tf = None  # TensorFlow, once main() has loaded it


def variants(B, T, D, U):
    keras_layer = tf.compat.v1.keras.layers.LSTM(U, return_sequences=True)
    keras_layer.build((B, T, D))
    cell = tf.compat.v1.nn.rnn_cell.LSTMCell(U, use_peepholes=True, num_proj=U // 2,
                                             cell_clip=3.0)

    def tf1(x):
        out, _ = tf.compat.v1.nn.dynamic_rnn(cell, x, dtype=tf.float32)
        return out

    tf1(tf.zeros((B, 1, D)))  # build the cell's variables
    out = {}
    for name, fn, vars_ in (("tf_keras", keras_layer, keras_layer.trainable_variables),
                            ("tf_dynamic_rnn", tf1, cell.trainable_variables)):
        fwd = tf.function(fn)

        def train(x, fn=fn, vars_=vars_):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(fn(x))
            return tape.gradient(loss, [x, *vars_])

        out[name] = (fwd, tf.function(train))
    return out


def timed(f, x):
    t = time.perf_counter()
    r = f(x)
    # force completion
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, r)
    return time.perf_counter() - t


def main():
    global tf
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")  # this process is TensorFlow's own
    import tensorflow

    tf = tensorflow
    job = json.loads(sys.argv[1])
    tf.config.threading.set_intra_op_parallelism_threads(job.get("threads", 0))
    results = []
    for B, T, D, U in job["shapes"]:
        x = tf.constant(np.random.default_rng(0).standard_normal((B, T, D)).astype("float32"))
        vs = variants(B, T, D, U)
        times = {(n, m): [] for n in vs for m in ("fwd", "train")}
        for fwd, train in vs.values():  # trace + warm up
            timed(fwd, x)
            timed(train, x)
        for _ in range(job["rounds"]):
            for n, (fwd, train) in vs.items():
                times[(n, "fwd")].append(timed(fwd, x))
                times[(n, "train")].append(timed(train, x))
        for (n, m), ts in times.items():
            results.append(dict(shape=[B, T, D, U], variant=n, mode=m, min=min(ts),
                                median=float(np.median(ts))))
    print(json.dumps(dict(tf_version=tf.__version__, results=results)))


if __name__ == "__main__":
    main()
