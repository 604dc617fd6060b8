"""The TF1 family cells against TensorFlow: ``BasicLSTMCell``, ``LSTMBlockCell``,
``LSTMBlockFusedCell``, ``CudnnCompatibleLSTMCell`` (goldens from
``tools/goldens_tf1_family.py``; the contrib cells rebuilt there on TF's raw ops)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from family_golden_util import GOLDENS, TOL, golden_files, run_case, tf_gradients, tf_weights

import lstmcompat as L

CASES = golden_files()


def _check(res) -> None:
    d, tol = res["data"], TOL[res["cfg"]["dtype"]]
    for k, o in enumerate(res["outs"]):
        np.testing.assert_allclose(o.detach().numpy(), d[f"out_{k}"], rtol=tol, atol=tol,
                                   err_msg=f"output {k}")
    for k, s in enumerate(res["states"]):
        np.testing.assert_allclose(s.detach().numpy(), d[f"st_{k}"], rtol=tol, atol=tol,
                                   err_msg=f"state {k}")
    for (name, want), got in zip(tf_gradients(res), res["grads"], strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=tol * 10, atol=tol * 10,
                                   err_msg=f"gradient {name}")


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_matches_tensorflow(path) -> None:
    res = run_case(path)
    _check(res)
    # inside a Graph: TF's variable names, in TF's creation order
    want = [str(name) for i in range(len(res["cells"])) for name, _, _ in tf_weights(res["data"], i)]
    assert sorted(res["names"]) == sorted(want)
    if res["cfg"]["stack"] is None and res["cfg"]["kind"] != "bidi":
        assert res["names"] == want


def test_golden_set_covers_each_class() -> None:
    classes = {c["cls"] for p in CASES for c in json.loads(str(np.load(p)["config"]))["cells"]}
    assert {"BasicLSTMCell", "LSTMBlockCell", "LSTMBlockFusedCell",
            "CudnnCompatibleLSTMCell"} <= classes
    kinds = {json.loads(str(np.load(p)["config"]))["kind"] for p in CASES}
    assert kinds == {"step", "dynamic", "static", "bidi", "fused"}


@pytest.mark.parametrize("kernel", ["fused", "reference"])
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_forced_kernel_parity(path, kernel, monkeypatch) -> None:
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", kernel)
    res = run_case(path, graph=False)
    _check(res)
    for c in res["cells"]:
        assert c.last_kernel[0] == kernel


def test_clip_cases_run_on_the_fused_kernel(monkeypatch) -> None:
    """The block ops' clip gradient runs on fused's PyTorch loop (the compiled loop
    differentiates clip_by_value); the other block configurations as LSTMCell's."""
    monkeypatch.delenv("LSTMCOMPAT_KERNEL", raising=False)  # the dispatcher's own choice
    clip = L.LSTMBlockCell(3, cell_clip=0.5)
    L.dynamic_rnn(clip, torch.randn(2, 4, 3, requires_grad=True), dtype="float32")
    assert clip.last_kernel[0] == "fused"
    assert "cell_clip_gradient='identity' is not compiled" in clip.last_kernel[1]
    for cell in (L.LSTMBlockCell(3, cell_clip=0.0), L.LSTMBlockCell(3, use_peephole=True),
                 L.BasicLSTMCell(3), L.CudnnCompatibleLSTMCell(3)):
        L.dynamic_rnn(cell, torch.randn(2, 4, 3), dtype="float32")
        assert cell.last_kernel[0] != "reference", cell.last_kernel


