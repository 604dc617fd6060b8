"""``LSTMBlockCell``, ``LSTMBlockFusedCell``, ``CudnnCompatibleLSTMCell``: API, config,
errors and float64 gradients (their numbers against TF: ``test_family_cells.py``)."""

from __future__ import annotations

import pytest
import torch

import lstmcompat as L
from lstmcompat._engine import CellSpec, Weights, run_explained
from lstmcompat._engine.gates import permute
from lstmcompat._engine.reference import clip_cell


def test_block_cell_weights_in_tf_creation_order() -> None:
    cell = L.LSTMBlockCell(4, use_peephole=True)
    assert cell.weights == [] and cell.name == "lstm_cell"
    cell.build((None, 3))
    assert [tuple(w.shape) for w in cell.weights] == [(7, 16), (16,), (4,), (4,), (4,)]
    assert cell.weights[2] is cell.w_i_diag and cell.weights[3] is cell.w_f_diag
    assert torch.equal(cell.bias, torch.zeros(16))
    ws = [torch.randn(tuple(w.shape)).numpy() for w in cell.weights]
    cell.set_weights(ws)
    assert all((a == b).all() for a, b in zip(cell.get_weights(), ws, strict=True))
    with pytest.raises(ValueError):
        cell.set_weights(ws[:2])


@pytest.mark.parametrize("clip, runs", [(None, None), (0.0, None), (-2.0, None), (1.5, 1.5)])
def test_block_cell_clip_only_when_positive(clip, runs) -> None:
    cell = L.LSTMBlockCell(3, cell_clip=clip)
    spec = cell.cell_spec()
    assert spec.cell_clip == runs and spec.cell_clip_gradient == "identity"
    assert cell.get_config()["cell_clip"] == clip
    # LSTMCell's cell_clip=0 clips to zero; the block cell's does not clip
    assert L.LSTMCell(3, cell_clip=0.0).cell_spec().cell_clip == 0.0


def test_state_and_output_sizes_and_zero_state() -> None:
    for cell in (L.LSTMBlockCell(4), L.CudnnCompatibleLSTMCell(4), L.LSTMBlockFusedCell(4)):
        assert cell.state_size == L.LSTMStateTuple(4, 4) and cell.output_size == 4
        z = cell.zero_state(2, "float32")
        assert isinstance(z, L.LSTMStateTuple) and z.c.shape == (2, 4)
    assert L.LSTMBlockFusedCell(4).num_units == 4


def test_configs_round_trip() -> None:
    cfgs = [(L.LSTMBlockCell, dict(num_units=3, forget_bias=0.5, cell_clip=2.0, use_peephole=True,
                                   dtype="float64", reuse=None, name="blk")),
            (L.LSTMBlockFusedCell, dict(num_units=3, forget_bias=0.0, cell_clip=-1.0,
                                        use_peephole=False, reuse=True, dtype=None,
                                        name="lstm_fused_cell")),
            (L.CudnnCompatibleLSTMCell, dict(num_units=5, reuse=None))]
    for cls, cfg in cfgs:
        cell = cls(**cfg)
        assert cell.get_config() == {k: cfg[k] for k in cell.get_config()}
        assert set(cell.get_config()) == set(cfg)
        assert cls.from_config(cell.get_config()).get_config() == cell.get_config()


def test_cudnn_compatible_cell_is_a_block_cell_without_forget_bias() -> None:
    cell = L.CudnnCompatibleLSTMCell(4)
    assert isinstance(cell, L.LSTMBlockCell)
    assert cell.name == "cudnn_compatible_lstm_cell"
    spec = cell.cell_spec()
    assert spec.forget_bias == 0.0 and spec.cell_clip is None and not spec.use_peepholes


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        L.LSTMBlockCell(2.5)
    with pytest.raises(ValueError):
        L.LSTMBlockCell(0)
    with pytest.raises(TypeError):
        L.LSTMBlockCell(3, cell_clip="big")
    with pytest.raises(ValueError):
        L.LSTMBlockFusedCell(3, forget_bias=None)
    with pytest.raises(ValueError, match="state"):
        L.LSTMBlockCell(3)(torch.zeros(2, 4), torch.zeros(2, 6))


