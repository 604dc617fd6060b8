"""``export_onnx``: every configuration in onnxruntime against the module (1e-5), in both
forms (a single ``LSTM`` node where exact, the ``Scan`` loop always)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmcompat as L

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

G = torch.Generator().manual_seed(0)
X = torch.randn(3, 7, 4, generator=G)
MASK = torch.ones(3, 7, dtype=torch.bool)
MASK[1, 5:] = False
MASK[2, 2] = False
LENGTHS = torch.tensor([7, 0, 2])


def _run(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in feeds.items()})


def _close(got, want, tol=1e-5):
    """Within ``tol`` of the module, relative to each output's magnitude (a relu
    cell's values grow into the thousands, where float32 rounding is ~1e-4)."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        w = w.detach().numpy()
        assert g.shape == w.shape
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale)


KERAS = {
    "default": dict(return_sequences=True),
    "last_output": dict(),
    "state_backwards": dict(return_state=True, go_backwards=True),
    "sigmoid": dict(recurrent_activation="sigmoid", return_sequences=True),
    "relu_linear": dict(activation="relu", recurrent_activation="linear", return_sequences=True),
    "keras3_hard_sigmoid": dict(recurrent_activation="keras3_hard_sigmoid", return_state=True),
    "softsign": dict(activation="softsign", return_sequences=True),
    "selu_exponential": dict(activation="selu", recurrent_activation="sigmoid",
                             return_sequences=True),
    "time_major": dict(time_major=True, return_sequences=True, return_state=True),
}


