"""Write the tf_keras goldens for initializers, regularizers, constraints, activations.

Run in the TensorFlow venv (TensorFlow is never a dependency of lstmcompat or its
tests; the tests only read the committed files this writes):

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_keras_utils.py

Writes small files to ``tests/goldens/keras_utils/``:

* ``activations.npz``: a float32 grid ``x`` (2 x 40, incl. the hard_sigmoid kinks
  ``+-2.5`` and their float32 neighbours), weights ``v``, and for each case
  ``y_<case> = f(x)`` and ``g_<case> = d sum(v * f(x)) / dx`` (GradientTape).
* ``initializers_stats.json``: per initializer/shape, statistics of large samples
  (a fresh TF initializer per draw: an unseeded TF instance repeats its values),
  the theoretical support, and orthogonality statistics; deterministic outputs.
* ``regularizers.npz`` / ``constraints.npz``: inputs and outputs.
* ``api.json``: the names each ``get`` accepts and what ``serialize`` writes for
  them, configs of non-default objects, a v1 LSTM layer's config, and the
  exception type/message for bad identifiers and arguments.

Expressions are stored as strings and evaluated in both worlds with the same
aliases: ``I`` (initializers), ``R`` (regularizers), ``C`` (constraints), ``A``
(activations), ``T`` (make a tensor).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from tf_keras import activations as A  # noqa: E402
from tf_keras import constraints as C  # noqa: E402
from tf_keras import initializers as I  # noqa: E402
from tf_keras import regularizers as R  # noqa: E402
from tf_keras.src import initializers as _init_pkg  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "keras_utils"
T = tf.constant
ENV = {"I": I, "R": R, "C": C, "A": A, "T": T, "np": np}
QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]


def jsonable(obj):
    """Make TF/NumPy values JSON-able (NumPy scalars -> Python)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ----------------------------------------------------------------------------- activations

ACTIVATION_CASES = {
    # case id -> expression of a callable of x
    **{name: f"A.get({name!r})" for name in [
        "elu", "exponential", "gelu", "hard_sigmoid", "leaky_relu", "linear", "log_softmax",
        "mish", "relu", "relu6", "selu", "sigmoid", "silu", "softmax", "softplus", "softsign",
        "swish", "tanh",
    ]},
    "relu_alpha_max_threshold": "lambda x: A.relu(x, alpha=0.1, max_value=4.0, threshold=0.5)",
    "relu_alpha": "lambda x: A.relu(x, alpha=0.3)",
    "relu_max6": "lambda x: A.relu(x, max_value=6.0)",
    "relu_max3": "lambda x: A.relu(x, max_value=3.0)",
    "relu_threshold": "lambda x: A.relu(x, threshold=1.0)",
    "elu_alpha": "lambda x: A.elu(x, alpha=0.5)",
    "gelu_approximate": "lambda x: A.gelu(x, approximate=True)",
    "softmax_axis0": "lambda x: A.softmax(x, axis=0)",
    "softmax_axes": "lambda x: A.softmax(x, axis=(0, 1))",
}


def activation_grid() -> np.ndarray:
    f32 = np.float32
    special = [-20, -15, -14, -13.9, -6, -5, -3, -2.5, -2, -1.5, -1, -0.5, -1e-3, -1e-6, 0,
               1e-6, 1e-3, 0.5, 1, 1.5, 2, 2.5, 3, 5, 6, 13.9, 14, 15, 20]
    pts = [f32(s) for s in special]
    # float32 neighbours of kinks/thresholds. Not those of 0: they are denormals, which
    # TF's CPU kernels flush to zero (so TF treats them as 0), torch does not.
    for k in (-2.5, 2.5, 6.0, 0.5, 1.0, 3.0):
        pts += [np.nextafter(f32(k), f32(-np.inf)), np.nextafter(f32(k), f32(np.inf))]
    pts += [f32(-1e-30), f32(1e-30)]
    pts = np.array(pts, dtype=f32)
    fill = np.linspace(-7.0, 7.0, 80 - len(pts), dtype=f32)
    return np.concatenate([pts, fill]).astype(f32).reshape(2, 40)


