"""``lstmcompat export-onnx``: from a saved file and from a TF-style checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmcompat as L
from lstmcompat.__main__ import main

ort = pytest.importorskip("onnxruntime")


def _run(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in feeds.items()})


def test_export_a_saved_cell_keeps_its_hyperparameters(tmp_path, capsys):
    cell = L.LSTMCell(5, use_peepholes=True, cell_clip=0.7, forget_bias=0.25)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        out, st = L.dynamic_rnn(cell, x, sequence_length=[6, 2], dtype=torch.float32)
    L.save(cell, tmp_path / "cell.safetensors")
    assert main(["export-onnx", str(tmp_path / "cell.safetensors"), str(tmp_path / "c.onnx"),
                 "--sequence-length"]) == 0
    text = capsys.readouterr().out
    assert "layer 0: a Scan loop of the reference step (cell_clip" in text
    assert "inputs: x, sequence_length; outputs: outputs, c_0, h_0" in text
    got = _run(tmp_path / "c.onnx", {"x": x, "sequence_length": torch.tensor([6, 2])})
    for g, w in zip(got, [out, st.c, st.h], strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5)


def test_export_a_keras_layer_as_one_node(tmp_path, capsys):
    layer = L.LSTM(4, input_shape=(None, 3), return_sequences=True)
    L.save(layer, tmp_path / "lstm.safetensors")
    assert main(["export-onnx", str(tmp_path / "lstm.safetensors"),
                 str(tmp_path / "l.onnx")]) == 0
    assert "layer 0: one ONNX LSTM node (the ONNX LSTM operator computes it exactly)" in \
        capsys.readouterr().out
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        want = layer(x)
    np.testing.assert_allclose(_run(tmp_path / "l.onnx", {"x": x})[0], want.numpy(),
                               rtol=1e-5, atol=1e-5)


def test_errors_go_to_stderr_with_exit_code_1(tmp_path, capsys):
    layer = L.LSTM(4, input_shape=(None, 3))
    L.save(layer, tmp_path / "lstm.safetensors")
    assert main(["export-onnx", str(tmp_path / "lstm.safetensors"), str(tmp_path / "l.onnx"),
                 "--sequence-length"]) == 1
    assert "lstmcompat export-onnx: error: `sequence_length` is for TF1 cells" in \
        capsys.readouterr().err
    assert main(["export-onnx", str(tmp_path / "missing"), str(tmp_path / "l.onnx")]) == 1