def test_block_clip_gradient_is_the_identity() -> None:
    """The op's backward ignores the clip (checked against TF in the goldens above):
    LSTMCell's clip_by_value gradient is zero where it clips, the block cell's is not."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, 3) * 4
    grads = []
    for cell in (L.LSTMCell(4, cell_clip=0.01), L.LSTMBlockCell(4, cell_clip=0.01)):
        cell.build((None, 3))
        with torch.no_grad():
            cell.kernel.copy_(torch.linspace(-2, 2, cell.kernel.numel()).reshape(cell.kernel.shape))
        xx = x.clone().requires_grad_()
        _, st = L.dynamic_rnn(cell, xx, dtype="float32")
        (g,) = torch.autograd.grad(st.c.sum(), xx)
        grads.append(g)
    assert float(grads[0].abs().max()) == 0.0
    assert float(grads[1].abs().max()) > 0.0


# ---------------------------------------------------------------------------- naming

NAMING = json.loads((GOLDENS / "naming.json").read_text())


def _x3():
    return torch.zeros(2, 3, 4)


def _scenarios():
    f32 = "float32"
    B, Blk, Cud, Fused, Multi = (L.BasicLSTMCell, L.LSTMBlockCell, L.CudnnCompatibleLSTMCell,
                                 L.LSTMBlockFusedCell, L.MultiRNNCell)
    sc = {}
    sc["basic_dynamic"] = lambda: L.dynamic_rnn(B(5), _x3(), dtype=f32)

    def basic_twice():
        L.dynamic_rnn(B(5), _x3(), dtype=f32)
        L.dynamic_rnn(B(5), _x3(), dtype=f32)
    sc["basic_twice_new_cell"] = basic_twice
    sc["basic_named"] = lambda: L.dynamic_rnn(B(5, name="enc"), _x3(), dtype=f32)

    def basic_step():
        c = B(3)
        c(torch.zeros(2, 4), c.zero_state(2, f32))
    sc["basic_step"] = basic_step
    sc["basic_multi"] = lambda: L.dynamic_rnn(Multi([B(5), B(3)]), _x3(), dtype=f32)
    sc["basic_bidi"] = lambda: L.bidirectional_dynamic_rnn(B(3), B(2), _x3(), dtype=f32)

    def basic_reuse():
        with L.variable_scope("s"):
            L.dynamic_rnn(B(5), _x3(), dtype=f32)
        with L.variable_scope("s", reuse=True):
            L.dynamic_rnn(B(5), _x3(), dtype=f32)
    sc["basic_reuse_scope"] = basic_reuse

    def basic_no_reuse():
        with L.variable_scope("s"):
            L.dynamic_rnn(B(5), _x3(), dtype=f32)
        with L.variable_scope("s"):
            L.dynamic_rnn(B(5), _x3(), dtype=f32)
    sc["basic_same_scope_no_reuse"] = basic_no_reuse
    sc["block_dynamic"] = lambda: L.dynamic_rnn(Blk(5), _x3(), dtype=f32)
    sc["block_peephole"] = lambda: L.dynamic_rnn(Blk(5, use_peephole=True), _x3(), dtype=f32)

    def block_twice():
        L.dynamic_rnn(Blk(5), _x3(), dtype=f32)
        L.dynamic_rnn(Blk(5), _x3(), dtype=f32)
    sc["block_twice_new_cell"] = block_twice
    sc["block_multi"] = lambda: L.dynamic_rnn(
        Multi([Blk(5, use_peephole=True), Blk(3)]), _x3(), dtype=f32)
    sc["block_bidi"] = lambda: L.bidirectional_dynamic_rnn(
        Blk(3), Blk(2, use_peephole=True), _x3(), dtype=f32)
    sc["block_named"] = lambda: L.dynamic_rnn(Blk(5, name="blk"), _x3(), dtype=f32)

    def block_reuse_flag():
        L.dynamic_rnn(Blk(5), _x3(), dtype=f32)
        L.dynamic_rnn(Blk(5, reuse=True), _x3(), dtype=f32)
    sc["block_reuse_flag"] = block_reuse_flag

    def cudnn_multi():
        with L.variable_scope("cudnn_lstm"):
            L.dynamic_rnn(Multi([Cud(5), Cud(5)]), _x3(), dtype=f32)
    sc["cudnn_multi_scope"] = cudnn_multi
    sc["cudnn_dynamic"] = lambda: L.dynamic_rnn(Cud(4), _x3(), dtype=f32)

    def cudnn_twice():
        L.dynamic_rnn(Cud(4), _x3(), dtype=f32)
        L.dynamic_rnn(Cud(4), _x3(), dtype=f32)
    sc["cudnn_twice_new_cell"] = cudnn_twice
    sc["fused"] = lambda: Fused(5)(torch.zeros(3, 2, 4), dtype=f32)
    sc["fused_peephole"] = lambda: Fused(5, use_peephole=True)(torch.zeros(3, 2, 4), dtype=f32)

    def fused_twice():
        Fused(5)(torch.zeros(3, 2, 4), dtype=f32)
        Fused(5)(torch.zeros(3, 2, 4), dtype=f32)
    sc["fused_twice_new_cell"] = fused_twice

    def fused_same_twice():
        c = Fused(5)
        c(torch.zeros(3, 2, 4), dtype=f32)
        c(torch.zeros(3, 2, 4), dtype=f32)
    sc["fused_same_cell_twice"] = fused_same_twice

    def fused_scoped():
        with L.variable_scope("enc"):
            Fused(5, name="fw")(torch.zeros(3, 2, 4), dtype=f32)
    sc["fused_in_scope"] = fused_scoped

    def fused_reuse():
        with L.variable_scope("enc"):
            Fused(5)(torch.zeros(3, 2, 4), dtype=f32)
        with L.variable_scope("enc", reuse=True):
            Fused(5)(torch.zeros(3, 2, 4), dtype=f32)
    sc["fused_reuse_scope"] = fused_reuse
    return sc


SCENARIOS = _scenarios()


def test_every_recorded_scenario_is_tested() -> None:
    assert set(SCENARIOS) == set(NAMING)


@pytest.mark.parametrize("name", sorted(NAMING))
def test_naming_matches_tensorflow(name) -> None:
    want = NAMING[name]
    with L.Graph() as g:
        if want["error"] is None:
            SCENARIOS[name]()
        else:
            assert want["error"]["type"] == "ValueError"
            with pytest.raises(ValueError, match="already exists"):
                SCENARIOS[name]()
    assert list(g.variables()) == want["names"]


def test_reuse_shares_parameters() -> None:
    with L.Graph():
        a, b = L.LSTMBlockFusedCell(3), L.LSTMBlockFusedCell(3)
        with L.variable_scope("enc"):
            a(torch.zeros(2, 1, 4), dtype="float32")
        with L.variable_scope("enc", reuse=True):
            b(torch.zeros(2, 1, 4), dtype="float32")
    assert a.kernel is b.kernel and a.bias is b.bias
