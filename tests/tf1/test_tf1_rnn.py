"""dynamic_rnn / static_rnn / bidirectional_dynamic_rnn: equivalences, kernel choice, gradcheck."""

from __future__ import annotations

import os

import pytest
import torch

import lstmcompat as L
from lstmcompat._engine import choose
from lstmcompat._tf1.rnn import reverse_sequence

#: Tests of automatic dispatch are meaningless while a kernel is forced for the run.
automatic_dispatch = pytest.mark.skipif(
    bool(os.environ.get("LSTMCOMPAT_KERNEL")), reason="LSTMCOMPAT_KERNEL forces a kernel")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _cell(dtype=torch.float64, **kw) -> L.LSTMCell:
    kw.setdefault("num_units", 4)
    c = L.LSTMCell(dtype=dtype, **kw)
    c.build((None, 3))
    with torch.no_grad():
        for w in c.weights:
            w.uniform_(-0.6, 0.6)
    return c


OPTIONS = [
    dict(),
    dict(use_peepholes=True, cell_clip=0.3, num_proj=2, proj_clip=0.2, forget_bias=0.4),
    dict(num_proj=6, activation="relu"),
]


def _step_loop(cell, x, state, lengths):
    """TF1 semantics written directly: call the cell step by step, zero/hold past lengths."""
    outs = []
    for t in range(x.shape[1]):
        out, new = cell(x[:, t], state)
        m = (t < lengths).unsqueeze(1)
        outs.append(torch.where(m, out, torch.zeros_like(out)))
        state = type(new)(*(torch.where(m, n, o) for n, o in zip(new, state, strict=True))) \
            if isinstance(new, tuple) else torch.where(m, new, state)
    return torch.stack(outs, 1), state


