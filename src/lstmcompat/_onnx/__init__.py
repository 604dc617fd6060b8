"""``export_onnx``: an lstmcompat module to an ONNX file that onnxruntime runs with the
module's numbers.

Each LSTM layer becomes one ONNX ``LSTM`` node where that operator's math is the
layer's (:func:`._layer.node_refusal` says when it is not), else a ``Scan`` over
time running the engine's reference step (:func:`._layer.lstm_loop`): every
configuration exports. The batch and time axes are dynamic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from .._engine import CellSpec, Weights
from ._graph import Builder
from ._layer import lstm_loop, lstm_node, node_refusal

__all__ = ["OnnxExport", "export_onnx"]

Form = Literal["auto", "node", "loop"]

#: The default opset: ``Scan`` and ``LSTM`` as they are since opset 14, loaded by
#: onnxruntime 1.2x-1.3x.
DEFAULT_OPSET = 17
#: The IR version written (onnx 1.2x writes a newer one than some onnxruntime builds load).
IR_VERSION = 8


class OnnxExport(NamedTuple):
    """What :func:`export_onnx` wrote: the file, the graph's input and output names, and
    each layer's form (``"node"`` or ``"loop"``) with the reason."""

    path: str
    inputs: list[str]
    outputs: list[str]
    layers: list[tuple[str, str]]


class _Layer(NamedTuple):
    spec: CellSpec
    weights: Weights
    #: a ``ResidualWrapper`` (default ``residual_fn``) around the cell: output + input
    residual: bool = False


def _keras_layer(module: Any) -> _Layer:
    """A Keras layer's spec and canonical weights (a ``CuDNNLSTM``'s read as cuDNN reads
    them: its own ``_checked_weights``)."""
    return _Layer(module._spec(), module._checked_weights())


def _tf1_layers(cell: Any) -> list[_Layer]:
    from .._tf1.cell import LSTMCell
    from .._tf1.multi import MultiRNNCell
    from .._tf1.wrappers import DeviceWrapper, DropoutWrapper, ResidualWrapper

    if isinstance(cell, MultiRNNCell):
        return [layer for c in cell._cell_list for layer in _tf1_layers(c)]
    if isinstance(cell, DeviceWrapper):  # where it runs is the runtime's choice
        return _tf1_layers(cell.cell)
    if isinstance(cell, DropoutWrapper):
        if cell._active():
            raise ValueError("a DropoutWrapper drops in training mode: call `.eval()` before "
                             "exporting (an exported model is for inference)")
        return _tf1_layers(cell.cell)
    if isinstance(cell, ResidualWrapper):
        if cell._residual_fn is not None:
            raise ValueError("a ResidualWrapper with a `residual_fn` (Python code) has no "
                             "ONNX export; the default (inputs + output) has")
        inner = _tf1_layers(cell.cell)
        if len(inner) != 1:
            raise ValueError("a ResidualWrapper around a MultiRNNCell has no ONNX export")
        return [inner[0]._replace(residual=True)]
    if not isinstance(cell, LSTMCell):
        raise TypeError(f"export_onnx exports lstmcompat LSTM cells and MultiRNNCells of them "
                        f"(run with dynamic_rnn semantics), got {type(cell).__name__}")
    if not cell.built:
        raise ValueError(f'The cell "{cell.name}" is not built yet: call it (or dynamic_rnn '
                         "with it) once, or `build`, before exporting")
    return [_Layer(cell.cell_spec(), cell.engine_weights())]


def _form(spec: CellSpec, mask_mode: str | None, form: Form) -> tuple[str, str]:
    why = node_refusal(spec, mask_mode)
    if form == "node":
        if why is not None:
            raise ValueError(f"`form='node'` cannot export this layer exactly: {why}")
        return "node", "requested"
    if form == "loop":
        return "loop", "requested"
    if why is None:
        return "node", "the ONNX LSTM operator computes it exactly"
    return "loop", why


