"""Activations vs tf_keras 2.21 goldens: values and gradients (GradientTape), names, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmcompat import _activations as A
from lstmcompat._keras import constraints as C
from lstmcompat._keras import initializers as I
from lstmcompat._keras import regularizers as R

GOLDENS = Path(__file__).parent / "goldens" / "keras_utils"
API = json.loads((GOLDENS / "api.json").read_text())
ARRAYS = np.load(GOLDENS / "activations.npz")
ENV = {"I": I, "R": R, "C": C, "A": A, "T": torch.tensor, "np": np}


def _ours(expr: str):
    return eval(expr, ENV)


def test_grid_covers_the_kinks():
    x = ARRAYS["x"]
    assert np.any(x == 0.0)
    for k in (-2.5, 2.5, 6.0):
        assert np.any(x == np.float32(k))
        assert np.any(x == np.nextafter(np.float32(k), np.float32(np.inf)))
        assert np.any(x == np.nextafter(np.float32(k), np.float32(-np.inf)))


# Everything agrees with TF at rtol=atol=1e-6 (float32) except where a 1-ulp difference
# between TF's (Eigen) tanh and torch's is amplified by cancellation: d mish/dx near
# x = 7 (1 - tanh(softplus(x))**2 with tanh ~ 1 - 2e-6) and approximate gelu near
# x = -4.5 (1 + tanh(z) with tanh ~ -1). Measured: 1.1e-6 and 1.9e-6.
_TOL = {"mish": 3e-6, "gelu_approximate": 5e-6}


@pytest.mark.parametrize("case", sorted(API["activation_cases"]))
def test_values_and_gradients_match_tf(case):
    fn = _ours(API["activation_cases"][case])
    x = torch.from_numpy(ARRAYS["x"]).requires_grad_(True)
    v = torch.from_numpy(ARRAYS["v"])
    y = fn(x)
    (g,) = torch.autograd.grad((y * v).sum(), x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    tol = _TOL.get(case, 1e-6)
    torch.testing.assert_close(y.detach(), torch.from_numpy(ARRAYS[f"y_{case}"]), rtol=tol, atol=tol)
    torch.testing.assert_close(g, torch.from_numpy(ARRAYS[f"g_{case}"]), rtol=tol, atol=tol)


def test_hard_sigmoid_is_keras_not_torch():
    x = torch.tensor([-3.0, -2.5, 0.0, 1.0, 2.5, 3.0], requires_grad=True)
    y = A.get("hard_sigmoid")(x)
    assert y.tolist() == pytest.approx([0.0, 0.0, 0.5, 0.7, 1.0, 1.0])
    (g,) = torch.autograd.grad(y.sum(), x)
    assert g.tolist() == pytest.approx([0.0, 0.2, 0.2, 0.2, 0.2, 0.0])
    assert A.canonical_name(F.hardsigmoid) is None


def test_selu_elu_gradient_is_tfs_output_based_one():
    x = torch.tensor([0.0, -1e-30, -20.0], requires_grad=True)
    (g,) = torch.autograd.grad(A.selu(x).sum(), x)
    scale = float(np.float32(1.0507009873554804934193349852946))
    assert g.tolist() == [scale, scale, 0.0]
    (g,) = torch.autograd.grad(A.elu(x).sum(), x)
    assert g.tolist() == [1.0, 1.0, 0.0]


def test_double_backward():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    for name in ("selu", "elu", "gelu", "mish", "swish", "softplus", "tanh"):
        assert torch.autograd.gradgradcheck(A.get(name), (x,)), name


def test_float64_stays_float64():
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    for name in API["activation_serialize"]:
        if name in ("softmax",):
            continue
        assert A.get(name)(x).dtype == torch.float64, name


def test_names_are_tf_keras_names():
    # plus one name of ours: Keras 3's hard_sigmoid (tf_keras's name means its own)
    assert set(A._BY_NAME) == set(API["activation_serialize"]) | {"keras3_hard_sigmoid"}


@pytest.mark.parametrize("name", sorted(API["activation_serialize"]))
def test_serialize_of_each_name(name):
    assert A.serialize(A.get(name)) == API["activation_serialize"][name]


@pytest.mark.parametrize("expr", [e for e in API["configs"] if e.startswith("A.")])
def test_serialize_configs(expr):
    assert _ours(expr) == API["configs"][expr]


def test_v1_lstm_layer_config():
    layer = API["lstm_v1_layer"]
    assert A.serialize(A.get(layer["identifiers"]["recurrent_activation"])) == \
        layer["config"]["recurrent_activation"]
    assert A.serialize(A.get("hard_sigmoid")) == layer["default_config"]["recurrent_activation"]
    assert A.serialize(A.get("tanh")) == layer["default_config"]["activation"]


def test_canonical_name():
    assert A.canonical_name(None) == "linear"
    assert A.canonical_name("silu") == "swish"
    assert A.canonical_name(torch.tanh) == "tanh"
    assert A.canonical_name(F.silu) == "swish"
    assert A.canonical_name(F.relu6) == "relu6"
    assert A.canonical_name(lambda x: x) is None
    assert A.serialize(torch.sigmoid) == "sigmoid"
    fn = lambda x: x * 2  # noqa: E731
    assert A.serialize(fn) is fn
    with pytest.raises(ValueError):
        A.canonical_name("nope")


def test_get_forms():
    assert A.get(None) is A.linear
    assert A.get({"class_name": "function", "config": "tanh", "module": "builtins",
                  "registered_name": "function"}) is A.tanh
    assert A.get(torch.abs) is torch.abs
    assert A.get("silu") is A.get("swish")


@pytest.mark.parametrize("case", [e for e in API["errors"] if e["expr"].startswith("A.")],
                         ids=lambda c: c["expr"])
def test_errors_like_tf(case):
    with pytest.raises(Exception) as info:
        _ours(case["expr"])
    if case["outcome"] == "returns":
        # tf_keras resolves its activation *layer* names to layers: not supported here.
        assert case["type"] == "ReLU"
        assert type(info.value) is ValueError
        assert "activation layers are not supported" in str(info.value)
    else:
        assert type(info.value).__name__ == case["type"]
        assert case["match"] in str(info.value)


# ------------------------------------------------------------ Keras 3's hard_sigmoid

KERAS3 = json.loads((GOLDENS.parent / "keras3_hard_sigmoid.json").read_text())


def _bits(t: torch.Tensor) -> np.ndarray:
    """Values with NaN normalised, compared bit for bit (signed zeros included)."""
    a = t.detach().numpy().copy()
    a[np.isnan(a)] = np.nan
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras3_hard_sigmoid_is_keras3_bit_for_bit(dtype):
    case = KERAS3[dtype]
    tdt = getattr(torch, dtype)
    x = torch.tensor(case["x"], dtype=tdt, requires_grad=True)
    y = A.get("keras3_hard_sigmoid")(x)
    assert y.dtype == tdt
    np.testing.assert_array_equal(_bits(y), _bits(torch.tensor(case["y"], dtype=tdt)))
    for v, g_want in ((case["v"], case["g"]), (case["v_nonfinite"], case["g_nonfinite"])):
        (g,) = torch.autograd.grad(y, x, torch.tensor(v, dtype=tdt), retain_graph=True)
        np.testing.assert_array_equal(_bits(g), _bits(torch.tensor(g_want, dtype=tdt)))


def test_keras3_hard_sigmoid_kinks():
    x = torch.tensor([-3.0, -2.5, 0.0, 3.0, np.nextafter(np.float32(3), np.float32(0)),
                      float("nan")], requires_grad=True)
    y = A.keras3_hard_sigmoid(x)
    assert y[:5].tolist() == [0.0, np.float32(0.5) / np.float32(6), 0.5, 1.0, 1.0]
    assert torch.isnan(y[5])
    (g,) = torch.autograd.grad(y.sum(), x)
    sixth = float(np.float32(1) / np.float32(6))
    # 0 at both kinks (and where x + 3 rounds to 6), 0 for NaN x, 1/6 strictly inside
    assert g.tolist() == [0.0, sixth, sixth, 0.0, 0.0, 0.0]
    assert A.get("hard_sigmoid")(x)[0].item() == 0.0  # tf_keras's: clip(0.2x + 0.5)
    assert A.get("hard_sigmoid")(torch.tensor(-2.0)).item() == pytest.approx(0.1)
    assert A.get("keras3_hard_sigmoid")(torch.tensor(-2.0)).item() == pytest.approx(1 / 6)


def test_keras3_hard_sigmoid_names_and_double_backward():
    assert A.serialize(A.get("keras3_hard_sigmoid")) == "keras3_hard_sigmoid"
    assert A.canonical_name("keras3_hard_sigmoid") == "keras3_hard_sigmoid"
    x = torch.tensor([-3.5, -1.0, 0.2, 2.9, 4.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(A.keras3_hard_sigmoid, (x,))
    assert torch.autograd.gradgradcheck(A.keras3_hard_sigmoid, (x,))
