"""Regenerate the TF1 family goldens: ``tests/goldens/tf1_family/``.

Run with the reference TensorFlow (never a dependency of the library or its tests)::

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_tf1_family.py

Cells: ``BasicLSTMCell`` (tf_keras ``legacy_cells``) and the TF 1.x contrib cells
``LSTMBlockCell``, ``LSTMBlockFusedCell`` and ``CudnnCompatibleLSTMCell``, which
TensorFlow 2 no longer ships: they are rebuilt below from the TF 1.15 contrib
source (``contrib/rnn/python/ops/lstm_ops.py``, ``contrib/cudnn_rnn/python/ops/
cudnn_rnn_ops.py``) on the ops that are still there (``tf.raw_ops.LSTMBlockCell``,
``LSTMBlockCellGrad``, ``BlockLSTM``; contrib's gradient of ``LSTMBlockCell`` is
registered here as contrib registered it).

Writes:

* ``<case>.npz``: the numeric cases, in ``tools/goldens_tf1.py``'s layout (inputs,
  initial states, weights with their TF names, outputs, final states, gradients of
  a fixed random weighting of them w.r.t. inputs, states and every weight); the
  fused cell's cases (``fused_*``) use the same keys with time-major inputs.
* ``naming.json``: the variable names (or the error) of graph-mode scenarios.
* ``ckpt_<writer>/model.ckpt``: ``Saver`` checkpoints of each writer, and
  ``checkpoints.npz`` with every variable's value by name. ``ckpt_tf11`` holds
  TF <= 1.1 names (``BasicLSTMCell/Linear/Matrix``, ``LSTMCell/W_0``,
  ``MultiRNNCell/Cell0``, ``BiRNN/FW``): TensorFlow 2 cannot build those cells any
  more, so the variables are created under those names directly, with the values
  of a modern run, as an old Saver wrote them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldens_tf1 as base  # noqa: E402  (sets up TF1 graph mode)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tf_keras.src.engine import input_spec  # noqa: E402
from tf_keras.src.layers.rnn import legacy_cells  # noqa: E402

v1 = tf.compat.v1
OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "tf1_family"


# ------------------------------------------------------------- contrib, rebuilt on raw ops

@tf.RegisterGradient("LSTMBlockCell")
def _lstm_block_cell_grad(op, *grad):
    """contrib ``_LSTMBlockCellGrad``."""
    (x, cs_prev, h_prev, w, wci, wcf, wco, b) = op.inputs
    (i, cs, f, o, ci, co, _) = op.outputs
    (_, cs_grad, _, _, _, _, h_grad) = grad
    input_size = x.shape[1]
    (cs_prev_grad, dicfo, wci_grad, wcf_grad, wco_grad) = tf.raw_ops.LSTMBlockCellGrad(
        x=x, cs_prev=cs_prev, h_prev=h_prev, w=w, wci=wci, wcf=wcf, wco=wco, b=b, i=i,
        cs=cs, f=f, o=o, ci=ci, co=co, cs_grad=cs_grad, h_grad=h_grad,
        use_peephole=op.get_attr("use_peephole"))
    xh_grad = tf.matmul(dicfo, w, transpose_b=True)
    x_grad = xh_grad[:, :input_size]
    h_prev_grad = xh_grad[:, input_size:]
    xh = tf.concat([x, h_prev], 1)
    w_grad = tf.matmul(xh, dicfo, transpose_a=True)
    b_grad = tf.raw_ops.BiasAddGrad(out_backprop=dicfo)
    return (x_grad, cs_prev_grad, h_prev_grad, w_grad, wci_grad, wcf_grad, wco_grad, b_grad)


class LSTMBlockCell(legacy_cells.LayerRNNCell):
    """contrib ``LSTMBlockCell``."""

    def __init__(self, num_units, forget_bias=1.0, cell_clip=None, use_peephole=False,
                 dtype=None, reuse=None, name="lstm_cell"):
        super().__init__(_reuse=reuse, dtype=dtype, name=name)
        self._num_units = num_units
        self._forget_bias = forget_bias
        self._use_peephole = use_peephole
        self._cell_clip = cell_clip if cell_clip is not None else -1
        self._names = {"W": "kernel", "b": "bias", "wci": "w_i_diag", "wcf": "w_f_diag",
                       "wco": "w_o_diag", "scope": "lstm_cell"}
        self.input_spec = input_spec.InputSpec(ndim=2)

    @property
    def state_size(self):
        return legacy_cells.LSTMStateTuple(self._num_units, self._num_units)

    @property
    def output_size(self):
        return self._num_units

    def build(self, inputs_shape):
        if not inputs_shape[1]:
            raise ValueError(f"Expecting inputs_shape[1] to be set: {inputs_shape}")
        input_size = inputs_shape[1]
        self._kernel = self.add_weight(self._names["W"],
                                       [input_size + self._num_units, self._num_units * 4])
        self._bias = self.add_weight(self._names["b"], [self._num_units * 4],
                                     initializer=v1.constant_initializer(0.0))
        if self._use_peephole:
            self._w_i_diag = self.add_weight(self._names["wci"], [self._num_units])
            self._w_f_diag = self.add_weight(self._names["wcf"], [self._num_units])
            self._w_o_diag = self.add_weight(self._names["wco"], [self._num_units])
        self.built = True

    def call(self, inputs, state):
        if len(state) != 2:
            raise ValueError("Expecting state to be a tuple with length 2.")
        if self._use_peephole:
            wci, wcf, wco = self._w_i_diag, self._w_f_diag, self._w_o_diag
        else:
            wci = wcf = wco = tf.zeros([self._num_units], dtype=self.dtype)
        (cs_prev, h_prev) = state
        (_, cs, _, _, _, _, h) = tf.raw_ops.LSTMBlockCell(
            x=inputs, cs_prev=cs_prev, h_prev=h_prev, w=self._kernel, wci=wci, wcf=wcf,
            wco=wco, b=self._bias, forget_bias=self._forget_bias, cell_clip=self._cell_clip,
            use_peephole=self._use_peephole)
        return h, legacy_cells.LSTMStateTuple(cs, h)


class CudnnCompatibleLSTMCell(LSTMBlockCell):
    """contrib ``cudnn_rnn.CudnnCompatibleLSTMCell``."""

    def __init__(self, num_units, reuse=None):
        super().__init__(num_units, forget_bias=0, cell_clip=None, use_peephole=False,
                         reuse=reuse, name="cudnn_compatible_lstm_cell")
        self._names.update({"scope": "cudnn_compatible_lstm_cell"})


class LSTMBlockFusedCell(v1.layers.Layer):
    """contrib ``LSTMBlockWrapper`` + ``LSTMBlockFusedCell`` (time-major)."""

    def __init__(self, num_units, forget_bias=1.0, cell_clip=None, use_peephole=False,
                 reuse=None, dtype=None, name="lstm_fused_cell"):
        super().__init__(_reuse=reuse, name=name, dtype=dtype)
        self._num_units = num_units
        self._forget_bias = forget_bias
        self._cell_clip = cell_clip if cell_clip is not None else -1
        self._use_peephole = use_peephole
        self.input_spec = input_spec.InputSpec(ndim=3)

    @property
    def num_units(self):
        return self._num_units

    def build(self, input_shape):
        input_size = input_shape[2]
        self._kernel = self.add_weight("kernel", [input_size + self._num_units,
                                                  self._num_units * 4])
        self._bias = self.add_weight("bias", [self._num_units * 4],
                                     initializer=v1.constant_initializer(0.0))
        if self._use_peephole:
            self._w_i_diag = self.add_weight("w_i_diag", [self._num_units])
            self._w_f_diag = self.add_weight("w_f_diag", [self._num_units])
            self._w_o_diag = self.add_weight("w_o_diag", [self._num_units])
        self.built = True

    def _call_cell(self, inputs, initial_cell_state, initial_output, dtype, sequence_length):
        time_len = tf.shape(inputs)[0]
        if self._use_peephole:
            wci, wcf, wco = self._w_i_diag, self._w_f_diag, self._w_o_diag
        else:
            wci = wcf = wco = tf.zeros([self._num_units], dtype=dtype)
        if sequence_length is None:
            max_seq_len = tf.cast(time_len, tf.int64)
        else:
            max_seq_len = tf.cast(tf.reduce_max(sequence_length), tf.int64)
        _, cs, _, _, _, _, h = tf.raw_ops.BlockLSTM(
            seq_len_max=max_seq_len, x=inputs, cs_prev=initial_cell_state,
            h_prev=initial_output, w=self._kernel, wci=wci, wcf=wcf, wco=wco, b=self._bias,
            forget_bias=self._forget_bias, cell_clip=self._cell_clip,
            use_peephole=self._use_peephole)
        return cs, h

    @staticmethod
    def _gather_states(data, indices, batch_size):
        return tf.gather_nd(data, tf.stack([indices, tf.range(batch_size)], axis=1))

    def call(self, inputs, initial_state=None, dtype=None, sequence_length=None):
        is_list = isinstance(inputs, list)
        if is_list:
            inputs = tf.stack(inputs)
        inputs_shape = inputs.get_shape().with_rank(3)
        if not inputs_shape[2]:
            raise ValueError(f"Expecting inputs_shape[2] to be set: {inputs_shape}")
        batch_size = inputs_shape[1]
        time_len = inputs_shape[0]
        if initial_state is None:
            if dtype is None:
                raise ValueError("Either initial_state or dtype needs to be specified")
            z = tf.zeros(tf.stack([batch_size, self.num_units]), dtype=dtype)
            initial_state = z, z
        else:
            if len(initial_state) != 2:
                raise ValueError("Expecting initial_state to be a tuple with length 2 or None")
            if dtype is None:
                dtype = initial_state[0].dtype
        if sequence_length is not None:
            sequence_length = tf.convert_to_tensor(sequence_length)
        initial_cell_state, initial_output = initial_state
        cell_states, outputs = self._call_cell(inputs, initial_cell_state, initial_output,
                                               dtype, sequence_length)
        if sequence_length is not None:
            mask = tf.transpose(tf.sequence_mask(sequence_length, time_len, dtype=dtype), [1, 0])
            mask = tf.tile(tf.expand_dims(mask, [-1]), [1, 1, self.num_units])
            outputs *= mask
            mod_cell_states = tf.concat([tf.expand_dims(initial_cell_state, [0]), cell_states],
                                        0)
            mod_outputs = tf.concat([tf.expand_dims(initial_output, [0]), outputs], 0)
            final_cell_state = self._gather_states(mod_cell_states, sequence_length, batch_size)
            final_output = self._gather_states(mod_outputs, sequence_length, batch_size)
        else:
            final_cell_state = cell_states[-1]
            final_output = outputs[-1]
        if is_list:
            outputs = tf.unstack(outputs)
        return outputs, legacy_cells.LSTMStateTuple(final_cell_state, final_output)


CLASSES = {
    "BasicLSTMCell": lambda **kw: v1.nn.rnn_cell.BasicLSTMCell(**kw),
    "LSTMBlockCell": LSTMBlockCell,
    "CudnnCompatibleLSTMCell": CudnnCompatibleLSTMCell,
    "LSTMCell": lambda **kw: v1.nn.rnn_cell.LSTMCell(**kw),
}


def _cell(cfg: dict) -> object:
    kw = dict(cfg)
    kw.pop("depth", None)
    cls = kw.pop("cls")
    return CLASSES[cls](**kw)


# --------------------------------------------------------------------------- numeric

def numeric_cases() -> None:
    base._cell = _cell
    seed = 1000
    T = base.T

    def case(name, kind, cells, **kw):
        nonlocal seed
        seed += 1
        base.make_case(name, kind, cells, seed=seed, out_dir=OUT, **kw)

    basic = dict(cls="BasicLSTMCell", num_units=5)
    cells = {
        "basic": (basic, 0.5),
        "basic_fb25_relu": (dict(cls="BasicLSTMCell", num_units=4, forget_bias=2.5,
                                 activation="relu"), 0.5),
        "basic_concat": (dict(cls="BasicLSTMCell", num_units=4, state_is_tuple=False), 0.5),
        "block": (dict(cls="LSTMBlockCell", num_units=5), 0.5),
        "block_peep": (dict(cls="LSTMBlockCell", num_units=5, use_peephole=True), 0.5),
        "block_clip": (dict(cls="LSTMBlockCell", num_units=5, cell_clip=0.3), 1.5),
        "block_peep_clip": (dict(cls="LSTMBlockCell", num_units=4, cell_clip=0.4,
                                 use_peephole=True, forget_bias=0.5), 1.5),
        "block_clip0": (dict(cls="LSTMBlockCell", num_units=4, cell_clip=0.0,
                             use_peephole=True), 1.5),
        "block_clipneg": (dict(cls="LSTMBlockCell", num_units=4, cell_clip=-1.0), 1.5),
        "cudnn": (dict(cls="CudnnCompatibleLSTMCell", num_units=5), 0.5),
    }
    for tag, (cfg, sc) in cells.items():
        case(f"step_{tag}_float32", "step", [cfg], scale=sc)
        case(f"dyn_{tag}_len_float32", "dynamic", [cfg], scale=sc, seq_len=[T, 2, 0])
    case("dyn_basic_float64", "dynamic", [basic], dtype="float64")
    case("dyn_basic_concat_len_float64", "dynamic", [cells["basic_concat"][0]],
         dtype="float64", seq_len=[3, T, 1])
    case("dyn_basic_tm_zero_state_len_float32", "dynamic", [basic], time_major=True,
         init_state=False, seq_len=[1, 4, T])
    case("static_basic_len_float32", "static", [basic], seq_len=[4, 0, T])
    case("static_block_peep_clip_len_float32", "static", [cells["block_peep_clip"][0]],
         scale=1.5, seq_len=[2, T, 3])
    case("bidi_basic_block_len_float32", "bidi",
         [basic, dict(cls="LSTMBlockCell", num_units=3, use_peephole=True)], seq_len=[T, 2, 0])
    case("bidi_cudnn_len_tm_float32", "bidi",
         [dict(cls="CudnnCompatibleLSTMCell", num_units=4),
          dict(cls="CudnnCompatibleLSTMCell", num_units=3)], seq_len=[3, T, 1], time_major=True)
    d = base.D
    stack = [dict(cls="BasicLSTMCell", num_units=5, depth=d),
             dict(cls="LSTMBlockCell", num_units=4, use_peephole=True, cell_clip=0.5, depth=5),
             dict(cls="CudnnCompatibleLSTMCell", num_units=3, depth=4),
             dict(cls="LSTMCell", num_units=3, num_proj=2, depth=3)]
    case("multi_mixed_dyn_len_float32", "dynamic", stack, stack=[0, 1, 2, 3], scale=1.0,
         seq_len=[T, 0, 3])
    case("multi_mixed_step_float32", "step", stack, stack=[0, 1, 2, 3], scale=1.0)
    cud = [dict(cls="CudnnCompatibleLSTMCell", num_units=4, depth=d),
           dict(cls="CudnnCompatibleLSTMCell", num_units=4, depth=4)]
    case("multi_cudnn_dyn_len_float32", "dynamic", cud, stack=[0, 1], seq_len=[2, T, 4])
    basics = [dict(cls="BasicLSTMCell", num_units=4, depth=d, state_is_tuple=False),
              dict(cls="BasicLSTMCell", num_units=3, depth=4, state_is_tuple=False)]
    case("multi_basic_concat_dyn_len_float32", "dynamic", basics, stack=[0, 1],
         multi_tuple=False, seq_len=[T, 1, 3])


def make_fused_case(name: str, cfg: dict, *, seq_len=None, init_state=True,
                    dtype="float32", scale=0.5, seed=0, steps=base.T, batch=base.B,
                    depth=base.D, as_list=False) -> None:
    """A fused-cell case in ``make_case``'s layout (inputs time-major)."""
    rng = np.random.default_rng(seed)
    npdt = np.dtype(dtype)
    tfdt = tf.as_dtype(dtype)
    data: dict = {}
    config = dict(name=name, kind="fused", cells=[cfg], stack=None, multi_tuple=True,
                  dtype=dtype, seq_len=seq_len, time_major=True, init_state=init_state,
                  as_list=as_list)
    g = tf.Graph()
    with g.as_default():
        kw = dict(cfg)
        kw.pop("cls")
        cell = LSTMBlockFusedCell(**kw)
        x_np = rng.uniform(-1, 1, (steps, batch, depth)).astype(npdt)
        data["x"] = x_np
        x = tf.constant(x_np)
        s0 = []
        if init_state:
            for k in range(2):
                a = rng.uniform(-1, 1, (batch, cfg["num_units"])).astype(npdt)
                data[f"s0_0_{k}"] = a
                s0.append(tf.constant(a))
        sl = None if seq_len is None else tf.constant(np.asarray(seq_len, np.int32))
        inputs = tf.unstack(x) if as_list else x
        out, st = cell(inputs, initial_state=tuple(s0) if init_state else None,
                       dtype=None if init_state else tfdt, sequence_length=sl)
        if as_list:
            out = tf.stack(out)
        variables, assigns = [], []
        for w_i, v in enumerate(cell.weights):
            shape = v.shape.as_list()
            sc = scale * (2.0 if len(shape) == 1 and w_i > 1 else 1.0)
            val = rng.uniform(-sc, sc, shape).astype(npdt)
            data[f"w_0_{w_i}"] = val
            data[f"wname_0_{w_i}"] = np.array(v.op.name)
            assigns.append(v.assign(val))
            variables.append((f"0_{w_i}", v))
        wo = rng.uniform(-1, 1, out.shape.as_list()).astype(npdt)
        data["wout_0"] = wo
        loss = tf.reduce_sum(out * wo)
        flat_states = [st.c, st.h]
        for k, s in enumerate(flat_states):
            ws = rng.uniform(-1, 1, s.shape.as_list()).astype(npdt)
            data[f"wst_{k}"] = ws
            loss = loss + tf.reduce_sum(s * ws)
        wrt = [x] + s0 + [v for _, v in variables]
        grads = tf.gradients(loss, wrt)
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(assigns)
            res = sess.run(dict(out=out, states=flat_states, grads=grads, loss=loss))
    data["out_0"] = res["out"]
    for k, s in enumerate(res["states"]):
        data[f"st_{k}"] = s
    data["loss"] = np.asarray(res["loss"])
    gi = iter(res["grads"])
    data["g_x"] = next(gi)
    for k in range(len(s0)):
        data[f"g_s0_0_{k}"] = next(gi)
    for key, _ in variables:
        gval = next(gi)
        data[f"g_w_{key}"] = np.zeros_like(data[f"w_{key}"]) if gval is None else gval
    data["config"] = np.array(json.dumps(config))
    np.savez_compressed(OUT / f"{name}.npz", **data)