@pytest.mark.parametrize("form", ["auto", "loop"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name", sorted(KERAS))
def test_keras_lstm(tmp_path, name, masked, form):
    kw = KERAS[name]
    layer = L.LSTM(5, input_shape=(None, 4), **kw)
    x = X.transpose(0, 1) if kw.get("time_major") else X
    m = (MASK.t() if kw.get("time_major") else MASK) if masked else None
    rep = L.export_onnx(layer, tmp_path / "m.onnx", x, mask=masked, form=form)
    onnx.checker.check_model(str(tmp_path / "m.onnx"))
    exact_node = not masked and name not in ("selu_exponential",)
    assert rep.layers[0][0] == ("node" if form == "auto" and exact_node else "loop")
    with torch.no_grad():
        want = layer(x, mask=m)
    want = want if isinstance(want, list) else [want]
    got = _run(rep.path, {"x": x} | ({"mask": m} if masked else {}))
    _close(got, want)


def test_keras_initial_state_and_other_sizes(tmp_path):
    layer = L.LSTM(5, input_shape=(None, 4), return_state=True, return_sequences=True)
    rep = L.export_onnx(layer, tmp_path / "m.onnx", X, initial_state=True, mask=True)
    assert rep.inputs == ["x", "mask", "h0", "c0"]
    for B, T in [(3, 7), (1, 1), (6, 12)]:
        x = torch.randn(B, T, 4, generator=G)
        m = torch.rand(B, T, generator=G) < 0.7
        h0, c0 = torch.randn(B, 5, generator=G), torch.randn(B, 5, generator=G)
        with torch.no_grad():
            want = layer(x, mask=m, initial_state=[h0, c0])
        _close(_run(rep.path, {"x": x, "mask": m, "h0": h0, "c0": c0}), want)


CELLS = {
    "plain": lambda: L.LSTMCell(5),
    "peepholes_forget_bias": lambda: L.LSTMCell(5, use_peepholes=True, forget_bias=0.3),
    "clip_proj": lambda: L.LSTMCell(5, use_peepholes=True, cell_clip=0.5, num_proj=3,
                                    proj_clip=0.4),
    "negative_clip": lambda: L.LSTMCell(4, cell_clip=-0.5),
    "multi": lambda: L.MultiRNNCell([L.LSTMCell(5), L.LSTMCell(4, num_proj=2)]),
    "relu": lambda: L.LSTMCell(5, activation="relu"),
    "basic": lambda: L.BasicLSTMCell(5, forget_bias=0.7),
    "block_clip_peephole": lambda: L.LSTMBlockCell(5, cell_clip=0.3, use_peephole=True),
    "cudnn_compatible": lambda: L.CudnnCompatibleLSTMCell(5),
    "mixed_multi": lambda: L.MultiRNNCell([L.BasicLSTMCell(4), L.LSTMBlockCell(3)]),
    "wrapped": lambda: L.MultiRNNCell([
        L.DeviceWrapper(L.LSTMCell(4), "cpu"),
        L.ResidualWrapper(L.DropoutWrapper(L.LSTMCell(4), output_keep_prob=0.5).eval()),
        L.ResidualWrapper(L.LSTMCell(4, num_proj=4, cell_clip=0.5))]),
}


@pytest.mark.parametrize("form", ["auto", "loop"])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_cells_with_dynamic_rnn_semantics(tmp_path, name, lengths, time_major, form):
    cell = CELLS[name]()
    x = X.transpose(0, 1) if time_major else X
    sl = LENGTHS if lengths else None
    with torch.no_grad():
        out, state = L.dynamic_rnn(cell, x, sequence_length=sl, dtype=torch.float32,
                                   time_major=time_major)
    rep = L.export_onnx(cell, tmp_path / "c.onnx", x, sequence_length=lengths,
                        time_major=time_major, form=form)
    states = state if isinstance(cell, L.MultiRNNCell) else (state,)
    want = [out] + [t for s in states for t in (s.c, s.h)]
    got = _run(rep.path, {"x": x} | ({"sequence_length": sl} if lengths else {}))
    _close(got, want)
    kinds = {k for k, _ in rep.layers}
    if form == "loop" or name in ("clip_proj", "negative_clip", "block_clip_peephole"):
        assert kinds == {"loop"}


def test_cell_initial_state_and_names(tmp_path):
    cell = L.MultiRNNCell([L.LSTMCell(5), L.LSTMCell(3)])
    with torch.no_grad():
        L.dynamic_rnn(cell, X, dtype=torch.float32)
    rep = L.export_onnx(cell, tmp_path / "c.onnx", X, sequence_length=True, initial_state=True)
    assert rep.inputs == ["x", "sequence_length", "c0_0", "h0_0", "c0_1", "h0_1"]
    assert rep.outputs == ["outputs", "c_0", "h_0", "c_1", "h_1"]
    init = tuple(L.LSTMStateTuple(torch.randn(3, n, generator=G), torch.randn(3, n, generator=G))
                 for n in (5, 3))
    with torch.no_grad():
        out, st = L.dynamic_rnn(cell, X, sequence_length=LENGTHS, initial_state=init)
    feeds = {"x": X, "sequence_length": LENGTHS, "c0_0": init[0].c, "h0_0": init[0].h,
             "c0_1": init[1].c, "h0_1": init[1].h}
    _close(_run(rep.path, feeds), [out, st[0].c, st[0].h, st[1].c, st[1].h])


def test_errors(tmp_path):
    layer = L.LSTM(3, input_shape=(None, 4), activation=lambda z: z * 0.5)
    with pytest.raises(ValueError, match="has no ONNX export"):
        L.export_onnx(layer, tmp_path / "a.onnx", X)
    with pytest.raises(ValueError, match="`form='node'` cannot export this layer exactly: a Keras mask"):
        L.export_onnx(L.LSTM(3, input_shape=(None, 4)), tmp_path / "a.onnx", X, mask=True,
                      form="node")
    with pytest.raises(ValueError, match="not built yet"):
        L.export_onnx(L.LSTMCell(3), tmp_path / "a.onnx", X)
    with pytest.raises(ValueError, match="`sequence_length` is for TF1 cells"):
        L.export_onnx(L.LSTM(3, input_shape=(None, 4)), tmp_path / "a.onnx", X,
                      sequence_length=True)
    with pytest.raises(ValueError, match="`example_input` has 5 features"):
        L.export_onnx(L.LSTM(3, input_shape=(None, 4)), tmp_path / "a.onnx",
                      torch.randn(2, 3, 5))
    with pytest.raises(TypeError, match="export_onnx exports lstmcompat LSTM cells"):
        L.export_onnx(torch.nn.Linear(2, 2), tmp_path / "a.onnx", X)
    with pytest.raises(ValueError, match="`opset` must be at least 14"):
        L.export_onnx(L.LSTM(3, input_shape=(None, 4)), tmp_path / "a.onnx", X, opset=9)


def test_a_stateful_layer_takes_and_gives_its_state(tmp_path):
    layer = L.LSTM(5, stateful=True, batch_input_shape=(3, 1, 4))
    rep = L.export_onnx(layer, tmp_path / "s.onnx", X[:, :1])
    assert rep.inputs == ["x", "h0", "c0"] and rep.outputs == ["output", "h", "c"]
    h, c = torch.zeros(3, 5), torch.zeros(3, 5)
    for t in range(4):
        with torch.no_grad():
            want = layer(X[:, t:t + 1])
        out, h_new, c_new = _run(rep.path, {"x": X[:, t:t + 1], "h0": h, "c0": c})
        np.testing.assert_allclose(out, want.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(h_new, layer.states[0].numpy(), rtol=1e-5, atol=1e-5)
        h, c = torch.from_numpy(h_new), torch.from_numpy(c_new)


@pytest.mark.parametrize("form", ["auto", "loop"])
@pytest.mark.parametrize("kw", [dict(return_sequences=True), dict(return_state=True),
                                dict(go_backwards=True, return_sequences=True)], ids=repr)
def test_cudnn_lstm(tmp_path, kw, form):
    layer = L.CuDNNLSTM(5, input_shape=(None, 4), **kw)
    with torch.no_grad():
        layer.bias.normal_()  # both halves of cuDNN's bias matter
        want = layer(X)
    rep = L.export_onnx(layer, tmp_path / "c.onnx", X, form=form)
    assert rep.layers[0][0] == ("node" if form == "auto" else "loop")
    want = want if isinstance(want, list) else [want]
    _close(_run(rep.path, {"x": X}), want)
    with pytest.raises(ValueError, match="a CuDNNLSTM does not support masking"):
        L.export_onnx(layer, tmp_path / "c.onnx", X, mask=True)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional(tmp_path, merge_mode, masked, return_sequences):
    layer = L.Bidirectional(L.LSTM(5, return_sequences=return_sequences, return_state=True),
                            merge_mode=merge_mode)
    with torch.no_grad():
        want = layer(X, mask=MASK if masked else None)
    rep = L.export_onnx(layer, tmp_path / "b.onnx", X, mask=masked)
    tail = ["h_fw", "c_fw", "h_bw", "c_bw"]
    assert rep.outputs == (["output_fw", "output_bw"] if merge_mode is None else ["output"]) + tail
    _close(_run(rep.path, {"x": X} | ({"mask": MASK} if masked else {})), want)


def test_bidirectional_initial_state_and_cudnn_halves(tmp_path):
    layer = L.Bidirectional(L.CuDNNLSTM(5, return_sequences=True),
                            backward_layer=L.CuDNNLSTM(3, return_sequences=True,
                                                       go_backwards=True))
    states = [torch.randn(3, n, generator=G) for n in (5, 5, 3, 3)]
    with torch.no_grad():
        want = layer(X, initial_state=states)
    rep = L.export_onnx(layer, tmp_path / "b.onnx", X, initial_state=True)
    assert rep.inputs == ["x", "h0_fw", "c0_fw", "h0_bw", "c0_bw"]
    assert [k for k, _ in rep.layers] == ["node", "node"]
    feeds = dict(zip(rep.inputs, [X, *states], strict=True))
    _close(_run(rep.path, feeds), [want])


@pytest.mark.parametrize("lengths", [False, True])
def test_block_fused_cell(tmp_path, lengths):
    fused = L.LSTMBlockFusedCell(5, use_peephole=True, cell_clip=0.4, forget_bias=0.5)
    x = X.transpose(0, 1)  # (time, batch, depth), the fused cell's own layout
    sl = LENGTHS if lengths else None
    with torch.no_grad():
        out, st = fused(x, dtype=torch.float32, sequence_length=sl)
    rep = L.export_onnx(fused, tmp_path / "f.onnx", x, sequence_length=lengths)
    got = _run(rep.path, {"x": x} | ({"sequence_length": sl} if lengths else {}))
    _close(got, [out, st.c, st.h])


def test_wrappers_that_do_not_export(tmp_path):
    x = torch.randn(2, 3, 4)
    dropping = L.DropoutWrapper(L.LSTMCell(4), output_keep_prob=0.5)
    L.dynamic_rnn(dropping, x, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"drops in training mode: call `.eval\(\)`"):
        L.export_onnx(dropping, tmp_path / "w.onnx", x)
    custom = L.ResidualWrapper(L.LSTMCell(4), residual_fn=lambda i, o: i * o)
    L.dynamic_rnn(custom, x, dtype=torch.float32)
    with pytest.raises(ValueError, match="with a `residual_fn`"):
        L.export_onnx(custom, tmp_path / "w.onnx", x)
