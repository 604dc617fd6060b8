"""Shared helpers for the TensorFlow parity tests of ``lstmcompat.LSTM``.

The goldens under tests/goldens/keras were written by tools/goldens_keras.py
from TensorFlow 2.21 + tf_keras (``tf.compat.v1.keras.layers.LSTM``); these
tests only read them and never import TensorFlow.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import torch

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "keras"

TOL = {"float32": 1e-5, "float64": 1e-10}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@cache
def manifest() -> dict:
    return json.loads((GOLDENS / "manifest.json").read_text())


@cache
def facts() -> dict:
    return json.loads((GOLDENS / "facts.json").read_text())


@cache
def configs() -> dict:
    return json.loads((GOLDENS / "configs.json").read_text())


def load(entry: dict) -> dict[str, np.ndarray]:
    with np.load(GOLDENS / entry["file"]) as z:
        return {k: z[k] for k in z.files}


def reg_callable(spec):
    """A manifest regularizer spec as lstmcompat accepts it.

    Strings stay Keras names. ``{"l1": a, "l2": b}`` (tf_keras ``L1L2(l1=a, l2=b)``,
    whose math is ``a*sum(|w|) + b*sum(w**2)``, terms with a zero factor left out)
    becomes a plain callable, since the public API takes callables.
    """
    if spec is None or isinstance(spec, str):
        return spec
    l1, l2 = float(spec.get("l1", 0.0)), float(spec.get("l2", 0.0))

    def regularizer(w):
        total = torch.zeros((), dtype=w.dtype, device=w.device)
        if l1:
            total = total + l1 * torch.sum(torch.abs(w))
        if l2:
            total = total + l2 * torch.sum(torch.square(w))
        return total

    return regularizer


REG_KEYS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
            "activity_regularizer")


def layer_kwargs(spec: dict) -> dict:
    kw = {}
    for k, v in spec.items():
        if k in REG_KEYS:
            v = reg_callable(v)
        elif k in ("batch_input_shape", "input_shape") and v is not None:
            v = tuple(v)
        kw[k] = v
    return kw


def make_layer(spec: dict, dtype: str | None = None, **extra):
    import lstmcompat

    kw = layer_kwargs(spec)
    kw.update(extra)
    if dtype is not None:
        kw["dtype"] = dtype
    return lstmcompat.LSTM(**kw)


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def to_np(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t)


def assert_close(got, expected, dtype: str, what: str = ""):
    tol = TOL[dtype]
    got = to_np(got)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != TF {expected.shape}"
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, err_msg=what)


def weight_names(d: dict) -> list[str]:
    return [n for n in ("kernel", "recurrent_kernel", "bias") if n in d]
