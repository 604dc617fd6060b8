"""NaN and inf in the Keras layer's initial state or inputs land where TensorFlow puts them.

The goldens (``tests/goldens/nonfinite/keras_*.npz``, from ``tools/goldens_nonfinite.py``)
are ``tf.compat.v1.keras.layers.LSTM`` calls (``hard_sigmoid`` gates unless noted) with
an initial state, with or without a mask, where one entry of ``h0``, ``c0`` or the inputs
is NaN or infinite: the returned sequence and state and the gradients w.r.t. the
inputs, the initial state and the weights. TF's masked steps still run (``where``
selects), so ``0 * NaN`` there reaches the gradients; every kernel must give exactly
TF's NaN, +inf and -inf entries and agree elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from keras_parity_helpers import TOL

import lstmcompat

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "nonfinite"
FILES = sorted(GOLDENS.glob("keras_*.npz"))
GRADS = ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias")


def assert_same(got: np.ndarray, want: np.ndarray, tol: float, what: str) -> None:
    for kind, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(test(got), test(want), err_msg=f"{what}: {kind} entries")
    f = np.isfinite(want)
    np.testing.assert_allclose(got[f], want[f], rtol=tol, atol=tol, err_msg=what)


def test_goldens_present() -> None:
    assert len(FILES) >= 18, "run tools/goldens_nonfinite.py to regenerate them"


@pytest.mark.parametrize("kernel", [None, "reference", "fused"])
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_matches_tensorflow(path, kernel, force_kernel) -> None:
    force_kernel(kernel)
    d = np.load(path)
    cfg = json.loads(str(d["config"]))
    tol = TOL[cfg["dtype"]]
    layer = lstmcompat.LSTM(**cfg["layer"], dtype=cfg["dtype"])
    layer.build(tuple(d["x"].shape))
    layer.set_weights([d[n] for n in ("kernel", "recurrent_kernel", "bias")])
    x, h0, c0 = (torch.tensor(d[k], requires_grad=True) for k in ("x", "h0", "c0"))
    mask = torch.tensor(d["mask"]) if "mask" in d.files else None
    outs = layer(x, mask=mask, initial_state=[h0, c0], training=False)
    if kernel is not None:
        assert layer.last_kernel[0] == kernel
    loss = sum((o * torch.tensor(d[f"w_{i}"])).sum() for i, o in enumerate(outs))
    grads = torch.autograd.grad(loss, [x, h0, c0, layer.kernel, layer.recurrent_kernel,
                                       layer.bias])
    for i, o in enumerate(outs):
        assert_same(o.detach().numpy(), d[f"out_{i}"], tol, f"output {i}")
    for name, g in zip(GRADS, grads, strict=True):
        assert_same(g.numpy(), d[f"grad_{name}"], tol, f"d/d{name}")
