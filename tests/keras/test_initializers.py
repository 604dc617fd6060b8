"""Initializers vs tf_keras 2.21 goldens (tools/goldens_keras_utils.py)."""

from __future__ import annotations

import json
import math
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
STATS = json.loads((GOLDENS / "initializers_stats.json").read_text())
ENV = {"I": I, "R": R, "C": C, "A": A, "T": torch.tensor, "np": np}


def _ours(expr: str):
    return eval(expr, ENV)


def _errors(prefix: str) -> list[dict]:
    return [e for e in API["errors"] if e["expr"].startswith(prefix)]


# ----------------------------------------------------------------------------- names, serialize

def test_goldens_are_tf2_behaviour():
    assert API["tf2_enabled"] is True
    assert API["tf_version"].startswith("2.21")


def test_accepted_names_are_tf_keras_names():
    assert set(I.ALL_OBJECTS) == set(API["initializer_names"])


@pytest.mark.parametrize("name", sorted(API["initializer_serialize"]))
def test_serialize_of_each_name(name):
    assert I.serialize(I.get(name)) == API["initializer_serialize"][name]


@pytest.mark.parametrize("expr", [e for e in API["configs"] if e.startswith("I.")])
def test_serialize_configs(expr):
    assert _ours(expr) == API["configs"][expr]


@pytest.mark.parametrize("key", ["kernel_initializer", "recurrent_initializer", "bias_initializer"])
def test_v1_lstm_layer_config(key):
    layer = API["lstm_v1_layer"]
    ident = layer["identifiers"].get(key)
    default = {"kernel_initializer": "glorot_uniform", "recurrent_initializer": "orthogonal",
               "bias_initializer": "zeros"}[key]
    assert I.serialize(I.get(ident or default)) == layer["config"][key]
    assert I.serialize(I.get(default)) == layer["default_config"][key]


@pytest.mark.parametrize("expr", ["I.VarianceScaling(2.0, 'fan_out', 'normal', seed=4)",
                                  "I.Orthogonal(gain=2.0)", "I.Constant(2.5)", "I.get('he_normal')"])
@pytest.mark.parametrize("legacy", [False, True])
def test_round_trip(expr, legacy):
    init = _ours(expr)
    back = I.get(I.serialize(init, use_legacy_format=legacy))
    assert type(back) is type(init) and back.get_config() == init.get_config()


def test_get_passthrough_and_none():
    assert I.get(None) is None
    inst = I.Orthogonal(gain=3.0)
    assert I.get(inst) is inst
    assert isinstance(I.get(I.HeUniform), I.HeUniform)

    def custom(shape, dtype=torch.float32):
        return torch.full(shape, 7.0, dtype=dtype)

    assert I.get(custom) is custom
    assert I.serialize(custom) == {"module": "builtins", "class_name": "function",
                                   "config": "custom", "registered_name": "function"}
    with pytest.raises(ValueError, match="cannot be deserialized by name"):
        I.get(I.serialize(custom))


def test_v1_style_config_with_dtype_is_accepted():
    init = I.get({"class_name": "GlorotUniform", "config": {"seed": None, "dtype": "float32"}})
    assert isinstance(init, I.GlorotUniform)


def test_custom_objects():
    class Mine(I.Initializer):
        def __call__(self, shape, dtype=torch.float32, **kwargs):
            return torch.full(tuple(shape), 3.0, dtype=dtype)

    init = I.deserialize({"class_name": "Mine", "config": {}}, custom_objects={"Mine": Mine})
    assert torch.equal(init((2,)), torch.tensor([3.0, 3.0]))


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("case", _errors("I."), ids=lambda c: c["expr"])
def test_errors_like_tf(case):
    assert case["outcome"] == "raises"
    with pytest.raises(Exception) as info:
        _ours(case["expr"])
    assert type(info.value).__name__ == case["type"]
    assert case["match"] in str(info.value)


def test_bad_dtype_name():
    with pytest.raises(TypeError, match="dtype"):
        I.Zeros()((2,), dtype="nonsense")


# ----------------------------------------------------------------------------- fans

@pytest.mark.parametrize("shape, fans", [
    ((), (1, 1)), ((7,), (7, 7)), ((8, 64), (8, 64)), ((3, 5, 7), (15, 21)),
    ((2, 3, 4, 5), (24, 30)),
])
def test_compute_fans(shape, fans):
    assert I.compute_fans(shape) == fans


# ----------------------------------------------------------------------------- statistics vs TF

