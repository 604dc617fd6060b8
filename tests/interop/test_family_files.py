"""The TF1 family cells and files: ``restore`` from the Saver checkpoints each writer
produces (``tests/goldens/tf1_family/ckpt_*``, incl. TF <= 1.1 names), ``save``/``load``
round trips and ``to_torch_lstm``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lstmcompat as L

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "tf1_family"
VALUES = np.load(GOLDENS / "checkpoints.npz")


def ckpt(writer: str) -> str:
    return str(GOLDENS / f"ckpt_{writer}" / "model.ckpt")


def _same(param: torch.Tensor, writer: str, name: str) -> None:
    want = VALUES[f"{writer}:{name}"]
    got = param.detach().numpy()
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes(), name  # bit for bit


def _graph_check(g: L.Graph, writer: str, prefix: str = "") -> None:
    for name, p in g.variables().items():
        _same(p, writer, prefix + name)


@pytest.mark.parametrize("writer, build", [
    ("basic", lambda: L.dynamic_rnn(L.BasicLSTMCell(5), torch.zeros(2, 3, 4), dtype="float32")),
    ("block", lambda: L.dynamic_rnn(L.LSTMBlockCell(5, use_peephole=True), torch.zeros(2, 3, 4),
                                    dtype="float32")),
    ("fused", lambda: L.LSTMBlockFusedCell(5, use_peephole=True)(torch.zeros(3, 2, 4),
                                                                  dtype="float32")),
    ("multi_block", lambda: L.dynamic_rnn(L.MultiRNNCell([L.LSTMBlockCell(5), L.LSTMBlockCell(3)]),
                                          torch.zeros(2, 3, 4), dtype="float32")),
])
def test_restore_a_graph_from_each_writer(writer, build) -> None:
    with L.Graph() as g:
        build()
    L.restore(g, ckpt(writer))
    _graph_check(g, writer)


def test_restore_cudnn_lstm_names_into_a_graph_and_a_stack() -> None:
    with L.Graph() as g, L.variable_scope("cudnn_lstm"):
        stack = L.MultiRNNCell([L.CudnnCompatibleLSTMCell(5), L.CudnnCompatibleLSTMCell(5)])
        L.dynamic_rnn(stack, torch.zeros(2, 3, 4), dtype="float32")
    assert list(g.variables())[0] == \
        "cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/kernel"
    L.restore(g, ckpt("cudnn"))
    _graph_check(g, "cudnn")
    # outside a graph: the one MultiRNNCell set of the file
    other = L.MultiRNNCell([L.CudnnCompatibleLSTMCell(5), L.CudnnCompatibleLSTMCell(5)])
    L.restore(other, ckpt("cudnn"))
    pre = "cudnn_lstm/rnn/multi_rnn_cell/cell_1/cudnn_compatible_lstm_cell/"
    _same(other.cells[1].kernel, "cudnn", pre + "kernel")
    _same(other.cells[1].bias, "cudnn", pre + "bias")
    one = L.CudnnCompatibleLSTMCell(5)
    L.restore(one, ckpt("cudnn"), prefix="cudnn_lstm/rnn/multi_rnn_cell/cell_0")
    _same(one.kernel, "cudnn", pre.replace("cell_1", "cell_0") + "kernel")


def test_restore_bidirectional_cudnn_lstm_names() -> None:
    x = torch.zeros(2, 3, 4)
    with L.Graph() as g, L.variable_scope("cudnn_lstm"), \
            L.variable_scope("stack_bidirectional_rnn"):
        for k in range(2):
            with L.variable_scope(f"cell_{k}"):
                (f, b), _ = L.bidirectional_dynamic_rnn(
                    L.CudnnCompatibleLSTMCell(3), L.CudnnCompatibleLSTMCell(3), x,
                    dtype="float32")
                x = torch.cat([f, b], 2)
    L.restore(g, ckpt("cudnn_bidi"))
    _graph_check(g, "cudnn_bidi")
    bw = L.CudnnCompatibleLSTMCell(3)
    prefix = "cudnn_lstm/stack_bidirectional_rnn/cell_1/bidirectional_rnn/bw"
    L.restore(bw, ckpt("cudnn_bidi"), prefix=prefix)
    _same(bw.kernel, "cudnn_bidi", prefix + "/cudnn_compatible_lstm_cell/kernel")


def test_restore_single_cells_skip_optimizer_slots() -> None:
    basic = L.BasicLSTMCell(5)
    L.restore(basic, ckpt("basic"))  # Adam slots, beta powers: not weights
    _same(basic.kernel, "basic", "rnn/basic_lstm_cell/kernel")
    block = L.LSTMBlockCell(5, use_peephole=True)
    L.restore(block, ckpt("block"))
    for n in ("kernel", "bias", "w_i_diag", "w_f_diag", "w_o_diag"):
        _same(getattr(block, n), "block", f"rnn/lstm_cell/{n}")
    fused = L.LSTMBlockFusedCell(5, use_peephole=True)
    L.restore(fused, ckpt("fused"))
    _same(fused.w_f_diag, "fused", "lstm_fused_cell/w_f_diag")
    # a block cell's checkpoint restores into an LSTMCell (same names and layout)
    cell = L.LSTMCell(5, use_peepholes=True)
    L.restore(cell, ckpt("block"))
    _same(cell.w_o_diag, "block", "rnn/lstm_cell/w_o_diag")
    with pytest.raises(ValueError, match="use_peepholes"):
        L.restore(L.LSTMBlockCell(5), ckpt("block"))


TF11 = {"fw": "BiRNN/FW/BasicLSTMCell/Linear/", "bw": "BiRNN/BW/BasicLSTMCell/Linear/",
        "c0": "RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/", "c1": "RNN/MultiRNNCell/Cell1/LSTMCell/"}


def test_restore_tf11_names_into_a_graph() -> None:
    with L.Graph() as g:
        L.bidirectional_dynamic_rnn(L.BasicLSTMCell(3), L.BasicLSTMCell(2), torch.zeros(2, 3, 4),
                                    dtype="float32")
        stack = L.MultiRNNCell([L.BasicLSTMCell(5), L.LSTMCell(4, use_peepholes=True, num_proj=2)])
        L.dynamic_rnn(stack, torch.zeros(2, 3, 4), dtype="float32")
    L.restore(g, ckpt("tf11"))
    v = g.variables()
    _same(v["bidirectional_rnn/fw/basic_lstm_cell/kernel"], "tf11", TF11["fw"] + "Matrix")
    _same(v["bidirectional_rnn/bw/basic_lstm_cell/bias"], "tf11", TF11["bw"] + "Bias")
    _same(v["rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel"], "tf11", TF11["c0"] + "Matrix")
    c1 = "rnn/multi_rnn_cell/cell_1/lstm_cell/"
    for new, old in (("kernel", "W_0"), ("bias", "B"), ("w_f_diag", "W_F_diag"),
                     ("w_i_diag", "W_I_diag"), ("w_o_diag", "W_O_diag"),
                     ("projection/kernel", "W_P_0")):
        _same(v[c1 + new], "tf11", TF11["c1"] + old)


def test_restore_tf11_names_into_modules() -> None:
    stack = L.MultiRNNCell([L.BasicLSTMCell(5), L.LSTMCell(4, use_peepholes=True, num_proj=2)])
    L.restore(stack, ckpt("tf11"))
    _same(stack.cells[0].bias, "tf11", TF11["c0"] + "Bias")
    _same(stack.cells[1].w_i_diag, "tf11", TF11["c1"] + "W_I_diag")
    for prefix in ("bidirectional_rnn/fw/basic_lstm_cell", "BiRNN/FW/BasicLSTMCell"):
        fw = L.BasicLSTMCell(3)
        L.restore(fw, ckpt("tf11"), prefix=prefix)
        _same(fw.kernel, "tf11", TF11["fw"] + "Matrix")


def test_tf10_block_cell_names_are_modernised() -> None:
    from lstmcompat._interop._names import _modernise
    assert _modernise("RNN/LSTMBlockCell/W") == ("rnn/lstm_cell/kernel", 1)
    assert _modernise("RNN/LSTMBlockCell/wci") == ("rnn/lstm_cell/w_i_diag", 1)
    assert _modernise("rnn/lstm_block_wrapper/weights") == ("rnn/lstm_block_wrapper/kernel", 1)
    assert _modernise("scope/W") is None


def _built(cell, depth=3):
    cell.build((None, depth))
    with torch.no_grad():
        for w in cell.weights:
            w.copy_(torch.randn(w.shape))
    return cell


@pytest.mark.parametrize("make", [
    lambda: L.BasicLSTMCell(4, forget_bias=0.2, activation="relu", name="enc"),
    lambda: L.LSTMBlockCell(4, cell_clip=2.0, use_peephole=True, forget_bias=0.5),
    lambda: L.LSTMBlockFusedCell(4, use_peephole=True, cell_clip=-1.0),
    lambda: L.CudnnCompatibleLSTMCell(4),
])
def test_save_load_round_trip(make, tmp_path) -> None:
    cell = _built(make())
    L.save(cell, tmp_path / "c.safetensors")
    again = L.load(tmp_path / "c.safetensors")
    assert type(again) is type(cell) and again.get_config() == cell.get_config()
    assert [w.detach().numpy().tobytes() for w in again.weights] == \
        [w.detach().numpy().tobytes() for w in cell.weights]
    unbuilt = make()
    L.save(unbuilt, tmp_path / "u.safetensors")
    assert not L.load(tmp_path / "u.safetensors").built


def test_save_load_mixed_stack(tmp_path) -> None:
    stack = L.MultiRNNCell([_built(L.BasicLSTMCell(3), 3), _built(L.LSTMBlockCell(3), 3),
                            _built(L.CudnnCompatibleLSTMCell(2), 3)])
    L.save(stack, tmp_path / "s.safetensors")
    again = L.load(tmp_path / "s.safetensors")
    assert [type(c) for c in again.cells] == [type(c) for c in stack.cells]
    x = torch.randn(2, 4, 3)
    a = L.dynamic_rnn(stack, x, dtype="float32")[0]
    b = L.dynamic_rnn(again, x, dtype="float32")[0]
    assert torch.equal(a, b)


def test_to_torch_lstm() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    for cell in (L.BasicLSTMCell(4, forget_bias=0.7), L.CudnnCompatibleLSTMCell(4),
                 L.LSTMBlockCell(4, forget_bias=1.5, cell_clip=0.0)):
        _built(cell)
        out, st = L.dynamic_rnn(cell, x, dtype="float32")
        lstm = L.to_torch_lstm(cell)
        out2, (h, c) = lstm(x)
        torch.testing.assert_close(out2, out)
        torch.testing.assert_close(c[0], st.c)
    with pytest.raises(ValueError, match="peephole"):
        L.to_torch_lstm(_built(L.LSTMBlockCell(4, use_peephole=True)))
    with pytest.raises(ValueError, match="cell_clip"):
        L.to_torch_lstm(_built(L.LSTMBlockCell(4, cell_clip=1.0)))
    with pytest.raises(TypeError):
        L.to_torch_lstm(_built(L.LSTMBlockFusedCell(4)))
