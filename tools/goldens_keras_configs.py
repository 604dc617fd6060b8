"""Write LSTM layer configs as Keras files store them, with outputs: ``tests/goldens/keras_configs/``.

Run in the TensorFlow venv (TensorFlow is never a dependency of lstmcompat or its
tests, which only read the committed files)::

    /work/tfvenv/bin/python tools/goldens_keras_configs.py

It runs itself twice, as subprocesses: with ``TF_USE_LEGACY_KERAS=1`` (tf_keras,
Keras 2: ``tf_keras.json``) and without it (Keras 3 on TensorFlow: ``keras3.json``).
Each case is a functional model ``Input -> LSTM`` whose layer entry is taken from
``model.get_config()["layers"]`` (what a full-model ``.h5`` stores under
``model_config``, and a ``.keras`` archive in ``config.json``; for Keras 3 also
``keras.saving.serialize_keras_object(layer)``). A case holds the entry, fixed
weights (``layer.get_weights()`` order), a fixed input and the model's outputs
(inference: ``training=False``). Cases with ``"expect_error"`` have a config
lstmcompat must refuse (no outputs). ``keras3.json`` also holds Keras 3's
activations by name on a grid (values and gradients), to check the name mapping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "keras_configs"
T, B, D, U = 5, 2, 3, 4


def cases_keras2(keras, tf):
    L, I, R, C = keras.layers, keras.initializers, keras.regularizers, keras.constraints
    v1 = tf.compat.v1.keras.layers
    return [
        ("defaults", lambda: L.LSTM(U), {}),
        ("v1_defaults", lambda: v1.LSTM(U), {}),
        ("hard_sigmoid", lambda: L.LSTM(U, recurrent_activation="hard_sigmoid"), {}),
        ("no_bias", lambda: L.LSTM(U, use_bias=False), {}),
        ("seq_state_backwards", lambda: L.LSTM(U, return_sequences=True, return_state=True,
                                               go_backwards=True), {}),
        ("no_unit_forget_bias", lambda: L.LSTM(U, unit_forget_bias=False,
                                               bias_initializer="ones"), {}),
        ("init_reg_constraints", lambda: L.LSTM(
            U, kernel_initializer="he_normal", recurrent_initializer=I.Orthogonal(gain=0.5),
            bias_initializer=I.Constant(0.1), kernel_regularizer=R.L2(0.01),
            recurrent_regularizer=R.L1L2(0.01, 0.02), bias_regularizer="l1",
            activity_regularizer="l2", kernel_constraint=C.MaxNorm(2.0),
            recurrent_constraint=C.UnitNorm(), bias_constraint=C.NonNeg(),
            dropout=0.2, recurrent_dropout=0.1, implementation=1), {}),
        ("relu_softsign", lambda: L.LSTM(U, activation="relu", recurrent_activation="softsign",
                                         return_sequences=True), {}),
        ("float64", lambda: L.LSTM(U, dtype="float64", return_sequences=True), {}),
        ("unroll_time_major", lambda: L.LSTM(U, unroll=True, time_major=True,
                                             return_sequences=True), {"batch_size": T}),
        ("stateful", lambda: L.LSTM(U, stateful=True), {"batch_size": B}),
        ("mixed_float16", lambda: L.LSTM(U, dtype="mixed_float16"),
         {"expect_error": "dtype"}),
    ]


def cases_keras3(keras, tf):
    L, I, R, C = keras.layers, keras.initializers, keras.regularizers, keras.constraints
    return [
        ("defaults", lambda: L.LSTM(U), {}),
        ("hard_sigmoid", lambda: L.LSTM(U, recurrent_activation="hard_sigmoid"), {}),
        ("hard_sigmoid_both", lambda: L.LSTM(U, activation="hard_sigmoid",
                                             recurrent_activation="hard_sigmoid",
                                             return_sequences=True), {}),
        ("no_bias", lambda: L.LSTM(U, use_bias=False), {}),
        ("seq_state_backwards", lambda: L.LSTM(U, return_sequences=True, return_state=True,
                                               go_backwards=True), {}),
        ("no_unit_forget_bias", lambda: L.LSTM(U, unit_forget_bias=False,
                                               bias_initializer="ones"), {}),
        ("init_reg_constraints", lambda: L.LSTM(
            U, kernel_initializer="he_normal", recurrent_initializer=I.Orthogonal(gain=0.5),
            bias_initializer=I.Constant(0.1), kernel_regularizer=R.L2(0.01),
            recurrent_regularizer=R.L1L2(0.01, 0.02), bias_regularizer="l1",
            activity_regularizer="l2", kernel_constraint=C.MaxNorm(2.0),
            recurrent_constraint=C.UnitNorm(), bias_constraint=C.NonNeg(),
            dropout=0.2, recurrent_dropout=0.1, seed=7), {}),
        ("relu_silu", lambda: L.LSTM(U, activation="relu", recurrent_activation="silu",
                                     return_sequences=True), {}),
        ("float64", lambda: L.LSTM(U, dtype="float64", return_sequences=True), {}),
        ("unroll", lambda: L.LSTM(U, unroll=True, return_sequences=True), {}),
        ("stateful", lambda: L.LSTM(U, stateful=True), {"batch_size": B}),
        ("use_cudnn_false", lambda: L.LSTM(U, use_cudnn=False), {}),
        ("mixed_float16", lambda: L.LSTM(U, dtype="mixed_float16"),
         {"expect_error": "dtype"}),
        ("zero_output_for_mask", lambda: L.LSTM(U, zero_output_for_mask=True,
                                                return_sequences=True),
         {"expect_error": "zero_output_for_mask"}),
    ]


#: Keras 3 activation names whose math lstmcompat maps (checked against these values).
KERAS3_ACTIVATIONS = ["elu", "exponential", "gelu", "hard_sigmoid", "leaky_relu", "linear",
                      "mish", "relu", "relu6", "selu", "sigmoid", "silu", "softplus",
                      "softsign", "swish", "tanh"]


def tolist(a):
    import numpy as np

    return np.asarray(a).tolist()


def run(version: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    if version == 2:
        import tf_keras as keras
        cases = cases_keras2(keras, tf)
    else:
        import keras
        cases = cases_keras3(keras, tf)
    rng = np.random.default_rng(20 + version)
    out = {"keras_version": version, "keras_module_version": keras.__version__,
           "tf_version": tf.__version__, "cases": []}
    for name, make, opts in cases:
        tf.keras.backend.clear_session() if version == 2 else keras.backend.clear_session()
        layer = make()
        time_major = getattr(layer, "time_major", False)
        shape = (B, D) if time_major else (T, D)  # time-major: the "batch" axis is time
        dt = "float64" if "float64" in name else "float32"
        inp = keras.Input(shape=shape, batch_size=opts.get("batch_size"), dtype=dt)
        model = keras.Model(inp, layer(inp))
        entries = [e for e in model.get_config()["layers"] if e["class_name"] != "InputLayer"]
        assert len(entries) == 1, entries
        entry = entries[0]
        case = {"name": name, "entry": entry}
        if version == 3:
            case["serialized"] = keras.saving.serialize_keras_object(layer)
        if "expect_error" in opts:
            case["expect_error"] = opts["expect_error"]
            out["cases"].append(case)
            continue
        weights = [rng.uniform(-0.9, 0.9, size=w.shape).astype(dt) for w in layer.get_weights()]
        layer.set_weights(weights)
        x = (rng.standard_normal((T, B, D) if time_major else (B, T, D)) * 1.5).astype(dt)
        outs = model(tf.constant(x), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        case.update(weights=[tolist(w) for w in weights], x=tolist(x), dtype=dt,
                    outputs=[tolist(o.numpy()) for o in outs])
        out["cases"].append(case)
    if version == 3:
        x = np.concatenate([np.linspace(-7, 7, 57), [-3.0, 3.0, 0.0, -20.0, 20.0]]
                           ).astype("float32")
        acts = {}
        for a in KERAS3_ACTIVATIONS:
            xt = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = keras.activations.get(a)(xt)
            acts[a] = {"serialized": keras.activations.serialize(keras.activations.get(a)),
                       "y": tolist(y.numpy()), "g": tolist(tape.gradient(y, xt).numpy())}
        out["activations"] = {"x": tolist(x), "by_name": acts}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / ("tf_keras.json" if version == 2 else "keras3.json")
    path.write_text(json.dumps(out, indent=None, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--keras":
        run(int(sys.argv[2]))
        return
    for version in (2, 3):
        env = dict(os.environ)
        env.pop("TF_USE_LEGACY_KERAS", None)
        if version == 2:
            env["TF_USE_LEGACY_KERAS"] = "1"
        subprocess.run([sys.executable, __file__, "--keras", str(version)], env=env, check=True)


if __name__ == "__main__":
    main()
