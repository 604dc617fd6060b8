"""Golden data for lstmcompat.Bidirectional and lstmcompat.CuDNNLSTM from TensorFlow.

Run from the repository root:

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_keras_family.py

It writes tests/goldens/keras_family/: ``manifest.json`` (the cases, configs and
error messages), one ``.npz`` per numeric case, and small model files. The tests
(tests/keras/test_bidirectional.py, tests/keras/test_cudnn_lstm.py,
tests/interop/test_keras_family_files.py) only read them.

* Bidirectional: ``tf.compat.v1.keras.layers.Bidirectional(LSTM(...))`` run in
  TensorFlow: outputs, states and the gradients of a fixed random-weighted sum of
  every returned tensor (inputs, initial states, every weight, forward then
  backward), for each merge mode, masks (right-padded and with holes),
  ``return_sequences`` both ways, ``return_state``, ``initial_state``,
  ``go_backwards``, ``time_major``, a given ``backward_layer`` and two stateful calls.
* CuDNNLSTM: TensorFlow runs it on a GPU only, so its numbers come from tf_keras's
  own conversion of CuDNNLSTM weights when loading them into an ``LSTM``
  (``hdf5_format._convert_rnn_weights``) and that ``LSTM``
  (``recurrent_activation="sigmoid"``) run on them; the gradients with respect to
  the cuDNN-layout weights are the converted ones mapped back (the conversion is
  a permutation of the kernels and a sum of the two biases). CuDNNLSTM itself is
  built (on CPU that works) for its configs, initial bias and file layout.
* Files: ``model.save`` / ``save_weights`` HDF5 of a Bidirectional(LSTM) model, a
  CuDNNLSTM model, a Bidirectional(CuDNNLSTM) model, and a TF2 object checkpoint
  of a Bidirectional model, each with the outputs TensorFlow (or, for CuDNNLSTM,
  the converted LSTM) gives.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zlib
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if not tf.keras.__name__.startswith("tf_keras"):
    sys.exit("run with TF_USE_LEGACY_KERAS=1 (tf.keras must be tf_keras)")

from tf_keras.src.saving.legacy import hdf5_format  # noqa: E402

L = tf.compat.v1.keras.layers
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "goldens" / "keras_family"
MANIFEST: dict = {"bidirectional": [], "cudnn": [], "configs": {}, "errors": {}, "files": {},
                  "facts": {}}

R = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]  # right padded
H = [[1, 0, 1, 0, 1], [1, 1, 0, 0, 1], [0, 1, 1, 1, 1]]  # holes / left padded


def rng_for(name: str) -> np.random.RandomState:
    return np.random.RandomState(zlib.crc32(name.encode()) & 0x7FFFFFFF)


def _np(t):
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t)


def save(name: str, arrays: dict) -> str:
    fname = f"{name}.npz"
    np.savez_compressed(OUT / fname, **{k: np.asarray(v) for k, v in arrays.items()})
    return fname


def _call(layer, x, mask, states, mode):
    kw = {}
    if mask is not None:
        kw["mask"] = mask
    if states is not None and mode == "kw":
        out = layer(x, initial_state=states, **kw)
    elif states is not None and mode == "list":
        out = layer([x, *states], **kw)
    else:
        out = layer(x, **kw)
    return out if isinstance(out, list) else [out]


# ---------------------------------------------------------------------- Bidirectional
def bidi_case(name, inner=None, *, merge_mode="concat", B=3, T=5, F=3, U=4, dtype="float64",
              mask=None, state=None, backward=None, wrapper_dtype="same"):
    inner = dict(inner or {})
    inner.setdefault("units", U)
    time_major = inner.get("time_major", False)
    rng = rng_for(name)
    layer = L.LSTM(**inner, dtype=dtype)
    kwargs = {"merge_mode": merge_mode}
    if wrapper_dtype is not None:  # None: the wrapper's default float32 (autocast)
        kwargs["dtype"] = dtype if wrapper_dtype == "same" else wrapper_dtype
    if backward is not None:
        kwargs["backward_layer"] = L.LSTM(**{**inner, **backward}, dtype=dtype)
    bi = L.Bidirectional(layer, **kwargs)
    xshape = (T, B, F) if time_major else (B, T, F)
    x = rng.standard_normal(xshape).astype(dtype)
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if time_major:
            m = m.T
    states = None
    if state:
        states = [(0.5 * rng.standard_normal((B, U))).astype(dtype) for _ in range(4)]
    _call(bi, tf.constant(x), None, None if states is None else [tf.constant(s) for s in states],
          state)
    weights = [(0.5 * rng.standard_normal(w.shape)).astype(dtype) for w in bi.get_weights()]
    bi.set_weights(weights)
    xt = tf.constant(x)
    st = None if states is None else [tf.constant(s) for s in states]
    with tf.GradientTape() as tape:
        tape.watch([xt] + (st or []))
        outs = _call(bi, xt, None if m is None else tf.constant(m), st, state)
        lw = [rng.standard_normal(o.shape.as_list()).astype(dtype) for o in outs]
        loss = tf.add_n([tf.reduce_sum(o * w) for o, w in zip(outs, lw)])
    srcs = [xt] + (st or []) + list(bi.trainable_weights)
    grads = tape.gradient(loss, srcs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    arrays = {"x": x}
    if m is not None:
        arrays["mask"] = m
    for i, s in enumerate(states or []):
        arrays[f"state_{i}"] = s
    for i, w in enumerate(weights):
        arrays[f"weight_{i}"] = w
    for i, (o, w) in enumerate(zip(outs, lw)):
        arrays[f"out_{i}"] = _np(o)
        arrays[f"lw_{i}"] = w
    for i, g in enumerate(grads):
        arrays[f"grad_{i}"] = _np(g)
    MANIFEST["bidirectional"].append({
        "name": name, "file": save(name, arrays), "inner": inner, "merge_mode": merge_mode,
        "backward": backward, "dtype": dtype, "wrapper_dtype": kwargs.get("dtype"), "initial_state": state,
        "n_outputs": len(outs), "n_states": len(states or []),
        "names": [bi.forward_layer.name, bi.backward_layer.name],
        "weight_names": [w.name for w in bi.weights],
    })


def bidi_stateful(name, *, B=2, T=4, F=3, U=3, merge_mode="concat", return_state=False):
    rng = rng_for(name)
    bi = L.Bidirectional(L.LSTM(U, stateful=True, return_sequences=True,
                                return_state=return_state, batch_input_shape=(B, T, F)),
                         merge_mode=merge_mode)
    x1, x2, x3 = (rng.standard_normal((B, T, F)).astype("float32") for _ in range(3))
    bi(tf.constant(x1))
    weights = [(0.5 * rng.standard_normal(w.shape)).astype("float32") for w in bi.get_weights()]
    bi.set_weights(weights)
    bi.reset_states()
    arrays = {"x1": x1, "x2": x2, "x3": x3}
    for i, w in enumerate(weights):
        arrays[f"weight_{i}"] = w
    for k, x in (("1", x1), ("2", x2)):
        for i, o in enumerate(_call(bi, tf.constant(x), None, None, None)):
            arrays[f"out{k}_{i}"] = _np(o)
    bi.reset_states()
    for i, o in enumerate(_call(bi, tf.constant(x3), None, None, None)):
        arrays[f"out3_{i}"] = _np(o)
    MANIFEST["bidirectional"].append({
        "name": name, "file": save(name, arrays), "stateful": True, "units": U,
        "batch_input_shape": [B, T, F], "merge_mode": merge_mode, "return_state": return_state,
    })


def bidi_cases():
    for mode in ["concat", "sum", "mul", "ave", None]:
        for seq in (True, False):
            bidi_case(f"bi_{mode}_{'seq' if seq else 'last'}",
                      {"return_sequences": seq}, merge_mode=mode)
    for mode in ["concat", "sum", None]:
        for seq in (True, False):
            for mk, mask in (("right", R), ("holes", H)):
                bidi_case(f"bi_{mode}_{'seq' if seq else 'last'}_mask_{mk}",
                          {"return_sequences": seq}, merge_mode=mode, mask=mask)
    bidi_case("bi_state", {"return_state": True})
    bidi_case("bi_state_seq_none", {"return_state": True, "return_sequences": True},
              merge_mode=None)
    bidi_case("bi_state_mask", {"return_state": True, "return_sequences": True}, mask=H)
    bidi_case("bi_initial_state_kw", {"return_sequences": True}, state="kw")
    bidi_case("bi_initial_state_list", {"return_state": True}, state="list", mask=R)
    bidi_case("bi_go_backwards", {"go_backwards": True, "return_sequences": True})
    bidi_case("bi_time_major", {"time_major": True, "return_sequences": True}, mask=H)
    bidi_case("bi_sigmoid", {"recurrent_activation": "sigmoid", "return_sequences": True},
              mask=R)
    bidi_case("bi_backward_layer", {"return_sequences": True},
              backward={"go_backwards": True, "units": 4, "activation": "relu",
                        "name": "custom_back"}, mask=H)
    bidi_case("bi_float32", {"return_sequences": True, "recurrent_activation": "sigmoid"},
              dtype="float32", mask=R)
    bidi_case("bi_autocast_float64", {"return_sequences": True}, wrapper_dtype=None, mask=R)
    bidi_stateful("bi_stateful")
    bidi_stateful("bi_stateful_state_sum", merge_mode="sum", return_state=True)


# -------------------------------------------------------------------------- CuDNNLSTM
def cudnn_to_lstm(weights, units, features):
    """tf_keras's own conversion (what ``load_weights`` does) of CuDNNLSTM weights."""
    target = L.LSTM(units, recurrent_activation="sigmoid")
    target.build((None, None, features))
    return hdf5_format._convert_rnn_weights(target, weights)