@pytest.mark.parametrize("case", STATS["stats"], ids=lambda c: f"{c['expr']}{c['shape']}{c['dtype']}")
def test_distribution_matches_tf(case):
    torch.manual_seed(1234)
    shape, dtype = tuple(case["shape"]), getattr(torch, case["dtype"])
    draws = [_ours(case["expr"])(shape, dtype=dtype) for _ in range(case["draws"])]
    assert all(d.shape == shape and d.dtype == dtype for d in draws)
    x = torch.cat([d.reshape(-1) for d in draws]).double()
    n, sd = x.numel(), case["std"]
    assert n == case["n"]
    assert abs(x.mean().item() - case["mean"]) <= 6 * sd * math.sqrt(2.0 / n)
    assert abs(x.std(unbiased=False).item() / sd - 1.0) <= 0.02
    qs = torch.quantile(x[:100_000], torch.tensor(STATS["quantile_levels"], dtype=torch.float64))
    for ours, tf_q in zip(qs.tolist(), case["quantiles"], strict=True):
        assert abs(ours - tf_q) <= 0.06 * sd, (ours, tf_q)
    if case["lo"] is not None:
        lo, hi = case["lo"], case["hi"]
        slack = 1e-6 * max(1.0, abs(lo), abs(hi))
        assert x.min().item() >= lo - slack and x.max().item() <= hi + slack
        # the whole support is used, as in TF (catches e.g. truncating at +-2, not +-2 stddev)
        assert abs(x.min().item() - case["min"]) <= 0.01 * (hi - lo)
        assert abs(x.max().item() - case["max"]) <= 0.01 * (hi - lo)
    else:
        assert abs(x.min().item() - case["min"]) <= 1.0 * sd
        assert abs(x.max().item() - case["max"]) <= 1.0 * sd


@pytest.mark.parametrize("case", STATS["orthogonal"], ids=lambda c: f"{c['expr']}{c['shape']}")
def test_orthogonal_matches_tf(case):
    torch.manual_seed(99)
    shape, dtype, gain = tuple(case["shape"]), getattr(torch, case["dtype"]), case["gain"]
    ws = [_ours(case["expr"])(shape, dtype=dtype) for _ in range(case["draws"])]
    tol = 2e-5 if dtype == torch.float32 else 1e-12
    for w in ws:
        assert w.shape == shape and w.dtype == dtype
        m = w.reshape(-1, shape[-1]).double()
        gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        assert torch.allclose(gram, gain**2 * torch.eye(gram.shape[0], dtype=torch.float64),
                              atol=tol * gain**2, rtol=0)
    first = torch.tensor([w.reshape(-1)[0].item() for w in ws], dtype=torch.float64)
    k, s = len(ws), case["first_entry_std"]
    # sign(diag(r)) correction makes q Haar: its first entry has mean 0 (without it, < 0)
    assert abs(first.mean().item()) <= 6 * s / math.sqrt(k)
    assert abs(first.mean().item() - case["first_entry_mean"]) <= 6 * s * math.sqrt(2.0 / k)
    assert abs(first.std(unbiased=False).item() / s - 1.0) <= 0.1
    allv = torch.cat([w.reshape(-1) for w in ws]).double()
    assert abs(allv.std(unbiased=False).item() / case["entry_std"] - 1.0) <= 0.01


def test_orthogonal_lstm_recurrent_kernel_has_orthonormal_rows():
    torch.manual_seed(0)
    units = 5
    w = I.get("orthogonal")((units, 4 * units), dtype=torch.float64)
    assert torch.allclose(w @ w.T, torch.eye(units, dtype=torch.float64), atol=1e-12)
    # not four orthogonal (units, units) blocks
    block = w[:, :units]
    assert not torch.allclose(block @ block.T, torch.eye(units, dtype=torch.float64), atol=1e-3)


@pytest.mark.parametrize("case", STATS["deterministic"], ids=lambda c: c["expr"] + str(c["shape"]))
def test_deterministic_exact(case):
    dtype = getattr(torch, case["dtype"])
    out = _ours(case["expr"])(tuple(case["shape"]), dtype=dtype)
    assert out.dtype == dtype
    assert torch.equal(out, torch.tensor(case["value"], dtype=dtype))


# ----------------------------------------------------------------------------- RNG semantics

@pytest.mark.parametrize("name", ["glorot_uniform", "orthogonal", "truncated_normal", "he_normal",
                                  "random_uniform"])
def test_global_rng_reproducible(name):
    torch.manual_seed(5)
    a = I.get(name)((4, 12))
    torch.manual_seed(5)
    b = I.get(name)((4, 12))
    c = I.get(name)((4, 12))
    assert torch.equal(a, b)
    assert not torch.equal(b, c)


@pytest.mark.parametrize("cls", [I.GlorotUniform, I.RandomNormal, I.Orthogonal, I.TruncatedNormal])
def test_seeded_initializer_repeats_like_tf(cls):
    init = cls(seed=3)
    torch.manual_seed(0)
    a = init((3, 6))
    torch.manual_seed(1)
    assert torch.equal(a, init((3, 6)))
    assert torch.equal(a, cls(seed=3)((3, 6)))
    assert not torch.equal(a, cls(seed=4)((3, 6)))


def test_dtypes_and_device():
    torch.manual_seed(0)
    assert I.get("glorot_uniform")((3, 4), dtype="float64").dtype == torch.float64
    assert I.get("glorot_uniform")((3, 4), dtype=np.float32).dtype == torch.float32
    assert I.get("orthogonal")((3, 4), dtype=torch.float16).dtype == torch.float16
    assert I.get("truncated_normal")((3, 4), dtype=torch.bfloat16).dtype == torch.bfloat16
    assert I.get("zeros")((2,), device="cpu").device.type == "cpu"
    ints = I.RandomUniform(0, 10)((100,), dtype=torch.int32)
    assert ints.dtype == torch.int32 and int(ints.min()) >= 0 and int(ints.max()) < 10
