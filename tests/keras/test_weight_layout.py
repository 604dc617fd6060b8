"""The Keras layer's kernels are stored gate-major (``kernel.t()`` contiguous, what
``torch.lstm`` reads), except where one axis has size 1: then plainly contiguous, the
strides its gradients get (DDP warns when a parameter's and its gradient's differ)."""

from __future__ import annotations

import torch

import lstmcompat as L


def test_kernels_are_gate_major():
    layer = L.LSTM(3, input_shape=(None, 5))
    assert layer.kernel.t().is_contiguous() and layer.kernel.stride() == (1, 5)
    assert layer.recurrent_kernel.t().is_contiguous()


def test_a_single_input_feature_is_plainly_contiguous():
    layer = L.LSTM(3, input_shape=(None, 1))
    assert layer.kernel.shape == (1, 12) and layer.kernel.stride() == (12, 1)
    out = layer(torch.randn(2, 4, 1))
    out.sum().backward()
    assert layer.kernel.grad.stride() == layer.kernel.stride()
