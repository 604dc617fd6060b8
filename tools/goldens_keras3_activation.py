"""Write the goldens of Keras 3's ``hard_sigmoid``: ``tests/goldens/keras3_hard_sigmoid.json``.

Run in the TensorFlow venv WITHOUT ``TF_USE_LEGACY_KERAS`` (so that ``import keras``
is Keras 3, on its TensorFlow backend; TensorFlow is never a dependency of
lstmcompat or its tests, which only read the committed file)::

    /work/tfvenv/bin/python tools/goldens_keras3_activation.py

Keras 3's ``keras.activations.hard_sigmoid`` is ``relu6(x + 3) / 6`` (TF backend:
``tf.nn.relu6(x + tf.constant(3.0)) / tf.constant(6.0)``), not tf_keras's
``clip(0.2 * x + 0.5, 0, 1)``. The file holds, per dtype (float32, float64):

* ``x``: points including -3 and 3 and their neighbours, 0, +-2.5, large values,
  +-inf, NaN and a fine grid over [-3.5, 3.5];
* ``y = hard_sigmoid(x)``;
* ``g = d sum(v * y) / dx`` (GradientTape) for finite weights ``v``, and
  ``g_nonfinite`` for weights with NaN and inf entries (``v_nonfinite``), which
  pins TF's gradient form: ``Relu6Grad`` multiplies by a 0/1 mask (so NaN and inf
  upstream gradients give NaN where the function is flat), then ``/ 6``;
* ``lstm``: a Keras 3 ``keras.layers.LSTM`` with ``recurrent_activation="hard_sigmoid"``
  on a fixed input with fixed weights: its config, weights, outputs (sequence and
  states) and the gradients of ``sum(seq * w)`` w.r.t. the input and each weight.

Floats are stored as JSON numbers (float32 values are exact in float64; NaN and
infinities as Python's ``json`` writes them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

if os.environ.get("TF_USE_LEGACY_KERAS", "") not in ("", "0"):
    raise SystemExit("run without TF_USE_LEGACY_KERAS: these goldens are Keras 3's")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "keras3_hard_sigmoid.json"


def points(dtype) -> np.ndarray:
    t = np.dtype(dtype).type
    inf = t(np.inf)
    special = [-inf, t(-1e30), t(-100), t(-6), t(-3.5), t(-3), t(-2.5), t(-1), t(-1e-30),
               t(-0.0), t(0), t(1e-30), t(0.5), t(1), t(2.5), t(3), t(3.5), t(6), t(100),
               t(1e30), inf, t(np.nan)]
    for k in (t(-3), t(3), t(-2.5), t(2.5)):
        special += [np.nextafter(k, -inf), np.nextafter(k, inf)]
    grid = np.linspace(-3.5, 3.5, 141).astype(dtype)
    rng = np.random.default_rng(3)
    rand = rng.uniform(-3.2, 3.2, size=60).astype(dtype)
    return np.concatenate([np.array(special, dtype), grid, rand])


def value_and_grad(x: np.ndarray, v: np.ndarray):
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = keras.activations.hard_sigmoid(xt)
        loss = tf.reduce_sum(y * tf.constant(v))
    return y.numpy(), tape.gradient(loss, xt).numpy()


def activation_case(dtype) -> dict:
    x = points(dtype)
    rng = np.random.default_rng(5)
    v = rng.uniform(0.5, 1.5, size=x.shape).astype(dtype) * np.where(
        rng.random(x.shape) < 0.5, -1, 1).astype(dtype)
    y, g = value_and_grad(x, v)
    v_nf = v.copy()
    v_nf[0::3] = np.nan
    v_nf[1::3] = np.inf
    _, g_nf = value_and_grad(x, v_nf)
    return {"x": x.tolist(), "v": v.tolist(), "y": y.tolist(), "g": g.tolist(),
            "v_nonfinite": v_nf.tolist(), "g_nonfinite": g_nf.tolist()}


def lstm_case() -> dict:
    units, depth, batch, steps = 3, 4, 2, 6
    rng = np.random.default_rng(11)
    layer = keras.layers.LSTM(units, recurrent_activation="hard_sigmoid",
                              return_sequences=True, return_state=True)
    layer.build((batch, steps, depth))
    weights = [rng.uniform(-1.2, 1.2, size=w.shape).astype("float32")
               for w in layer.get_weights()]
    layer.set_weights(weights)
    x = (rng.standard_normal((batch, steps, depth)) * 2.5).astype("float32")
    w = rng.standard_normal((batch, steps, units)).astype("float32")
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        seq, h, c = layer(xt)
        loss = tf.reduce_sum(seq * tf.constant(w))
    grads = tape.gradient(loss, [xt] + layer.trainable_weights)
    return {
        "config": {k: v for k, v in layer.get_config().items()
                   if k in ("units", "activation", "recurrent_activation", "use_bias",
                            "unit_forget_bias", "return_sequences", "return_state")},
        "weights": [a.tolist() for a in weights],
        "x": x.tolist(), "loss_weights": w.tolist(),
        "seq": seq.numpy().tolist(), "h": h.numpy().tolist(), "c": c.numpy().tolist(),
        "grad_x": grads[0].numpy().tolist(),
        "grad_weights": [gw.numpy().tolist() for gw in grads[1:]],
    }


def main() -> None:
    data = {
        "keras_version": keras.__version__, "tf_version": tf.__version__,
        "backend": keras.backend.backend(),
        "float32": activation_case("float32"),
        "float64": activation_case("float64"),
        "lstm": lstm_case(),
    }
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