def make_activations() -> dict:
    x = activation_grid()
    v = np.random.default_rng(0).normal(size=x.shape).astype(np.float32)
    arrays = {"x": x, "v": v}
    for case, expr in ACTIVATION_CASES.items():
        fn = eval(expr, ENV)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = fn(xt)
            s = tf.reduce_sum(y * v)
        g = tape.gradient(s, xt)
        arrays[f"y_{case}"] = y.numpy().astype(np.float32)
        arrays[f"g_{case}"] = g.numpy().astype(np.float32)
    np.savez_compressed(OUT / "activations.npz", **arrays)
    return {"cases": ACTIVATION_CASES}


# ----------------------------------------------------------------------------- initializers

def _support(expr: str, shape) -> tuple[float | None, float | None]:
    """The theoretical support [lo, hi] from TF's own formulas (None: unbounded)."""
    init = eval(expr, ENV)
    from tf_keras.src.initializers.initializers import _compute_fans

    if isinstance(init, I.VarianceScaling):
        fan_in, fan_out = _compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[init.mode]
        s = init.scale / max(1.0, n)
        if init.distribution == "uniform":
            lim = float(np.sqrt(3.0 * s))
            return -lim, lim
        if init.distribution == "truncated_normal":
            lim = 2.0 * float(np.sqrt(s)) / 0.87962566103423978
            return -lim, lim
        return None, None
    if isinstance(init, I.RandomUniform):
        return float(init.minval), float(init.maxval)
    if isinstance(init, I.TruncatedNormal):
        return float(init.mean - 2 * init.stddev), float(init.mean + 2 * init.stddev)
    return None, None


STAT_CASES = [
    # (expr, shape, dtype); LSTM kernel (features=8, 4*units=64), conv-like, vector
    ("I.GlorotUniform()", (8, 64), "float32"),
    ("I.GlorotUniform()", (3, 5, 7), "float32"),
    ("I.GlorotUniform()", (100,), "float32"),
    ("I.GlorotUniform()", (8, 64), "float64"),
    ("I.GlorotNormal()", (8, 64), "float32"),
    ("I.HeNormal()", (8, 64), "float32"),
    ("I.HeUniform()", (8, 64), "float32"),
    ("I.LecunNormal()", (8, 64), "float32"),
    ("I.LecunUniform()", (8, 64), "float32"),
    ("I.VarianceScaling()", (8, 64), "float32"),
    ("I.VarianceScaling(2.0, 'fan_out', 'untruncated_normal')", (8, 64), "float32"),
    ("I.VarianceScaling(0.5, 'fan_avg', 'normal')", (16, 4, 4), "float64"),
    ("I.RandomUniform()", (8, 64), "float32"),
    ("I.RandomUniform(-1.0, 3.0)", (8, 64), "float32"),
    ("I.RandomNormal()", (8, 64), "float32"),
    ("I.RandomNormal(1.0, 0.5)", (8, 64), "float32"),
    ("I.TruncatedNormal()", (8, 64), "float32"),
    ("I.TruncatedNormal(1.0, 0.5)", (8, 64), "float64"),
]
TARGET_SAMPLES = 100_000

ORTHO_CASES = [
    # (expr, shape, dtype): the LSTM recurrent kernel (units=16, 4*units), tall, 3D, square
    ("I.Orthogonal()", (16, 64), "float32"),
    ("I.Orthogonal()", (64, 16), "float32"),
    ("I.Orthogonal(gain=2.0)", (2, 4, 16), "float32"),
    ("I.Orthogonal(gain=0.5)", (8, 8), "float64"),
]
ORTHO_DRAWS = 1000

DETERMINISTIC = [
    ("I.Zeros()", (2, 3), "float32"),
    ("I.Ones()", (3, 2), "float64"),
    ("I.Constant(2.5)", (2, 3), "float32"),
    ("I.Constant([1.0, 2.0, 3.0, 4.0])", (2, 2), "float32"),
    ("I.Identity()", (3, 3), "float32"),
    ("I.Identity(gain=2.0)", (3, 5), "float32"),
    ("I.Identity(0.5)", (4, 2), "float64"),
    ("I.get('zeros')", (4,), "float32"),
    ("I.get('ones')", (2, 2), "int32"),
]


def _gram_error(w: np.ndarray, gain: float) -> float:
    m = w.reshape(-1, w.shape[-1])
    g = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    return float(np.abs(g - gain**2 * np.eye(g.shape[0])).max())


