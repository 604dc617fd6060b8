"""The native kernel (torch.lstm) against the reference kernel, and dispatch."""

import itertools

import pytest
import torch

from lstmcompat._engine import CellSpec, Dropout, Weights, analyze_mask, choose, run, run_reference

DT = torch.float64


def make(spec: CellSpec, depth: int = 3, batch: int = 3, steps: int = 5, bias: bool = True,
         seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    u, p = spec.units, spec.output_size

    def r(*shape):
        return (torch.randn(*shape, generator=g, dtype=DT) * 0.5).requires_grad_()

    w = Weights(W=r(depth, 4 * u), R=r(p, 4 * u), b=r(4 * u) if bias else None,
                P=r(u, spec.num_proj) if spec.num_proj else None)
    x = r(steps, batch, depth)
    return w, x, r(batch, p), r(batch, u)


def assert_same(a, b, tol=1e-12):
    for s, t in zip(a, b):
        torch.testing.assert_close(s, t, rtol=tol, atol=tol)


def run_both(spec, w, x, h0, c0, **kw):
    ref = run(spec, x, w, h0, c0, kernel="reference", **kw)
    nat = run(spec, x, w, h0, c0, kernel="native", **kw)
    return ref, nat


def grads(outs, inputs):
    loss = sum((o * torch.linspace(0.5, 1.5, o.numel(), dtype=o.dtype).view_as(o)).sum()
               for o in outs)
    return torch.autograd.grad(loss, [t for t in inputs if t is not None], allow_unused=True,
                               materialize_grads=True)


@pytest.mark.parametrize("proj,fb,bias,batch_first,mode", list(itertools.product(
    [None, 2], [0.0, 1.0], [True, False], [False, True], ["carry", "zero"])))
def test_native_equals_reference(proj, fb, bias, batch_first, mode):
    spec = CellSpec(units=4, forget_bias=fb, num_proj=proj, mask_mode=mode)
    w, x, h0, c0 = make(spec, bias=bias)
    if batch_first:
        x = x.detach().transpose(0, 1).contiguous().requires_grad_()
    masks = []
    for lengths in (torch.tensor([5, 2, 3]), torch.tensor([0, 2, 3]), torch.tensor([0, 0, 0])):
        mask = torch.arange(5).unsqueeze(1) < lengths.unsqueeze(0)
        masks.append(mask.t() if batch_first else mask)
    for m in (None, *masks):
        ref, nat = run_both(spec, w, x, h0, c0, mask=m, batch_first=batch_first)
        assert_same(ref, nat)
        params = [x, h0, c0, *w]
        assert_same(grads(ref, params), grads(nat, params))


def test_native_reverse_and_shared_dropout():
    spec = CellSpec(units=4)
    w, x, h0, c0 = make(spec)
    drop = Dropout(x=(torch.rand(1, 3, 3, dtype=DT) > 0.3).to(DT) / 0.7)
    ref, nat = run_both(spec, w, x, h0, c0, reverse=True, dropout=drop)
    assert_same(ref, nat)


def test_reference_gradcheck_all_options():
    spec = CellSpec(units=2, activation="tanh", recurrent_activation="hard_sigmoid",
                    forget_bias=0.5, use_peepholes=True, cell_clip=0.8, num_proj=3,
                    proj_clip=0.9, mask_mode="carry")
    g = torch.Generator().manual_seed(1)

    def r(*s):
        return (torch.randn(*s, generator=g, dtype=DT) * 0.3).requires_grad_()

    x = r(3, 2, 2)
    mask = torch.tensor([[True, False], [False, True], [True, True]])

    def f(x, h0, c0, W, R, b, wi, wf, wo, P):
        w = Weights(W, R, b, wi, wf, wo, P)
        return run_reference(spec, x, w, h0, c0, mask=mask, reverse=True)

    args = (x, r(2, 3), r(2, 2), r(2, 8), r(3, 8), r(8), r(2), r(2), r(2), r(2, 3))
    assert torch.autograd.gradcheck(f, args)


def test_analyze_mask_kinds():
    full = torch.ones(4, 2, dtype=torch.bool)
    assert analyze_mask(None, 0) == ("none", None)
    assert analyze_mask(full, 0)[0] == "none"
    right = torch.tensor([[1, 1], [1, 1], [0, 1], [0, 0]], dtype=torch.bool)
    kind, lengths = analyze_mask(right, 0)
    assert kind == "right_padded" and lengths.tolist() == [2, 3]
    assert analyze_mask(right.t(), 1)[0] == "right_padded"
    left = right.flip(0)
    assert analyze_mask(left, 0)[0] == "general"
    empty = torch.tensor([[1, 0], [0, 0]], dtype=torch.bool)
    kind, lengths = analyze_mask(empty, 0)  # a length-0 sequence is still a prefix
    assert kind == "right_padded" and lengths.tolist() == [1, 0]


@pytest.mark.parametrize("kw,reason", [
    (dict(recurrent_activation="hard_sigmoid"), "recurrent_activation"),
    (dict(activation="relu"), "activation"),
    (dict(use_peepholes=True), "peepholes"),
    (dict(cell_clip=1.0), "cell_clip"),
    (dict(proj_clip=1.0), "proj_clip"),
    (dict(num_proj=4), "num_proj"),
])
def test_choose_explains_why_not_native(kw, reason):
    spec = CellSpec(units=4, **kw)
    name, why = choose(spec)
    assert name != "native" and reason in why
    with pytest.raises(ValueError, match="native"):
        choose(spec, kernel="native")


def test_choose_native_when_exact():
    assert choose(CellSpec(units=4, forget_bias=1.0, num_proj=2))[0] == "native"
    assert choose(CellSpec(units=4), mask_kind="right_padded")[0] == "native"
    assert choose(CellSpec(units=4), dropout_kind="shared_input")[0] == "native"
    assert choose(CellSpec(units=4), mask_kind="general")[0] != "native"
    assert choose(CellSpec(units=4), mask_kind="right_padded", reverse=True)[0] != "native"
    assert choose(CellSpec(units=4), dropout_kind="other")[0] != "native"
    assert choose(CellSpec(units=4, activation=torch.tanh))[0] == "native"


def test_choose_unknown_kernel():
    with pytest.raises(ValueError, match="Unknown `kernel`"):
        choose(CellSpec(units=4), kernel="nope")


def test_spec_rejects_bad_mask_mode():
    with pytest.raises(ValueError, match="mask_mode"):
        CellSpec(units=3, mask_mode="hold")


def test_empty_sequences_are_safe():
    from lstmcompat._engine import run_explained
    spec = CellSpec(units=4)
    w, x, h0, c0 = make(spec, steps=0)
    out, h, c, (name, _) = run_explained(spec, x, w, h0, c0)
    assert out.shape == (0, 3, 4) and h is h0 and c is c0


def test_run_explained_reports_choice():
    from lstmcompat._engine import run_explained
    spec = CellSpec(units=4, recurrent_activation="hard_sigmoid")
    w, x, h0, c0 = make(spec)
    *_, (name, reason) = run_explained(spec, x, w, h0, c0)
    assert name == choose(spec)[0] and "hard_sigmoid" in reason
