import pytest
import torch

from lstmcompat._engine import gates


def test_tf1_to_canonical_and_back():
    t = torch.arange(8.0).view(1, 8)  # blocks of width 2: i=0,1 j=2,3 f=4,5 o=6,7
    c = gates.permute(t, "tf1", "canonical")
    assert c.tolist() == [[0, 1, 4, 5, 2, 3, 6, 7]]  # i, f, g(=j), o
    assert torch.equal(gates.permute(c, "canonical", "tf1"), t)


def test_onnx_order():
    t = torch.arange(4.0)
    assert gates.permute(t, "canonical", "onnx").tolist() == [0, 3, 1, 2]  # i, o, f, c


def test_identity_is_free():
    t = torch.randn(3, 8)
    assert gates.permute(t, "keras", "torch") is t


def test_unknown_order():
    with pytest.raises(ValueError, match="Unknown gate order"):
        gates.permute(torch.zeros(4), "caffe", "canonical")
