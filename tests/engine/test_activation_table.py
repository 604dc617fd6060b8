"""The activation table (:mod:`lstmcompat._engine.fused._acts`) against every switch
compiled from it.

Each compiled activation's code is evaluated through the C++ switch (``act_f`` /
``act_g``, by the extension's ``activation`` op) and through the Triton one
(``_act`` / ``_gact``, by the ``act_eval`` kernel under Triton's interpreter), and
compared with the table's ``forward`` / ``backward`` on points that include every
kink, NaN and infinities. A switch that lacks an entry gives NaN (C++) or fails to
compile (Triton), and one that differs gives other numbers: either fails here.
The generated C++ header must match the table.
"""

from __future__ import annotations

import pytest
import torch

from lstmcompat._engine.fused import _acts, _extension

COMPILED = sorted(_acts.COMPILED.values(), key=lambda a: a.code)
IDS = [a.name for a in COMPILED]


def _points(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``x``: a grid over [-8, 8], every activation's kinks and their neighbours,
    tiny and large values, NaN and infinities; ``g``: mostly finite, some NaN/inf."""
    kinks = [-3.0, -2.5, 0.0, 2.5, 3.0]
    eps = torch.finfo(dtype).eps
    special = [k * (1 + s * eps) + s * eps for k in kinks for s in (-1, 1)]
    special += [1e-30, -1e-30, 1e-3, -1e-3, 30.0, -30.0, 90.0, -90.0,
                float("nan"), float("inf"), float("-inf")]
    x = torch.cat([torch.linspace(-8, 8, 161, dtype=torch.float64),
                   torch.tensor(kinks + special, dtype=torch.float64)]).to(dtype)
    g = torch.linspace(-1.5, 2.0, x.numel(), dtype=torch.float64).to(dtype)
    g[::17] = float("nan")
    g[5::23] = float("inf")
    return x, g


def _want(act: _acts.Act, x: torch.Tensor, g: torch.Tensor):
    y = act.forward(x)
    return y, act.backward(g, x, y)


def _check(got, want, dtype: torch.dtype, what: str) -> None:
    # float64: the same formulas (libm's exp/tanh against torch's); float32: the
    # kernels' fast exp (Cephes) and tanh (Eigen's rational function)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-6, atol=1e-6)
    for a, b, part in zip(got, want, ("forward", "derivative")):
        torch.testing.assert_close(a, b, equal_nan=True, **tol,
                                   msg=lambda m, part=part: f"{what} {part}: {m}")


def test_table_is_consistent():
    assert set(_acts.COMPILED) == set(range(len(_acts.COMPILED)))  # dense codes 0..n-1
    for act in _acts.TABLE.values():
        assert _acts.code(act.name) == act.code
        assert _acts.forward(act.name) is act.forward
        assert _acts.backward(act.name) is act.backward
    selu = _acts.TABLE["selu"].constants
    assert (selu["alpha"], selu["scale"]) == (_acts.SELU_ALPHA, _acts.SELU_SCALE)


def test_generated_header_is_current():
    """``csrc/activation_codes.h`` is what ``tools/gen_activation_codes.py`` writes
    from the table (run it after changing the table)."""
    assert _acts.HEADER.read_text() == _acts.cpp_header()


def test_header_names_every_compiled_code():
    text = _acts.cpp_header()
    for act in COMPILED:
        assert f"= {act.code};" in text
    assert f"constexpr int kCount = {len(COMPILED)};" in text
    assert "kSeluAlpha = 1.6732632423543772;" in text


@pytest.fixture(scope="module")
def ext():
    backend = _extension.backend()
    if backend is None:
        pytest.skip(f"no compiled extension here: {_extension.status()[1]}")
    return backend


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("act", COMPILED, ids=IDS)
def test_cpp_switch_matches_table(ext, act, dtype):
    x, g = _points(dtype)
    got = ext.ops.activation(x, g, act.code)
    _check(got, _want(act, x, g), dtype, f"C++ {act.name} (code {act.code})")


def test_cpp_switch_has_no_code_beyond_the_table(ext):
    """A code without a case gives NaN, so a table entry the switch lacks fails above."""
    x, g = _points(torch.float64)
    for code in (len(COMPILED), -1):
        y, d = ext.ops.activation(x, g, code)
        assert y.isnan().all() and d.isnan().all()


@pytest.fixture(scope="module")
def interp_kernels():
    pytest.importorskip("triton")
    from lstmcompat._engine.gpu import interpreted_backend

    return interpreted_backend().k


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's, on inf and NaN points
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("act", COMPILED, ids=IDS)
def test_triton_switch_matches_table(interp_kernels, act, dtype):
    x, g = _points(dtype)
    got = interp_kernels.eval_activation(x, g, act.code)
    _check(got, _want(act, x, g), dtype, f"Triton {act.name} (code {act.code})")


def test_triton_switch_refuses_a_code_beyond_the_table(interp_kernels):
    x, g = _points(torch.float64)
    with pytest.raises(Exception, match="activation code"):
        interp_kernels.eval_activation(x, g, len(COMPILED))
