"""Golden data for lstmcompat.LSTM from the TensorFlow reference (tf.compat.v1.keras.layers.LSTM).

Run from the repository root:

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_keras.py

It writes tests/goldens/keras/*.npz plus tests/goldens/keras/manifest.json and
tests/goldens/keras/facts.json. The tests (tests/keras/test_parity_*.py) only
read those files; they never import TensorFlow.

Everything recorded here is what TensorFlow 2.21 + tf_keras actually did when
this script ran (nothing is hand-written as an "expected" value): outputs,
final states, gradients of a fixed random-weighted sum of all returned
tensors, layer.losses in TF's order, one constrained SGD step, get_config()
dicts, exception types for bad inputs, and dropout/initializer observations.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if not tf.keras.__name__.startswith("tf_keras"):
    sys.exit("run with TF_USE_LEGACY_KERAS=1 (tf.keras must be tf_keras)")

LSTM = tf.compat.v1.keras.layers.LSTM
regs = tf.keras.regularizers

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "goldens" / "keras"

MANIFEST: dict = {"forward": [], "stateful": [], "regularizers": [], "constraints": []}
FACTS: dict = {}


def rng_for(name: str) -> np.random.RandomState:
    return np.random.RandomState(zlib.crc32(name.encode()) & 0x7FFFFFFF)


def make_weights(rng, F, U, dtype, use_bias=True, scale=(0.6, 0.6, 0.5)):
    w = [
        (rng.standard_normal((F, 4 * U)) * scale[0]).astype(dtype),
        (rng.standard_normal((U, 4 * U)) * scale[1]).astype(dtype),
    ]
    if use_bias:
        w.append((rng.standard_normal(4 * U) * scale[2]).astype(dtype))
    return w


def save(name: str, arrays: dict) -> str:
    fname = f"{name}.npz"
    np.savez_compressed(OUT / fname, **{k: np.asarray(v) for k, v in arrays.items()})
    return fname


def _np(t):
    return None if t is None else np.asarray(t.numpy() if hasattr(t, "numpy") else t)


def build_layer(kwargs, dtype):
    return LSTM(**kwargs, dtype=dtype)


def weight_names(layer):
    names = ["kernel", "recurrent_kernel"]
    if len(layer.trainable_weights) == 3:
        names.append("bias")
    return names


def run_forward(layer, x, mask, h0, c0, state_mode, training=False):
    """Call the TF layer the way the manifest says. Returns a list of outputs."""
    kw = {"training": training}
    if mask is not None:
        kw["mask"] = mask
    if state_mode == "kw":
        out = layer(x, initial_state=[h0, c0], **kw)
    elif state_mode == "list":
        out = layer([x, h0, c0], **kw)
    else:
        out = layer(x, **kw)
    return out if isinstance(out, list) else [out]


# --------------------------------------------------------------------------- forward
def forward_case(
    name,
    layer_kwargs=None,
    *,
    B=2,
    T=5,
    F=3,
    U=4,
    dtype="float32",
    x_dtype=None,
    mask=None,
    mask_kind="bool",
    state=None,
    weight_seed=None,
    weight_scale=(0.6, 0.6, 0.5),
):
    layer_kwargs = dict(layer_kwargs or {})
    layer_kwargs.setdefault("units", U)
    x_dtype = x_dtype or dtype
    time_major = layer_kwargs.get("time_major", False)
    # cases sharing a seed get identical weights, inputs and loss weights
    rng = rng_for((weight_seed or name) + "/data")
    wrng = rng_for(weight_seed or name)
    use_bias = layer_kwargs.get("use_bias", True)
    weights = make_weights(wrng, F, U, dtype, use_bias, weight_scale)
    xshape = (T, B, F) if time_major else (B, T, F)
    x = rng.standard_normal(xshape).astype(x_dtype)
    h0 = (rng.standard_normal((B, U)) * 0.5).astype(dtype)
    c0 = (rng.standard_normal((B, U)) * 0.5).astype(dtype)
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if time_major:
            m = m.T  # given (batch, time) for readability; TF wants (time, batch)
        assert m.shape == xshape[:2], (name, m.shape)
        if mask_kind == "float":
            m = m.astype(dtype)

    layer = build_layer(layer_kwargs, dtype)
    # build, then load the deterministic weights
    run_forward(layer, tf.constant(x), None if m is None else tf.constant(m),
                tf.constant(h0), tf.constant(c0), state)
    layer.set_weights(weights)
    assert weight_names(layer) == [w.name.split("/")[-1].split(":")[0] for w in layer.weights]

    xt, ht, ct = tf.constant(x), tf.constant(h0), tf.constant(c0)
    mt = None if m is None else tf.constant(m)
    with tf.GradientTape() as tape:
        tape.watch([xt, ht, ct])
        outs = run_forward(layer, xt, mt, ht, ct, state)
        lw = [(rng.standard_normal(o.shape.as_list())).astype(o.dtype.name) for o in outs]
        loss = tf.add_n([tf.reduce_sum(o * w) for o, w in zip(outs, lw, strict=True)])
    srcs = [xt] + ([ht, ct] if state else []) + list(layer.trainable_weights)
    grads = tape.gradient(loss, srcs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    arrays = {"x": x, "loss": _np(loss)}
    if m is not None:
        arrays["mask"] = m
    if state:
        arrays["h0"], arrays["c0"] = h0, c0
    for n, w in zip(weight_names(layer), weights, strict=True):
        arrays[n] = w
    for i, (o, w) in enumerate(zip(outs, lw, strict=True)):
        arrays[f"out_{i}"] = _np(o)
        arrays[f"w_{i}"] = w
    gnames = ["x"] + (["h0", "c0"] if state else []) + weight_names(layer)
    for n, g in zip(gnames, grads, strict=True):
        arrays[f"grad_{n}"] = _np(g)
    entry = {
        "name": name,
        "file": save(name, arrays),
        "layer": layer_kwargs,
        "dtype": dtype,
        "x_dtype": x_dtype,
        "out_dtype": outs[0].dtype.name,
        "mask": None if m is None else mask_kind,
        "initial_state": state,
        "n_outputs": len(outs),
        "out_shapes": [o.shape.as_list() for o in outs],
        "grads": gnames,
    }
    MANIFEST["forward"].append(entry)
    return arrays


def forward_cases():
    R = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]  # right padded
    Lp = [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]  # left padded
    H = [[1, 0, 1, 0, 1], [1, 1, 0, 0, 1]]  # holes
    Z3 = [[1, 1, 1, 1, 0], [0, 0, 0, 0, 0], [0, 1, 1, 0, 1]]  # one all-false row
    fc = forward_case
    fc("default")
    fc("rec_sigmoid", {"recurrent_activation": "sigmoid"})
    for act in ["relu", None, "softsign", "elu", "selu", "hard_sigmoid", "sigmoid"]:
        fc(f"act_{act or 'none'}", {"activation": act})
    fc("act_linear_str", {"activation": "linear"})
    fc("no_bias", {"use_bias": False, "return_sequences": True})
    fc("impl1", {"implementation": 1, "return_sequences": True})
    fc("impl2", {"implementation": 2, "return_sequences": True})
    fc("impl2_sigmoid_relu", {"implementation": 2, "recurrent_activation": "sigmoid",
                              "activation": "relu", "return_state": True})
    fc("impl2_no_bias", {"implementation": 2, "use_bias": False})
    fc("return_sequences", {"return_sequences": True})
    fc("return_state", {"return_state": True})
    fc("return_both", {"return_sequences": True, "return_state": True})
    fc("go_backwards", {"go_backwards": True})
    fc("go_backwards_seq_state", {"go_backwards": True, "return_sequences": True,
                                  "return_state": True})
    fc("time_major", {"time_major": True})
    fc("time_major_seq_state", {"time_major": True, "return_sequences": True,
                                "return_state": True}, B=3, T=4)
    fc("unroll", {"unroll": True, "return_state": True})
    fc("unroll_seq_backwards", {"unroll": True, "return_sequences": True, "go_backwards": True})
    fc("long_units", {"return_sequences": True}, B=3, T=6, F=5, U=3)
    # masks (Keras carry semantics)
    fc("mask_right", {"return_state": True}, mask=R)
    fc("mask_left", {"return_state": True}, mask=Lp)
    fc("mask_holes", {"return_state": True}, mask=H)
    fc("mask_all_false_row", {"return_state": True}, B=3, mask=Z3)
    fc("mask_all_false_row_init", {"return_sequences": True, "return_state": True}, B=3,
       mask=Z3, state="kw")
    fc("mask_float", {"return_state": True}, mask=H, mask_kind="float")
    fc("mask_seq", {"return_sequences": True, "return_state": True}, mask=H)
    fc("mask_seq_left", {"return_sequences": True}, mask=Lp)
    fc("mask_go_backwards", {"go_backwards": True, "return_sequences": True,
                             "return_state": True}, mask=R)
    fc("mask_go_backwards_holes", {"go_backwards": True, "return_state": True}, mask=H)
    fc("mask_time_major", {"time_major": True, "return_sequences": True,
                           "return_state": True}, mask=H)
    fc("mask_time_major_backwards", {"time_major": True, "go_backwards": True,
                                     "return_state": True}, B=3, mask=Z3)
    fc("mask_unroll", {"unroll": True, "return_sequences": True, "return_state": True}, mask=H)
    fc("mask_unroll_backwards", {"unroll": True, "go_backwards": True, "return_state": True},
       B=3, mask=Z3)
    fc("mask_impl2", {"implementation": 2, "return_sequences": True, "return_state": True},
       mask=H)
    # initial state
    fc("init_state_kw", {"return_state": True}, state="kw")
    fc("init_state_list", {"return_state": True}, state="list")
    fc("init_state_kw_seq", {"return_sequences": True}, state="kw")
    fc("init_state_mask_backwards", {"go_backwards": True, "return_state": True}, mask=R,
       state="kw")
    fc("init_state_time_major", {"time_major": True, "return_state": True}, state="list")
    # float64
    fc("f64_default", dtype="float64")
    fc("f64_seq_state_init", {"return_sequences": True, "return_state": True},
       dtype="float64", state="kw")
    fc("f64_mask_backwards", {"go_backwards": True, "return_sequences": True,
                              "return_state": True}, dtype="float64", mask=H)
    fc("f64_impl2_sigmoid", {"implementation": 2, "recurrent_activation": "sigmoid",
                             "return_state": True}, dtype="float64", state="list")
    fc("f64_time_major_mask_unroll", {"time_major": True, "unroll": True,
                                      "return_sequences": True}, dtype="float64", mask=Lp)
    # a float64 input into a float32 layer: computed in float32, output float32
    fc("x_f64_into_f32", {"return_state": True}, x_dtype="float64")
    # dropout layers in inference mode give exactly the no-dropout result
    a = fc("dropout_inference", {"dropout": 0.4, "recurrent_dropout": 0.3},
           weight_seed="default")
    b = np.load(OUT / "default.npz")
    assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["out_0"], b["out_0"])
    fc("dropout_inference_impl2_seq", {"dropout": 0.5, "implementation": 2,
                                       "return_sequences": True}, weight_seed="impl2")
    c = np.load(OUT / "impl2.npz")
    assert np.array_equal(np.load(OUT / "dropout_inference_impl2_seq.npz")["out_0"], c["out_0"])


# --------------------------------------------------------------------------- stateful
def stateful_case(name, layer_kwargs, ops, *, B=2, T=4, F=3, U=4, dtype="float32"):
    """ops: list of ("call", {"mask": bool, "init": bool}) | ("reset", None|"values")."""
    rng = rng_for(name)
    weights = make_weights(rng, F, U, dtype)
    kwargs = dict(layer_kwargs, units=U, stateful=True, batch_input_shape=[B, None, F])
    layer = LSTM(**kwargs, dtype=dtype)
    arrays = {}
    steps = []
    layer(tf.zeros((B, T, F), dtype), training=False)  # build
    layer.reset_states()
    layer.set_weights(weights)
    for n, w in zip(weight_names(layer), weights, strict=True):
        arrays[n] = w
    for k, (op, arg) in enumerate(ops):
        step = {"op": op}
        if op == "call":
            arg = arg or {}
            x = rng.standard_normal((B, T, F)).astype(dtype)
            arrays[f"s{k}_x"] = x
            kw = {"training": False}
            if arg.get("mask"):
                m = rng.uniform(size=(B, T)) > 0.35
                arrays[f"s{k}_mask"] = m
                kw["mask"] = tf.constant(m)
            if arg.get("init"):
                h0 = (rng.standard_normal((B, U)) * 0.5).astype(dtype)
                c0 = (rng.standard_normal((B, U)) * 0.5).astype(dtype)
                arrays[f"s{k}_h0"], arrays[f"s{k}_c0"] = h0, c0
                kw["initial_state"] = [tf.constant(h0), tf.constant(c0)]
            zero_before = all(not np.any(_np(s)) for s in layer.states)
            out = layer(tf.constant(x), **kw)
            out = out if isinstance(out, list) else [out]
            for i, o in enumerate(out):
                arrays[f"s{k}_out_{i}"] = _np(o)
            step.update(mask=bool(arg.get("mask")), init=bool(arg.get("init")),
                        n_outputs=len(out), states_zero_before=zero_before)
        else:
            if arg == "values":
                h = (rng.standard_normal((B, U))).astype(dtype)
                c = (rng.standard_normal((B, U))).astype(dtype)
                arrays[f"s{k}_reset_h"], arrays[f"s{k}_reset_c"] = h, c
                layer.reset_states([h, c])
            else:
                layer.reset_states()
            step["values"] = arg == "values"
        arrays[f"s{k}_states_h"] = _np(layer.states[0])
        arrays[f"s{k}_states_c"] = _np(layer.states[1])
        steps.append(step)
    MANIFEST["stateful"].append({
        "name": name, "file": save(name, arrays), "layer": kwargs, "dtype": dtype,
        "steps": steps,
    })


def stateful_cases():
    ops = [
        ("call", None), ("call", None),              # continues from stored states
        ("reset", None), ("call", None),             # zeros again
        ("reset", "values"), ("call", None),         # reset_states([h, c]) with numpy arrays
        ("reset", None), ("call", {"init": True}),   # states all zero: initial_state used
        ("call", {"init": True}),                    # states non-zero: initial_state ignored
    ]
    stateful_case("stateful_seq", {"return_sequences": True}, ops)
    stateful_case("stateful_state_mask", {"return_state": True},
                  [("call", {"mask": True}), ("call", {"mask": True, "init": True}),
                   ("reset", None), ("call", {"mask": True, "init": True}),
                   ("call", {"mask": True})])
    stateful_case("stateful_backwards_f64", {"go_backwards": True, "return_state": True,
                                             "implementation": 2},
                  [("call", None), ("call", None), ("reset", "values"), ("call", None)],
                  dtype="float64")


# --------------------------------------------------------------------------- regularizers
def _reg(spec):
    """spec as stored in the manifest: a Keras name, or {"l1": a, "l2": b}."""
    if spec is None or isinstance(spec, str):
        return spec
    return regs.L1L2(l1=spec.get("l1", 0.0), l2=spec.get("l2", 0.0))


REG_KEYS = ["kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
            "activity_regularizer"]


def reg_case(name, layer_kwargs, batches, *, T=4, F=3, U=4, time_major=False,
             dtype="float32"):
    rng = rng_for(name)
    weights = make_weights(rng, F, U, dtype)
    spec = dict(layer_kwargs, units=U, time_major=time_major)
    kwargs = {k: (_reg(v) if k in REG_KEYS else v) for k, v in spec.items()}
    layer = LSTM(**kwargs, dtype=dtype)
    arrays = {}
    b0 = batches[0]
    layer(tf.zeros((T, b0, F) if time_major else (b0, T, F), dtype), training=False)
    layer.set_weights(weights)
    for n, w in zip(weight_names(layer), weights, strict=True):
        arrays[n] = w
    # losses after build, before any call with our weights (activity losses of
    # the build call are still there: record them too)
    for k, B in enumerate(batches):
        x = rng.standard_normal((T, B, F) if time_major else (B, T, F)).astype(dtype)
        out = layer(tf.constant(x), training=False)
        out = out if isinstance(out, list) else [out]
        arrays[f"c{k}_x"] = x
        for i, o in enumerate(out):
            arrays[f"c{k}_out_{i}"] = _np(o)
        arrays[f"c{k}_losses"] = np.array([float(v) for v in layer.losses], dtype="float64")
    MANIFEST["regularizers"].append({
        "name": name, "file": save(name, arrays), "layer": spec, "dtype": dtype,
        "calls": len(batches),
        "losses_order": "activity penalties of the latest call (one per returned tensor, "
                        "in return order), then kernel, recurrent_kernel, bias penalties",
    })
    return layer


def reg_cases():
    reg_case("reg_strings", {"kernel_regularizer": "l2", "recurrent_regularizer": "l1",
                             "bias_regularizer": "l1_l2"}, [2])
    reg_case("reg_custom_weights", {"kernel_regularizer": {"l2": 0.02},
                                    "recurrent_regularizer": {"l1": 0.03},
                                    "bias_regularizer": {"l1": 0.01, "l2": 0.05}}, [2])
    reg_case("reg_activity_last", {"activity_regularizer": {"l1": 0.07}}, [2, 3])
    reg_case("reg_activity_seq_state", {
        "kernel_regularizer": {"l2": 0.02}, "recurrent_regularizer": {"l1": 0.03},
        "bias_regularizer": {"l1": 0.01, "l2": 0.05},
        "activity_regularizer": {"l1": 0.02, "l2": 0.05},
        "return_sequences": True, "return_state": True}, [2, 3])
    reg_case("reg_activity_time_major", {"activity_regularizer": "l2",
                                         "return_sequences": True, "return_state": True},
             [3], T=5, time_major=True)
    reg_case("reg_activity_state_only", {"activity_regularizer": {"l2": 0.3},
                                         "recurrent_regularizer": "l2",
                                         "return_state": True}, [3, 2])
    # default factors of the string forms
    FACTS["regularizer_strings"] = {
        s: regs.get(s).get_config() for s in ["l1", "l2", "l1_l2"]}


# --------------------------------------------------------------------------- constraints
def constraint_cases():
    name = "constraints_sgd"
    B, T, F, U, lr = 2, 4, 3, 4, 0.1
    dtype = "float32"
    rng = rng_for(name)
    # big kernel columns (some norms > 2), a non-unit recurrent kernel, negative biases
    weights = make_weights(rng, F, U, dtype, scale=(1.6, 0.8, 1.0))
    kw = {"units": U, "kernel_constraint": "max_norm", "recurrent_constraint": "unit_norm",
          "bias_constraint": "non_neg", "return_sequences": True}
    layer = LSTM(**kw)
    x = rng.standard_normal((B, T, F)).astype(dtype)
    layer(tf.constant(x), training=False)
    layer.set_weights(weights)
    after_set = layer.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(after_set, weights, strict=True)), "set_weights constrained"
    lw = rng.standard_normal((B, T, U)).astype(dtype)
    with tf.GradientTape() as tape:
        out = layer(tf.constant(x), training=False)
        loss = tf.reduce_sum(out * lw)
    assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), weights, strict=True)), \
        "forward constrained"
    grads = tape.gradient(loss, layer.trainable_weights)
    opt = tf.keras.optimizers.SGD(learning_rate=lr)
    opt.apply_gradients(zip(grads, layer.trainable_weights, strict=True))
    stepped = layer.get_weights()
    cons = [layer.kernel_constraint, layer.recurrent_constraint, layer.bias_constraint]
    direct = [_np(c(tf.constant(w))) for c, w in zip(cons, weights, strict=True)]
    manual = [_np(c(tf.constant(w - lr * _np(g)))) for c, w, g in zip(cons, weights, grads, strict=True)]
    for a, b in zip(stepped, manual, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # the constraints really bite on these weights
    for a, b in zip(direct, weights, strict=True):
        assert not np.allclose(a, b)
    arrays = {"x": x, "w_0": lw, "out_0": _np(out), "loss": _np(loss)}
    for n, w, g, s, d in zip(weight_names(layer), weights, grads, stepped, direct, strict=True):
        arrays[n] = w
        arrays[f"grad_{n}"] = _np(g)
        arrays[f"sgd_{n}"] = s
        arrays[f"constrained_{n}"] = d
    MANIFEST["constraints"].append({
        "name": name, "file": save(name, arrays), "layer": kw, "dtype": dtype, "lr": lr,
        "note": "tf_keras SGD.apply_gradients: var -= lr*grad, then var.assign(constraint(var)); "
                "set_weights and forward never apply constraints",
    })


# --------------------------------------------------------------------------- configs
CONFIG_CASES = {
    "default": {"units": 4, "name": "lstm"},
    "full": {
        "units": 3, "name": "lstm_full", "activation": "relu", "recurrent_activation": "sigmoid",
        "use_bias": False, "kernel_initializer": "he_normal",
        "recurrent_initializer": "glorot_normal", "bias_initializer": "ones",
        "unit_forget_bias": False, "kernel_regularizer": "l2", "recurrent_regularizer": "l1",
        "bias_regularizer": "l1_l2", "activity_regularizer": "l2",
        "kernel_constraint": "max_norm", "recurrent_constraint": "unit_norm",
        "bias_constraint": "non_neg", "dropout": 0.25, "recurrent_dropout": 0.5,
        "return_sequences": True, "return_state": True, "go_backwards": True,
        "unroll": True, "time_major": True, "implementation": 2,
    },
    "linear_clamped": {"units": 2, "name": "lstm_lin", "activation": None,
                       "recurrent_activation": None, "dropout": 1.5,
                       "recurrent_dropout": -0.5, "implementation": 2},
    "input_shape": {"units": 4, "name": "lstm_is", "input_shape": [None, 3]},
    "stateful": {"units": 4, "name": "lstm_st", "stateful": True,
                 "batch_input_shape": [2, 5, 3], "return_sequences": True},
    "float64": {"units": 4, "name": "lstm_64", "dtype": "float64",
                "kernel_initializer": "orthogonal", "recurrent_initializer": "zeros"},
    "softsign_elu": {"units": 4, "name": "lstm_se", "activation": "softsign",
                     "recurrent_activation": "hard_sigmoid", "implementation": 1},
}


def config_cases():
    out = {}
    for key, kw in CONFIG_CASES.items():
        kw2 = dict(kw)
        if "input_shape" in kw2:
            kw2["input_shape"] = tuple(kw2["input_shape"])
        if "batch_input_shape" in kw2:
            kw2["batch_input_shape"] = tuple(kw2["batch_input_shape"])
        layer = LSTM(**kw2)
        cfg = layer.get_config()
        cfg2 = LSTM.from_config(layer.get_config()).get_config()
        assert json.dumps(cfg, sort_keys=True) == json.dumps(cfg2, sort_keys=True), key
        out[key] = {"kwargs": kw, "config": cfg, "key_order": list(cfg.keys()),
                    "attrs": {"dropout": layer.dropout,
                              "recurrent_dropout": layer.recurrent_dropout,
                              "implementation": layer.implementation,
                              "units": layer.units}}
    (OUT / "configs.json").write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")


# --------------------------------------------------------------------------- facts
def _exc(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - recording what TF raises
        msg = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
        return {"type": type(e).__name__, "message": msg[:400]}
    return None


def error_facts():
    x = tf.constant(np.ones((2, 5, 3), "float32"))
    z = lambda *s: tf.zeros(s)  # noqa: E731
    built = LSTM(4)
    built(x)
    st = LSTM(4, stateful=True)
    st_built = LSTM(4, stateful=True)
    st_built(x)
    errors = {
        "units_0": _exc(lambda: LSTM(0)),
        "units_negative": _exc(lambda: LSTM(-3)),
        "input_2d": _exc(lambda: LSTM(4)(x[:, 0])),
        "input_4d": _exc(lambda: LSTM(4)(x[None])),
        "feature_mismatch_after_build": _exc(lambda: built(tf.ones((2, 5, 4)))),
        "initial_state_one_tensor": _exc(lambda: built(x, initial_state=[z(2, 4)])),
        "initial_state_three_tensors": _exc(lambda: built(x, initial_state=[z(2, 4)] * 3)),
        "list_input_one_state": _exc(lambda: built([x, z(2, 4)])),
        "initial_state_wrong_units": _exc(lambda: built(x, initial_state=[z(2, 5)] * 2)),
        "initial_state_wrong_batch": _exc(lambda: built(x, initial_state=[z(3, 4)] * 2)),
        "set_weights_wrong_count": _exc(lambda: built.set_weights(built.get_weights()[:2])),
        "set_weights_wrong_shape": _exc(lambda: built.set_weights(
            [np.zeros((3, 15)), np.zeros((4, 16)), np.zeros(16)])),
        "set_weights_wrong_shape_bias": _exc(lambda: built.set_weights(
            [np.zeros((3, 16)), np.zeros((4, 16)), np.zeros(12)])),
        "reset_states_not_stateful": _exc(lambda: built.reset_states()),
        "reset_states_unknown_batch": _exc(lambda: st.reset_states()),
        "reset_states_wrong_shape": _exc(lambda: st_built.reset_states(
            [np.zeros((3, 4)), np.zeros((2, 4))])),
        "reset_states_wrong_units": _exc(lambda: st_built.reset_states(
            [np.zeros((2, 4)), np.zeros((2, 5))])),
        "reset_states_wrong_count": _exc(lambda: st_built.reset_states([np.zeros((2, 4))])),
    }
    for impl in (1, 2):
        for kw in ({"dropout": 1.0}, {"recurrent_dropout": 1.0}, {"dropout": 1.5}):
            key = f"rate_one_training_impl{impl}_" + "_".join(f"{k}{v}" for k, v in kw.items())
            errors[key] = _exc(lambda kw=kw, impl=impl: LSTM(4, implementation=impl, **kw)(
                x, training=True))
            errors[key.replace("training", "inference")] = _exc(
                lambda kw=kw, impl=impl: LSTM(4, implementation=impl, **kw)(x, training=False))
    FACTS["errors"] = errors
    FACTS["invalid_argument_maps_to"] = "ValueError (API.md section 4)"


def dropout_facts():
    """How TF's dropout behaves, measured with weights that expose the masks.

    Layer: units == features == 32, activation and recurrent_activation linear,
    kernel = [k_i | 0 | I | 0], bias = [b_i | 0 | 0 | 1], recurrent kernel 0,
    inputs all ones. Then f = 0, o = 1, c_t = i_t * (x_t . I) and
    h_t = i_t * (mask_c * x / (1-p)). With k_i = 0, b_i = 1 only the c-gate
    input mask shows; with k_i = I, b_i = 0 the product of the i- and c-gate
    masks shows (impl 1: independent masks -> nonzero fraction (1-p)^2; impl 2:
    one shared mask -> (1-p)).
    """
    n, B, T, p = 32, 128, 4, 0.5
    res = {}
    for impl in (1, 2):
        for both in (False, True):
            layer = LSTM(n, activation=None, recurrent_activation=None, dropout=p,
                         implementation=impl, return_sequences=True)
            x = tf.ones((B, T, n))
            layer(x, training=False)
            k = np.zeros((n, 4 * n), "float32")
            b = np.zeros(4 * n, "float32")
            k[:, 2 * n:3 * n] = np.eye(n)
            if both:
                k[:, :n] = np.eye(n)
            else:
                b[:n] = 1
            b[3 * n:] = 1
            layer.set_weights([k, np.zeros((n, 4 * n), "float32"), b])
            h1 = _np(layer(x, training=True))
            h2 = _np(layer(x, training=True))
            vals = np.unique(np.round(h1, 5))
            res[f"impl{impl}_{'i_and_c' if both else 'c_only'}"] = {
                "same_mask_every_step": bool((h1 == h1[:, :1]).all()),
                "nonzero_fraction": float((h1[:, 0] != 0).mean()),
                "distinct_values": vals.tolist(),
                "new_mask_each_call": bool((h1 != h2).any()),
            }
    # recurrent dropout: kernel 0, R = [0 | 0 | I | 0], bias [1 | 0 | 1 | 1]
    # h_1 = 1 everywhere; h_t = 1 + m * h_{t-1} / (1-p)
    layer = LSTM(n, activation=None, recurrent_activation=None, recurrent_dropout=p,
                 implementation=2, return_sequences=True)
    x = tf.ones((B, T, n))
    layer(x, training=False)
    r = np.zeros((n, 4 * n), "float32")
    r[:, 2 * n:3 * n] = np.eye(n)
    b = np.zeros(4 * n, "float32")
    b[:n] = 1
    b[2 * n:] = 1
    layer.set_weights([np.zeros((n, 4 * n), "float32"), r, b])
    h = _np(layer(x, training=True))
    h = h.transpose(0, 2, 1)  # (batch, unit, time): one trajectory per (b, j)
    kept = h[:, :, 1] != 1
    expected_kept = [1.0]
    for _ in range(T - 1):
        expected_kept.append(1 + expected_kept[-1] / (1 - p))
    res["recurrent"] = {
        "implementation_after_recurrent_dropout": layer.implementation,
        "first_step_all_ones": bool((h[:, :, 0] == 1).all()),
        "kept_fraction": float(kept.mean()),
        "kept_trajectory_matches": bool(np.allclose(h[kept], np.array(expected_kept)[None, :],
                                                    rtol=1e-6)),
        "dropped_trajectory_all_ones": bool((h[~kept] == 1).all()),
        "expected_kept_trajectory": expected_kept,
    }
    FACTS["dropout"] = res
    FACTS["dropout_clamp"] = {
        str(v): [LSTM(2, dropout=v).dropout, LSTM(2, recurrent_dropout=v).recurrent_dropout]
        for v in (1.5, -0.5, 0.25, 1.0)}
    FACTS["recurrent_dropout_forces_impl1"] = LSTM(2, recurrent_dropout=0.1,
                                                   implementation=2).implementation
    FACTS["dropout_keeps_impl2"] = LSTM(2, dropout=0.1, implementation=2).implementation


def init_facts():
    F, U = 5, 6
    layer = LSTM(U, bias_initializer="ones")
    layer(tf.ones((2, 3, F)))
    fb = {"unit_forget_bias_with_ones": layer.get_weights()[2].tolist()}
    layer = LSTM(U, unit_forget_bias=False)
    layer(tf.ones((2, 3, F)))
    fb["no_unit_forget_bias_zeros"] = layer.get_weights()[2].tolist()
    layer = LSTM(U)
    layer(tf.ones((2, 3, F)))
    k, r, b = layer.get_weights()
    fb["default_bias"] = b.tolist()
    fb["glorot_limit"] = float(np.sqrt(6.0 / (F + 4 * U)))
    fb["kernel_abs_max"] = float(np.abs(k).max())
    fb["recurrent_rrt_minus_eye_max"] = float(np.abs(r @ r.T - np.eye(U)).max())
    fb["recurrent_column_norms"] = np.linalg.norm(r, axis=0).round(6).tolist()
    layer = LSTM(U, bias_initializer="random_uniform")
    layer(tf.ones((2, 3, F)))
    b = layer.get_weights()[2]
    fb["random_uniform_bias"] = b.tolist()
    fb["random_uniform_bias_note"] = (
        "TF quirk: the unseeded initializer returns the same values on each call, so the i "
        "slice equals the first half of the (c, o) slice; not tested (RNG detail)")
    FACTS["initializers"] = fb


def shape_facts():
    x = tf.ones((2, 5, 3))
    shapes = {}
    for rs in (False, True):
        for st in (False, True):
            for tm in (False, True):
                layer = LSTM(4, return_sequences=rs, return_state=st, time_major=tm)
                out = layer(x, training=False)
                out = out if isinstance(out, list) else [out]
                shapes[f"seq{int(rs)}_state{int(st)}_tm{int(tm)}"] = [o.shape.as_list()
                                                                      for o in out]
    layer = LSTM(4)
    layer(x)
    shapes["weights"] = [w.shape.as_list() for w in layer.weights]
    shapes["weight_names"] = [w.name for w in layer.weights]
    layer = LSTM(4, use_bias=False)
    layer(x)
    shapes["weights_no_bias"] = [w.shape.as_list() for w in layer.weights]
    FACTS["shapes"] = shapes


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.glob("*.npz"):
        f.unlink()
    tf.keras.utils.set_random_seed(1234)
    forward_cases()
    stateful_cases()
    reg_cases()
    constraint_cases()
    config_cases()
    error_facts()
    dropout_facts()
    init_facts()
    shape_facts()
    FACTS["tensorflow_version"] = tf.__version__
    (OUT / "manifest.json").write_text(json.dumps(MANIFEST, indent=1) + "\n")
    (OUT / "facts.json").write_text(json.dumps(FACTS, indent=1) + "\n")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1e6:.2f} MB, to {OUT}")


if __name__ == "__main__":
    main()