def fused_cases() -> None:
    T = base.T
    plain = dict(cls="LSTMBlockFusedCell", num_units=5)
    peep_clip = dict(cls="LSTMBlockFusedCell", num_units=4, use_peephole=True, cell_clip=0.4,
                     forget_bias=0.5)
    make_fused_case("fused_plain_float32", plain, seed=2001)
    make_fused_case("fused_plain_len_float32", plain, seq_len=[T, 2, 0], seed=2002)
    make_fused_case("fused_plain_len_full_float32", plain, seq_len=[T, T, T], seed=2003)
    make_fused_case("fused_plain_len_all0_float32", plain, seq_len=[0, 0, 0], seed=2004)
    make_fused_case("fused_zero_state_len_float32", plain, seq_len=[3, 1, 4], seed=2005,
                    init_state=False)
    make_fused_case("fused_peep_clip_len_float32", peep_clip, seq_len=[4, T, 0], seed=2006,
                    scale=1.5)
    make_fused_case("fused_peep_clip0_float32", dict(peep_clip, cell_clip=0.0), seed=2007,
                    scale=1.5)
    make_fused_case("fused_peep_len_b1_float32", dict(peep_clip, cell_clip=None), seq_len=[3],
                    seed=2008, batch=1)


# ---------------------------------------------------------------------------- naming

