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


@pytest.mark.parametrize("kw,what", [(dict(steps=1), "a single step"),
                                     (dict(batch=1), "batch 1")])
def test_one_step_or_batch_one_prefers_the_compiled_loop(kw, what):
    from lstmcompat._engine.fused import _build

    spec = CellSpec(units=4)
    name, why = choose(spec, **kw)
    if _build.backend() is None:  # no compiler: torch.lstm keeps these shapes
        assert name == "native"
    else:
        assert name == "fused" and what in why
    assert choose(spec, steps=5, batch=8)[0] == "native"
    assert choose(spec, **kw, kernel="native")[0] == "native"
    assert choose(spec, **kw, device="meta")[0] == "native"  # not on CPU: no claim


def test_training_on_cpu_prefers_the_compiled_loop():
    """Calls that will be differentiated go to ``fused`` (its hand-written backward
    beats torch.lstm's forward+backward); inference keeps torch.lstm."""
    from lstmcompat._engine.fused import _build

    spec = CellSpec(units=8, forget_bias=1.0)
    name, why = choose(spec, steps=50, batch=32, grad=True)
    if _build.backend() is None:
        assert name == "native"
    else:
        assert name == "fused" and "training on CPU" in why and "instead of native" in why
    assert choose(spec, steps=50, batch=32)[0] == "native"
    assert choose(spec, steps=50, batch=32, grad=True, device="meta")[0] == "native"
    assert choose(spec, steps=50, batch=32, grad=True, kernel="native")[0] == "native"
    # a kernel that is the first exact one anyway keeps its own reason
    name, why = choose(CellSpec(units=8, recurrent_activation="hard_sigmoid"), grad=True)
    assert name == "fused" and "hard_sigmoid" in why


def test_run_decides_training_from_the_tensors():
    from lstmcompat._engine.fused import _build

    if _build.backend() is None:
        pytest.skip("no compiled loop: torch.lstm runs both")
    spec = CellSpec(units=4)
    w = _weights(spec)
    x, h0, c0 = torch.randn(6, 3, 3), torch.zeros(3, 4), torch.zeros(3, 4)
    assert run_explained(spec, x, w, h0, c0)[3][0] == "native"
    xg = x.clone().requires_grad_()
    out = run_explained(spec, xg, w, h0, c0)
    assert out[3][0] == "fused"
    with torch.no_grad():
        assert run_explained(spec, xg, w, h0, c0)[3][0] == "native"
    want = run_reference(spec, xg, w, h0, c0)
    for a, b in zip(out[:3], want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    ga = torch.autograd.grad(out[0].sum(), xg)[0]
    gb = torch.autograd.grad(want[0].sum(), xg)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)


def test_preference_never_overrides_exactness():
    spec = CellSpec(units=4, activation=lambda t: t * 2)  # unknown derivative: not fused
    assert choose(spec, steps=1, batch=1)[0] == "reference"


@pytest.mark.parametrize("act", ["hard_sigmoid", "keras3_hard_sigmoid"])
def test_fused_reason_says_which_time_loop(act):
    name, why = choose(CellSpec(units=4, recurrent_activation=act))
    assert name == "fused" and f"recurrent_activation={act!r}" in why
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
