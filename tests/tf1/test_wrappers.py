"""``DropoutWrapper``, ``ResidualWrapper``, ``DeviceWrapper``: TF's errors, dropout statistics
(scale, fraction dropped, ``c`` never dropped, variational masks, eval mode), the engine
path kept where the math allows, device placement. Outputs, states, gradients and names
against TF are in test_user_cells.py (the wrapper goldens share its cases)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from wrappers_golden_util import GOLDENS

import lstmcompat as L

ERRORS = json.loads((GOLDENS / "errors.json").read_text())


class Echo(L.RNNCell):
    """Outputs its inputs; its state ``(c, h)`` becomes the inputs too."""

    def __init__(self, depth):
        super().__init__()
        self.depth = depth

    @property
    def state_size(self):
        return L.LSTMStateTuple(self.depth, self.depth)

    @property
    def output_size(self):
        return self.depth

    def call(self, inputs, state):
        return inputs, L.LSTMStateTuple(inputs, inputs)


def _tf_error(name):
    e = ERRORS[name]
    return {"ValueError": ValueError, "TypeError": TypeError}[e["type"]], e["message"]


@pytest.mark.parametrize("name, kwargs", [
    ("keep_above_1", {"input_keep_prob": 1.5}),
    ("keep_negative", {"output_keep_prob": -0.1}),
    ("state_keep_above_1", {"state_keep_prob": 2}),
    ("variational_no_dtype", {"output_keep_prob": 0.5, "variational_recurrent": True}),
    ("variational_no_input_size", {"input_keep_prob": 0.5, "variational_recurrent": True,
                                   "dtype": torch.float32}),
    ("filter_not_callable", {"dropout_state_filter_visitor": 3}),
])
def test_dropout_argument_errors_are_tfs(name, kwargs):
    exc, message = _tf_error(name)
    with pytest.raises(exc, match=re.escape(message)):
        L.DropoutWrapper(L.LSTMCell(4), **kwargs)


def test_keep_prob_zero_raises_value_error_naming_it():
    exc, message = _tf_error("keep_zero_run")  # TF: when the cell runs
    with pytest.raises(exc, match=re.escape(message) + ".*output_keep_prob"):
        L.DropoutWrapper(L.LSTMCell(4), output_keep_prob=0.0)
    with pytest.raises(ValueError, match="input_keep_prob"):
        L.DropoutWrapper(L.LSTMCell(4), input_keep_prob=float("nan"))
    with pytest.raises(TypeError, match="input_keep_prob"):
        L.DropoutWrapper(L.LSTMCell(4), input_keep_prob="0.5")


def test_tensor_keep_prob_is_read_at_each_call():
    keep = torch.tensor(1.0)
    cell = L.DropoutWrapper(Echo(3), input_keep_prob=keep)
    x = torch.ones(50, 4, 3)
    out, _ = L.dynamic_rnn(cell, x, dtype=torch.float32)
    torch.testing.assert_close(out, x)
    keep.fill_(0.25)
    out, _ = L.dynamic_rnn(cell, x, dtype=torch.float32)
    assert set(out.unique().tolist()) == {0.0, 4.0}
    keep.fill_(0.0)
    with pytest.raises(ValueError, match="input_keep_prob"):
        L.dynamic_rnn(cell, x, dtype=torch.float32)


def test_keep_probabilities_are_kept_as_tf_keeps_them():
    cell = L.DropoutWrapper(L.LSTMCell(2), input_keep_prob=0.7, output_keep_prob=1)
    assert cell.input_keep_prob == float(np.float32(0.7))
    assert cell.output_keep_prob == 1.0 and isinstance(cell.output_keep_prob, float)


def test_residual_shape_mismatch_is_tfs():
    exc, message = _tf_error("residual_mismatch")
    with pytest.raises(exc, match=re.escape(message)):
        L.dynamic_rnn(L.ResidualWrapper(L.LSTMCell(4)), torch.zeros(3, 5, 3),
                      dtype=torch.float32)
    with pytest.raises(exc, match=re.escape(message)):
        L.ResidualWrapper(L.LSTMCell(4))(torch.zeros(3, 3), L.LSTMCell(4).zero_state(3, "float32"))


# -- dropout statistics -----------------------------------------------------------------

@pytest.mark.parametrize("step_path", [False, True])
@pytest.mark.parametrize("keep", [0.3, 0.8])
def test_input_dropout_scale_and_fraction(keep, step_path):
    torch.manual_seed(1)
    # state dropout of a leaf the filter skips keeps the fast path; dropping h forces steps
    kw = {"state_keep_prob": 0.5} if step_path else {}
    cell = L.DropoutWrapper(Echo(8), input_keep_prob=keep, **kw)
    x = torch.full((400, 10, 8), 2.0)
    out, _ = L.dynamic_rnn(cell, x, dtype=torch.float32)
    kept = out != 0
    assert abs(kept.float().mean().item() - keep) < 0.01
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 2.0 / keep))
    assert abs(out.mean().item() - 2.0) < 0.05  # mean preserved


def test_output_dropout_scales_the_undropped_run():
    torch.manual_seed(2)
    inner = L.LSTMCell(16)
    x = torch.randn(300, 6, 5)
    ref, ref_st = L.dynamic_rnn(inner, x, sequence_length=[6, 3, 0] * 100, dtype=torch.float32)
    out, st = L.dynamic_rnn(L.DropoutWrapper(inner, output_keep_prob=0.6), x,
                            sequence_length=[6, 3, 0] * 100, dtype=torch.float32)
    valid = ref != 0
    kept = (out != 0) & valid
    assert abs(kept.sum().item() / valid.sum().item() - 0.6) < 0.01
    torch.testing.assert_close(out[kept], ref[kept] * (1 / 0.6))
    assert bool((out[~valid] == 0).all())  # past each length: zeros
    torch.testing.assert_close(st.h, ref_st.h)  # the state is not the output
    torch.testing.assert_close(st.c, ref_st.c)


def test_state_dropout_never_touches_c():
    torch.manual_seed(3)
    x = torch.full((500, 3, 6), 1.5)
    cell = L.DropoutWrapper(Echo(6), state_keep_prob=0.5)
    _, st = L.dynamic_rnn(cell, x, dtype=torch.float32)
    torch.testing.assert_close(st.c, x[:, -1])
    assert abs((st.h == 0).float().mean().item() - 0.5) < 0.02
    assert set(st.h.unique().tolist()) == {0.0, 3.0}
    # an LSTMCell step: c as without the wrapper, h dropped
    inner = L.LSTMCell(32)
    s0 = inner.zero_state(200, torch.float32)
    xs = torch.randn(200, 4)
    _, ref = inner(xs, s0)
    _, new = L.DropoutWrapper(inner, state_keep_prob=0.5)(xs, s0)
    torch.testing.assert_close(new.c, ref.c)
    assert abs((new.h == 0).float().mean().item() - 0.5) < 0.02


def test_state_filter_visitor():
    x = torch.full((300, 2, 4), 1.0)
    keep_c = L.DropoutWrapper(Echo(4), state_keep_prob=0.5,
                              dropout_state_filter_visitor=lambda s: L.LSTMStateTuple(True, False)
                              if isinstance(s, L.LSTMStateTuple) else True)
    _, st = L.dynamic_rnn(keep_c, x, dtype=torch.float32)
    torch.testing.assert_close(st.h, x[:, -1])
    assert 0.4 < (st.c == 0).float().mean().item() < 0.6
    none = L.DropoutWrapper(Echo(4), state_keep_prob=0.5,
                            dropout_state_filter_visitor=lambda s: False)
    _, st = L.dynamic_rnn(none, x, dtype=torch.float32)
    torch.testing.assert_close(st.h, x[:, -1])
    bad = L.DropoutWrapper(Echo(4), state_keep_prob=0.5,
                           dropout_state_filter_visitor=lambda s: 1)
    with pytest.raises(TypeError, match="non-bool scalar"):
        L.dynamic_rnn(bad, x, dtype=torch.float32)


def test_variational_masks_are_one_per_sequence():
    torch.manual_seed(4)
    cell = L.DropoutWrapper(Echo(64), input_keep_prob=0.5, state_keep_prob=0.5,
                            variational_recurrent=True, input_size=64, dtype=torch.float32)
    x = torch.ones(5, 7, 64)
    out, st = L.dynamic_rnn(cell, x, dtype=torch.float32)
    pattern = out[0, 0] != 0
    # TF's noise is (1, size): the same mask at every step and for every batch row
    assert bool(((out != 0) == pattern).all())
    assert 0.3 < pattern.float().mean().item() < 0.7
    torch.testing.assert_close(out[0, 0][pattern], torch.full((int(pattern.sum()),), 2.0))
    out2, _ = L.dynamic_rnn(cell, x, dtype=torch.float32)
    assert not bool(((out2[0, 0] != 0) == pattern).all())  # a new sequence, a new mask
    # direct steps keep the current mask
    s = cell.zero_state(5, torch.float32)
    o1, s = cell(x[:, 0], s)
    o2, s = cell(x[:, 1], s)
    torch.testing.assert_close(o1, o2)
    torch.testing.assert_close(o1, out2[:, 0])


def test_variational_output_mask_with_an_lstm_and_lengths():
    torch.manual_seed(5)
    inner = L.LSTMCell(40)
    x = torch.randn(6, 5, 3)
    lengths = [5, 2, 0, 1, 4, 3]
    ref, _ = L.dynamic_rnn(inner, x, sequence_length=lengths, dtype=torch.float32)
    cell = L.DropoutWrapper(inner, output_keep_prob=0.5, variational_recurrent=True,
                            dtype=torch.float32)
    out, _ = L.dynamic_rnn(cell, x, sequence_length=lengths, dtype=torch.float32)
    mask = (out[0, 0] != 0).float()
    torch.testing.assert_close(out, ref / 0.5 * mask)


def test_variational_input_size_must_match_the_inputs():
    cell = L.DropoutWrapper(L.LSTMCell(2), input_keep_prob=0.5, variational_recurrent=True,
                            input_size=4, dtype=torch.float32)
    with pytest.raises(ValueError, match="`input_size`=4"):
        L.dynamic_rnn(cell, torch.zeros(2, 3, 5), dtype=torch.float32)


def test_seeded_wrappers_repeat_their_masks():
    x = torch.ones(8, 4, 16)
    a = L.DropoutWrapper(Echo(16), input_keep_prob=0.5, seed=7)
    b = L.DropoutWrapper(Echo(16), input_keep_prob=0.5, seed=7)
    oa, _ = L.dynamic_rnn(a, x, dtype=torch.float32)
    ob, _ = L.dynamic_rnn(b, x, dtype=torch.float32)
    torch.testing.assert_close(oa, ob)


def test_eval_mode_is_the_identity():
    inner = L.LSTMCell(5)
    x = torch.randn(3, 4, 2)
    ref, ref_st = L.dynamic_rnn(inner, x, sequence_length=[4, 1, 0], dtype=torch.float32)
    cell = L.DropoutWrapper(inner, input_keep_prob=0.5, output_keep_prob=0.5,
                            state_keep_prob=0.5)
    cell.eval()
    out, st = L.dynamic_rnn(cell, x, sequence_length=[4, 1, 0], dtype=torch.float32)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(st.h, ref_st.h)
    stack = L.MultiRNNCell([L.DropoutWrapper(L.LSTMCell(3), output_keep_prob=0.1)])
    stack.eval()  # propagates to the wrappers, as any torch module
    a, _ = L.dynamic_rnn(stack, x, dtype=torch.float32)
    b, _ = L.dynamic_rnn(stack, x, dtype=torch.float32)
    torch.testing.assert_close(a, b)


# -- the engine path is kept ---------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda c: L.DropoutWrapper(c),
    lambda c: L.DropoutWrapper(c, input_keep_prob=0.5, output_keep_prob=0.5),
    lambda c: L.DropoutWrapper(c, input_keep_prob=0.5, variational_recurrent=True,
                               input_size=3, dtype=torch.float32),
    lambda c: L.DropoutWrapper(c, state_keep_prob=0.5).eval(),
    lambda c: L.ResidualWrapper(c),
    lambda c: L.ResidualWrapper(c, residual_fn=lambda i, o: o * i),
    lambda c: L.DeviceWrapper(c, "/cpu:0"),
    lambda c: L.MultiRNNCell([L.DeviceWrapper(L.ResidualWrapper(c), "cpu")]),
])
def test_wrapped_lstmcompat_cells_run_one_engine_call(make, monkeypatch):
    cell = make(L.LSTMCell(3))

    def no_steps(*a, **k):
        raise AssertionError("stepped")

    monkeypatch.setattr(L.RNNCell, "_step", no_steps)
    out, _ = L.dynamic_rnn(cell, torch.randn(2, 5, 3), sequence_length=[5, 2],
                           dtype=torch.float32)
    assert out.shape == (2, 5, 3)


def test_state_dropout_runs_step_by_step_with_the_same_numbers_when_keep_is_a_tensor_of_1():
    inner = L.LSTMCell(4)
    x = torch.randn(3, 5, 2)
    ref, ref_st = L.dynamic_rnn(inner, x, sequence_length=[5, 3, 0], dtype=torch.float32)
    out, st = L.dynamic_rnn(L.DropoutWrapper(inner, state_keep_prob=torch.tensor(1.0)), x,
                            sequence_length=[5, 3, 0], dtype=torch.float32)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(st.c, ref_st.c)
    torch.testing.assert_close(st.h, ref_st.h)


# -- wrappers as cells ----------------------------------------------------------------------

def test_wrappers_expose_the_wrapped_cell():
    inner = L.LSTMCell(3, num_proj=2)
    for w in (L.DropoutWrapper(inner), L.ResidualWrapper(inner), L.DeviceWrapper(inner, "cpu")):
        assert w.cell is inner and w.wrapped_cell is inner
        assert w.state_size == inner.state_size and w.output_size == 2
        z = w.zero_state(4, torch.float64)
        assert z.c.shape == (4, 3) and z.h.dtype == torch.float64
    L.dynamic_rnn(L.DropoutWrapper(inner), torch.zeros(1, 2, 5), dtype=torch.float32)
    assert L.DropoutWrapper(inner).weights == inner.weights and len(inner.weights) == 3


def test_residual_step_and_custom_fn():
    inner = L.LSTMCell(3)
    x = torch.randn(2, 3)
    s0 = inner.zero_state(2, torch.float32)
    out, st = L.ResidualWrapper(inner)(x, s0)
    ref, ref_st = inner(x, s0)
    torch.testing.assert_close(out, ref + x)
    torch.testing.assert_close(st.h, ref_st.h)
    out, _ = L.ResidualWrapper(inner, residual_fn=lambda i, o: (i, o))(x, s0)
    assert isinstance(out, tuple)
    with pytest.raises(TypeError, match="residual_fn"):
        L.ResidualWrapper(inner, residual_fn=3)


def test_residual_outputs_past_a_length_are_zeros():
    cell = L.ResidualWrapper(L.LSTMCell(3))
    x = torch.randn(2, 4, 3) + 5
    out, _ = L.dynamic_rnn(cell, x, sequence_length=[4, 1], dtype=torch.float32)
    assert bool((out[1, 1:] == 0).all()) and bool((out[0] != 0).all())


@pytest.mark.parametrize("spec, expected", [
    ("/cpu:0", "cpu"), ("/device:CPU:0", "cpu"), ("/gpu:1", "cuda:1"), ("/device:GPU:0", "cuda:0"),
    ("/job:localhost/replica:0/task:0/device:GPU:2", "cuda:2"), ("GPU:3", "cuda:3"),
    ("cuda:1", "cuda:1"), ("cpu", "cpu"), (torch.device("meta"), "meta"),
])
def test_device_strings(spec, expected):
    assert L.DeviceWrapper(L.LSTMCell(2), spec).device == torch.device(expected)


def test_device_errors():
    with pytest.raises(TypeError, match="`device`"):
        L.DeviceWrapper(L.LSTMCell(2), lambda op: "/cpu:0")
    with pytest.raises(ValueError, match="`device`"):
        L.DeviceWrapper(L.LSTMCell(2), "/tpu:x")


def test_device_wrapper_runs_on_its_device():
    inner = L.LSTMCell(3)
    cell = L.DeviceWrapper(inner, "cpu")
    x = torch.randn(2, 4, 5)
    out, st = L.dynamic_rnn(cell, x, dtype=torch.float32)
    ref, _ = L.dynamic_rnn(inner, x, dtype=torch.float32)
    torch.testing.assert_close(out, ref)
    assert cell.zero_state(2, "float32").c.device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_wrapper_moves_weights_inputs_and_states_to_the_gpu():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 5)
    with L.Graph() as g:
        inner = L.LSTMCell(3)
        out, st = L.dynamic_rnn(L.DeviceWrapper(inner, "/gpu:0"), x, sequence_length=[4, 2],
                                dtype=torch.float32)
    assert out.device.type == "cuda" and st.c.device.type == "cuda"
    assert all(v.device.type == "cuda" for v in g.variables().values())
    inner.cpu()
    ref, ref_st = L.dynamic_rnn(inner, x, sequence_length=[4, 2], dtype=torch.float32)
    torch.testing.assert_close(out.cpu(), ref)
    torch.testing.assert_close(st.c.cpu(), ref_st.c)
    stack = L.MultiRNNCell([L.DeviceWrapper(L.LSTMCell(3), "cpu"),
                            L.DeviceWrapper(L.LSTMCell(3), "/gpu:0")])
    out, st = L.dynamic_rnn(stack, x, dtype=torch.float32)
    assert st[0].h.device.type == "cpu" and st[1].h.device.type == "cuda"


@pytest.mark.parametrize("variational", [False, True])
def test_active_dropout_in_every_runner_keeps_tfs_length_rule(variational):
    torch.manual_seed(6)

    def make(depth=3):
        return L.DropoutWrapper(L.LSTMCell(8), input_keep_prob=0.7, state_keep_prob=0.7,
                                output_keep_prob=0.7, variational_recurrent=variational,
                                input_size=depth, dtype=torch.float32)

    x = torch.randn(3, 5, 3, requires_grad=True)
    lengths = [5, 2, 0]
    outs, st = L.static_rnn(make(), list(x.unbind(1)), sequence_length=lengths,
                            dtype=torch.float32)
    assert bool((outs[3][1] == 0).all()) and bool((outs[0][2] == 0).all())
    assert bool((st.c[2] == 0).all())  # length 0: the initial (zero) state
    (of, ob), (sf, sb) = L.bidirectional_dynamic_rnn(make(), make(), x, sequence_length=lengths,
                                                     dtype=torch.float32)
    assert bool((ob[1, 2:] == 0).all()) and bool((of[2] == 0).all())
    stack = L.MultiRNNCell([make(), L.ResidualWrapper(make(8))])
    out, states = L.dynamic_rnn(stack, x, sequence_length=lengths, dtype=torch.float32)
    assert bool((out[1, 2:] == 0).all())
    (out.sum() + of.sum()).backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
