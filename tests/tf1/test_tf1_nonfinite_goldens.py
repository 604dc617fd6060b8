"""TensorFlow 1's results for every clip value and for NaN or inf in states and inputs.

The goldens (``tests/goldens/nonfinite/tf1_*.npz``, made by
``tools/goldens_nonfinite.py`` with ``tools/goldens_tf1.py``'s ``make_case``) hold TF's
outputs, final states and gradients for an ``LSTMCell`` with ``cell_clip`` negative,
zero, NaN or infinite and ``proj_clip`` negative, zero, NaN or infinite (TF raises for
none of them), and for NaN or inf in an initial state or the inputs (steps after a
row's length and after the longest sequence included). Every kernel that runs the
call must put NaN, +inf and -inf on exactly TF's entries, and agree elsewhere.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from tf1_golden_util import TOL, run_case, tf_gradients

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "nonfinite"
FILES = sorted(GOLDENS.glob("tf1_*.npz"))
#: the cases torch.lstm runs: no clips or peepholes, and no step padded
NATIVE = [p for p in FILES if "plain" in p.stem and "_len_" not in p.stem]


def assert_same(got: np.ndarray, want: np.ndarray, tol: float, what: str) -> None:
    for kind, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(test(got), test(want), err_msg=f"{what}: {kind} entries")
    f = np.isfinite(want)
    np.testing.assert_allclose(got[f], want[f], rtol=tol, atol=tol, err_msg=what)


def check(path: Path) -> dict:
    res = run_case(path)
    d, tol = res["data"], TOL[res["cfg"]["dtype"]]
    for k, o in enumerate(res["outs"]):
        assert_same(o.detach().numpy(), d[f"out_{k}"], tol, f"output {k}")
    for k, s in enumerate(res["states"]):
        assert_same(s.detach().numpy(), d[f"st_{k}"], tol, f"state {k}")
    for (key, ref), g in zip(tf_gradients(res), res["grads"], strict=True):
        assert_same(g.detach().numpy(), ref, tol, f"gradient {key}")
    return res


def test_goldens_present() -> None:
    assert len(FILES) >= 40, "run tools/goldens_nonfinite.py to regenerate them"
    cfgs = [str(np.load(p)["config"]) for p in FILES]
    assert any("NaN" in c for c in cfgs) and any("-Infinity" in c for c in cfgs)
    assert NATIVE


@pytest.mark.parametrize("kernel", [None, "reference", "fused"])
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_matches_tensorflow(path, kernel, force_kernel) -> None:
    force_kernel(kernel)
    res = check(path)
    if kernel is not None:
        assert res["cells"][0].last_kernel[0] == kernel


@pytest.mark.parametrize("path", NATIVE, ids=[p.stem for p in NATIVE])
def test_native_matches_tensorflow_without_lengths(path, monkeypatch) -> None:
    """torch.lstm (no clips, no peepholes) where no step is padded."""
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "native")
    res = check(path)
    assert res["cells"][0].last_kernel[0] == "native"


@pytest.mark.parametrize("clip", [-1.0, 0.0, math.nan, math.inf, -math.inf])
def test_every_clip_value_is_accepted_as_tensorflow_does(clip) -> None:
    """TF's LSTMCell raises for no clip value (the goldens ran them all)."""
    import lstmcompat

    cfg = lstmcompat.LSTMCell(3, cell_clip=clip, num_proj=2, proj_clip=clip).get_config()
    for key in ("cell_clip", "proj_clip"):
        assert cfg[key] == clip or (math.isnan(clip) and math.isnan(cfg[key]))


@pytest.mark.parametrize("runner", ["dynamic_rnn", "static_rnn"])
def test_steps_after_the_longest_sequence_are_not_run(runner) -> None:
    """TF1's loops stop after the longest sequence: NaN in a later input reaches nothing
    (the golden ``tf1_dyn_plain_x_nan_past_len`` is TF's own result for this)."""
    import torch

    import lstmcompat

    cell = lstmcompat.LSTMCell(3, dtype=torch.float64)
    x = torch.rand(2, 6, 4, dtype=torch.float64)
    x[0, 4, 1] = math.nan
    x.requires_grad_()
    if runner == "dynamic_rnn":
        out, st = lstmcompat.dynamic_rnn(cell, x, sequence_length=[3, 1], dtype=torch.float64)
    else:
        outs, st = lstmcompat.static_rnn(cell, list(x.unbind(1)), sequence_length=[3, 1],
                                         dtype=torch.float64)
        out = torch.stack(outs, 1)
    assert out.shape == (2, 6, 3) and bool((out[:, 3:] == 0).all())
    (out.sum() + st.c.sum() + st.h.sum()).backward()
    for t in (x.grad, cell.kernel.grad, cell.bias.grad, out, st.c, st.h):
        assert bool(torch.isfinite(t).all())
    assert bool((x.grad[:, 3:] == 0).all())
