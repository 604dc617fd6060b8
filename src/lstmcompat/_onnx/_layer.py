"""One LSTM layer (a :class:`~lstmcompat._engine.CellSpec` and its canonical weights) in
ONNX, in one of two forms with the engine's semantics:

* ``"node"``: a single ONNX ``LSTM`` operator, where its math is the spec's: gates
  permuted to ``i, o, f, c``, peepholes to ``i, o, f`` (its output peephole reads
  the new cell, as TF's), the forget bias folded into the input bias, its
  ``sequence_lens`` for TF1's ``sequence_length`` rule (zeros past each length,
  the state held). It has no projection, no TF cell clip (its ``clip`` bounds the
  gate pre-activations), no Keras carry-forward mask.
* ``"loop"``: a ``Scan`` over time whose body is one step of the spec written out
  in ONNX operators (the reference kernel's step): every spec exports.
"""

from __future__ import annotations

import numpy as np
import torch

from .._engine import CellSpec, Weights
from .._engine.gates import permute
from ._graph import LSTM_NODE_ACTIVATIONS, Builder, apply_activation, clip_by_value


def node_refusal(spec: CellSpec, mask_mode: str | None) -> str | None:
    """Why one ONNX ``LSTM`` node cannot compute ``spec`` exactly (``None``: it can).

    ``mask_mode`` is the masking in use: ``None`` (no mask), ``"zero"`` (TF1
    ``sequence_length``) or ``"carry"`` (a Keras mask)."""
    if spec.num_proj is not None:
        return "a projection (num_proj): the ONNX LSTM operator has none"
    if spec.cell_clip is not None:
        return "cell_clip: the ONNX LSTM operator's clip bounds the gate pre-activations"
    if spec.proj_clip is not None:
        return "proj_clip: the ONNX LSTM operator has none"
    for field in ("activation", "recurrent_activation"):
        act = getattr(spec, field)
        if act not in LSTM_NODE_ACTIVATIONS:
            return f"{field}={act!r}: not an ONNX LSTM activation"
    if mask_mode == "carry":
        return "a Keras mask (outputs carried over masked steps): sequence_lens zeroes them"
    return None


def _np(t: torch.Tensor | None, dtype: np.dtype) -> np.ndarray | None:
    return None if t is None else t.detach().to("cpu", torch.float64).numpy().astype(dtype)


def _bias(spec: CellSpec, w: Weights, dtype: np.dtype) -> np.ndarray:
    u = spec.units
    b = np.zeros(4 * u, dtype=np.float64) if w.b is None else _np(w.b, np.float64)
    b = b.copy()
    b[u:2 * u] += spec.forget_bias  # canonical i, f, g, o
    return b.astype(dtype)


def lstm_node(b: Builder, spec: CellSpec, w: Weights, x: str, h0: str, c0: str,
              lengths: str | None, reverse: bool) -> tuple[str, str, str]:
    """``(outputs (T, B, u), h, c)`` of one ONNX ``LSTM`` node over time-major ``x``;
    with ``reverse`` the outputs come back in processing order (Keras ``go_backwards``)."""
    u, dt = spec.units, b.dtype
    W = permute(w.W.detach().t(), "canonical", "onnx", dim=0)  # (4u, D)
    R = permute(w.R.detach().t(), "canonical", "onnx", dim=0)  # (4u, u)
    bias = permute(torch.from_numpy(_bias(spec, w, np.float64)), "canonical", "onnx")
    B = np.concatenate([bias.numpy(), np.zeros(4 * u)])
    inputs = [x, b.const(_np(W, dt)[None], "W"), b.const(_np(R, dt)[None], "R"),
              b.const(B[None], "B"), lengths or "", b.op("Unsqueeze", [h0, b.const([0], dtype=np.int64)]),
              b.op("Unsqueeze", [c0, b.const([0], dtype=np.int64)])]
    if spec.use_peepholes:
        P = np.concatenate([_np(w.w_i, dt), _np(w.w_o, dt), _np(w.w_f, dt)])  # i, o, f
        inputs.append(b.const(P[None], "P"))
    names, alphas, betas = [], [], []
    for act in (spec.recurrent_activation, spec.activation, spec.activation):  # f, g, h
        name, alpha, beta = LSTM_NODE_ACTIVATIONS[act]  # type: ignore[index]
        names.append(name)
        alphas.append(alpha)
        betas.append(beta)
    attrs = dict(hidden_size=u, activations=names,
                 direction="reverse" if reverse else "forward")
    if any(a is not None for a in alphas):  # one entry per activation that takes one
        attrs["activation_alpha"] = [a for a in alphas if a is not None]
        attrs["activation_beta"] = [v for v in betas if v is not None]
    Y, Yh, Yc = b.op("LSTM", inputs, n_out=3, hint="lstm", **attrs)
    zero = b.const([0], dtype=np.int64)
    one = b.const([1], dtype=np.int64)
    out = b.op("Squeeze", [Y, one])
    if reverse:  # ONNX writes step t at position t; Keras returns processing order
        out = b.op("Slice", [out, b.const([-1], dtype=np.int64),
                             b.const([-(2**62)], dtype=np.int64), zero,
                             b.const([-1], dtype=np.int64)])
    h, c = b.op("Squeeze", [Yh, zero]), b.op("Squeeze", [Yc, zero])
    if lengths is not None:  # onnxruntime gives zeros for a length 0; TF the initial state
        empty = b.op("Unsqueeze", [b.op("Equal", [lengths, b.const(0, dtype=np.int32)]), one])
        h, c = b.op("Where", [empty, h0, h]), b.op("Where", [empty, c0, c])
    return out, h, c


