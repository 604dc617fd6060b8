"""Every kernel agrees with ``reference`` on every clip value and on non-finite data.

``cell_clip`` and ``proj_clip`` may be anything TF accepts: negative (the lower
bound ``-clip`` wins: TF's ``clip_by_value`` is ``maximum(minimum(t, hi), lo)``),
zero, NaN or infinite. NaN or inf in an initial state or the inputs must reach the
very entries of the outputs, states and every gradient that it reaches in the
reference (which, on masked steps, differentiates the step with zero gradients, so
``0 * NaN`` is NaN there). Checked: the pure-PyTorch loops, the compiled loops, the
Triton kernels under Triton's interpreter, ``native`` where it runs the spec, the
compiled inference step; and :func:`clip_by_value` and the hand-written activation
backwards against TF's numbers and autograd. TensorFlow's own results for these
cases are in ``tests/tf1/test_tf1_nonfinite_goldens.py`` and
``tests/keras/test_parity_nonfinite.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from kernel_cases import extension, make_case, outputs_and_grads, with_backend

from lstmcompat._engine import CellSpec, dispatch, run_explained, run_reference
from lstmcompat._engine.fused import _acts, fused_step
from lstmcompat._engine.fused._function import TORCH_BACKEND
from lstmcompat._engine.native import native_cannot, run_native
from lstmcompat._engine.reference import clip_by_value
from lstmcompat._engine.reference import step as reference_step

NAN, INF = float("nan"), float("inf")
NAMES = ["outputs", "h", "c", "dx", "dh0", "dc0", "dW", "dR", "db", "dw_i", "dw_f", "dw_o",
         "dP"]
GOLDEN = Path(__file__).resolve().parents[1] / "goldens" / "nonfinite" / "clip_by_value.npz"
TOL = {torch.float32: 1e-4, torch.float64: 1e-9}


def assert_same(got, want, tol, what=""):
    """Same NaN, +inf and -inf entries, and close finite values, tensor by tensor."""
    for name, a, b in zip(NAMES, got, want, strict=False):
        a, b = a.detach(), b.detach()
        assert a.shape == b.shape, name
        for kind, test in (("NaN", torch.isnan), ("+inf", torch.isposinf),
                           ("-inf", torch.isneginf)):
            ma, mb = test(a), test(b)
            assert torch.equal(ma, mb), (
                f"{what} {name}: {kind} at {int(ma.sum())} entries, the reference's at "
                f"{int(mb.sum())} (differing at {(ma != mb).nonzero().tolist()[:6]})")
        f = torch.isfinite(b)
        torch.testing.assert_close(a[f], b[f], rtol=tol, atol=tol,
                                   msg=lambda m, name=name: f"{what} {name}: {m}")


# -- the specs and the poisons ------------------------------------------------------------
def _clip_specs():
    specs = {}
    for tag, cc in (("neg1", -1.0), ("0", 0.0), ("nan", NAN), ("inf", INF), ("neginf", -INF)):
        for peep in (False, True):
            specs[f"cell_clip={tag}{'-peep' if peep else ''}"] = CellSpec(
                4, use_peepholes=peep, cell_clip=cc, forget_bias=1.0, mask_mode="zero")
    for tag, pc in (("neg05", -0.5), ("0", 0.0), ("nan", NAN), ("inf", INF)):
        for proj in (None, 3):
            specs[f"proj_clip={tag}{'-proj' if proj else ''}"] = CellSpec(
                4, num_proj=proj, proj_clip=pc, mask_mode="zero")
    specs["both-negative"] = CellSpec(4, use_peepholes=True, cell_clip=-1.0, num_proj=3,
                                      proj_clip=-0.5, mask_mode="zero")
    return specs


CLIP_SPECS = _clip_specs()
STATE_SPECS = {
    "tf1-plain": CellSpec(4, forget_bias=1.0, mask_mode="zero"),
    "tf1-peep-clip": CellSpec(4, use_peepholes=True, cell_clip=0.3, forget_bias=1.0,
                              mask_mode="zero"),
    "tf1-proj-clip": CellSpec(4, use_peepholes=True, num_proj=3, proj_clip=0.2,
                              mask_mode="zero"),
    "keras": CellSpec(4, recurrent_activation="hard_sigmoid", mask_mode="carry"),
    "keras-relu-peep": CellSpec(4, activation="relu", recurrent_activation="hard_sigmoid",
                                use_peepholes=True, mask_mode="carry"),
}
#: (what, index, value): entries set after the draw; row 1 is masked at step 1 in
#: the "general" masks of make_case's seed below, so that held rows are exercised.
POISONS = {
    "finite": None,
    "c0-nan": ("c0", (1, 0), NAN),
    "c0-inf": ("c0", (0, 2), INF),
    "h0-nan": ("h0", (1, 1), NAN),
    "h0-neginf": ("h0", (2, 0), -INF),
    "x-nan": ("x", (1, 1, 0), NAN),
    "x-inf": ("x", (2, 0, 1), INF),
}
MASKS = [("none", False), ("right_padded", False), ("general", False), ("general", True)]


def _case(spec, dtype, mask, poison, seed=2):
    x, w, h0, c0, m, _ = make_case(spec, 4, 3, 2, mask=mask, seed=seed, dtype=dtype)
    if poison is not None:
        what, idx, val = poison
        with torch.no_grad():
            {"x": x, "h0": h0, "c0": c0}[what][idx] = val
    return x, w, h0, c0, m


def _check_backend(fn, spec, dtype, poisons=POISONS, masks=MASKS):
    for pname, poison in poisons.items():
        for mask, reverse in masks:
            x, w, h0, c0, m = _case(spec, dtype, mask, poison)
            kw = dict(mask=m, reverse=reverse)
            want = outputs_and_grads(run_reference, spec, x, w, h0, c0, **kw)
            got = outputs_and_grads(fn, spec, x, w, h0, c0, **kw)
            assert_same(got, want, TOL[dtype], f"{pname}, mask {mask}, reverse {reverse}:")


@pytest.fixture(params=["torch", "cpp"])
def loop(request):
    return TORCH_BACKEND if request.param == "torch" else extension()


ALL_SPECS = {**CLIP_SPECS, **STATE_SPECS}
DTYPES = [torch.float64, torch.float32]
DTYPE_IDS = ["float64", "float32"]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(ALL_SPECS))
def test_fused_loops_match_reference(loop, name, dtype):
    _check_backend(with_backend(loop), ALL_SPECS[name], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("act", sorted(_acts.KNOWN))
def test_every_activation_propagates_like_the_reference(loop, act, dtype):
    if loop is not TORCH_BACKEND and _acts.code(act) is None:
        pytest.skip(f"{act} is not compiled")
    for ract in ("sigmoid", "hard_sigmoid"):
        spec = CellSpec(3, activation=act, recurrent_activation=ract, use_peepholes=True,
                        mask_mode="carry")
        _check_backend(with_backend(loop), spec, dtype,
                       masks=[("none", False), ("general", False)])


TRITON_SPECS = ["cell_clip=neg1-peep", "cell_clip=nan", "proj_clip=neg05-proj",
                "proj_clip=nan", "both-negative", "tf1-peep-clip", "tf1-proj-clip", "keras",
                "keras-relu-peep"]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", TRITON_SPECS)
def test_triton_kernels_match_reference(name, dtype):
    pytest.importorskip("triton")
    from lstmcompat._engine.gpu import interpreted_backend

    poisons = {k: POISONS[k] for k in ("finite", "c0-nan", "h0-neginf", "x-nan")}
    _check_backend(with_backend(interpreted_backend()), ALL_SPECS[name], dtype, poisons,
                   masks=[("none", False), ("general", True)])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ["tf1-plain", "keras-sigmoid", "proj"])
def test_native_matches_reference_without_padding(name, dtype):
    """``torch.lstm`` carries NaN and inf as the reference does when no step is padded."""
    spec = {"tf1-plain": STATE_SPECS["tf1-plain"],
            "keras-sigmoid": CellSpec(4, mask_mode="carry"),
            "proj": CellSpec(4, num_proj=3, forget_bias=1.0, mask_mode="zero")}[name]
    ctx = dict(device=torch.device("cpu"), dtype=dtype, dropout_kind="none", reverse=False)
    assert native_cannot(spec, mask_kind="none", **ctx) is None

    def native(spec, x, w, h0, c0, mask=None, reverse=False):
        return run_native(spec, x, w, h0, c0, reverse=reverse)

    _check_backend(native, spec, dtype, masks=[("none", False), ("none", True)])


def test_native_skips_padded_steps_so_run_avoids_it_on_non_finite_data(monkeypatch):
    """Packed sequences never compute a padded step; the reference does (TF too), and
    0 * NaN there reaches the gradients. ``run`` then takes the next exact kernel."""
    fused = dispatch.kernel_record("fused")  # native is first for every call
    monkeypatch.setitem(dispatch._KERNELS, "fused", dataclasses.replace(fused, preferred=None))
    dispatch.clear_choice_cache()
    try:
        spec = STATE_SPECS["tf1-plain"]
        x, w, h0, c0, m = _case(spec, torch.float64, "right_padded", None)
        *_, (name, _) = run_explained(spec, x, w, h0, c0, mask=m)
        assert name == "native"
        differs = []
        for poison in ("c0-nan", "h0-neginf", "x-nan"):
            x, w, h0, c0, m = _case(spec, torch.float64, "right_padded", POISONS[poison])
            want = outputs_and_grads(run_reference, spec, x, w, h0, c0, mask=m)
            natively = outputs_and_grads(run_native, spec, x, w, h0, c0, mask=m)
            differs.append(any(not torch.equal(torch.isnan(a), torch.isnan(b))
                               for a, b in zip(natively, want, strict=True)))

            def via_run(spec, x, w, h0, c0, mask=None):
                out, h, c, (name, why) = run_explained(spec, x, w, h0, c0, mask=mask)
                assert name != "native" and "padded steps run" in why, why
                return out, h, c

            assert_same(outputs_and_grads(via_run, spec, x, w, h0, c0, mask=m), want, 1e-9,
                        poison)
            with torch.no_grad():  # no gradient: the forward values are the same
                *_, (name, _) = run_explained(spec, x, w, h0, c0, mask=m)
            assert name == "native"
        assert differs[0] and differs[2]  # natively, NaN misses entries the reference has
    finally:
        monkeypatch.undo()
        dispatch.clear_choice_cache()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(CLIP_SPECS) + ["tf1-peep-clip", "keras"])
def test_inference_step_matches_reference(name, dtype):
    """The compiled single step (streaming, no autograd) clips as the reference."""
    spec = ALL_SPECS[name]
    for pname in ("finite", "c0-nan", "h0-neginf"):
        x, w, h0, c0, _ = _case(spec, dtype, "none", POISONS[pname])
        with torch.no_grad():
            want = reference_step(spec, x[0] @ w.W + w.b, h0, c0, w)
            got = fused_step(spec, x[0], w, h0, c0)
        assert_same(got, want, TOL[dtype], f"{name}, {pname}:")


# -- the clip itself and the activation backwards -------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clip_by_value_is_tensorflows(dtype):
    d = np.load(GOLDEN)
    t_np = d[f"t_{dtype}"]
    upstream = torch.ones(len(t_np), dtype=getattr(torch, dtype))
    upstream[0] = NAN  # as the golden: NaN flows in at the NaN entry
    for k, bound in enumerate(d["bounds"]):
        t = torch.tensor(t_np, requires_grad=True)
        y = clip_by_value(t, float(bound))
        (g,) = torch.autograd.grad(y, t, upstream)
        np.testing.assert_array_equal(y.detach().numpy(), d[f"y_{dtype}"][k],
                                      err_msg=f"bound {bound}")
        np.testing.assert_array_equal(g.numpy(), d[f"grad_{dtype}"][k], err_msg=f"bound {bound}")


def test_negative_clip_gives_the_lower_bound_where_torch_clamp_gives_the_upper():
    t = torch.tensor([-3.0, 0.5, 3.0])
    assert clip_by_value(t, -1.0).tolist() == [1.0, 1.0, 1.0]
    assert torch.clamp(t, 1.0, -1.0).tolist() == [-1.0, -1.0, -1.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("act", sorted(_acts.KNOWN))
def test_activation_backward_is_autograds(act, dtype):
    """``_acts.backward`` gives autograd's gradient of the reference's activation, with
    its NaN and inf entries, for NaN, infinite and finite inputs and incoming gradients."""
    g0 = torch.Generator().manual_seed(0)
    special = torch.tensor([NAN, INF, -INF, 0.0, -0.0, 2.5, -2.5, 20.0, 21.0, 1e-30, -1e-30,
                            100.0, -100.0, 700.0, -700.0], dtype=dtype)
    xs = torch.cat([torch.randn(300, generator=g0, dtype=dtype) * 4, special])
    n = xs.numel()
    x = xs.repeat(4)
    grad = torch.cat([torch.randn(n, generator=g0, dtype=dtype), torch.full((n,), NAN, dtype=dtype),
                      torch.full((n,), INF, dtype=dtype), torch.zeros(n, dtype=dtype)])
    xr = x.clone().requires_grad_()
    y = _acts.forward(act)(xr)
    (want,) = torch.autograd.grad(y, xr, grad)
    got = _acts.backward(act)(grad, x, y.detach())
    assert_same([got], [want], 1e-12 if dtype == torch.float64 else 1e-6, act)
