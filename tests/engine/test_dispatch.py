"""Dispatch details: single-step preference, describe hooks, forced kernels."""

import pytest
import torch

from lstmcompat._engine import CellSpec, Weights, choose, run_explained, run_reference


def _weights(spec, depth=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, p = spec.units, spec.output_size
    return Weights(W=torch.randn(depth, 4 * u, generator=g) * 0.5,
                   R=torch.randn(p, 4 * u, generator=g) * 0.5,
                   b=torch.randn(4 * u, generator=g) * 0.5)


def test_single_cpu_step_avoids_native_but_native_can_be_forced():
    spec = CellSpec(units=4)
    name, why = choose(spec, steps=1)
    assert name == "fused" and "single step" in why
    assert choose(spec, steps=5)[0] == "native"
    assert choose(spec, steps=1, kernel="native")[0] == "native"


def test_fused_reason_says_which_time_loop():
    name, why = choose(CellSpec(units=4, recurrent_activation="hard_sigmoid"))
    assert name == "fused"
    assert "[compiled C++ time loop]" in why or "[pure-PyTorch loop" in why


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("spec", [
    CellSpec(units=4),
    CellSpec(units=4, recurrent_activation="hard_sigmoid", forget_bias=1.0),
])
def test_single_step_path_equals_reference(spec, grad):
    w = _weights(spec)
    x = torch.randn(1, 2, 3)
    h0, c0 = torch.randn(2, 4), torch.randn(2, 4)
    ref = run_reference(spec, x, w, h0, c0)
    with torch.set_grad_enabled(grad):
        out, h, c, (name, _) = run_explained(spec, x, w, h0, c0)
    assert name == "fused"
    for a, b in zip((out, h, c), ref):
        torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-6)


def test_environment_forces_a_kernel(monkeypatch):
    spec = CellSpec(units=4)
    w = _weights(spec)
    x = torch.randn(5, 2, 3)
    h0 = c0 = torch.zeros(2, 4)
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "reference")
    *_, (name, why) = run_explained(spec, x, w, h0, c0)
    assert name == "reference" and "requested explicitly" in why
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "no-such-kernel")
    with pytest.raises(ValueError, match="Unknown `kernel`"):
        run_explained(spec, x, w, h0, c0)