@pytest.mark.parametrize("kw", OPTIONS)
def test_dynamic_rnn_equals_a_loop_of_single_steps(kw) -> None:
    cell = _cell(**kw)
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 0, 3, 1])
    s0 = L.LSTMStateTuple(torch.randn(4, 4, dtype=torch.float64),
                          torch.randn(4, cell.output_size, dtype=torch.float64))
    out, st = L.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=s0)
    ref_out, ref_st = _step_loop(cell, x, s0, lengths)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(st.c, ref_st.c, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(st.h, ref_st.h, rtol=1e-12, atol=1e-12)
    assert torch.equal(st.c[1], s0.c[1]) and bool((out[1] == 0).all())  # length 0
    assert bool((out[2, 3:] == 0).all())


def test_multi_rnn_cell_layer_by_layer_equals_stepwise_stack() -> None:
    cells = [_cell(num_units=4), L.LSTMCell(3, use_peepholes=True, num_proj=2,
                                             dtype=torch.float64)]
    m = L.MultiRNNCell(cells)
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 0])
    s0 = m.zero_state(3, torch.float64)
    out, st = L.dynamic_rnn(m, x, sequence_length=lengths, initial_state=s0)
    outs, state = [], s0
    for t in range(5):
        o, new = m(x[:, t], state)
        keep = (t < lengths).unsqueeze(1)
        outs.append(torch.where(keep, o, torch.zeros_like(o)))
        state = tuple(L.LSTMStateTuple(torch.where(keep, n.c, s.c), torch.where(keep, n.h, s.h))
                      for n, s in zip(new, state, strict=True))
    torch.testing.assert_close(out, torch.stack(outs, 1), rtol=1e-12, atol=1e-12)
    for a, b in zip(st, state, strict=True):
        torch.testing.assert_close(a.c, b.c, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a.h, b.h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", OPTIONS)
def test_static_equals_dynamic(kw) -> None:
    cell = _cell(**kw)
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    for lengths in (None, [5, 2, 0]):
        out_d, st_d = L.dynamic_rnn(cell, x, sequence_length=lengths, dtype="float64")
        out_s, st_s = L.static_rnn(cell, list(x.unbind(1)), sequence_length=lengths,
                                   dtype="float64")
        torch.testing.assert_close(torch.stack(out_s, 1), out_d, rtol=0, atol=0)
        torch.testing.assert_close(st_s.h, st_d.h, rtol=0, atol=0)


def test_time_major_equals_batch_major() -> None:
    cell = _cell(**OPTIONS[1])
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    out_b, st_b = L.dynamic_rnn(cell, x, sequence_length=[4, 5, 1], dtype="float64")
    out_t, st_t = L.dynamic_rnn(cell, x.transpose(0, 1), sequence_length=[4, 5, 1],
                                dtype="float64", time_major=True)
    torch.testing.assert_close(out_t.transpose(0, 1), out_b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(st_t.c, st_b.c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", OPTIONS)
def test_tuple_and_concatenated_states_agree(kw) -> None:
    a = _cell(**kw)
    b = L.LSTMCell(**dict(kw, num_units=4), state_is_tuple=False, dtype=torch.float64)
    b.build((None, 3))
    b.set_weights(a.get_weights())
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    out_a, st_a = L.dynamic_rnn(a, x, sequence_length=[5, 2, 0], dtype="float64")
    out_b, st_b = L.dynamic_rnn(b, x, sequence_length=[5, 2, 0], dtype="float64")
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([st_a.c, st_a.h], 1), st_b, rtol=0, atol=0)
    second = L.LSTMCell(3, dtype=torch.float64)
    second.build((None, a.output_size))
    bb = L.LSTMCell(3, state_is_tuple=False, dtype=torch.float64)
    bb.build((None, a.output_size))
    bb.set_weights(second.get_weights())
    ma = L.MultiRNNCell([a, second])
    mb = L.MultiRNNCell([b, bb], state_is_tuple=False)
    o1, s1 = L.dynamic_rnn(ma, x, dtype="float64")
    o2, s2 = L.dynamic_rnn(mb, x, dtype="float64")
    torch.testing.assert_close(o1, o2, rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([t for st in s1 for t in st], 1), s2, rtol=0, atol=0)


def test_bidirectional_symmetry() -> None:
    fw, bw = _cell(), _cell(**OPTIONS[1])
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 0])
    (of, ob), (sf, sb) = L.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=lengths,
                                                     dtype="float64")
    ref_f, ref_sf = L.dynamic_rnn(fw, x, sequence_length=lengths, dtype="float64")
    torch.testing.assert_close(of, ref_f, rtol=0, atol=0)
    # the backward direction is dynamic_rnn on each sequence reversed over its own length
    x_rev = reverse_sequence(x, lengths, 1)
    assert torch.equal(x_rev[1, :2], x[1, :2].flip(0)) and torch.equal(x_rev[1, 2:], x[1, 2:])
    tmp, ref_sb = L.dynamic_rnn(bw, x_rev, sequence_length=lengths, dtype="float64")
    torch.testing.assert_close(ob, reverse_sequence(tmp, lengths, 1), rtol=0, atol=0)
    torch.testing.assert_close(sb.h, ref_sb.h, rtol=0, atol=0)
    # swapping the roles on a reversed batch mirrors the outputs (full-length sequences)
    (of2, ob2), _ = L.bidirectional_dynamic_rnn(bw, fw, x.flip(1), dtype="float64")
    (of3, ob3), _ = L.bidirectional_dynamic_rnn(fw, bw, x, dtype="float64")
    torch.testing.assert_close(of2.flip(1), ob3, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ob2.flip(1), of3, rtol=1e-12, atol=1e-12)
    # past each length both directions output zeros
    assert bool((ob[1, 2:] == 0).all()) and bool((of[2] == 0).all())


@automatic_dispatch
@torch.no_grad()
def test_choose_picks_native_for_plain_cells() -> None:
    """Inference (no gradient to compute): torch.lstm for what it runs exactly."""
    cell = L.LSTMCell(8)
    x = torch.randn(3, 5, 4)
    L.dynamic_rnn(cell, x, dtype="float32")
    assert cell.last_kernel[0] == "native"
    L.dynamic_rnn(cell, x, sequence_length=[5, 0, 2], dtype="float32")  # zero rows left out
    assert cell.last_kernel[0] == "native"
    cell(x[:, 0], cell.zero_state(3, "float32"))  # one step on CPU: the cheaper step kernel
    assert cell.last_kernel[0] == "fused" and "step" in cell.last_kernel[1]
    proj = L.LSTMCell(8, num_proj=3, forget_bias=0.3)
    L.bidirectional_dynamic_rnn(proj, L.LSTMCell(2), x, sequence_length=[1, 5, 3],
                                dtype="float32")
    assert proj.last_kernel[0] == "native"
    assert choose(proj.cell_spec(), mask_kind="right_padded")[0] == "native"
    for kw in (dict(use_peepholes=True), dict(cell_clip=1.0), dict(num_proj=8),
               dict(num_proj=2, proj_clip=1.0), dict(activation="relu")):
        c = L.LSTMCell(8, **kw)
        L.dynamic_rnn(c, x, dtype="float32")
        assert c.last_kernel[0] != "native", kw
        assert "not native" in c.last_kernel[1], kw


