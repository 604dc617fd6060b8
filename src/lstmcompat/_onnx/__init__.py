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


def _keras_layers(module: Any) -> list[_Layer]:
    from .._keras.lstm import _engine_weights

    return [_Layer(module._spec(), _engine_weights(module.kernel, module.recurrent_kernel,
                                                   module.bias))]


def _tf1_layers(cell: Any) -> list[_Layer]:
    from .._tf1.cell import LSTMCell
    from .._tf1.multi import MultiRNNCell

    if isinstance(cell, MultiRNNCell):
        return [layer for c in cell._cell_list for layer in _tf1_layers(c)]
    if not isinstance(cell, LSTMCell) or type(cell).__name__ == "LSTMBlockFusedCell":
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
        module: an :class:`~lstmcompat.LSTM` (the Keras layer: its return modes,
            ``go_backwards``, ``time_major``), or an :class:`~lstmcompat.LSTMCell` /
            family cell / :class:`~lstmcompat.MultiRNNCell` of them, exported as
            ``dynamic_rnn(cell, inputs, ...)`` computes it (outputs and final state).
        path: the ``.onnx`` file to write.
        example_input: an input of the module's depth and dtype (its batch and time
            sizes do not matter: both axes are dynamic).
        mask: (``LSTM``) add a bool input ``mask (batch, time)`` (``(time, batch)``
            when ``time_major``), Keras's masking (outputs carried over masked steps).
        sequence_length: (cells) add an int64 input ``sequence_length (batch,)``,
            ``dynamic_rnn``'s rule (zeros past each length, the state held).
        initial_state: add the initial state as inputs (``LSTM``: ``h0, c0``; cells:
            ``c0_k, h0_k`` per layer ``k``, as ``LSTMStateTuple(c, h)``). A stateful
            ``LSTM`` always has them, and the outputs ``h, c``: the caller keeps the
            state between calls (the graph holds none).
        time_major: (cells) inputs and outputs ``(time, batch, ...)``, as
            ``dynamic_rnn``'s ``time_major``; ``LSTM`` uses its own ``time_major``.
        form: ``"auto"`` (a single ``LSTM`` node per layer where exact, else a
            ``Scan`` loop), ``"node"`` (``ValueError`` where not exact) or ``"loop"``.
        opset: the ONNX opset (at least 14).

    Returns:
        :class:`OnnxExport`: the input and output names and each layer's form and why.
        Outputs: ``LSTM``: ``output`` (and ``h``, ``c`` with ``return_state``);
        cells: ``outputs`` then ``c_k``, ``h_k`` per layer.

    Raises:
        TypeError: ``module`` is not an exportable lstmcompat module.
        ValueError: an unbuilt cell; an activation with no ONNX form (a Python
            callable); ``form="node"`` where a node is not exact; an option that
            does not apply to the module.
        ImportError: the ``onnx`` package is missing.

    Example:
        >>> import torch, lstmcompat, tempfile, os
        >>> layer = lstmcompat.LSTM(4, input_shape=(None, 3))
        >>> path = os.path.join(tempfile.mkdtemp(), "lstm.onnx")
        >>> lstmcompat.export_onnx(layer, path, torch.randn(2, 5, 3)).layers
        [('node', 'the ONNX LSTM operator computes it exactly')]
    """
    from .._keras.lstm import LSTM

    if opset < 14:
        raise ValueError(f"`opset` must be at least 14, got {opset}")
    if form not in ("auto", "node", "loop"):
        raise ValueError(f"`form` must be 'auto', 'node' or 'loop', got {form!r}")
    x_example = torch.as_tensor(example_input)
    if x_example.dim() != 3:
        raise ValueError(f"`example_input` must have rank 3 (batch, time, depth), got shape "
                         f"{tuple(x_example.shape)}")
    keras = isinstance(module, LSTM)
    if keras:
        if sequence_length:
            raise ValueError("`sequence_length` is for TF1 cells; an LSTM layer takes `mask`")
        if time_major is not None and time_major != module.time_major:
            raise ValueError("an LSTM layer exports with its own `time_major`")
        if not module.built:
            module(x_example)  # builds it (Keras's deferred build), as a first call would
        layers = _keras_layers(module)
        batch_first = not module.time_major
        if module.stateful:  # its states are the graph's: fed in, and given back
            initial_state = True
        mask_mode = "carry" if mask else None
    else:
        if mask:
            raise ValueError("`mask` is for the Keras LSTM layer; cells take `sequence_length`")
        layers = _tf1_layers(module)
        batch_first = not bool(time_major)
        mask_mode = "zero" if sequence_length else None
    dtype = layers[0].weights.W.dtype
    np_dtype = np.dtype(str(dtype).replace("torch.", ""))
    if np_dtype.kind != "f":
        raise ValueError(f"ONNX export needs floating-point weights, got {dtype}")
    depth = layers[0].weights.W.shape[0]
    if x_example.shape[-1] != depth:
        raise ValueError(f"`example_input` has {x_example.shape[-1]} features; the module "
                         f"expects {depth}")
    b = Builder(np_dtype)
    helper, TP = b.helper, b.TensorProto
    et = b.elem_type
    axes = ["batch", "time"] if batch_first else ["time", "batch"]
    inputs = [helper.make_tensor_value_info("x", et, [*axes, depth])]
    x = b.op("Transpose", ["x"], perm=[1, 0, 2]) if batch_first else "x"  # (T, B, D)
    batch = b.op("Gather", [b.op("Shape", [x]), b.const(1, dtype=np.int64)], axis=0)
    m = lengths = None
    if mask:
        inputs.append(helper.make_tensor_value_info("mask", TP.BOOL, axes))
        m = b.op("Transpose", ["mask"], perm=[1, 0]) if batch_first else "mask"
    if sequence_length:
        inputs.append(helper.make_tensor_value_info("sequence_length", TP.INT64, ["batch"]))
        T = b.op("Gather", [b.op("Shape", [x]), b.const(0, dtype=np.int64)], axis=0)
        steps = b.op("Range", [b.const(0, dtype=np.int64), T, b.const(1, dtype=np.int64)])
        m = b.op("Less", [b.op("Unsqueeze", [steps, b.const([1], dtype=np.int64)]),
                          b.op("Unsqueeze", ["sequence_length", b.const([0], dtype=np.int64)])])
        lengths = b.op("Cast", ["sequence_length"], to=TP.INT32)

    def zeros(size: int) -> str:
        shape = b.op("Concat", [b.op("Unsqueeze", [batch, b.const([0], dtype=np.int64)]),
                                b.const([size], dtype=np.int64)], axis=0)
        return b.op("ConstantOfShape", [shape],
                    value=helper.make_tensor("zero", et, [1], [0.0]))

    outputs_names: list[str] = []
    reports: list[tuple[str, str]] = []
    finals: list[tuple[str, str]] = []
    reverse = keras and module.go_backwards
    for k, layer in enumerate(layers):
        spec, w = layer.spec, layer.weights
        u, p = spec.units, spec.output_size
        if initial_state:
            names = ["h0", "c0"] if keras else [f"h0_{k}", f"c0_{k}"]
            if not keras:
                inputs.append(helper.make_tensor_value_info(f"c0_{k}", et, ["batch", u]))
                inputs.append(helper.make_tensor_value_info(f"h0_{k}", et, ["batch", p]))
            else:
                inputs.append(helper.make_tensor_value_info("h0", et, ["batch", p]))
                inputs.append(helper.make_tensor_value_info("c0", et, ["batch", u]))
            h0, c0 = names
        else:
            h0, c0 = zeros(p), zeros(u)
        kind, why = _form(spec, mask_mode, form)
        reports.append((kind, why))
        if kind == "node":
            x, h, c = lstm_node(b, spec, w, x, h0, c0, lengths, reverse)
        else:
            x, h, c = lstm_loop(b, spec, w, x, h0, c0, m, reverse)
        finals.append((h, c))
    out_seq = b.op("Transpose", [x], perm=[1, 0, 2]) if batch_first else x
    graph_outputs = []

    def output(value: str, name: str, shape: Sequence[Any]) -> None:
        b.nodes.append(helper.make_node("Identity", [value], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, et, list(shape)))
        outputs_names.append(name)

    if keras:
        u = layers[0].spec.units
        if module.return_sequences:
            output(out_seq, "output", [*axes, u])
        else:
            last = b.op("Gather", [x, b.const(-1, dtype=np.int64)], axis=0)
            output(last, "output", ["batch", u])
        if module.return_state or module.stateful:
            output(finals[0][0], "h", ["batch", u])
            output(finals[0][1], "c", ["batch", u])
    else:
        output(out_seq, "outputs", [*axes, layers[-1].spec.output_size])
        for k, ((h, c), layer) in enumerate(zip(finals, layers, strict=True)):
            output(c, f"c_{k}", ["batch", layer.spec.units])
            output(h, f"h_{k}", ["batch", layer.spec.output_size])
    graph = helper.make_graph(b.nodes, "lstmcompat", inputs, graph_outputs,
                              initializer=b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="lstmcompat")
    model.ir_version = IR_VERSION
    b.onnx.checker.check_model(model)
    b.onnx.save(model, str(path))
    return OnnxExport(str(path), [i.name for i in inputs], outputs_names, reports)
