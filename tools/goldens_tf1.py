"""Regenerate the TF1 front-end goldens: ``tests/goldens/tf1/*.npz`` and ``naming.json``.

Run with the reference TensorFlow (never a dependency of the library or its tests)::

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_tf1.py

Each case builds TF1 cells in a fresh ``tf.Graph`` (``tf.compat.v1`` graph
mode), sets every weight from a seeded NumPy generator, runs a single step,
``dynamic_rnn``, ``static_rnn`` or ``bidirectional_dynamic_rnn``, and saves the
inputs, initial states, weights, outputs, final states, and the gradients of
``sum(out * w_out) + sum_i sum(state_i * w_state_i)`` (fixed random
``w_*``) with respect to the inputs, the initial states and every weight.
States are stored flattened in ``tf.nest.flatten`` order (``c`` before ``h``).

``naming.json`` records, for a list of graph-mode scenarios, the variable names
TF creates or the exception it raises (type and first line of the message).
"""

from __future__ import annotations

import json
import os
import sys
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

OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "tf1"
B, T, D = 3, 5, 4


def _cell(cfg: dict) -> object:
    kw = dict(cfg)
    kw.pop("depth", None)
    return v1.nn.rnn_cell.LSTMCell(**kw)


def _flat(s) -> list:
    return tf.nest.flatten(s)


def _structure_state(cell, flat):
    return tf.nest.pack_sequence_as(cell.state_size, flat)


