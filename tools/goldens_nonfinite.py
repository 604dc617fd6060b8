"""Regenerate the goldens of clip values and non-finite inputs: ``tests/goldens/nonfinite/``.

Run with the reference TensorFlow (never a dependency of the library or its tests)::

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_nonfinite.py

What TensorFlow does

* ``tf.clip_by_value(t, -bound, bound)`` and its gradient for NaN, infinite, signed-zero
  and ordinary ``t`` and ``bound`` (negative, zero, NaN, infinite): ``clip_by_value.npz``;
* with every ``cell_clip`` and ``proj_clip`` its ``LSTMCell`` accepts (negative, zero,
  NaN, infinite: TF raises for none of them), under ``dynamic_rnn`` and for one step:
  ``tf1_*.npz``, in the format of ``tools/goldens_tf1.py`` (same ``make_case``);
* with NaN or infinity in an initial state or in the inputs, for the plain cell, a
  peephole cell with a cell clip and a projecting cell with a projection clip:
  ``tf1_*.npz`` too;
* with NaN or infinity in the initial state or the inputs of the Keras layer
  (``tf.compat.v1.keras.layers.LSTM``, ``hard_sigmoid`` gates), with and without a
  mask: ``keras_*.npz`` (inputs, initial state, mask, weights, the returned tensors, the
  loss weights, and the gradients of ``sum_k sum(out_k * w_k)`` w.r.t. the inputs, the
  initial state and the weights).

Every array is TensorFlow's own result; which entries are NaN or infinite is the point.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldens_tf1 as g1  # noqa: E402  (graph mode, TF imported)
import numpy as np  # noqa: E402

tf, v1 = g1.tf, g1.v1
OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "nonfinite"
NAN, INF = float("nan"), float("inf")
LENS = [5, 2, 0]


def tf1_cases() -> None:
    seed = 1000

    def case(name: str, kind: str, cfg: dict, *, dtypes=("float32",), **kw) -> None:
        nonlocal seed
        for dt in dtypes:
            seed += 1
            g1.make_case(f"tf1_{name}_{dt}", kind, [cfg], dtype=dt, seed=seed, out_dir=OUT, **kw)

    u = 5
    clips = {"neg1": -1.0, "0": 0.0, "nan": NAN, "inf": INF, "neginf": -INF}
    for tag, cc in clips.items():
        peep = dict(num_units=u, cell_clip=cc, use_peepholes=True)
        case(f"dyn_clip_{tag}_peep_len", "dynamic", peep, scale=1.5, seq_len=LENS,
             dtypes=("float32", "float64") if tag in ("neg1", "nan") else ("float32",))
        case(f"step_clip_{tag}_peep", "step", peep, scale=1.5)
    for tag in ("neg1", "nan"):
        case(f"dyn_clip_{tag}_len", "dynamic", dict(num_units=u, cell_clip=clips[tag]),
             scale=1.5, seq_len=LENS)
    pclips = {"neg05": -0.5, "0": 0.0, "nan": NAN, "inf": INF}
    for tag, pc in pclips.items():
        proj = dict(num_units=u, num_proj=3, proj_clip=pc)
        case(f"dyn_projclip_{tag}_len", "dynamic", proj, seq_len=LENS,
             dtypes=("float32", "float64") if tag == "neg05" else ("float32",))
        case(f"step_projclip_{tag}", "step", proj)
    case("dyn_clips_neg_all_len", "dynamic",
         dict(num_units=u, use_peepholes=True, cell_clip=-1.0, num_proj=3, proj_clip=-0.5),
         scale=1.5, seq_len=LENS)
    # non-finite initial states and inputs; the flattened state is (c, h)
    plain = dict(num_units=u)
    peep_clip = dict(num_units=u, use_peepholes=True, cell_clip=0.3)
    proj_clip = dict(num_units=u, num_proj=3, proj_clip=0.2, use_peepholes=True)
    poisons = {
        "c_nan": {"s0_0_0": [((1, 0), NAN)]},  # row 1 (length 2), then held
        "c_inf": {"s0_0_0": [((0, 2), INF)]},
        "c_neginf_held": {"s0_0_0": [((2, 1), -INF)]},  # row 2 has length 0
        "h_nan": {"s0_0_1": [((0, 1), NAN)]},
        "h_inf": {"s0_0_1": [((1, 2), INF)]},
        "x_nan": {"x": [((0, 1, 0), NAN)]},
        "x_inf_held": {"x": [((1, 3, 2), INF)]},  # a step after row 1's length
    }
    for cname, cfg, sc in (("plain", plain, 0.5), ("peep_clip", peep_clip, 1.5),
                           ("proj_clip", proj_clip, 1.0)):
        for pname, poison in poisons.items():
            if cname == "proj_clip" and pname not in ("c_nan", "h_inf", "x_nan"):
                continue
            both = cname == "plain" and pname in ("c_nan", "h_inf")
            case(f"dyn_{cname}_{pname}_len", "dynamic", cfg, scale=sc, seq_len=LENS,
                 poison=poison, dtypes=("float32", "float64") if both else ("float32",))
        case(f"dyn_{cname}_c_nan", "dynamic", cfg, scale=sc, poison=poisons["c_nan"])
        case(f"step_{cname}_c_nan", "step", cfg, scale=sc, poison=poisons["c_nan"])
    # steps past the longest sequence: TF's loop stops there
    case("dyn_plain_x_nan_past_len", "dynamic", plain, seq_len=[3, 2, 0],
         poison={"x": [((0, 4, 0), NAN)]})
    case("dyn_plain_c_nan_short_len", "dynamic", plain, seq_len=[3, 2, 0],
         poison={"s0_0_0": [((2, 0), NAN)]})


def keras_case(name: str, *, poison: dict, mask: list | None = None, dtype: str = "float32",
               B: int = 3, T: int = 5, F: int = 3, U: int = 4, seed: int = 0,
               layer: dict | None = None) -> None:
    """One ``tf.compat.v1.keras.layers.LSTM`` call with an initial state, in graph mode."""
    rng = np.random.default_rng(seed)
    kw = dict(units=U, return_sequences=True, return_state=True, **(layer or {}))
    x = rng.standard_normal((B, T, F)).astype(dtype)
    h0 = (rng.standard_normal((B, U)) * 0.5).astype(dtype)
    c0 = (rng.standard_normal((B, U)) * 0.5).astype(dtype)
    arrays = {"x": x, "h0": h0, "c0": c0}
    for key, entries in poison.items():
        for idx, val in entries:
            arrays[key][idx] = val
    weights = [(rng.standard_normal((F, 4 * U)) * 0.6).astype(dtype),
               (rng.standard_normal((U, 4 * U)) * 0.6).astype(dtype),
               (rng.standard_normal(4 * U) * 0.5).astype(dtype)]
    g = tf.Graph()
    with g.as_default():
        xt, ht, ct = (tf.constant(arrays[k]) for k in ("x", "h0", "c0"))
        lstm = v1.keras.layers.LSTM(**kw, dtype=dtype)
        call = dict(initial_state=[ht, ct])
        if mask is not None:
            call["mask"] = tf.constant(np.asarray(mask, bool))
            arrays["mask"] = np.asarray(mask, bool)
        outs = lstm(xt, **call)
        lw = [rng.standard_normal(o.shape.as_list()).astype(dtype) for o in outs]
        loss = tf.add_n([tf.reduce_sum(o * w) for o, w in zip(outs, lw, strict=True)])
        srcs = [xt, ht, ct] + list(lstm.trainable_weights)
        grads = tf.gradients(loss, srcs)
        assert [v.name.split("/")[-1] for v in lstm.weights] == [
            "kernel:0", "recurrent_kernel:0", "bias:0"]
        assigns = [v.assign(w) for v, w in zip(lstm.weights, weights, strict=True)]
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(assigns)
            res = sess.run(dict(outs=list(outs), grads=grads))
    for n, w in zip(("kernel", "recurrent_kernel", "bias"), weights, strict=True):
        arrays[n] = w
    for i, (o, w) in enumerate(zip(res["outs"], lw, strict=True)):
        arrays[f"out_{i}"] = o
        arrays[f"w_{i}"] = w
    for n, gv in zip(("x", "h0", "c0", "kernel", "recurrent_kernel", "bias"), res["grads"],
                     strict=True):
        arrays[f"grad_{n}"] = gv
    config = dict(name=name, layer=kw, dtype=dtype, mask=mask is not None)
    arrays["config"] = np.array(json.dumps(config))
    np.savez_compressed(OUT / f"keras_{name}.npz", **arrays)


def keras_cases() -> None:
    holes = [[1, 1, 1, 1, 1], [1, 1, 0, 0, 1], [0, 0, 0, 0, 0]]
    right = [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0]]
    cases = {
        "c0_nan": {"c0": [((1, 0), NAN)]},
        "c0_inf": {"c0": [((0, 2), INF)]},
        "h0_nan": {"h0": [((1, 1), NAN)]},
        "h0_neginf": {"h0": [((2, 3), -INF)]},
        "x_nan": {"x": [((0, 1, 0), NAN)]},
        "x_inf": {"x": [((1, 3, 2), INF)]},
    }
    seed = 2000
    for pname, poison in cases.items():
        for mname, mask in (("", None), ("_holes", holes), ("_right", right)):
            seed += 1
            keras_case(f"{pname}{mname}", poison=poison, mask=mask, seed=seed)
    seed += 1
    keras_case("c0_nan_float64", poison=cases["c0_nan"], dtype="float64", seed=seed)
    seed += 1
    keras_case("h0_nan_holes_sigmoid", poison=cases["h0_nan"], mask=holes, seed=seed,
               layer=dict(recurrent_activation="sigmoid"))
    seed += 1
    keras_case("x_nan_holes_relu", poison=cases["x_nan"], mask=holes, seed=seed,
               layer=dict(activation="relu"))


def clip_by_value_case() -> None:
    """``tf.clip_by_value(t, -bound, bound)`` (what ``LSTMCell`` clips with) and its
    gradient, for every kind of ``t`` and ``bound``, in float32 and float64."""
    t_vals = [NAN, -INF, -3.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 3.0, INF]
    bounds = [1.0, -1.0, 0.0, NAN, INF, -INF]
    arrays: dict[str, np.ndarray] = {"bounds": np.asarray(bounds)}
    for dt in ("float32", "float64"):
        g = tf.Graph()
        with g.as_default():
            t = tf.constant(np.asarray(t_vals, dt))
            # the incoming gradient: NaN on the NaN entry, 1 elsewhere
            upstream = tf.constant(np.asarray([NAN] + [1.0] * (len(t_vals) - 1), dt))
            ys, gs = [], []
            for bound in bounds:
                y = tf.clip_by_value(t, -bound, bound)
                ys.append(y)
                gs.append(tf.gradients(y, t, grad_ys=upstream)[0])
            with v1.Session(graph=g) as sess:
                y_np, g_np = sess.run([ys, gs])
        arrays[f"t_{dt}"] = np.asarray(t_vals, dt)
        arrays[f"y_{dt}"] = np.stack(y_np)
        arrays[f"grad_{dt}"] = np.stack(g_np)
    np.savez_compressed(OUT / "clip_by_value.npz", **arrays)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.glob("*.npz"):
        f.unlink()
    clip_by_value_case()
    tf1_cases()
    keras_cases()
    files = sorted(OUT.glob("*.npz"))
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {total / 1024:.0f} KiB, TF {tf.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