def naming_cases() -> dict:
    Basic = v1.nn.rnn_cell.BasicLSTMCell
    Multi = v1.nn.rnn_cell.MultiRNNCell
    f32 = tf.float32

    def x3():
        return tf.zeros([2, 3, 4])

    def x2():
        return tf.zeros([2, 4])

    sc: dict = {}
    sc["basic_dynamic"] = lambda: v1.nn.dynamic_rnn(Basic(5), x3(), dtype=f32)

    def basic_twice():
        v1.nn.dynamic_rnn(Basic(5), x3(), dtype=f32)
        v1.nn.dynamic_rnn(Basic(5), x3(), dtype=f32)
    sc["basic_twice_new_cell"] = basic_twice
    sc["basic_named"] = lambda: v1.nn.dynamic_rnn(Basic(5, name="enc"), x3(), dtype=f32)

    def basic_step():
        c = Basic(3)
        c(x2(), c.zero_state(2, f32))
    sc["basic_step"] = basic_step
    sc["basic_multi"] = lambda: v1.nn.dynamic_rnn(Multi([Basic(5), Basic(3)]), x3(), dtype=f32)
    sc["basic_bidi"] = lambda: v1.nn.bidirectional_dynamic_rnn(Basic(3), Basic(2), x3(),
                                                               dtype=f32)

    def basic_reuse():
        with v1.variable_scope("s"):
            v1.nn.dynamic_rnn(Basic(5), x3(), dtype=f32)
        with v1.variable_scope("s", reuse=True):
            v1.nn.dynamic_rnn(Basic(5), x3(), dtype=f32)
    sc["basic_reuse_scope"] = basic_reuse

    def basic_no_reuse():
        with v1.variable_scope("s"):
            v1.nn.dynamic_rnn(Basic(5), x3(), dtype=f32)
        with v1.variable_scope("s"):
            v1.nn.dynamic_rnn(Basic(5), x3(), dtype=f32)
    sc["basic_same_scope_no_reuse"] = basic_no_reuse
    sc["block_dynamic"] = lambda: v1.nn.dynamic_rnn(LSTMBlockCell(5), x3(), dtype=f32)
    sc["block_peephole"] = lambda: v1.nn.dynamic_rnn(LSTMBlockCell(5, use_peephole=True), x3(),
                                                     dtype=f32)

    def block_twice():
        v1.nn.dynamic_rnn(LSTMBlockCell(5), x3(), dtype=f32)
        v1.nn.dynamic_rnn(LSTMBlockCell(5), x3(), dtype=f32)
    sc["block_twice_new_cell"] = block_twice
    sc["block_multi"] = lambda: v1.nn.dynamic_rnn(
        Multi([LSTMBlockCell(5, use_peephole=True), LSTMBlockCell(3)]), x3(), dtype=f32)
    sc["block_bidi"] = lambda: v1.nn.bidirectional_dynamic_rnn(
        LSTMBlockCell(3), LSTMBlockCell(2, use_peephole=True), x3(), dtype=f32)
    sc["block_named"] = lambda: v1.nn.dynamic_rnn(LSTMBlockCell(5, name="blk"), x3(),
                                                  dtype=f32)

    def block_reuse_flag():
        v1.nn.dynamic_rnn(LSTMBlockCell(5), x3(), dtype=f32)
        v1.nn.dynamic_rnn(LSTMBlockCell(5, reuse=True), x3(), dtype=f32)
    sc["block_reuse_flag"] = block_reuse_flag

    def cudnn_multi():
        with v1.variable_scope("cudnn_lstm"):
            v1.nn.dynamic_rnn(Multi([CudnnCompatibleLSTMCell(5), CudnnCompatibleLSTMCell(5)]),
                              x3(), dtype=f32)
    sc["cudnn_multi_scope"] = cudnn_multi
    sc["cudnn_dynamic"] = lambda: v1.nn.dynamic_rnn(CudnnCompatibleLSTMCell(4), x3(),
                                                    dtype=f32)

    def cudnn_twice():
        v1.nn.dynamic_rnn(CudnnCompatibleLSTMCell(4), x3(), dtype=f32)
        v1.nn.dynamic_rnn(CudnnCompatibleLSTMCell(4), x3(), dtype=f32)
    sc["cudnn_twice_new_cell"] = cudnn_twice

    def fused_one():
        LSTMBlockFusedCell(5)(tf.zeros([3, 2, 4]), dtype=f32)
    sc["fused"] = fused_one

    def fused_peep():
        LSTMBlockFusedCell(5, use_peephole=True)(tf.zeros([3, 2, 4]), dtype=f32)
    sc["fused_peephole"] = fused_peep

    def fused_twice():
        LSTMBlockFusedCell(5)(tf.zeros([3, 2, 4]), dtype=f32)
        LSTMBlockFusedCell(5)(tf.zeros([3, 2, 4]), dtype=f32)
    sc["fused_twice_new_cell"] = fused_twice

    def fused_same_twice():
        c = LSTMBlockFusedCell(5)
        c(tf.zeros([3, 2, 4]), dtype=f32)
        c(tf.zeros([3, 2, 4]), dtype=f32)
    sc["fused_same_cell_twice"] = fused_same_twice

    def fused_scoped():
        with v1.variable_scope("enc"):
            LSTMBlockFusedCell(5, name="fw")(tf.zeros([3, 2, 4]), dtype=f32)
    sc["fused_in_scope"] = fused_scoped

    def fused_reuse():
        with v1.variable_scope("enc"):
            LSTMBlockFusedCell(5)(tf.zeros([3, 2, 4]), dtype=f32)
        with v1.variable_scope("enc", reuse=True):
            LSTMBlockFusedCell(5)(tf.zeros([3, 2, 4]), dtype=f32)
    sc["fused_reuse_scope"] = fused_reuse
    return {k: base._scenario(fn) for k, fn in sc.items()}