def make_case(name: str, kind: str, cells: list[dict], *, stack: list[int] | None = None,
              multi_tuple: bool = True, dtype: str = "float32", seq_len: list[int] | None = None,
              time_major: bool = False, init_state: bool = True, scale: float = 0.5,
              seed: int = 0, steps: int = T, batch: int = B, depth: int = D,
              poison: dict[str, list[tuple[tuple[int, ...], float]]] | None = None,
              out_dir: Path = OUT) -> None:
    """Run one case in TF and save it. ``stack``: indices into ``cells`` for a MultiRNNCell.

    ``poison`` sets entries of the drawn inputs (key ``"x"``) or initial states (keys
    ``"s0_{runner}_{k}"``, flattened state ``k``) to given values (NaN, inf) after the
    draws; ``out_dir`` is the folder the case is saved in."""
    poison = poison or {}

    def poisoned(key: str, a: np.ndarray) -> np.ndarray:
        for idx, val in poison.get(key, []):
            a[idx] = val
        return a

    rng = np.random.default_rng(seed)
    npdt = np.dtype(dtype)
    tfdt = tf.as_dtype(dtype)
    g = tf.Graph()
    data: dict[str, np.ndarray] = {}
    config = dict(name=name, kind=kind, cells=cells, stack=stack, multi_tuple=multi_tuple,
                  dtype=dtype, seq_len=seq_len, time_major=time_major, init_state=init_state)
    with g.as_default():
        tf_cells = [_cell(c) for c in cells]
        if stack is not None:
            top = v1.nn.rnn_cell.MultiRNNCell([tf_cells[i] for i in stack],
                                              state_is_tuple=multi_tuple)
            runners = [top]
        elif kind == "bidi":
            runners = tf_cells[:2]
        else:
            runners = tf_cells[:1]
        # inputs
        if kind == "step":
            x_np = rng.uniform(-1, 1, (batch, depth)).astype(npdt)
        elif time_major:
            x_np = rng.uniform(-1, 1, (steps, batch, depth)).astype(npdt)
        else:
            x_np = rng.uniform(-1, 1, (batch, steps, depth)).astype(npdt)
        x_np = poisoned("x", x_np)
        x = tf.constant(x_np)
        data["x"] = x_np
        # initial states (flattened per runner)
        s0_tensors, s0_structs = [], []
        for r_i, r in enumerate(runners):
            if init_state:
                flat_sizes = tf.nest.flatten(r.state_size)
                flat_np = [poisoned(f"s0_{r_i}_{k}", rng.uniform(-1, 1, (batch, s)).astype(npdt))
                           for k, s in enumerate(flat_sizes)]
                flat_t = [tf.constant(a) for a in flat_np]
                for k, a in enumerate(flat_np):
                    data[f"s0_{r_i}_{k}"] = a
                s0_tensors += flat_t
                s0_structs.append(tf.nest.pack_sequence_as(r.state_size, flat_t))
            else:
                s0_structs.append(None)
        sl = None if seq_len is None else tf.constant(np.asarray(seq_len, np.int32))
        if kind == "step":
            out, st = runners[0](x, s0_structs[0])
            outs, states = [out], [st]
        elif kind == "dynamic":
            out, st = v1.nn.dynamic_rnn(runners[0], x, sequence_length=sl,
                                        initial_state=s0_structs[0],
                                        dtype=None if init_state else tfdt,
                                        time_major=time_major)
            outs, states = [out], [st]
        elif kind == "static":
            xs = tf.unstack(x, axis=0 if time_major else 1)
            out_list, st = v1.nn.static_rnn(runners[0], xs, initial_state=s0_structs[0],
                                            dtype=None if init_state else tfdt,
                                            sequence_length=sl)
            outs, states = [tf.stack(out_list, axis=0)], [st]
        elif kind == "bidi":
            (of, ob), (sf, sb) = v1.nn.bidirectional_dynamic_rnn(
                runners[0], runners[1], x, sequence_length=sl, initial_state_fw=s0_structs[0],
                initial_state_bw=s0_structs[1], dtype=None if init_state else tfdt,
                time_major=time_major)
            outs, states = [of, ob], [sf, sb]
        else:
            raise ValueError(kind)
        # weights: per unique cell, in cell order
        variables = []
        assigns = []
        for c_i, c in enumerate(tf_cells):
            for w_i, v in enumerate(c.weights):
                shape = v.shape.as_list()
                sc = scale * (2.0 if len(shape) == 1 and w_i > 1 else 1.0)
                val = rng.uniform(-sc, sc, shape).astype(npdt)
                data[f"w_{c_i}_{w_i}"] = val
                data[f"wname_{c_i}_{w_i}"] = np.array(v.op.name)
                assigns.append(v.assign(val))
                variables.append((f"{c_i}_{w_i}", v))
        # loss
        loss = tf.constant(0.0, dtype=tfdt)
        flat_outs = [tf.convert_to_tensor(o) for o in outs]
        for k, o in enumerate(flat_outs):
            wo = rng.uniform(-1, 1, o.shape.as_list()).astype(npdt)
            data[f"wout_{k}"] = wo
            loss = loss + tf.reduce_sum(o * wo)
        flat_states = []
        for s in states:
            flat_states += _flat(s)
        for k, s in enumerate(flat_states):
            ws = rng.uniform(-1, 1, s.shape.as_list()).astype(npdt)
            data[f"wst_{k}"] = ws
            loss = loss + tf.reduce_sum(s * ws)
        wrt = [x] + s0_tensors + [v for _, v in variables]
        grads = tf.gradients(loss, wrt)
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(assigns)
            res = sess.run(dict(outs=flat_outs, states=flat_states, grads=grads, loss=loss))
        for k, o in enumerate(res["outs"]):
            data[f"out_{k}"] = o
        for k, s in enumerate(res["states"]):
            data[f"st_{k}"] = s
        data["loss"] = np.asarray(res["loss"])
        gi = iter(res["grads"])
        data["g_x"] = next(gi)
        for r_i, r in enumerate(runners):
            if init_state:
                for k in range(len(tf.nest.flatten(r.state_size))):
                    gval = next(gi)
                    data[f"g_s0_{r_i}_{k}"] = (np.zeros_like(data[f"s0_{r_i}_{k}"])
                                              if gval is None else gval)
        for key, _ in variables:
            gval = next(gi)
            data[f"g_w_{key}"] = np.zeros_like(data[f"w_{key}"]) if gval is None else gval
    data["config"] = np.array(json.dumps(config))
    np.savez_compressed(out_dir / f"{name}.npz", **data)


