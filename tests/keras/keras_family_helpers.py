"""Shared helpers for the Bidirectional and CuDNNLSTM parity tests.

The goldens under tests/goldens/keras_family were written by
tools/goldens_keras_family.py from TensorFlow 2.21 + tf_keras; the tests only
read them and never import TensorFlow.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import torch

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "keras_family"
TOL = {"float32": 2e-5, "float64": 1e-10}


@cache
def manifest() -> dict:
    return json.loads((GOLDENS / "manifest.json").read_text())


def load(entry: dict) -> dict[str, np.ndarray]:
    with np.load(GOLDENS / entry["file"]) as z:
        return {k: z[k] for k in z.files}


def cases(kind: str, stateful: bool = False) -> list[dict]:
    return [e for e in manifest()[kind] if bool(e.get("stateful")) == stateful]


def close(got: torch.Tensor, want: np.ndarray, dtype: str, what: str) -> None:
    got = got.detach().cpu().numpy()
    assert got.shape == want.shape, (what, got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype], err_msg=what)


def loss_of(outs: list[torch.Tensor], arrays: dict[str, np.ndarray]) -> torch.Tensor:
    total = 0
    for i, o in enumerate(outs):
        total = total + (o * torch.from_numpy(arrays[f"lw_{i}"])).sum()
    return total