def keras_grads_to_cudnn(gk, gr, gb):
    """The chain rule through the conversion: the inverse kernel permutation, and the
    bias gradient for both halves."""
    k = np.hstack([g.T.reshape(g.shape, order="C") for g in np.hsplit(gk, 4)])
    r = np.hstack([g.T for g in np.hsplit(gr, 4)])
    return k, r, np.concatenate([gb, gb])


def cudnn_case(name, flags=None, *, B=3, T=5, F=3, U=4, dtype="float64", state=None):
    flags = dict(flags or {})
    time_major = flags.get("time_major", False)
    rng = rng_for(name)
    cu = [(0.5 * rng.standard_normal(s)).astype(dtype)
          for s in ((F, 4 * U), (U, 4 * U), (8 * U,))]
    conv = cudnn_to_lstm(cu, U, F)
    layer = L.LSTM(U, recurrent_activation="sigmoid", dtype=dtype, **flags)
    xshape = (T, B, F) if time_major else (B, T, F)
    x = rng.standard_normal(xshape).astype(dtype)
    states = None
    if state:
        states = [(0.5 * rng.standard_normal((B, U))).astype(dtype) for _ in range(2)]
    _call(layer, tf.constant(x), None, None if states is None else
          [tf.constant(s) for s in states], state)
    layer.set_weights(conv)
    xt = tf.constant(x)
    st = None if states is None else [tf.constant(s) for s in states]
    with tf.GradientTape() as tape:
        tape.watch([xt] + (st or []))
        outs = _call(layer, xt, None, st, state)
        lw = [rng.standard_normal(o.shape.as_list()).astype(dtype) for o in outs]
        loss = tf.add_n([tf.reduce_sum(o * w) for o, w in zip(outs, lw)])
    srcs = [xt] + (st or []) + list(layer.trainable_weights)
    grads = [_np(g) for g in tape.gradient(loss, srcs,
                                           unconnected_gradients=tf.UnconnectedGradients.ZERO)]
    n = 1 + len(st or [])
    grads = grads[:n] + list(keras_grads_to_cudnn(*grads[n:]))
    arrays = {"x": x, "kernel": cu[0], "recurrent_kernel": cu[1], "bias": cu[2],
              "lstm_kernel": conv[0], "lstm_recurrent_kernel": conv[1], "lstm_bias": conv[2]}
    for i, s in enumerate(states or []):
        arrays[f"state_{i}"] = s
    for i, (o, w) in enumerate(zip(outs, lw)):
        arrays[f"out_{i}"] = _np(o)
        arrays[f"lw_{i}"] = w
    for i, g in enumerate(grads):
        arrays[f"grad_{i}"] = g
    MANIFEST["cudnn"].append({"name": name, "file": save(name, arrays), "flags": flags,
                              "units": U, "dtype": dtype, "initial_state": state,
                              "n_outputs": len(outs)})