def single_cell_options() -> list[tuple[str, dict, float]]:
    u = 5
    return [
        ("plain", dict(num_units=u), 0.5),
        ("peep", dict(num_units=u, use_peepholes=True), 0.5),
        ("clip", dict(num_units=u, cell_clip=0.3), 1.5),
        ("clip0", dict(num_units=u, cell_clip=0.0, use_peepholes=True), 0.5),
        ("proj_lt", dict(num_units=u, num_proj=3), 0.5),
        ("proj_eq", dict(num_units=u, num_proj=5), 0.5),
        ("proj_gt", dict(num_units=u, num_proj=7), 0.5),
        ("projclip", dict(num_units=u, num_proj=3, proj_clip=0.1), 1.0),
        ("projclip_noproj", dict(num_units=u, proj_clip=0.1), 1.0),
        ("fb0", dict(num_units=u, forget_bias=0.0), 0.5),
        ("fb25", dict(num_units=u, forget_bias=2.5), 0.5),
        ("act_relu", dict(num_units=u, activation="relu"), 0.5),
        ("act_hsig", dict(num_units=u, activation="hard_sigmoid"), 1.5),
        ("act_softsign", dict(num_units=u, activation="softsign"), 0.5),
        ("all", dict(num_units=u, use_peepholes=True, cell_clip=0.4, num_proj=3, proj_clip=0.2,
                     forget_bias=0.7, activation="relu"), 1.5),
        ("all_projgt", dict(num_units=4, use_peepholes=True, cell_clip=0.6, num_proj=6,
                            proj_clip=0.3), 1.5),
        ("concat", dict(num_units=u, state_is_tuple=False), 0.5),
        ("concat_all", dict(num_units=u, use_peepholes=True, cell_clip=0.4, num_proj=3,
                            proj_clip=0.2, state_is_tuple=False), 1.5),
        ("shards", dict(num_units=u, num_proj=3, num_unit_shards=2, num_proj_shards=1), 0.5),
    ]