@automatic_dispatch
def test_training_plain_cells_run_the_compiled_loop() -> None:
    """With autograd recording (the weights require grad) a plain cell on CPU runs the
    fused kernel, whose hand-written backward beats torch.lstm's; same numbers."""
    from lstmcompat._engine.fused import _extension

    cell = L.LSTMCell(8)
    x = torch.randn(3, 5, 4)
    out, _ = L.dynamic_rnn(cell, x, dtype="float32")
    expected = "fused" if _extension.backend() is not None else "native"
    assert cell.last_kernel[0] == expected
    with torch.no_grad():
        again, _ = L.dynamic_rnn(cell, x, dtype="float32")
    assert cell.last_kernel[0] == "native"
    torch.testing.assert_close(out, again, rtol=1e-5, atol=1e-6)


@automatic_dispatch
@torch.no_grad()
def test_proj_clip_without_projection_still_native() -> None:
    cell = L.LSTMCell(4, proj_clip=0.1)  # TF ignores proj_clip without num_proj
    L.dynamic_rnn(cell, torch.randn(2, 3, 3), dtype="float32")
    assert cell.last_kernel[0] == "native"


def test_lengths_above_time_act_as_time_and_zero_length_batch() -> None:
    cell = _cell()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    a = L.dynamic_rnn(cell, x, sequence_length=[9, 4], dtype="float64")
    b = L.dynamic_rnn(cell, x, dtype="float64")
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    s0 = cell.zero_state(2, "float64")
    out, st = L.dynamic_rnn(cell, x, sequence_length=[0, 0], initial_state=s0)
    assert bool((out == 0).all()) and torch.equal(st.c, s0.c)
    out, st = L.dynamic_rnn(cell, x[:, :0], initial_state=s0)
    assert out.shape == (2, 0, 4) and torch.equal(st.h, s0.h)


def test_array_likes_are_accepted() -> None:
    import numpy as np

    cell = L.LSTMCell(3)
    out, st = L.dynamic_rnn(cell, np.zeros((2, 4, 5), np.float32),
                            sequence_length=np.array([4, 2], np.int32), dtype=np.float32)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 3)


@pytest.mark.parametrize("kw", OPTIONS)
def test_gradcheck_dynamic_rnn(kw) -> None:
    cell = _cell(**kw)
    x = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, cell.output_size, dtype=torch.float64, requires_grad=True)
    params = cell.weights

    def f(x, c0, h0, *ws):
        out, st = _functional(cell, ws, x, L.LSTMStateTuple(c0, h0))
        return out, st.c, st.h

    ws = [p.detach().clone().requires_grad_(True) for p in params]
    assert torch.autograd.gradcheck(f, (x, c0, h0, *ws), eps=1e-6, atol=1e-6)


def _functional(cell, ws, x, s0):
    """Run ``cell`` with the tensors ``ws`` in place of its parameters (for gradcheck)."""
    from torch.func import functional_call

    names = [n for n, p in cell.named_parameters() if any(p is q for q in cell.weights)]
    order = {id(p): n for n, p in cell.named_parameters()}
    mapping = {order[id(p)]: w for p, w in zip(cell.weights, ws, strict=True)}
    assert set(mapping) == set(names)

    class Runner(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = cell

        def forward(self, x, s0):
            return L.dynamic_rnn(self.cell, x, sequence_length=[3, 1], initial_state=s0)

    return functional_call(Runner(), {f"cell.{k}": v for k, v in mapping.items()}, (x, s0))


def test_gradcheck_bidirectional_multi() -> None:
    from torch.func import functional_call

    m = L.MultiRNNCell([_cell(), L.LSTMCell(2, num_proj=3, dtype=torch.float64)])
    bw = _cell(use_peepholes=True, cell_clip=0.5)
    x = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)

    class Bi(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fw, self.bw = m, bw

        def forward(self, x):
            (of, ob), (sf, sb) = L.bidirectional_dynamic_rnn(
                self.fw, self.bw, x, sequence_length=[3, 2], dtype="float64")
            return of, ob, sf[1].c, sb.h

    bi = Bi()
    bi(x)  # build
    names = [n for n, _ in bi.named_parameters()]
    ws = [p.detach().clone().requires_grad_(True) for _, p in bi.named_parameters()]

    def f(x, *ws):
        return functional_call(bi, dict(zip(names, ws, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *ws), eps=1e-6, atol=1e-6)
