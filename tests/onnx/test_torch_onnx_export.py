"""``torch.onnx.export`` (PyTorch's own ``dynamo=True`` exporter) of models holding lstmcompat
layers among ordinary PyTorch ones, with dynamic batch and time axes: the ONNX files run in
onnxruntime at batch sizes and sequence lengths other than the example's, with the
modules' numbers (the time loops become ONNX ``Scan`` nodes; see docs/api.md §7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lstmcompat as L

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

BATCH, TIME = torch.export.Dim("batch"), torch.export.Dim("time")
#: (batch, time) run in onnxruntime: none is the example's (3, 7)
SIZES = [(5, 11), (1, 2), (2, 1), (4, 3)]


def _mask(b: int, t: int, g: torch.Generator) -> torch.Tensor:
    m = torch.rand(b, t, generator=g) > 0.3
    m[0, 0] = False  # a masked first step (Keras carries zeros until the first kept one)
    return m


def _lengths(b: int, t: int, g: torch.Generator) -> torch.Tensor:
    n = torch.randint(0, t + 1, (b,), generator=g)
    n[0] = t
    if b > 2:
        n[-1] = 0
    return n


class _Keras(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.pre = nn.Linear(4, 4)
        self.lstm = L.LSTM(6, input_shape=(None, 4), **kw)
        self.head = nn.Linear(6, 2)

    def forward(self, x, mask=None):
        y = self.lstm(torch.relu(self.pre(x)), mask=mask)
        if isinstance(y, list):
            return (self.head(y[0]), *y[1:])
        return self.head(y)


class _TF1(nn.Module):
    def __init__(self, cell, bidirectional=False):
        super().__init__()
        self.cell = cell
        self.cell_bw = L.LSTMCell(4) if bidirectional else None
        self.head = nn.Linear(cell.output_size + (4 if bidirectional else 0), 2)

    def forward(self, x, lengths=None):
        if self.cell_bw is not None:
            (fw, bw), (s_fw, s_bw) = L.bidirectional_dynamic_rnn(
                self.cell, self.cell_bw, x, sequence_length=lengths, dtype=torch.float32)
            return self.head(torch.cat([fw, bw], -1)), s_fw.h, s_bw.c
        out, state = L.dynamic_rnn(self.cell, x, sequence_length=lengths, dtype=torch.float32)
        return self.head(out), state


class _KerasInitialState(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = L.LSTM(6, return_sequences=True, return_state=True, input_shape=(None, 4))

    def forward(self, x, h, c):
        return self.lstm(x, initial_state=[h, c])


class _TF1InitialState(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = L.LSTMCell(5, num_proj=3, use_peepholes=True, cell_clip=0.8)

    def forward(self, x, c, h, lengths):
        return L.dynamic_rnn(self.cell, x, initial_state=L.LSTMStateTuple(c, h),
                             sequence_length=lengths)


class _Bidirectional(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.bi = L.Bidirectional(L.LSTM(5, return_sequences=True, return_state=True),
                                  input_shape=(None, 4), **kw)
        self.head = nn.Linear(10 if kw.get("merge_mode", "concat") == "concat" else 5, 2)

    def forward(self, x, mask=None):
        out, *states = self.bi(x, mask=mask)
        return self.head(out), *states


CASES = {
    # Keras v1 defaults: hard_sigmoid recurrent activation
    "keras_sequences": (lambda: _Keras(return_sequences=True), None),
    "keras_last_output": (lambda: _Keras(), None),
    "keras_sequences_mask": (lambda: _Keras(return_sequences=True), "mask"),
    "keras_last_output_mask": (lambda: _Keras(), "mask"),
    "keras_state_go_backwards_mask": (
        lambda: _Keras(return_sequences=True, return_state=True, go_backwards=True), "mask"),
    "keras_sigmoid_relu": (
        lambda: _Keras(return_sequences=True, recurrent_activation="sigmoid",
                       activation="relu"), None),
    "tf1_peepholes_proj_clip": (
        lambda: _TF1(L.LSTMCell(5, use_peepholes=True, num_proj=3, cell_clip=1.0)), None),
    "tf1_peepholes_proj_clips_lengths": (
        lambda: _TF1(L.LSTMCell(5, use_peepholes=True, num_proj=3, cell_clip=1.0,
                                proj_clip=0.5, forget_bias=0.5)), "lengths"),
    "tf1_multi_lengths": (
        lambda: _TF1(L.MultiRNNCell([L.LSTMCell(5), L.LSTMCell(4, use_peepholes=True)])),
        "lengths"),
    "tf1_bidirectional_lengths": (
        lambda: _TF1(L.LSTMCell(5, num_proj=3), bidirectional=True), "lengths"),
    "bidirectional_concat": (lambda: _Bidirectional(), None),
    "bidirectional_sum_mask": (lambda: _Bidirectional(merge_mode="sum"), "mask"),
    "keras_initial_state": (_KerasInitialState, "keras_state"),
    "tf1_initial_state_lengths": (_TF1InitialState, "tf1_state"),
    "cudnn_lstm": (lambda: L.CuDNNLSTM(5, return_sequences=True, return_state=True,
                                       input_shape=(None, 4)), None),
}


def _inputs(kind, b, t, g):
    x = torch.randn(b, t, 4, generator=g)
    if kind == "mask":
        return x, _mask(b, t, g)
    if kind == "lengths":
        return x, _lengths(b, t, g)
    if kind == "keras_state":
        return x, torch.randn(b, 6, generator=g), torch.randn(b, 6, generator=g)
    if kind == "tf1_state":
        return (x, torch.randn(b, 5, generator=g), torch.randn(b, 3, generator=g),
                _lengths(b, t, g))
    return (x,)


def _export_and_compare(tmp_path, model, kind, export=None):
    """Export ``model`` at batch 3, time 7 with both axes dynamic; run onnxruntime at
    :data:`SIZES` against the module; the largest difference seen."""
    g = torch.Generator().manual_seed(0)
    example = _inputs(kind, 3, 7, g)
    model.eval()
    with torch.no_grad():
        model(*example)  # built (a TF1 cell builds on its first call)
    shapes = ({0: BATCH, 1: TIME},) + tuple(
        {0: BATCH, 1: TIME} if t.dim() == 2 and kind == "mask" else {0: BATCH}
        for t in example[1:])
    program = (export or (lambda: torch.onnx.export(model, example, dynamo=True,
                                                    dynamic_shapes=shapes)))()
    path = tmp_path / "m.onnx"
    program.save(str(path))
    assert {"Scan", "LSTM"} & {n.op_type for n in program.model.graph}  # not unrolled
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for b, t in SIZES:
        inputs = _inputs(kind, b, t, g)
        with torch.no_grad():
            want = torch.utils._pytree.tree_leaves(model(*inputs))
        got = session.run(None, {i.name: v.numpy()
                                 for i, v in zip(session.get_inputs(), inputs, strict=True)})
        assert len(got) == len(want)
        for a, w in zip(got, want):
            assert a.shape == tuple(w.shape), (b, t)
            np.testing.assert_allclose(a, w.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{b, t}")
            worst = max(worst, float(np.abs(a - w.numpy()).max()))
    return worst


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_onnx_export_with_dynamic_batch_and_time(tmp_path, name):
    make, kind = CASES[name]
    torch.manual_seed(0)
    _export_and_compare(tmp_path, make(), kind)


def test_the_time_loop_is_one_scan_whatever_the_example_length(tmp_path):
    model = _Keras(return_sequences=True).eval()
    x = torch.randn(3, 7, 4)
    program = torch.onnx.export(model, (x,), dynamo=True,
                                dynamic_shapes=({0: BATCH, 1: TIME},))
    ops = [n.op_type for n in program.model.graph]
    assert ops.count("Scan") == 1
    assert ops.count("MatMul") <= 3  # the input projection and the head: no step unrolled
    scan = next(n for n in program.model.graph if n.op_type == "Scan")
    assert len(scan.outputs) == 3  # h, c, the outputs: nothing saved for a backward


@pytest.mark.parametrize("recurrent_activation", ["hard_sigmoid", "sigmoid"])
def test_exported_under_no_grad_too(tmp_path, recurrent_activation):
    torch.manual_seed(0)
    model = _Keras(return_sequences=True, recurrent_activation=recurrent_activation).eval()
    x = torch.randn(3, 7, 4)
    with torch.no_grad():  # sigmoid/tanh without gradients: PyTorch's own LSTM runs
        program = torch.onnx.export(model, (x,), dynamo=True,
                                    dynamic_shapes=({0: BATCH, 1: TIME},))
    _export_and_compare(tmp_path, model, None, export=lambda: program)


def test_dynamic_axes_names_work_as_dynamic_shapes(tmp_path):
    torch.manual_seed(0)
    model = _TF1(L.LSTMCell(5, use_peepholes=True, num_proj=3)).eval()
    model(torch.randn(3, 7, 4))
    x = torch.randn(3, 7, 4)
    program = torch.onnx.export(model, (x,), dynamo=True, input_names=["x"],
                                dynamic_axes={"x": {0: "batch", 1: "time"}})
    _export_and_compare(tmp_path, model, None, export=lambda: program)


def test_torch_onnx_export_at_a_fixed_length(tmp_path):
    model = _TF1(L.LSTMCell(5, use_peepholes=True, num_proj=3, cell_clip=1.0)).eval()
    x = torch.randn(3, 7, 4)
    with torch.no_grad():
        want = model(x)
    program = torch.onnx.export(model, (x,), dynamo=True)
    program.save(str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    for a, w in zip(got, torch.utils._pytree.tree_leaves(want), strict=True):
        np.testing.assert_allclose(a, w.numpy(), rtol=1e-5, atol=1e-5)


_FRESH_EXPORT = """
import warnings
import numpy as np
import onnxruntime as ort
import torch
import lstmcompat as L
warnings.simplefilter("error", RuntimeWarning)
model = L.LSTM(5, return_sequences=True, input_shape=(None, 4)).eval()
dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("time")},)
program = torch.onnx.export(model, (torch.randn(3, 6, 4),), dynamo=True, dynamic_shapes=dims)
session = ort.InferenceSession(program.model_proto.SerializeToString(),
                               providers=["CPUExecutionProvider"])
x = torch.randn(2, 9, 4)
got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-5)
print("ok")
"""


def test_torch_onnx_export_as_the_first_call_of_a_process():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FRESH_EXPORT], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


@pytest.mark.parametrize("name", ["keras_sequences_mask", "tf1_peepholes_proj_clips_lengths",
                                  "bidirectional_concat"])
def test_the_torchscript_exporter_at_the_example_sizes(tmp_path, name):
    # dynamo=False traces the reference kernel's loop: right numbers, fixed sizes
    make, kind = CASES[name]
    torch.manual_seed(0)
    model = make().eval()
    inputs = _inputs(kind, 3, 7, torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = torch.utils._pytree.tree_leaves(model(*inputs))
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, inputs, str(path), dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: v.numpy() for i, v in zip(session.get_inputs(), inputs)})
    assert len(got) == len(want)
    for a, w in zip(got, want):
        np.testing.assert_allclose(a, w.numpy(), rtol=1e-5, atol=1e-5)
