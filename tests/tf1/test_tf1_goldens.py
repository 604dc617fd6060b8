"""Numerical parity with TensorFlow 1.x (goldens made by ``tools/goldens_tf1.py``).

Every case compares outputs, final states and the gradients with respect to
the inputs, the initial states and every weight at rtol = atol = 1e-5
(float32) or 1e-10 (float64).
"""

from __future__ import annotations

import numpy as np
import pytest
from tf1_golden_util import TOL, golden_files, run_case, tf_gradients

FILES = golden_files()


def test_goldens_present() -> None:
    assert len(FILES) >= 60, "run tools/goldens_tf1.py to regenerate tests/goldens/tf1"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_matches_tensorflow(path) -> None:
    res = run_case(path)
    d, cfg = res["data"], res["cfg"]
    tol = TOL[cfg["dtype"]]
    for k, o in enumerate(res["outs"]):
        np.testing.assert_allclose(o.detach().numpy(), d[f"out_{k}"], rtol=tol, atol=tol,
                                   err_msg=f"output {k}")
    assert len(res["states"]) == len([k for k in d.files if k.startswith("st_")])
    for k, s in enumerate(res["states"]):
        np.testing.assert_allclose(s.detach().numpy(), d[f"st_{k}"], rtol=tol, atol=tol,
                                   err_msg=f"state {k}")
    for (key, ref), g in zip(tf_gradients(res), res["grads"], strict=True):
        np.testing.assert_allclose(g.detach().numpy(), ref, rtol=tol, atol=tol,
                                   err_msg=f"gradient {key}")


@pytest.mark.parametrize("path", [p for p in FILES if "_float64" in p.stem][:6],
                         ids=lambda p: p.stem)
def test_dtypes_follow_the_inputs(path) -> None:
    res = run_case(path)
    for t in res["outs"] + res["states"] + list(res["grads"]):
        assert str(t.dtype) == "torch.float64"