def lstm_loop(b: Builder, spec: CellSpec, w: Weights, x: str, h0: str, c0: str,
              mask: str | None, reverse: bool) -> tuple[str, str, str]:
    """``(outputs (T, B, p), h, c)`` of a ``Scan`` running the reference step over
    time-major ``x`` (``mask`` bool ``(T, B)``; outputs in processing order)."""
    dt = b.dtype
    u, p = spec.units, spec.output_size
    body = Builder(dt)
    h, c, xt = "h_in", "c_in", "x_t"
    state_in = [h, c]
    prev = None
    if mask is not None and spec.mask_mode == "carry":
        prev = "prev_in"
        state_in.append(prev)
    z = body.op("Add", [body.op("Add", [body.op("MatMul", [xt, body.const(_np(w.W, dt), "W")]),
                                        body.op("MatMul", [h, body.const(_np(w.R, dt), "R")])]),
                        body.const(_bias(spec, w, dt), "b")])
    zi, zf, zg, zo = body.op("Split", [z, body.const([u] * 4, dtype=np.int64)], n_out=4, axis=1)
    if spec.use_peepholes:
        zi = body.op("Add", [zi, body.op("Mul", [body.const(_np(w.w_i, dt)), c])])
        zf = body.op("Add", [zf, body.op("Mul", [body.const(_np(w.w_f, dt)), c])])
    i = apply_activation(body, spec.recurrent_activation, zi)
    f = apply_activation(body, spec.recurrent_activation, zf)
    cn = body.op("Add", [body.op("Mul", [f, c]),
                         body.op("Mul", [i, apply_activation(body, spec.activation, zg)])])
    if spec.cell_clip is not None:
        cn = clip_by_value(body, cn, spec.cell_clip)
    if spec.use_peepholes:
        zo = body.op("Add", [zo, body.op("Mul", [body.const(_np(w.w_o, dt)), cn])])
    o = apply_activation(body, spec.recurrent_activation, zo)
    hn = body.op("Mul", [o, apply_activation(body, spec.activation, cn)])
    if spec.num_proj is not None:
        hn = body.op("MatMul", [hn, body.const(_np(w.P, dt), "P")])
    if spec.proj_clip is not None:
        hn = clip_by_value(body, hn, spec.proj_clip)
    outs_state: list[str]
    if mask is None:
        out = body.op("Identity", [hn])
        outs_state = [body.op("Identity", [hn]), body.op("Identity", [cn])]
    else:
        m = body.op("Unsqueeze", ["m_t", body.const([1], dtype=np.int64)])
        h2 = body.op("Where", [m, hn, h])
        c2 = body.op("Where", [m, cn, c])
        if prev is not None:
            out = body.op("Where", [m, hn, prev])
            outs_state = [h2, c2, body.op("Identity", [out])]
        else:
            out = body.op("Where", [m, hn, body.const(np.zeros((), dt))])
            outs_state = [h2, c2]
    helper = b.helper
    et = b.elem_type

    def vi(name: str, shape: list, elem: int = et):
        return helper.make_tensor_value_info(name, elem, shape)

    graph_inputs = [vi(h, ["B", p]), vi(c, ["B", u])] + ([vi(prev, ["B", p])] if prev else [])
    graph_inputs += [vi(xt, ["B", "D"])]
    if mask is not None:
        graph_inputs.append(vi("m_t", ["B"], b.TensorProto.BOOL))
    outputs = [vi(n, None) for n in outs_state] + [vi(out, None)]
    g = helper.make_graph(body.nodes, b.fresh("lstm_step"), graph_inputs, outputs,
                          initializer=body.initializers)
    init = [h0, c0]
    if prev is not None:
        init.append(b.op("ConstantOfShape", [b.op("Shape", [h0])],  # zeros (B, p)
                         value=helper.make_tensor("zero", et, [1], [0.0])))
    scans = [x] + ([mask] if mask is not None else [])
    res = b.op("Scan", init + scans, n_out=len(outs_state) + 1, hint="scan", body=g,
               num_scan_inputs=len(scans),
               scan_input_directions=[1 if reverse else 0] * len(scans))
    return res[-1], res[0], res[1]