def export_onnx(module: torch.nn.Module, path: str | Path, example_input: torch.Tensor, *,
                mask: bool = False, sequence_length: bool = False,
                initial_state: bool = False, time_major: bool | None = None,
                form: Form = "auto", opset: int = DEFAULT_OPSET) -> OnnxExport:
    """Write ``module`` as an ONNX model that onnxruntime runs with its numbers.

    Args:
        module: an :class:`~lstmcompat.LSTM` or :class:`~lstmcompat.CuDNNLSTM` (the
            Keras layers: their return modes, ``go_backwards``, ``time_major``), a
            :class:`~lstmcompat.Bidirectional` of them (every merge mode), or an
            :class:`~lstmcompat.LSTMCell` / family cell / :class:`~lstmcompat.MultiRNNCell`
            of them, exported as ``dynamic_rnn(cell, inputs, ...)`` computes it
            (outputs and final state; an ``LSTMBlockFusedCell`` as its own call
            computes it, which is the same, time-major unless ``time_major=False``).
        path: the ``.onnx`` file to write.
        example_input: an input of the module's depth and dtype (its batch and time
            sizes do not matter: both axes are dynamic).
        mask: (Keras layers) add a bool input ``mask (batch, time)`` (``(time,
            batch)`` when ``time_major``), Keras's masking (outputs carried over
            masked steps; zeros inside a ``Bidirectional`` returning sequences).
        sequence_length: (cells) add an int64 input ``sequence_length (batch,)``,
            ``dynamic_rnn``'s rule (zeros past each length, the state held).
        initial_state: add the initial state as inputs (``LSTM``: ``h0, c0``;
            ``Bidirectional``: ``h0_fw, c0_fw, h0_bw, c0_bw``; cells: ``c0_k, h0_k``
            per layer ``k``, as ``LSTMStateTuple(c, h)``). A stateful ``LSTM``
            always has them, and the outputs ``h, c``: the caller keeps the state
            between calls (the graph holds none).
        time_major: (cells) inputs and outputs ``(time, batch, ...)``, as
            ``dynamic_rnn``'s ``time_major``; Keras layers use their own ``time_major``.
        form: ``"auto"`` (a single ``LSTM`` node per layer where exact, else a
            ``Scan`` loop), ``"node"`` (``ValueError`` where not exact) or ``"loop"``.
        opset: the ONNX opset (at least 14).

    Returns:
        :class:`OnnxExport`: the input and output names and each layer's form and why.
        Outputs: ``LSTM``: ``output`` (and ``h``, ``c`` with ``return_state``);
        ``Bidirectional``: ``output`` (``output_fw``, ``output_bw`` with
        ``merge_mode=None``), then with ``return_state`` ``h_fw, c_fw, h_bw, c_bw``;
        cells: ``outputs`` then ``c_k``, ``h_k`` per layer.

    Raises:
        TypeError: ``module`` is not an exportable lstmcompat module.
        ValueError: an unbuilt cell; an activation with no ONNX form (a Python
            callable); ``form="node"`` where a node is not exact; an option that
            does not apply to the module (a mask for a ``CuDNNLSTM``, as it refuses
            masks).
        ImportError: the ``onnx`` package is missing.

    Examples:
        >>> import torch, lstmcompat, tempfile, os
        >>> layer = lstmcompat.LSTM(4, input_shape=(None, 3))
        >>> path = os.path.join(tempfile.mkdtemp(), "lstm.onnx")
        >>> lstmcompat.export_onnx(layer, path, torch.randn(2, 5, 3)).layers
        [('node', 'the ONNX LSTM operator computes it exactly')]
    """
    from .._keras.bidirectional import Bidirectional
    from .._keras.cudnn_lstm import CuDNNLSTM
    from .._keras.lstm import LSTM

    if opset < 14:
        raise ValueError(f"`opset` must be at least 14, got {opset}")
    if form not in ("auto", "node", "loop"):
        raise ValueError(f"`form` must be 'auto', 'node' or 'loop', got {form!r}")
    x_example = torch.as_tensor(example_input)
    if x_example.dim() != 3:
        raise ValueError(f"`example_input` must have rank 3 (batch, time, depth), got shape "
                         f"{tuple(x_example.shape)}")
    keras = isinstance(module, (LSTM, Bidirectional))
    if keras:
        parts = ([module.forward_layer, module.backward_layer]
                 if isinstance(module, Bidirectional) else [module])
        if sequence_length:
            raise ValueError("`sequence_length` is for TF1 cells; a Keras layer takes `mask`")
        if time_major is not None and time_major != parts[0].time_major:
            raise ValueError("a Keras layer exports with its own `time_major`")
        if mask and any(isinstance(p, CuDNNLSTM) for p in parts):
            raise ValueError("a CuDNNLSTM does not support masking (as TensorFlow's): "
                             "export it without `mask`")
        if not all(p.built for p in parts):
            with torch.no_grad():
                module(x_example)  # builds it (Keras's deferred build), as a first call would
        layers = [_keras_layer(p) for p in parts]
        batch_first = not parts[0].time_major
        if isinstance(module, LSTM) and module.stateful:
            initial_state = True  # its states are the graph's: fed in, and given back
    else:
        if mask:
            raise ValueError("`mask` is for the Keras layers; cells take `sequence_length`")
        from .._tf1.block import LSTMBlockFusedCell

        parts = []
        layers = _tf1_layers(module)
        if time_major is None and isinstance(module, LSTMBlockFusedCell):
            time_major = True  # its own call takes (time, batch, depth)
        batch_first = not bool(time_major)
    dtype = layers[0].weights.W.dtype
    np_dtype = np.dtype(str(dtype).replace("torch.", ""))
    if np_dtype.kind != "f":
        raise ValueError(f"ONNX export needs floating-point weights, got {dtype}")
    depth = layers[0].weights.W.shape[0]
    if x_example.shape[-1] != depth:
        raise ValueError(f"`example_input` has {x_example.shape[-1]} features; the module "
                         f"expects {depth}")
    b = Builder(np_dtype)
    g = _Graph(b, batch_first, depth)
    if mask:
        g.add_mask()
    if sequence_length:
        g.add_lengths()
    reports: list[tuple[str, str]] = []
    if keras:
        suffixes = ["_fw", "_bw"] if len(parts) == 2 else [""]
        results = []
        for part, layer, sfx in zip(parts, layers, suffixes, strict=True):
            h0, c0 = g.state(layer.spec, initial_state, "h0" + sfx, "c0" + sfx)
            kind, why = _form(layer.spec, "carry" if mask else None, form)
            reports.append((kind, why))
            seq, h, c = g.layer(layer, kind, g.x, h0, c0, part.go_backwards)
            results.append((part, seq, h, c))
        _keras_outputs(g, module, results)
    else:
        x = g.x
        for k, layer in enumerate(layers):
            h0, c0 = g.state(layer.spec, initial_state, f"h0_{k}", f"c0_{k}", tf1=True)
            kind, why = _form(layer.spec, "zero" if sequence_length else None, form)
            reports.append((kind, why))
            y, h, c = g.layer(layer, kind, x, h0, c0, False)
            if layer.residual:  # TF: inputs + output, zeroed past each length
                y = g.b.op("Add", [x, y])
                if g.mask is not None:
                    m = g.b.op("Unsqueeze", [g.mask, g.b.const([2], dtype=np.int64)])
                    y = g.b.op("Where", [m, y, g.b.const(np.zeros((), np_dtype))])
            x = y
            g.finals.append((h, c))
        g.output(g.batch_major(x), "outputs", [*g.axes, layers[-1].spec.output_size])
        for k, ((h, c), layer) in enumerate(zip(g.finals, layers, strict=True)):
            g.output(c, f"c_{k}", ["batch", layer.spec.units])
            g.output(h, f"h_{k}", ["batch", layer.spec.output_size])
    return g.save(path, opset, reports)