def make_initializer_stats() -> dict:
    stats = []
    for expr, shape, dtype in STAT_CASES:
        draws = max(1, TARGET_SAMPLES // int(np.prod(shape)))
        # A fresh instance per draw: an unseeded tf_keras initializer repeats its values.
        vals = np.concatenate([
            eval(expr, ENV)(shape, dtype=dtype).numpy().ravel() for _ in range(draws)
        ]).astype(np.float64)
        lo, hi = _support(expr, shape)
        if lo is not None:
            assert vals.min() >= lo - 1e-6 and vals.max() <= hi + 1e-6, (expr, shape)
        stats.append({
            "expr": expr, "shape": list(shape), "dtype": dtype, "draws": draws,
            "n": int(vals.size), "mean": float(vals.mean()), "std": float(vals.std()),
            "min": float(vals.min()), "max": float(vals.max()),
            "quantiles": [float(q) for q in np.quantile(vals, QUANTILES)],
            "lo": lo, "hi": hi,
        })
    ortho = []
    for expr, shape, dtype in ORTHO_CASES:
        gain = eval(expr, ENV).gain
        ws = [eval(expr, ENV)(shape, dtype=dtype).numpy() for _ in range(ORTHO_DRAWS)]
        first = np.array([w.reshape(-1)[0] for w in ws], dtype=np.float64)
        allv = np.concatenate([w.ravel() for w in ws]).astype(np.float64)
        ortho.append({
            "expr": expr, "shape": list(shape), "dtype": dtype, "gain": gain,
            "draws": ORTHO_DRAWS,
            "first_entry_mean": float(first.mean()), "first_entry_std": float(first.std()),
            "entry_std": float(allv.std()),
            "max_gram_error": max(_gram_error(w.astype(np.float64), gain) for w in ws),
        })
    det = []
    for expr, shape, dtype in DETERMINISTIC:
        out = eval(expr, ENV)(shape, dtype=dtype).numpy()
        det.append({"expr": expr, "shape": list(shape), "dtype": dtype, "value": out.tolist()})
    return {"quantile_levels": QUANTILES, "stats": stats, "orthogonal": ortho,
            "deterministic": det}


# ----------------------------------------------------------------------------- regularizers

REG_CASES = [
    "R.L1()", "R.L2()", "R.L1L2()", "R.L1L2(0.01, 0.02)", "R.get('l1_l2')", "R.L1(0.3)",
    "R.L2(1e-4)", "R.L1L2(l1=0.5)", "R.L1L2(l2=3)", "R.get('l2')",
    "R.OrthogonalRegularizer(0.1, 'rows')", "R.OrthogonalRegularizer(0.1, 'columns')",
    "R.get('orthogonal_regularizer')",
]


def make_regularizers() -> dict:
    rng = np.random.default_rng(1)
    w32 = rng.normal(size=(5, 7)).astype(np.float32)
    w32[2] = 0.0  # a zero row (OrthogonalRegularizer's epsilon)
    w64 = rng.normal(scale=3.0, size=(6, 4))
    arrays = {"w32": w32, "w64": w64}
    cases = []
    for i, expr in enumerate(REG_CASES):
        for wname in ("w32", "w64"):
            try:
                val = eval(expr, ENV)(tf.constant(arrays[wname])).numpy()
            except Exception as e:  # recorded, not expected
                print("regularizer failed in TF:", expr, wname, type(e).__name__, e, file=sys.stderr)
                continue
            key = f"out_{i}_{wname}"
            arrays[key] = np.asarray(val)
            cases.append({"expr": expr, "input": wname, "output": key})
    np.savez_compressed(OUT / "regularizers.npz", **arrays)
    return {"cases": cases}


# ----------------------------------------------------------------------------- constraints

CONSTRAINT_CASES = [
    ("C.MaxNorm()", "m32"), ("C.MaxNorm(1.5, axis=1)", "m32"), ("C.MaxNorm(axis=-1)", "m32"),
    ("C.MaxNorm(2, axis=[0, 1])", "t32"), ("C.MaxNorm(0.5)", "v32"), ("C.MaxNorm()", "m64"),
    ("C.UnitNorm()", "m32"), ("C.UnitNorm(axis=1)", "m32"), ("C.UnitNorm(axis=[0, 2])", "t32"),
    ("C.UnitNorm()", "m64"),
    ("C.NonNeg()", "m32"), ("C.NonNeg()", "t32"),
    ("C.MinMaxNorm()", "m32"), ("C.MinMaxNorm(0.5, 2.0, 0.5, 0)", "m32"),
    ("C.MinMaxNorm(1.0, 3.0, 1.0, 1)", "m32"), ("C.MinMaxNorm(2.0, 1.0)", "m32"),
    ("C.MinMaxNorm(0.5, 1.5, 0.25, [1, 2])", "t32"), ("C.MinMaxNorm(0.5, 2.0, 0.7)", "m64"),
    ("C.get('max_norm')", "m32"), ("C.get('unit_norm')", "m32"), ("C.get('min_max_norm')", "m32"),
    ("C.get('non_neg')", "m32"),
    ("C.RadialConstraint()", "r3"), ("C.RadialConstraint()", "r4"), ("C.RadialConstraint()", "r5"),
    ("C.RadialConstraint()", "r2"),
]


def make_constraints() -> dict:
    rng = np.random.default_rng(2)
    m32 = (rng.normal(size=(6, 4)) * np.array([0.1, 1.0, 3.0, 0.5])).astype(np.float32)
    m32[:, 3] = 0.0  # a zero column: the epsilon keeps it zero
    m32[0, 3] = -0.0
    arrays = {
        "m32": m32,
        "m64": rng.normal(scale=2.0, size=(5, 3)),
        "t32": rng.normal(size=(3, 4, 5)).astype(np.float32),
        "v32": rng.normal(size=(4,)).astype(np.float32),
        "r2": rng.normal(size=(2, 2, 1, 1)).astype(np.float32),
        "r3": rng.normal(size=(3, 3, 2, 2)).astype(np.float32),
        "r4": rng.normal(size=(4, 4, 1, 3)).astype(np.float32),
        "r5": rng.normal(size=(5, 5, 2, 1)).astype(np.float32),
    }
    cases = []
    for i, (expr, wname) in enumerate(CONSTRAINT_CASES):
        out = eval(expr, ENV)(tf.constant(arrays[wname])).numpy()
        key = f"out_{i}"
        arrays[key] = out
        cases.append({"expr": expr, "input": wname, "output": key})
    np.savez_compressed(OUT / "constraints.npz", **arrays)
    return {"cases": cases}


# ----------------------------------------------------------------------------- API: names, serialize, errors

def _outcome(expr: str, match: str) -> dict:
    try:
        result = eval(expr, ENV)
    except Exception as e:  # noqa: BLE001
        msg = str(e)
        assert match in msg, (expr, match, msg)
        return {"expr": expr, "outcome": "raises", "type": type(e).__name__, "match": match}
    return {"expr": expr, "outcome": "returns", "type": type(result).__name__}


ERROR_CASES = [
    # (expr, substring of TF's message that ours must contain too)
    ("I.get('foo')", "Unknown initializer: 'foo'"),
    ("I.get(3)", "Could not interpret initializer identifier: 3"),
    ("I.get([1])", "Could not interpret initializer identifier"),
    ("I.get({'class_name': 'foo', 'config': {}})", "Unknown initializer: 'foo'"),
    ("I.get({'config': {}})", "Improper config format"),
    ("I.get({'class_name': 'Orthogonal', 'config': {'gain': 2.0, 'bad': 1}})",
     "unexpected keyword argument 'bad'"),
    ("I.get('l2')", "Unknown initializer: 'l2'"),
    ("I.get('max_norm')", "Unknown initializer: 'max_norm'"),
    ("I.VarianceScaling(scale=0)", "`scale` must be positive float. Received: scale=0."),
    ("I.VarianceScaling(mode='x')", "Invalid `mode` argument: x."),
    ("I.VarianceScaling(distribution='x')", "Invalid `distribution` argument: x."),
    ("I.Orthogonal()((3,))", "The tensor to initialize must be at least two-dimensional. "
                             "Received: shape=(3,) of rank 1."),
    ("I.Identity()((3, 3, 3))", "Identity matrix initializer can only be used for 2D "
                                "matrices. Received: shape=(3, 3, 3) of rank 3."),
    ("I.RandomNormal()((2, 2), dtype='int32')", "Expected floating point type, got"),
    ("I.TruncatedNormal()((2, 2), dtype='int32')", "Expected floating point type, got"),
    ("I.GlorotUniform()((2, 2), dtype='int32')", "Expected floating point type, got"),
    ("I.Orthogonal()((2, 2), dtype='int32')", "Expected floating point type, got"),
    ("I.Constant([1.0, 2.0, 3.0])((2, 2))", "Eager execution of tf.constant with unsupported shape"),
    ("I.Zeros()((2, 2), foo=1)", "Unknown keyword arguments: ['foo']"),
    ("I.Initializer()((2, 2))", "Initializer subclasses must implement the `__call__()` method."),
    ("R.get(3)", "Could not interpret regularizer identifier: 3"),
    ("R.get([1])", "Could not interpret regularizer identifier"),
    ("R.get({'class_name': 'foo', 'config': {}})", "Unknown regularizer: 'foo'"),
    ("R.get({'config': {}})", "Improper config format"),
    ("R.get({'class_name': 'L2', 'config': {'l2': 0.3, 'x': 1}})",
     "Argument(s) not recognized: {'x': 1}"),
    ("R.get({'class_name': 'MaxNorm', 'config': {}})", "Unknown regularizer: 'MaxNorm'"),
    ("R.L1('a')", "Value a is not a valid regularization penalty number, expected an int or "
                  "float value."),
    ("R.L2(float('nan'))", "an infinite number or NaN are not valid values"),
    ("R.L1L2(l1=float('inf'))", "an infinite number or NaN are not valid values"),
    ("R.L1(np.float32(0.5))", "is not a valid regularization penalty number"),
    ("R.L2(foo=1)", "Argument(s) not recognized: {'foo': 1}"),
    ("R.OrthogonalRegularizer(mode='x')", "Invalid value for argument `mode`."),
    ("R.OrthogonalRegularizer()(T([1.0, 2.0, 3.0]))",
     "Inputs to OrthogonalRegularizer must have rank 2."),
    ("R.Regularizer().get_config()", "does not implement get_config()"),
    ("R.get('foo')", ""),  # TF returns the string 'foo' (documented difference)
    ("C.get('foo')", "Unknown constraint: 'foo'"),
    ("C.get(3)", "Could not interpret constraint function identifier: 3"),
    ("C.get({'class_name': 'foo', 'config': {}})", "Unknown constraint: 'foo'"),
    ("C.get({'config': {}})", "Improper config format"),
    ("C.get({'class_name': 'MaxNorm', 'config': {'max_value': 3, 'bad': 1}})",
     "unexpected keyword argument 'bad'"),
    ("C.get('l2')", "Unknown constraint: 'l2'"),
    ("C.RadialConstraint()(T([[1.0, 2.0], [3.0, 4.0]]))", "The weight tensor must have rank 4."),
    ("A.get('foo')", "Unknown activation function 'foo' cannot be deserialized."),
    ("A.get('Tanh')", "Unknown activation function 'Tanh' cannot be deserialized."),
    ("A.get('softmax_v2')", "Unknown activation function 'softmax_v2'"),
    ("A.get(3)", "Could not interpret activation function identifier: 3"),
    ("A.get({'class_name': 'tanh', 'config': {}})", ""),
    ("A.get({'config': {}})", "Improper config format"),
    ("A.softmax(T([1.0, 2.0]))", "Cannot apply softmax to a tensor that is 1D."),
    ("A.get('ReLU')", ""),  # TF returns a ReLU layer (documented difference)
]

CONFIG_EXPRS = [
    "I.serialize(I.VarianceScaling(2.0, 'fan_out', 'Normal', seed=4))",
    "I.serialize(I.Constant(2.5))",
    "I.serialize(I.RandomUniform(-1.0, 1.0, seed=7))",
    "I.serialize(I.Orthogonal(gain=2.0))",
    "I.serialize(I.Identity(0.5))",
    "I.serialize(I.TruncatedNormal(1.0, 0.5))",
    "I.serialize(I.get('he_normal'), use_legacy_format=True)",
    "I.serialize(I.get({'class_name': 'VarianceScaling', 'config': {'scale': 1.0, 'mode': "
    "'fan_avg', 'distribution': 'uniform', 'seed': None, 'dtype': 'float32'}}))",
    "I.serialize(None)",
    "R.serialize(R.L1L2(l1=0.1, l2=0.2))",
    "R.serialize(R.L1(l=0.3))",
    "R.serialize(R.L2(None))",
    "R.serialize(R.L1L2(None, None))",
    "R.serialize(R.l1_l2())",
    "R.serialize(R.get({'class_name': 'l1_l2', 'config': {'l1': 0.1}}))",
    "R.serialize(R.get({'class_name': 'L1', 'config': {'l': 0.3}}))",
    "R.serialize(R.OrthogonalRegularizer(0.1, 'columns'))",
    "R.serialize(R.L2(True))",
    "R.serialize(R.get('l2'), use_legacy_format=True)",
    "R.serialize(None)",
    "C.serialize(C.MaxNorm(3, axis=[0, 1]))",
    "C.serialize(C.MinMaxNorm(0.5, 2.0, 0.5, 1))",
    "C.serialize(C.UnitNorm(axis=-1))",
    "C.serialize(C.get({'module': 'keras.constraints', 'class_name': 'MaxNorm', 'config': "
    "{'max_value': 4, 'axis': 1}, 'registered_name': None}))",
    "C.serialize(C.get('nonneg'), use_legacy_format=True)",
    "C.serialize(None)",
    "A.serialize(A.get('silu'))",
    "A.serialize(A.get(None))",
]

REG_NAMES = ["L1", "L2", "L1L2", "l1", "l2", "l1_l2", "OrthogonalRegularizer",
             "orthogonal_regularizer"]
CONSTRAINT_NAMES = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm",
                    "RadialConstraint", "max_norm", "non_neg", "unit_norm", "min_max_norm",
                    "radial_constraint", "maxnorm", "nonneg", "unitnorm"]