def cudnn_stateful(name, *, B=2, T=4, F=3, U=3):
    rng = rng_for(name)
    cu = [(0.5 * rng.standard_normal(s)).astype("float32")
          for s in ((F, 4 * U), (U, 4 * U), (8 * U,))]
    layer = L.LSTM(U, recurrent_activation="sigmoid", stateful=True, return_sequences=True,
                   batch_input_shape=(B, T, F))
    x1, x2 = (rng.standard_normal((B, T, F)).astype("float32") for _ in range(2))
    layer(tf.constant(x1))
    layer.set_weights(cudnn_to_lstm(cu, U, F))
    layer.reset_states()
    arrays = {"x1": x1, "x2": x2, "kernel": cu[0], "recurrent_kernel": cu[1], "bias": cu[2],
              "out1": _np(layer(tf.constant(x1))), "out2": _np(layer(tf.constant(x2)))}
    MANIFEST["cudnn"].append({"name": name, "file": save(name, arrays), "stateful": True,
                              "units": U, "batch_input_shape": [B, T, F]})


def cudnn_cases():
    cudnn_case("cu_default")
    cudnn_case("cu_seq", {"return_sequences": True})
    cudnn_case("cu_state", {"return_state": True, "return_sequences": True})
    cudnn_case("cu_backwards", {"go_backwards": True, "return_sequences": True,
                                "return_state": True})
    cudnn_case("cu_time_major", {"time_major": True, "return_sequences": True})
    cudnn_case("cu_initial_state", {"return_state": True}, state="kw")
    cudnn_case("cu_initial_state_list", {"return_sequences": True}, state="list")
    cudnn_case("cu_float32", {"return_sequences": True}, dtype="float32")
    cudnn_stateful("cu_stateful")


