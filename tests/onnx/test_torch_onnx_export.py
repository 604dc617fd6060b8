"""``torch.onnx.export`` (PyTorch's own exporter) of modules holding lstmcompat layers: at a
fixed sequence length the exported graph runs in onnxruntime with the modules' numbers
(a dynamic time axis is ``export_onnx``'s job: see docs/api.md §7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lstmcompat as L

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = L.LSTM(6, return_sequences=True, input_shape=(None, 4))
        self.cell = L.LSTMCell(5, use_peepholes=True, num_proj=3, cell_clip=1.0)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        out, _ = L.dynamic_rnn(self.cell, self.lstm(x), dtype=torch.float32)
        return self.head(out)


def test_torch_onnx_export_at_a_fixed_length(tmp_path):
    model = _Model().eval()
    x = torch.randn(3, 7, 4)
    with torch.no_grad():
        want = model(x)
    program = torch.onnx.export(model, (x,), dynamo=True)
    program.save(str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