class _Graph:
    """The main graph being written: its inputs, the time-major input ``x``, the
    optional mask / lengths, zero states, outputs."""

    def __init__(self, b: Builder, batch_first: bool, depth: int) -> None:
        self.b, self.batch_first = b, batch_first
        helper = b.helper
        self.axes = ["batch", "time"] if batch_first else ["time", "batch"]
        self.inputs = [helper.make_tensor_value_info("x", b.elem_type, [*self.axes, depth])]
        self.x = b.op("Transpose", ["x"], perm=[1, 0, 2]) if batch_first else "x"  # (T, B, D)
        self.batch = b.op("Gather", [b.op("Shape", [self.x]), b.const(1, dtype=np.int64)],
                          axis=0)
        self.mask: str | None = None
        self.lengths: str | None = None
        self.outputs: list[Any] = []
        self.finals: list[tuple[str, str]] = []

    def add_mask(self) -> None:
        b = self.b
        self.inputs.append(b.helper.make_tensor_value_info("mask", b.TensorProto.BOOL,
                                                           self.axes))
        self.mask = b.op("Transpose", ["mask"], perm=[1, 0]) if self.batch_first else "mask"

    def add_lengths(self) -> None:
        b = self.b
        self.inputs.append(b.helper.make_tensor_value_info("sequence_length",
                                                           b.TensorProto.INT64, ["batch"]))
        T = b.op("Gather", [b.op("Shape", [self.x]), b.const(0, dtype=np.int64)], axis=0)
        steps = b.op("Range", [b.const(0, dtype=np.int64), T, b.const(1, dtype=np.int64)])
        self.mask = b.op("Less", [b.op("Unsqueeze", [steps, b.const([1], dtype=np.int64)]),
                                  b.op("Unsqueeze", ["sequence_length",
                                                     b.const([0], dtype=np.int64)])])
        self.lengths = b.op("Cast", ["sequence_length"], to=b.TensorProto.INT32)

    def zeros(self, size: int) -> str:
        b = self.b
        shape = b.op("Concat", [b.op("Unsqueeze", [self.batch, b.const([0], dtype=np.int64)]),
                                b.const([size], dtype=np.int64)], axis=0)
        return b.op("ConstantOfShape", [shape],
                    value=b.helper.make_tensor("zero", b.elem_type, [1], [0.0]))

    def state(self, spec: CellSpec, given: bool, h_name: str, c_name: str,
              tf1: bool = False) -> tuple[str, str]:
        """``(h0, c0)``: graph inputs (TF1 order ``c`` then ``h``) or zeros."""
        if not given:
            return self.zeros(spec.output_size), self.zeros(spec.units)
        vi = self.b.helper.make_tensor_value_info
        et = self.b.elem_type
        pair = [vi(h_name, et, ["batch", spec.output_size]), vi(c_name, et, ["batch", spec.units])]
        self.inputs += pair[::-1] if tf1 else pair
        return h_name, c_name

    def layer(self, layer: _Layer, kind: str, x: str, h0: str, c0: str, reverse: bool
              ) -> tuple[str, str, str]:
        if kind == "node":
            return lstm_node(self.b, layer.spec, layer.weights, x, h0, c0, self.lengths, reverse)
        return lstm_loop(self.b, layer.spec, layer.weights, x, h0, c0, self.mask, reverse)

    def batch_major(self, seq: str) -> str:
        return self.b.op("Transpose", [seq], perm=[1, 0, 2]) if self.batch_first else seq

    def last(self, seq: str) -> str:
        return self.b.op("Gather", [seq, self.b.const(-1, dtype=np.int64)], axis=0)

    def output(self, value: str, name: str, shape: Sequence[Any]) -> None:
        b = self.b
        b.nodes.append(b.helper.make_node("Identity", [value], [name]))
        self.outputs.append(b.helper.make_tensor_value_info(name, b.elem_type, list(shape)))

    def save(self, path: str | Path, opset: int, reports: list[tuple[str, str]]) -> OnnxExport:
        b = self.b
        helper = b.helper
        graph = helper.make_graph(b.nodes, "lstmcompat", self.inputs, self.outputs,
                                  initializer=b.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="lstmcompat")
        model.ir_version = IR_VERSION
        b.onnx.checker.check_model(model)
        b.onnx.save(model, str(path))
        return OnnxExport(str(path), [i.name for i in self.inputs],
                          [o.name for o in self.outputs], reports)