def numeric_cases() -> None:
    seed = 0
    opts = single_cell_options()
    f64 = {"plain", "all", "concat_all", "proj_gt", "clip0"}
    for tag, cfg, sc in opts:
        for dt in ["float32"] + (["float64"] if tag in f64 else []):
            seed += 1
            make_case(f"step_{tag}_{dt}", "step", [cfg], dtype=dt, scale=sc, seed=seed)
    # dynamic_rnn: every option, with lengths (incl. 0 and full) in both layouts
    lens = [5, 2, 0]
    for tag, cfg, sc in opts:
        for dt in ["float32"] + (["float64"] if tag in f64 else []):
            seed += 1
            make_case(f"dyn_{tag}_len_{dt}", "dynamic", [cfg], dtype=dt, scale=sc, seed=seed,
                      seq_len=lens)
    plain = dict(num_units=5)
    allc = opts[14][1]
    for dt in ("float32", "float64"):
        seed += 1
        make_case(f"dyn_plain_{dt}", "dynamic", [plain], dtype=dt, seed=seed)
        seed += 1
        make_case(f"dyn_plain_tm_{dt}", "dynamic", [plain], dtype=dt, seed=seed, time_major=True)
        seed += 1
        make_case(f"dyn_all_tm_len_{dt}", "dynamic", [allc], dtype=dt, seed=seed,
                  time_major=True, seq_len=[1, 5, 3], scale=1.5)
        seed += 1
        make_case(f"dyn_plain_zero_state_len_{dt}", "dynamic", [plain], dtype=dt, seed=seed,
                  seq_len=[3, 0, 5], init_state=False)
        seed += 1
        make_case(f"dyn_plain_len_right_padded_{dt}", "dynamic", [plain], dtype=dt, seed=seed,
                  seq_len=[5, 2, 4])
    seed += 1
    make_case("dyn_plain_len_all0_float32", "dynamic", [plain], seed=seed, seq_len=[0, 0, 0])
    seed += 1
    make_case("dyn_plain_len_over_float32", "dynamic", [plain], seed=seed, seq_len=[7, 3, 5])
    seed += 1
    make_case("dyn_plain_len_full_float32", "dynamic", [plain], seed=seed, seq_len=[5, 5, 5])
    # static_rnn
    for dt in ("float32", "float64"):
        seed += 1
        make_case(f"static_plain_{dt}", "static", [plain], dtype=dt, seed=seed)
        seed += 1
        make_case(f"static_all_len_{dt}", "static", [allc], dtype=dt, seed=seed,
                  seq_len=[5, 2, 0], scale=1.5)
    seed += 1
    make_case("static_plain_zero_state_len_float32", "static", [plain], seed=seed,
              seq_len=[4, 1, 5], init_state=False)
    # bidirectional
    proj = dict(num_units=4, num_proj=2, use_peepholes=True)
    for dt in ("float32", "float64"):
        seed += 1
        make_case(f"bidi_plain_{dt}", "bidi", [plain, dict(num_units=3)], dtype=dt, seed=seed)
        seed += 1
        make_case(f"bidi_len_{dt}", "bidi", [plain, proj], dtype=dt, seed=seed,
                  seq_len=[5, 2, 0])
        seed += 1
        make_case(f"bidi_len_tm_{dt}", "bidi", [proj, plain], dtype=dt, seed=seed,
                  seq_len=[3, 5, 1], time_major=True)
    seed += 1
    make_case("bidi_zero_state_len_float32", "bidi", [plain, plain], seed=seed,
              seq_len=[2, 5, 4], init_state=False)
    # MultiRNNCell
    c_a = dict(num_units=5, depth=D)
    c_b = dict(num_units=6, num_proj=3, use_peepholes=True, depth=5)
    c_c = dict(num_units=4, cell_clip=0.5, depth=3)
    for dt in ("float32", "float64"):
        seed += 1
        make_case(f"multi_step_{dt}", "step", [c_a, c_b, c_c], stack=[0, 1, 2], dtype=dt,
                  seed=seed)
        seed += 1
        make_case(f"multi_dyn_{dt}", "dynamic", [c_a, c_b, c_c], stack=[0, 1, 2], dtype=dt,
                  seed=seed)
        seed += 1
        make_case(f"multi_dyn_len_{dt}", "dynamic", [c_a, c_b, c_c], stack=[0, 1, 2],
                  dtype=dt, seed=seed, seq_len=[5, 0, 3])
    ca_c = dict(c_a, state_is_tuple=False)
    cb_c = dict(c_b, state_is_tuple=False)
    for kind in ("step", "dynamic", "static"):
        seed += 1
        make_case(f"multi_concat_{kind}_float32", kind, [ca_c, cb_c], stack=[0, 1],
                  multi_tuple=False, seed=seed, seq_len=None if kind == "step" else [4, 5, 0])
    seed += 1
    make_case("multi_static_len_float32", "static", [c_a, c_b], stack=[0, 1], seed=seed,
              seq_len=[2, 5, 0])
    seed += 1
    make_case("multi_dyn_zero_state_tm_float32", "dynamic", [c_a, c_b], stack=[0, 1],
              seed=seed, seq_len=[2, 5, 3], init_state=False, time_major=True)
    seed += 1
    shared = dict(num_units=4, depth=4)
    make_case("multi_shared_dyn_len_float32", "dynamic", [shared], stack=[0, 0], seed=seed,
              seq_len=[5, 1, 3])


# ----------------------------------------------------------------------------- naming

def _names(g) -> list[str]:
    with g.as_default():
        return [v.op.name for v in v1.global_variables()]


def _scenario(fn) -> dict:
    g = tf.Graph()
    with g.as_default():
        try:
            fn()
            err = None
        except Exception as e:  # noqa: BLE001 - we record what TF raises
            err = {"type": type(e).__name__, "message": str(e).splitlines()[0]}
    return {"names": _names(g), "error": err}