def test_fused_call_errors() -> None:
    fused = L.LSTMBlockFusedCell(3)
    with pytest.raises(ValueError, match="Either initial_state or dtype needs to be specified"):
        fused(torch.zeros(4, 2, 5))
    with pytest.raises(ValueError, match="tuple with length 2"):
        fused(torch.zeros(4, 2, 5), initial_state=(torch.zeros(2, 3),) * 3)
    with pytest.raises(ValueError, match="rank 3"):
        fused(torch.zeros(4, 5), dtype="float32")
    for bad in ([5, 1], [-1, 2]):  # TF's gather_nd refuses (its BlockLSTM may abort)
        with pytest.raises(ValueError, match=r"sequence_length"):
            fused(torch.zeros(4, 2, 5), dtype="float32", sequence_length=bad)
    with pytest.raises(ValueError, match="2 lengths"):
        fused(torch.zeros(4, 2, 5), dtype="float32", sequence_length=[1, 2, 3])
    with pytest.raises(TypeError, match="integers"):
        fused(torch.zeros(4, 2, 5), dtype="float32", sequence_length=[1.0, 2.0])


def test_fused_cell_is_not_an_rnn_cell() -> None:
    with pytest.raises(TypeError, match="not an RNNCell"):
        L.dynamic_rnn(L.LSTMBlockFusedCell(3), torch.zeros(2, 3, 4), dtype="float32")


def test_fused_list_inputs_and_lengths() -> None:
    torch.manual_seed(1)
    fused = L.LSTMBlockFusedCell(3, use_peephole=True)
    x = torch.randn(5, 2, 4)
    out, st = fused(x, dtype=torch.float32, sequence_length=[5, 2])
    outs, st2 = fused(list(x.unbind(0)), dtype=torch.float32, sequence_length=[5, 2])
    assert isinstance(outs, list) and len(outs) == 5
    assert torch.equal(torch.stack(outs), out) and torch.equal(st2.h, st.h)
    assert (out[2:, 1] == 0).all() and torch.equal(st.h[1], out[1, 1])
    # the same math as the block cell run by dynamic_rnn (time-major)
    cell = L.LSTMBlockCell(3, use_peephole=True)
    cell.build((None, 4))
    cell.set_weights(fused.get_weights())
    out3, st3 = L.dynamic_rnn(cell, x, sequence_length=[5, 2], dtype="float32", time_major=True)
    torch.testing.assert_close(out3, out)
    torch.testing.assert_close(st3.c, st.c)


def test_clip_identity_gradient_primitive() -> None:
    spec = CellSpec(units=2, cell_clip=0.5, cell_clip_gradient="identity")
    c = torch.tensor([[-2.0, 0.25]], requires_grad=True)
    out = clip_cell(spec, c)
    assert out.tolist() == [[-0.5, 0.25]]
    (g,) = torch.autograd.grad(out.sum(), c)
    assert g.tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError, match="cell_clip_gradient"):
        CellSpec(units=2, cell_clip_gradient="straight")


@pytest.mark.parametrize("peep", [False, True])
def test_float64_gradcheck_on_the_reference_kernel(peep) -> None:
    torch.manual_seed(3)
    cell = L.LSTMBlockCell(3, use_peephole=peep, cell_clip=50.0, forget_bias=0.3, dtype="float64")
    cell.build((None, 2))
    spec = cell.cell_spec()
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True], [True, True], [True, False], [True, False]])
    params = [w.detach().clone().requires_grad_() for w in cell.weights]

    def f(x, h0, c0, *ps):
        kernel, bias = ps[0], ps[1]
        peeps = dict(zip(("w_i", "w_f", "w_o"), ps[2:], strict=False))
        w = Weights(W=kernel[:2], R=kernel[2:], b=bias, **peeps)
        w = w._replace(W=permute(w.W, "tf1", "canonical", dim=-1),
                       R=permute(w.R, "tf1", "canonical", dim=-1),
                       b=permute(w.b, "tf1", "canonical", dim=-1))
        out, h, c, kernel_used = run_explained(spec, x, w, h0, c0, mask=mask, kernel="reference")
        return out, h, c

    assert torch.autograd.gradcheck(f, (x, h0, c0, *params))


@pytest.mark.parametrize("kernel", ["reference", "fused"])
def test_fused_cell_float64_gradcheck_with_lengths(kernel, monkeypatch) -> None:
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", kernel)
    torch.manual_seed(4)
    fused = L.LSTMBlockFusedCell(3, use_peephole=True, forget_bias=0.2, dtype="float64")
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)

    def f(x, c0, h0):
        out, st = fused(x, initial_state=(c0, h0), sequence_length=[4, 0, 2])
        return out, st.c, st.h

    assert torch.autograd.gradcheck(f, (x, c0, h0))
    assert fused.last_kernel[0] == kernel
    out, c, _ = f(x, c0, h0)
    assert torch.equal(c[1], c0[1]) and (out[:, 1] == 0).all()