def _keras_outputs(g: _Graph, module: Any, results: list[tuple[Any, str, str, str]]) -> None:
    """The Keras outputs: one layer's ``[output, h, c]``, or a Bidirectional's merge of
    its two copies (the backward copy's sequence re-reversed, as Keras does)."""
    b = g.b
    part = results[0][0]
    u = part.units
    returned = []
    for k, (layer, seq, _, _) in enumerate(results):
        if part.return_sequences:
            if k == 1:  # the backward copy's sequence, back in input order
                seq = b.op("Slice", [seq, b.const([-1], dtype=np.int64),
                                     b.const([-(2**62)], dtype=np.int64),
                                     b.const([0], dtype=np.int64), b.const([-1], dtype=np.int64)])
            returned.append((g.batch_major(seq), [*g.axes, layer.units]))
        else:
            returned.append((g.last(seq), ["batch", layer.units]))
    if len(results) == 1:
        g.output(returned[0][0], "output", returned[0][1])
        if part.return_state or part.stateful:
            g.output(results[0][2], "h", ["batch", u])
            g.output(results[0][3], "c", ["batch", u])
        return
    (y, shape), (y_rev, shape_bw) = returned
    mode = module.merge_mode
    if mode is None:
        g.output(y, "output_fw", shape)
        g.output(y_rev, "output_bw", shape_bw)
    else:
        if mode == "concat":
            merged = b.op("Concat", [y, y_rev], axis=-1)
            shape = [*shape[:-1], shape[-1] + shape_bw[-1]]
        elif mode == "sum":
            merged = b.op("Add", [y, y_rev])
        elif mode == "mul":
            merged = b.op("Mul", [y, y_rev])
        else:  # ave
            merged = b.op("Div", [b.op("Add", [y, y_rev]), b.const(2.0)])
        g.output(merged, "output", shape)
    if module.return_state:
        for (layer, _, h, c), sfx in zip(results, ("_fw", "_bw"), strict=True):
            g.output(h, "h" + sfx, ["batch", layer.units])
            g.output(c, "c" + sfx, ["batch", layer.units])