# ------------------------------------------------------------------------ checkpoints

def _save(g, sess, name: str, values: dict) -> None:
    d = OUT / f"ckpt_{name}"
    d.mkdir(exist_ok=True)
    with g.as_default():
        saver = v1.train.Saver()
        saver.save(sess, str(d / "model.ckpt"), write_meta_graph=False)
        for v in v1.global_variables():
            values[f"{name}:{v.op.name}"] = sess.run(v)
    (d / "checkpoint").unlink(missing_ok=True)


def checkpoint_cases() -> None:
    values: dict = {}
    rng = np.random.default_rng(77)

    def fill(sess):
        for v in v1.global_variables():
            sess.run(v.assign(rng.uniform(-0.5, 0.5, v.shape.as_list()).astype(np.float32)))

    writers = {
        "basic": lambda: v1.nn.dynamic_rnn(v1.nn.rnn_cell.BasicLSTMCell(5),
                                           tf.zeros([2, 3, 4]), dtype=tf.float32),
        "block": lambda: v1.nn.dynamic_rnn(LSTMBlockCell(5, use_peephole=True),
                                           tf.zeros([2, 3, 4]), dtype=tf.float32),
        "fused": lambda: LSTMBlockFusedCell(5, use_peephole=True)(tf.zeros([3, 2, 4]),
                                                                   dtype=tf.float32),
        "cudnn": lambda: _cudnn_writer(),
        "cudnn_bidi": lambda: _cudnn_bidi_writer(),
        "multi_block": lambda: v1.nn.dynamic_rnn(
            v1.nn.rnn_cell.MultiRNNCell([LSTMBlockCell(5), LSTMBlockCell(3)]),
            tf.zeros([2, 3, 4]), dtype=tf.float32),
    }
    for name, build in writers.items():
        g = tf.Graph()
        with g.as_default():
            build()
            if name == "basic":  # an Adam training run's checkpoint: slots are skipped
                loss = tf.add_n([tf.reduce_sum(v) for v in v1.trainable_variables()])
                v1.train.AdamOptimizer().minimize(loss)
            with v1.Session(graph=g) as sess:
                sess.run(v1.global_variables_initializer())
                if name == "basic":
                    _fill_trainable(sess, rng)
                else:
                    fill(sess)
                _save(g, sess, name, values)
    # TF <= 1.1 names: a BiRNN of BasicLSTMCells over a MultiRNNCell of an old BasicLSTMCell
    # and an old peephole+projection LSTMCell, as those versions named them.
    old = {
        "BiRNN/FW/BasicLSTMCell/Linear/Matrix": (4 + 3, 12),
        "BiRNN/FW/BasicLSTMCell/Linear/Bias": (12,),
        "BiRNN/BW/BasicLSTMCell/Linear/Matrix": (4 + 2, 8),
        "BiRNN/BW/BasicLSTMCell/Linear/Bias": (8,),
        "RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Matrix": (4 + 5, 20),
        "RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Bias": (20,),
        "RNN/MultiRNNCell/Cell1/LSTMCell/W_0": (5 + 2, 16),
        "RNN/MultiRNNCell/Cell1/LSTMCell/B": (16,),
        "RNN/MultiRNNCell/Cell1/LSTMCell/W_F_diag": (4,),
        "RNN/MultiRNNCell/Cell1/LSTMCell/W_I_diag": (4,),
        "RNN/MultiRNNCell/Cell1/LSTMCell/W_O_diag": (4,),
        "RNN/MultiRNNCell/Cell1/LSTMCell/W_P_0": (4, 2),
    }
    g = tf.Graph()
    with g.as_default():
        for n, shape in old.items():
            v1.get_variable(n, shape, tf.float32)
        v1.get_variable("global_step", [], tf.int64, initializer=v1.zeros_initializer())
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            _fill_trainable(sess, rng)
            _save(g, sess, "tf11", values)
    np.savez_compressed(OUT / "checkpoints.npz", **values)


