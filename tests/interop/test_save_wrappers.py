"""Files of wrapped cells: ``save``/``load`` round trips of ``DropoutWrapper``,
``ResidualWrapper``, ``DeviceWrapper`` (the wrapped cell's names), and ``restore`` of TF
checkpoints into wrapped cells (a wrapper adds no scope)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmcompat as L
from lstmcompat._interop._safetensors import SafetensorsFile

RESTORE = Path(__file__).parents[1] / "goldens" / "restore"
CASES = json.loads((RESTORE / "expected.json").read_text())


def _run(module, x):
    out, st = L.dynamic_rnn(module, x, sequence_length=[4, 2], dtype=torch.float32)
    return out, st


@pytest.mark.parametrize("make", [
    lambda: L.DropoutWrapper(L.LSTMCell(3, use_peepholes=True), input_keep_prob=0.7,
                             output_keep_prob=0.5, state_keep_prob=0.9,
                             variational_recurrent=True, input_size=3, dtype="float32", seed=4),
    lambda: L.ResidualWrapper(L.DeviceWrapper(L.LSTMCell(3), "/cpu:0")),
    lambda: L.MultiRNNCell([L.DropoutWrapper(L.LSTMCell(4)),
                            L.ResidualWrapper(L.LSTMCell(4, num_proj=4))]),
])
def test_save_load_round_trip(make, tmp_path):
    module = make()
    x = torch.randn(2, 4, 3)
    _run(module, x)
    module.eval()
    L.save(module, tmp_path / "m.safetensors")
    back = L.load(tmp_path / "m.safetensors").eval()
    assert type(back) is type(module)
    a, sa = _run(module, x)
    b, sb = _run(back, x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    for w1, w2 in zip(module.weights, back.weights):
        assert torch.equal(w1, w2)


def test_wrapper_config_and_names(tmp_path):
    inner = L.LSTMCell(3, use_peepholes=True)
    wrapped = L.DropoutWrapper(inner, output_keep_prob=0.5, seed=1)
    L.dynamic_rnn(wrapped, torch.zeros(1, 2, 5), dtype=torch.float32)
    L.save(wrapped, tmp_path / "w.safetensors")
    L.save(inner, tmp_path / "c.safetensors")
    names = lambda p: sorted(n for n, _ in SafetensorsFile(p).variables())  # noqa: E731
    assert names(tmp_path / "w.safetensors") == names(tmp_path / "c.safetensors")
    back = L.load(tmp_path / "w.safetensors")
    assert back.output_keep_prob == 0.5 and back._seed == 1 and back.training
    assert L.load(tmp_path / "w.safetensors").cell.get_config() == inner.get_config()


def test_unsavable_callables(tmp_path):
    with pytest.raises(ValueError, match="residual_fn"):
        L.save(L.ResidualWrapper(L.LSTMCell(2), residual_fn=lambda i, o: o), tmp_path / "r")
    with pytest.raises(ValueError, match="dropout_state_filter_visitor"):
        L.save(L.DropoutWrapper(L.LSTMCell(2), dropout_state_filter_visitor=lambda s: True),
               tmp_path / "d")


def _check(case, out, st):
    want = case["outputs"]
    got = [out, st.c, st.h] if hasattr(st, "c") else [out] + [t for s in st for t in s]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.detach().numpy(), np.array(w, np.float32), rtol=2e-6,
                                   atol=2e-6)


def test_restore_a_tf_checkpoint_into_wrapped_cells():
    case = CASES["tf1_multi"]
    desc = case["modules"][0]
    cells = [L.LSTMCell(**kw) for kw in desc["cells"]]
    module = L.MultiRNNCell([L.DropoutWrapper(cells[0]), L.DeviceWrapper(cells[1], "cpu")])
    assert L.restore(module, RESTORE / "tf1_multi", prefix=desc["prefix"]) is module
    x = torch.tensor(case["inputs"])
    lens = torch.tensor(case["lengths"]) if "lengths" in case else None
    out, st = L.dynamic_rnn(module, x, sequence_length=lens, dtype="float32")
    _check(case, out, st)
    # one wrapped cell, by the checkpoint's names
    case = CASES["tf1_cell"]
    desc = case["modules"][0]
    cell = L.ResidualWrapper(L.DropoutWrapper(L.LSTMCell(**desc["kwargs"])))
    L.restore(cell, RESTORE / "tf1_cell", prefix=desc.get("prefix"))
    assert cell.cell.cell.built


def test_restore_rejects_a_wrapped_user_cell():
    class Mine(L.RNNCell):
        state_size = 2
        output_size = 2

    with pytest.raises(TypeError, match="`module`"):
        L.restore(L.DropoutWrapper(Mine()), RESTORE / "tf1_cell")