ACTIVATION_NAMES = ["elu", "exponential", "gelu", "hard_sigmoid", "leaky_relu", "linear",
                    "log_softmax", "mish", "relu", "relu6", "selu", "sigmoid", "silu", "softmax",
                    "softplus", "softsign", "swish", "tanh"]


def make_api() -> dict:
    _init_pkg.populate_deserializable_objects()
    init_names = sorted(_init_pkg.LOCAL.ALL_OBJECTS)
    api = {
        "tf_version": tf.__version__,
        "tf_keras_version": tf_keras.__version__,
        "tf2_enabled": bool(tf.__internal__.tf2.enabled()),
        "initializer_names": init_names,
        "initializer_serialize": {n: jsonable(I.serialize(I.get(n))) for n in init_names},
        "regularizer_serialize": {n: jsonable(R.serialize(R.get(n))) for n in REG_NAMES},
        "constraint_serialize": {n: jsonable(C.serialize(C.get(n))) for n in CONSTRAINT_NAMES},
        "activation_serialize": {n: A.serialize(A.get(n)) for n in ACTIVATION_NAMES},
        "configs": {e: jsonable(eval(e, ENV)) for e in CONFIG_EXPRS},
        "errors": [_outcome(e, m) for e, m in ERROR_CASES],
    }
    # What the v1 LSTM layer itself writes (the other developer's layer must match).
    layer = tf.compat.v1.keras.layers.LSTM(
        4, kernel_initializer="he_uniform", kernel_regularizer="l2",
        recurrent_regularizer=R.L1L2(0.1, 0.2), bias_regularizer="l1_l2",
        activity_regularizer="l1", kernel_constraint="max_norm",
        recurrent_constraint=C.UnitNorm(axis=1), bias_constraint="non_neg",
        recurrent_activation="silu",
    )
    keys = [k for k in layer.get_config() if k.endswith(("initializer", "regularizer",
                                                          "constraint", "activation"))]
    default = tf.compat.v1.keras.layers.LSTM(4)
    api["lstm_v1_layer"] = {
        "identifiers": {
            "kernel_initializer": "he_uniform", "kernel_regularizer": "l2",
            "bias_regularizer": "l1_l2", "activity_regularizer": "l1",
            "kernel_constraint": "max_norm", "bias_constraint": "non_neg",
            "recurrent_activation": "silu",
        },
        "config": jsonable({k: layer.get_config()[k] for k in keys}),
        "default_config": jsonable({k: default.get_config()[k] for k in keys}),
    }
    return api


def main() -> None:
    assert tf.__internal__.tf2.enabled(), "goldens are for TF2 behaviour (the default)"
    OUT.mkdir(parents=True, exist_ok=True)
    tf_keras.utils.set_random_seed(0)  # python, numpy and TF seeds: reproducible files
    make_activations()
    (OUT / "initializers_stats.json").write_text(json.dumps(make_initializer_stats(), separators=(",", ":")))
    regs = make_regularizers()
    cons = make_constraints()
    api = make_api()
    api["regularizer_cases"] = regs["cases"]
    api["constraint_cases"] = cons["cases"]
    api["activation_cases"] = ACTIVATION_CASES
    (OUT / "api.json").write_text(json.dumps(api, sort_keys=True, separators=(",", ":")))
    for p in sorted(OUT.iterdir()):
        print(f"{p.name}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