def _fill_trainable(sess, rng) -> None:
    for v in v1.trainable_variables():
        sess.run(v.assign(rng.uniform(-0.5, 0.5, v.shape.as_list()).astype(np.float32)))


def _cudnn_writer() -> None:
    """The names TF1 ``CudnnLSTM``'s saveable writes (a 2-layer unidirectional
    ``CudnnLSTM`` named ``cudnn_lstm``): its canonical weights as
    ``CudnnCompatibleLSTMCell``s in a ``MultiRNNCell``, as the saveable names them."""
    with v1.variable_scope("cudnn_lstm"):
        v1.nn.dynamic_rnn(v1.nn.rnn_cell.MultiRNNCell(
            [CudnnCompatibleLSTMCell(5), CudnnCompatibleLSTMCell(5)]), tf.zeros([2, 3, 4]),
            dtype=tf.float32)


def _cudnn_bidi_writer() -> None:
    """The names of a 2-layer bidirectional TF1 ``CudnnLSTM`` (``cudnn_lstm``): its
    saveable names them as ``stack_bidirectional_dynamic_rnn`` of
    ``CudnnCompatibleLSTMCell`` pairs would (layer ``k`` reads the ``2u`` outputs)."""
    x = tf.zeros([2, 3, 4])
    with v1.variable_scope("cudnn_lstm"), v1.variable_scope("stack_bidirectional_rnn"):
        for k in range(2):
            with v1.variable_scope(f"cell_{k}"):
                (f, b), _ = v1.nn.bidirectional_dynamic_rnn(
                    CudnnCompatibleLSTMCell(3), CudnnCompatibleLSTMCell(3), x, dtype=tf.float32)
                x = tf.concat([f, b], 2)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.glob("*.npz"):
        f.unlink()
    numeric_cases()
    fused_cases()
    (OUT / "naming.json").write_text(json.dumps(naming_cases(), indent=1, sort_keys=True) + "\n")
    checkpoint_cases()
    files = sorted(p for p in OUT.rglob("*") if p.is_file())
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {total / 1024:.0f} KiB, TF {tf.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