# ---------------------------------------------------------------------- configs, errors
def _err(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the type and message are the golden
        return {"type": type(e).__name__, "message": str(e)}
    return None


def configs_and_errors():
    C = MANIFEST["configs"]
    tf.keras.backend.clear_session()
    C["cudnn_default"] = L.CuDNNLSTM(3).get_config()
    C["cudnn_full"] = L.CuDNNLSTM(
        5, kernel_initializer="he_normal", recurrent_initializer="glorot_normal",
        bias_initializer="ones", unit_forget_bias=False, kernel_regularizer="l2",
        recurrent_regularizer=tf.keras.regularizers.L1L2(0.01, 0.02),
        bias_regularizer="l1", activity_regularizer="l2", kernel_constraint="max_norm",
        recurrent_constraint="non_neg", bias_constraint="unit_norm", return_sequences=True,
        return_state=True, go_backwards=True, stateful=True, time_major=True,
        batch_input_shape=(2, None, 3), name="cu", dtype="float64").get_config()
    C["cudnn_input_shape"] = L.CuDNNLSTM(2, input_shape=(None, 4), name="cu2").get_config()
    C["cudnn_input_dim"] = L.CuDNNLSTM(2, input_dim=4, name="cu3").get_config()
    tf.keras.backend.clear_session()
    C["bi_default"] = L.Bidirectional(L.LSTM(3)).get_config()
    for mode in ["sum", "mul", "ave", None]:
        C[f"bi_{mode}"] = L.Bidirectional(L.LSTM(3, name="l"), merge_mode=mode,
                                          name=f"b_{mode}").get_config()
    C["bi_backward_layer"] = L.Bidirectional(
        L.LSTM(3, return_sequences=True, name="fw"),
        backward_layer=L.LSTM(3, return_sequences=True, go_backwards=True, name="bw"),
        name="bb").get_config()
    C["bi_cudnn"] = L.Bidirectional(L.CuDNNLSTM(3, name="cu"), name="bc").get_config()
    b = L.Bidirectional(L.LSTM(3, name="q", return_sequences=True), name="bn")
    MANIFEST["facts"]["names"] = [b.forward_layer.name, b.backward_layer.name]
    MANIFEST["facts"]["zero_output_for_mask"] = [b.forward_layer.zero_output_for_mask,
                                                 b.backward_layer.zero_output_for_mask]
    MANIFEST["facts"]["forward_config"] = b.forward_layer.get_config()
    b = L.Bidirectional(L.LSTM(3, dtype="float64"), name="b64")
    MANIFEST["facts"]["float64_inner_dtype"] = b.get_config()["dtype"]
    # the built bias of CuDNNLSTM: ones at [5u:6u] with unit_forget_bias
    for ufb in (True, False):
        cu = L.CuDNNLSTM(2, bias_initializer=tf.keras.initializers.Constant(0.5),
                         unit_forget_bias=ufb)
        cu.build((None, None, 3))
        MANIFEST["facts"][f"cudnn_bias_ufb_{ufb}"] = cu.get_weights()[2].tolist()
        MANIFEST["facts"]["cudnn_weight_names"] = [w.name for w in cu.weights]

    E = MANIFEST["errors"]
    E["not_a_layer"] = _err(lambda: L.Bidirectional("lstm"))
    E["backward_not_a_layer"] = _err(lambda: L.Bidirectional(L.LSTM(2), backward_layer=3))
    E["merge_mode"] = _err(lambda: L.Bidirectional(L.LSTM(2), merge_mode="max"))
    E["same_go_backwards"] = _err(lambda: L.Bidirectional(L.LSTM(2), backward_layer=L.LSTM(2)))
    for a in ("return_sequences", "return_state", "stateful"):
        E[f"differ_{a}"] = _err(lambda a=a: L.Bidirectional(
            L.LSTM(2), backward_layer=L.LSTM(2, go_backwards=True, **{a: True})))
    bi = L.Bidirectional(L.LSTM(2))
    x = tf.zeros((2, 3, 3))
    E["odd_initial_state"] = _err(lambda: bi(x, initial_state=[tf.zeros((2, 2))] * 3))
    E["reset_not_stateful"] = _err(lambda: bi.reset_states())
    E["set_weights_count"] = _err(lambda: (bi(x), bi.set_weights([np.zeros((3, 8))])))
    E["cudnn_mask"] = _err(lambda: L.CuDNNLSTM(2)(x, mask=tf.ones((2, 3), bool)))


# ------------------------------------------------------------------------------ files
def files():
    F = MANIFEST["files"]
    rng = rng_for("files")
    x = rng.standard_normal((2, 5, 3)).astype("float32")

    def fill(model):
        model.set_weights([(0.5 * rng.standard_normal(w.shape)).astype("float32")
                           for w in model.get_weights()])

    # Bidirectional(LSTM): full model HDF5, weights HDF5, TF2 object checkpoint
    tf.keras.backend.clear_session()
    inp = tf.keras.Input((5, 3))
    out = L.Bidirectional(L.LSTM(4, return_sequences=True, recurrent_activation="sigmoid",
                                 name="lstm"), merge_mode="sum", name="bidi")(inp)
    model = tf.keras.Model(inp, out)
    fill(model)
    model.save(str(OUT / "bidi_model.h5"))
    model.save_weights(str(OUT / "bidi_weights.h5"))
    tf.train.Checkpoint(model=model).write(str(OUT / "bidi_ckpt" / "ckpt"))
    F["bidi"] = {"x": x.tolist(), "out": model(x).numpy().tolist(),
                 "weights": [w.tolist() for w in model.layers[1].get_weights()],
                 "config": model.layers[1].get_config(),
                 "variables": [n for n, _ in tf.train.list_variables(str(OUT / "bidi_ckpt" /
                                                                         "ckpt"))]}

    # CuDNNLSTM: full model HDF5 (built, not run: TF runs it on a GPU only)
    tf.keras.backend.clear_session()
    inp = tf.keras.Input((5, 3))
    out = L.CuDNNLSTM(4, return_sequences=True, name="cu")(inp)
    model = tf.keras.Model(inp, out)
    fill(model)
    model.save(str(OUT / "cudnn_model.h5"))
    model.save_weights(str(OUT / "cudnn_weights.h5"))
    cu = model.layers[1].get_weights()
    conv = cudnn_to_lstm(cu, 4, 3)
    ref = L.LSTM(4, recurrent_activation="sigmoid", return_sequences=True)
    ref(x)
    ref.set_weights(conv)
    F["cudnn"] = {"x": x.tolist(), "out": ref(x).numpy().tolist(),
                  "weights": [w.tolist() for w in cu],
                  "lstm_weights": [w.tolist() for w in conv],
                  "config": model.layers[1].get_config()}
    # the same file loaded by tf_keras into an LSTM model (its own conversion)
    tf.keras.backend.clear_session()
    inp = tf.keras.Input((5, 3))
    lm = tf.keras.Model(inp, L.LSTM(4, return_sequences=True, recurrent_activation="sigmoid",
                                    name="cu")(inp))
    lm.load_weights(str(OUT / "cudnn_weights.h5"))
    F["cudnn"]["loaded_into_lstm"] = [w.tolist() for w in lm.layers[1].get_weights()]
    F["cudnn"]["loaded_out"] = lm(x).numpy().tolist()

    # Bidirectional(CuDNNLSTM): full model HDF5
    tf.keras.backend.clear_session()
    inp = tf.keras.Input((5, 3))
    out = L.Bidirectional(L.CuDNNLSTM(2, name="cu"), name="bicu")(inp)
    model = tf.keras.Model(inp, out)
    fill(model)
    model.save(str(OUT / "bidi_cudnn_model.h5"))
    w = model.layers[1].get_weights()
    ys = []
    for part, back in ((w[:3], False), (w[3:], True)):
        ref = L.LSTM(2, recurrent_activation="sigmoid", go_backwards=back)
        ref(x)
        ref.set_weights(cudnn_to_lstm(part, 2, 3))
        ys.append(ref(x).numpy())
    F["bidi_cudnn"] = {"x": x.tolist(), "out": np.concatenate(ys, -1).tolist(),
                       "weights": [a.tolist() for a in w],
                       "config": model.layers[1].get_config()}


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    (OUT / "bidi_ckpt").mkdir()
    bidi_cases()
    cudnn_cases()
    configs_and_errors()
    files()
    MANIFEST["tensorflow"] = tf.__version__
    (OUT / "manifest.json").write_text(json.dumps(MANIFEST, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