def naming_cases() -> dict:
    LSTM = v1.nn.rnn_cell.LSTMCell
    Multi = v1.nn.rnn_cell.MultiRNNCell
    f32 = tf.float32

    def x3():
        return tf.zeros([2, 3, 4])

    def x2():
        return tf.zeros([2, 4])

    sc: dict = {}
    sc["dynamic_default"] = lambda: v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    sc["dynamic_all_weights"] = lambda: v1.nn.dynamic_rnn(
        LSTM(5, use_peepholes=True, num_proj=3), x3(), dtype=f32)
    sc["dynamic_scope_arg"] = lambda: v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="enc")
    sc["dynamic_named_cell"] = lambda: v1.nn.dynamic_rnn(LSTM(5, name="foo"), x3(), dtype=f32)

    def twice_new_cell():
        v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
        v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    sc["dynamic_twice_new_cell"] = twice_new_cell

    def twice_same_cell():
        c = LSTM(5)
        v1.nn.dynamic_rnn(c, x3(), dtype=f32)
        v1.nn.dynamic_rnn(c, x3(), dtype=f32)
    sc["dynamic_twice_same_cell"] = twice_same_cell

    def twice_scopes():
        v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="a")
        v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="b")
    sc["dynamic_two_scopes"] = twice_scopes

    def reuse_true():
        with v1.variable_scope("enc"):
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
        with v1.variable_scope("enc", reuse=True):
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    sc["reuse_true_shares"] = reuse_true

    def reuse_missing():
        with v1.variable_scope("enc", reuse=True):
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    sc["reuse_true_missing"] = reuse_missing

    def reuse_shape():
        with v1.variable_scope("enc"):
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
        with v1.variable_scope("enc", reuse=True):
            v1.nn.dynamic_rnn(LSTM(6), x3(), dtype=f32)
    sc["reuse_true_wrong_shape"] = reuse_shape

    def enc_again():
        with v1.variable_scope("enc"):
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
        with v1.variable_scope("enc"):
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
    sc["scope_again_no_reuse"] = enc_again

    def auto():
        with v1.variable_scope("auto", reuse=v1.AUTO_REUSE):
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
        with v1.variable_scope("auto", reuse=v1.AUTO_REUSE):
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="other")
    sc["auto_reuse"] = auto

    def nested():
        with v1.variable_scope("outer"):
            with v1.variable_scope("inner"):
                v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
            v1.nn.static_rnn(LSTM(5, name="st"), tf.unstack(x3(), axis=1), dtype=f32)
    sc["nested_scopes"] = nested

    def direct_calls():
        a, b = LSTM(5), LSTM(5)
        a(x2(), a.zero_state(2, f32))
        b(x2(), b.zero_state(2, f32))
        a(x2(), a.zero_state(2, f32))
    sc["direct_calls_uniquify"] = direct_calls

    def direct_in_scope():
        with v1.variable_scope("s"):
            a, b = LSTM(5), LSTM(5, name="named")
            a(x2(), a.zero_state(2, f32))
            b(x2(), b.zero_state(2, f32))
    sc["direct_calls_in_scope"] = direct_in_scope

    def multi():
        v1.nn.dynamic_rnn(Multi([LSTM(5), LSTM(3, use_peepholes=True, num_proj=2)]), x3(),
                          dtype=f32)
    sc["multi_default"] = multi

    def multi_shared():
        c = LSTM(4)
        v1.nn.dynamic_rnn(Multi([c, c]), x3(), dtype=f32)
    sc["multi_same_cell_twice"] = multi_shared

    def multi_step():
        m = Multi([LSTM(5), LSTM(5)])
        m(x2(), m.zero_state(2, f32))
    sc["multi_direct_call"] = multi_step

    def bidi():
        v1.nn.bidirectional_dynamic_rnn(LSTM(5), LSTM(3), x3(), dtype=f32)
    sc["bidi_default"] = bidi

    def bidi_scope():
        v1.nn.bidirectional_dynamic_rnn(Multi([LSTM(5), LSTM(5)]), LSTM(3), x3(), dtype=f32,
                                        scope="birnn")
    sc["bidi_scope_multi"] = bidi_scope

    def bidi_twice():
        v1.nn.bidirectional_dynamic_rnn(LSTM(5), LSTM(3), x3(), dtype=f32)
        v1.nn.bidirectional_dynamic_rnn(LSTM(5), LSTM(3), x3(), dtype=f32)
    sc["bidi_twice"] = bidi_twice

    def cell_reuse_flag():
        v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32)
        v1.nn.dynamic_rnn(LSTM(5, reuse=True), x3(), dtype=f32)
    sc["cell_reuse_flag_shares"] = cell_reuse_flag

    def cell_reuse_flag_missing():
        v1.nn.dynamic_rnn(LSTM(5, reuse=True), x3(), dtype=f32)
    sc["cell_reuse_flag_missing"] = cell_reuse_flag_missing

    def reuse_inherited():
        with v1.variable_scope("a"):
            v1.nn.dynamic_rnn(LSTM(5), x3(), dtype=f32, scope="r")
        with v1.variable_scope("a", reuse=True):
            with v1.variable_scope("r"):
                LSTM(5)(x2(), LSTM(5).zero_state(2, f32))
    sc["reuse_inherited_by_subscopes"] = reuse_inherited

    def static_then_dynamic_same_cell():
        c = LSTM(5)
        v1.nn.static_rnn(c, tf.unstack(x3(), axis=1), dtype=f32)
        v1.nn.dynamic_rnn(c, x3(), dtype=f32, scope="other")
    sc["same_cell_static_then_dynamic"] = static_then_dynamic_same_cell

    return {k: _scenario(fn) for k, fn in sc.items()}


