"""Constraints vs tf_keras 2.21 goldens, and the apply/attach module protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmcompat import _activations as A
from lstmcompat._keras import constraints as C
from lstmcompat._keras import initializers as I
from lstmcompat._keras import regularizers as R

GOLDENS = Path(__file__).parents[1] / "goldens" / "keras_utils"
API = json.loads((GOLDENS / "api.json").read_text())
ARRAYS = np.load(GOLDENS / "constraints.npz")
ENV = {"I": I, "R": R, "C": C, "A": A, "T": torch.tensor, "np": np}


def _ours(expr: str):
    return eval(expr, ENV)


@pytest.mark.parametrize("case", API["constraint_cases"], ids=lambda c: f"{c['expr']}-{c['input']}")
def test_projection_matches_tf(case):
    w = torch.from_numpy(ARRAYS[case["input"]])
    out = _ours(case["expr"])(w)
    expected = torch.from_numpy(ARRAYS[case["output"]])
    assert out.dtype == w.dtype and out.shape == w.shape
    if "NonNeg" in case["expr"] or "non_neg" in case["expr"] or "Radial" in case["expr"]:
        assert torch.equal(out, expected)  # exact, including the sign of zeros
        assert torch.equal(torch.signbit(out), torch.signbit(expected))
    else:
        tol = 1e-6 if w.dtype == torch.float32 else 1e-12
        torch.testing.assert_close(out, expected, rtol=tol, atol=tol)


def test_epsilon_placement():
    w = torch.tensor([[3.0], [4.0]], dtype=torch.float64)  # column norm 5
    assert C.UnitNorm()(w)[0, 0].item() == 3.0 / (1e-7 + 5.0)
    assert C.MaxNorm(2)(w)[0, 0].item() == 3.0 * (2.0 / (1e-7 + 5.0))
    assert C.MaxNorm(10)(w)[0, 0].item() == 3.0 * (5.0 / (1e-7 + 5.0))
    zero = torch.zeros(3, 2)
    assert torch.equal(C.MaxNorm()(zero), zero) and torch.equal(C.UnitNorm()(zero), zero)


@pytest.mark.parametrize("name", sorted(API["constraint_serialize"]))
def test_serialize_of_each_name(name):
    assert C.serialize(C.get(name)) == API["constraint_serialize"][name]


@pytest.mark.parametrize("expr", [e for e in API["configs"] if e.startswith("C.")])
def test_serialize_configs(expr):
    assert _ours(expr) == API["configs"][expr]


@pytest.mark.parametrize("key", ["kernel_constraint", "recurrent_constraint", "bias_constraint"])
def test_v1_lstm_layer_config(key):
    layer = API["lstm_v1_layer"]
    ident = layer["identifiers"].get(key, C.UnitNorm(axis=1) if key == "recurrent_constraint" else None)
    assert C.serialize(C.get(ident)) == layer["config"][key]
    assert C.serialize(C.get(None)) == layer["default_config"][key]


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("expr", ["C.MaxNorm(3, axis=[0, 1])", "C.MinMaxNorm(0.5, 2.0, 0.5, 1)",
                                  "C.UnitNorm(axis=-1)", "C.NonNeg()", "C.RadialConstraint()"])
def test_round_trip(expr, legacy):
    con = _ours(expr)
    back = C.get(C.serialize(con, use_legacy_format=legacy))
    assert type(back) is type(con) and back.get_config() == con.get_config()


def test_get_passthrough():
    assert C.get(None) is None
    con = C.MaxNorm(3)
    assert C.get(con) is con
    assert isinstance(C.get(C.NonNeg), C.NonNeg)
    fn = torch.abs
    assert C.get(fn) is fn


@pytest.mark.parametrize("case", [e for e in API["errors"] if e["expr"].startswith("C.")],
                         ids=lambda c: c["expr"])
def test_errors_like_tf(case):
    assert case["outcome"] == "raises"
    with pytest.raises(Exception) as info:
        _ours(case["expr"])
    assert type(info.value).__name__ == case["type"]
    assert case["match"] in str(info.value)


@pytest.mark.parametrize("shape", [(3, 4, 1, 1), (1, 1, 2, 2)])
def test_radial_rejects_what_tf_cannot_reshape(shape):
    with pytest.raises(ValueError, match="square kernels"):
        C.RadialConstraint()(torch.ones(shape))


# ----------------------------------------------------------------------------- module protocol

class _Leaf(torch.nn.Module):
    def __init__(self, constraints=None):
        super().__init__()
        self.kernel = torch.nn.Parameter(torch.full((3, 2), 2.0))
        self.bias = torch.nn.Parameter(torch.tensor([-1.0, 1.0]))
        self.free = torch.nn.Parameter(torch.full((2,), -5.0))
        if constraints is not None:
            self._constraints = constraints


def test_apply_constraints_walks_the_tree():
    leaf = _Leaf({"kernel": C.MaxNorm(1.0), "bias": C.NonNeg(), "recurrent_kernel": C.NonNeg(),
                  "free": None})
    other = _Leaf()  # no _constraints: untouched
    root = torch.nn.Sequential(torch.nn.Sequential(leaf), other)
    kernel_ref = leaf.kernel
    C.apply_constraints(root)
    assert leaf.kernel is kernel_ref  # in place
    torch.testing.assert_close(leaf.kernel.norm(dim=0), torch.ones(2), rtol=1e-6, atol=1e-6)
    assert torch.equal(leaf.bias.detach(), torch.tensor([0.0, 1.0]))
    assert torch.equal(leaf.free.detach(), torch.full((2,), -5.0))
    assert torch.equal(other.kernel.detach(), torch.full((3, 2), 2.0))
    assert torch.equal(other.bias.detach(), torch.tensor([-1.0, 1.0]))
    assert not leaf.kernel.grad_fn and leaf.kernel.requires_grad


def test_shared_parameter_is_projected_once():
    half = C.MinMaxNorm(0.0, 1.0, rate=0.5)  # not idempotent: twice would differ
    a = _Leaf({"kernel": half})
    b = _Leaf({"kernel": half})
    b.kernel = a.kernel
    expected = half(a.kernel.detach().clone())
    C.apply_constraints(torch.nn.ModuleList([a, b]))
    torch.testing.assert_close(a.kernel.detach(), expected)


def test_apply_constraints_errors():
    with pytest.raises(ValueError, match="shape"):
        C.apply_constraints(_Leaf({"kernel": lambda w: w.sum(0)}))
    with pytest.raises(TypeError, match="not callable"):
        C.apply_constraints(_Leaf({"kernel": 3}))
    leaf = _Leaf({"name": C.NonNeg()})
    leaf.name = "not a tensor"
    with pytest.raises(TypeError, match="not a parameter tensor"):
        C.apply_constraints(leaf)


def test_attach_constraints_runs_after_each_step():
    leaf = _Leaf({"bias": C.NonNeg(), "kernel": C.MaxNorm(1.0)})
    opt = torch.optim.SGD(leaf.parameters(), lr=1.0)
    handle = C.attach_constraints(opt, leaf)
    loss = (leaf.bias * torch.tensor([1.0, 5.0])).sum() - leaf.kernel.sum()
    loss.backward()
    opt.step()  # bias -> [-2, -4] then projected to 0; kernel grows to 3 then norm 1
    assert torch.equal(leaf.bias.detach(), torch.zeros(2))
    torch.testing.assert_close(leaf.kernel.norm(dim=0), torch.ones(2), rtol=1e-6, atol=1e-6)
    handle.remove()
    opt.zero_grad()
    (leaf.bias * torch.tensor([1.0, 1.0])).sum().backward()
    opt.step()
    assert torch.equal(leaf.bias.detach(), torch.full((2,), -1.0))