def _error(fn, session: bool = False) -> dict:
    g = tf.Graph()
    with g.as_default():
        try:
            r = fn()
            if session:
                with v1.Session(graph=g) as sess:
                    sess.run(v1.global_variables_initializer())
                    sess.run(r)
        except Exception as e:  # noqa: BLE001 - we record what TF raises
            return {"type": type(e).__name__, "message": str(e).splitlines()[0]}
    return {"type": None, "message": None}


def error_cases() -> dict:
    LSTM = v1.nn.rnn_cell.LSTMCell
    Multi = v1.nn.rnn_cell.MultiRNNCell
    f32 = tf.float32

    def x3():
        return tf.zeros([2, 3, 4])

    def x2():
        return tf.zeros([2, 4])

    def set_w(ws):
        c = LSTM(5)
        c.build(tf.TensorShape([None, 4]))
        c.set_weights(ws)

    e: dict = {}
    e["dynamic_no_dtype"] = _error(lambda: v1.nn.dynamic_rnn(LSTM(5), x3()))
    e["static_no_dtype"] = _error(lambda: v1.nn.static_rnn(LSTM(5), tf.unstack(x3(), axis=1)))
    e["bidi_no_dtype"] = _error(lambda: v1.nn.bidirectional_dynamic_rnn(LSTM(5), LSTM(5), x3()))
    e["dynamic_seq_len_rank2"] = _error(lambda: v1.nn.dynamic_rnn(
        LSTM(5), x3(), sequence_length=[[1, 2]], dtype=f32))
    e["dynamic_seq_len_wrong_size"] = _error(lambda: v1.nn.dynamic_rnn(
        LSTM(5), x3(), sequence_length=[1, 2, 3], dtype=f32), session=True)
    e["dynamic_rank2_inputs"] = _error(lambda: v1.nn.dynamic_rnn(LSTM(5), x2(), dtype=f32))
    e["static_not_a_list"] = _error(lambda: v1.nn.static_rnn(LSTM(5), x3(), dtype=f32))
    e["static_empty"] = _error(lambda: v1.nn.static_rnn(LSTM(5), [], dtype=f32))
    e["static_seq_len_rank2"] = _error(lambda: v1.nn.static_rnn(
        LSTM(5), tf.unstack(x3(), axis=1), sequence_length=[[1, 2]], dtype=f32))
    e["bidi_seq_len_over_time"] = _error(lambda: v1.nn.bidirectional_dynamic_rnn(
        LSTM(5), LSTM(5), x3(), sequence_length=[4, 1], dtype=f32)[0], session=True)
    e["multi_empty"] = _error(lambda: Multi([]))
    e["multi_not_a_list"] = _error(lambda: Multi(LSTM(5)))
    e["multi_concat_with_tuple_cells"] = _error(lambda: Multi([LSTM(5)], state_is_tuple=False))
    e["multi_tuple_state_not_nested"] = _error(lambda: Multi([LSTM(5)])(x2(), tf.zeros([2, 10])))
    e["initial_state_batch_mismatch"] = _error(lambda: LSTM(5).get_initial_state(
        inputs=x2(), batch_size=3, dtype=f32))
    e["initial_state_dtype_mismatch"] = _error(lambda: LSTM(5).get_initial_state(
        inputs=x2(), batch_size=2, dtype=tf.float64))
    e["initial_state_nothing"] = _error(lambda: LSTM(5).get_initial_state())
    e["cell_int_dtype"] = _error(lambda: LSTM(5, dtype="int32"))
    e["cell_rank3_input"] = _error(lambda: LSTM(5)(x3(), LSTM(5).zero_state(2, f32)))
    e["cell_int_input"] = _error(lambda: LSTM(5)(tf.zeros([2, 4], tf.int32),
                                                 LSTM(5).zero_state(2, f32)))
    e["build_unknown_depth"] = _error(lambda: LSTM(5).build(tf.TensorShape([None, None])))
    e["set_weights_count"] = _error(lambda: set_w([np.zeros((9, 20), np.float32)]))
    e["set_weights_shape"] = _error(lambda: set_w([np.zeros((9, 20), np.float32),
                                                   np.zeros((21,), np.float32)]))
    e["scope_bad_reuse"] = _error(lambda: v1.variable_scope("a", reuse="yes").__enter__())
    e["scope_no_name"] = _error(lambda: v1.variable_scope(None))
    e["scope_default_name_reuse"] = _error(
        lambda: v1.variable_scope(None, default_name="a", reuse=True).__enter__())
    e["state_tuple_dtype"] = _error(lambda: v1.nn.rnn_cell.LSTMStateTuple(
        tf.zeros([1], tf.float32), tf.zeros([1], tf.float64)).dtype)
    return e


def zero_state_cases() -> dict:
    LSTM = v1.nn.rnn_cell.LSTMCell
    Multi = v1.nn.rnn_cell.MultiRNNCell
    cells = {
        "plain": lambda: LSTM(5),
        "proj": lambda: LSTM(5, num_proj=3),
        "concat_proj": lambda: LSTM(5, num_proj=7, state_is_tuple=False),
        "multi": lambda: Multi([LSTM(5), LSTM(4, num_proj=2)]),
        "multi_concat": lambda: Multi([LSTM(5, state_is_tuple=False),
                                       LSTM(4, num_proj=2, state_is_tuple=False)],
                                      state_is_tuple=False),
    }
    out = {}
    for k, make in cells.items():
        with tf.Graph().as_default():
            c = make()
            z = c.zero_state(3, tf.float64)
            out[k] = {
                "state_size": json.loads(json.dumps(c.state_size)),
                "output_size": c.output_size,
                "shapes": [t.shape.as_list() for t in tf.nest.flatten(z)],
                "dtypes": [t.dtype.name for t in tf.nest.flatten(z)],
            }
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.glob("*.npz"):
        f.unlink()
    numeric_cases()
    (OUT / "naming.json").write_text(json.dumps(naming_cases(), indent=1, sort_keys=True) + "\n")
    (OUT / "errors.json").write_text(json.dumps(error_cases(), indent=1, sort_keys=True) + "\n")
    (OUT / "zero_state.json").write_text(
        json.dumps(zero_state_cases(), indent=1, sort_keys=True) + "\n")
    files = sorted(OUT.iterdir())
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {total / 1024:.0f} KiB, TF {tf.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
