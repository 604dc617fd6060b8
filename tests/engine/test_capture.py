"""Graph capture: ``torch.compile(fullgraph=True)`` and ``torch.export`` of modules holding
lstmcompat layers, against eager (outputs and gradients), and ``opcheck`` of the time
loops' custom ops (``lstmcompat::forward_loop`` / ``backward_loop``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lstmcompat as L
from lstmcompat._engine import CellSpec
from lstmcompat._engine.dispatch import capturing
from lstmcompat._engine.fused import _ops
from lstmcompat._engine.fused._function import TORCH_BACKEND


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _leaves(tree):
    return [t for t in torch.utils._pytree.tree_leaves(tree) if isinstance(t, torch.Tensor)]


def _compare(module, fn, *inputs, backend="aot_eager", rtol=1e-5, atol=1e-6):
    """``fn(module, *inputs)`` compiled with ``fullgraph=True`` against eager: outputs,
    and the gradients of every parameter and input of a weighted sum of the outputs."""
    inputs = [t.detach().requires_grad_() if t.is_floating_point() else t for t in inputs]

    def grads(outs):
        g = torch.Generator().manual_seed(3)
        loss = sum((t * torch.randn(t.shape, generator=g)).sum() for t in _leaves(outs))
        wrt = [*module.parameters(), *(t for t in inputs if t.requires_grad)]
        return torch.autograd.grad(loss, wrt)

    want = fn(module, *inputs)
    want_grads = grads(want)
    compiled = torch.compile(lambda *a: fn(module, *a), fullgraph=True, backend=backend)
    got = compiled(*inputs)
    for a, b in zip(_leaves(got), _leaves(want), strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    for a, b in zip(grads(got), want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


X = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0))
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1]], dtype=torch.bool)

KERAS = {
    "default_hard_sigmoid": (dict(return_sequences=True), None),
    "sigmoid_return_state": (dict(recurrent_activation="sigmoid", return_state=True), None),
    "go_backwards": (dict(go_backwards=True, return_sequences=True), None),
    "general_mask": (dict(return_sequences=True), MASK),
    "right_padded_mask_sigmoid": (dict(recurrent_activation="sigmoid"), MASK.cumprod(1).bool()),
    "relu": (dict(activation="relu", return_sequences=True), None),
}


@pytest.mark.parametrize("name", sorted(KERAS))
def test_keras_lstm_compiles_fullgraph(name):
    kw, mask = KERAS[name]
    layer = L.LSTM(5, input_shape=(None, 4), **kw)
    _compare(layer, lambda m, x: m(x, mask=mask), X)


def test_keras_stateful_step_compiles_and_carries_its_state():
    torch.manual_seed(0)
    eager = L.LSTM(5, stateful=True, batch_input_shape=(3, 1, 4))
    graph = L.LSTM(5, stateful=True, batch_input_shape=(3, 1, 4))
    graph.set_weights(eager.get_weights())
    step = torch.compile(graph, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        for t in range(3):
            torch.testing.assert_close(step(X[:, t:t + 1]), eager(X[:, t:t + 1]))
    torch.testing.assert_close(graph.states[0], eager.states[0])


TF1 = {
    "peephole_proj_clip": lambda: L.LSTMCell(5, use_peepholes=True, cell_clip=1.0, num_proj=3,
                                             proj_clip=0.5),
    "plain": lambda: L.LSTMCell(5),
    "multi": lambda: L.MultiRNNCell([L.LSTMCell(5), L.LSTMCell(4, use_peepholes=True)]),
    "block_clip": lambda: L.LSTMBlockCell(5, cell_clip=0.1, use_peephole=True),
    "basic": lambda: L.BasicLSTMCell(5),
    "residual_wrapped": lambda: L.ResidualWrapper(L.LSTMCell(4)),
    "dropout_wrapped_eval": lambda: L.DropoutWrapper(L.LSTMCell(5), output_keep_prob=0.5).eval(),
}


@pytest.mark.parametrize("name", sorted(TF1))
@pytest.mark.parametrize("lengths", [None, [6, 2, 0]])
def test_dynamic_rnn_compiles_fullgraph(name, lengths):
    cell = TF1[name]()
    sl = None if lengths is None else torch.tensor(lengths)
    _compare(cell, lambda m, x: L.dynamic_rnn(m, x, sequence_length=sl, dtype=torch.float32), X)


def test_bidirectional_static_rnn_and_one_step_compile_fullgraph():
    cells = nn.ModuleList([L.LSTMCell(5), L.LSTMCell(4, num_proj=2)])
    sl = torch.tensor([6, 3, 1])
    _compare(cells, lambda m, x: L.bidirectional_dynamic_rnn(
        m[0], m[1], x, sequence_length=sl, dtype=torch.float32), X)
    cell = L.LSTMCell(5)
    _compare(cell, lambda m, x: m(x[:, 0], m.zero_state(3, torch.float32)), X)
    _compare(cell, lambda m, x: L.static_rnn(m, list(x.unbind(1)), dtype=torch.float32,
                                             sequence_length=sl), X)


class _Model(nn.Module):
    """lstmcompat layers among ordinary PyTorch ones."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.lstm = L.LSTM(6, return_sequences=True, input_shape=(None, 8))
        self.cell = L.LSTMCell(5, use_peepholes=True)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        y = self.lstm(torch.relu(self.embed(x)))
        out, _ = L.dynamic_rnn(self.cell, y, dtype=torch.float32)
        return self.head(out[:, -1])


def test_a_model_compiles_with_inductor():
    model = _Model()
    _compare(model, lambda m, x: m(x), X, backend="inductor", rtol=1e-4, atol=1e-5)


def test_no_recompile_across_batch_and_time_with_dynamic_shapes():
    graphs = []

    def count(gm, example_inputs):
        graphs.append(gm)
        return gm

    model = _Model()
    model(X)  # built (a TF1 cell builds on its first call, which a graph cannot hold)
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=count)
    with torch.no_grad():
        for B, T in [(3, 6), (5, 6), (7, 9), (2, 13)]:
            x = torch.randn(B, T, 4)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)
    assert len(graphs) == 1


def test_export_with_dynamic_batch_and_time():
    model = _Model().eval()
    model(X)
    dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("time")},)
    ep = torch.export.export(model, (X,), dynamic_shapes=dims)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("lstmcompat.forward_loop" in t for t in targets), targets
    with torch.no_grad():
        for B, T in [(3, 6), (5, 2), (2, 11)]:
            x = torch.randn(B, T, 4)
            torch.testing.assert_close(ep.module()(x), model(x), rtol=1e-5, atol=1e-6)


def test_eager_calls_the_backends_directly():
    assert not capturing()
    calls = []

    class Spy:
        name = "spy"

        def forward_loop(self, *a, **k):
            calls.append("direct")
            return TORCH_BACKEND.forward_loop(*a, **k)

    spec = CellSpec(3)
    Z = torch.randn(2, 1, 12)
    _ops.run_forward(Spy(), spec, Z, torch.randn(3, 12), torch.zeros(1, 3), torch.zeros(1, 3),
                     None, None, None, None, False)
    assert calls == ["direct"]


def _loop_args(spec: CellSpec, key: str, save: bool, mask: bool, T=4, B=2, D=3):
    g = torch.Generator().manual_seed(0)
    u, p = spec.units, spec.output_size

    def t(*s):
        return torch.randn(*s, generator=g)

    m = (torch.rand(T, B, generator=g) < 0.6) if mask else None
    return (key, t(T, B, 4 * u), t(p, 4 * u), t(B, p), t(B, u), None,
            t(3, u) if spec.use_peepholes else None,
            t(u, spec.num_proj) if spec.num_proj else None, m, t(4 * u),
            spec.activation, spec.recurrent_activation, spec.cell_clip, spec.proj_clip,
            spec.mask_mode == "carry", spec.cell_clip_gradient,
            {None: "", torch.bfloat16: "bfloat16"}[spec.matmul_dtype], save)


def _backends():
    keys = ["torch"]
    from lstmcompat._engine.fused import _extension

    if _extension.backend() is not None:
        keys.append("cpp")
    return keys


SPECS = [CellSpec(3, recurrent_activation="hard_sigmoid"),
         CellSpec(3, use_peepholes=True, cell_clip=0.5, num_proj=2, proj_clip=0.3,
                  mask_mode="zero"),
         CellSpec(3, use_peepholes=True, cell_clip=0.2, mask_mode="zero",
                  cell_clip_gradient="identity"),
         CellSpec(3, recurrent_activation="hard_sigmoid", matmul_dtype=torch.bfloat16)]
SPEC_IDS = ["keras", "tf1_all", "block_clip", "bf16_products"]


@pytest.mark.parametrize("key", _backends())
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("save,mask", [(False, False), (True, False), (True, True)])
def test_opcheck_forward_loop(key, spec, save, mask):
    torch.library.opcheck(torch.ops.lstmcompat.forward_loop.default,
                          _loop_args(spec, key, save, mask))


@pytest.mark.parametrize("key", _backends())
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("mask", [False, True])
def test_opcheck_backward_loop(key, spec, mask):
    args = _loop_args(spec, key, True, mask)
    (_, Z, R, h0, c0, dmh, peep, P, m, bias, act, ract, clip, pclip, carry, cgrad, mm,
     _) = args
    fwd = torch.ops.lstmcompat.forward_loop(*args)
    _, _, _, C, Cpre, _, Rpre = fwd
    g = torch.Generator().manual_seed(1)
    dout = torch.randn(fwd[0].shape, generator=g)
    torch.library.opcheck(torch.ops.lstmcompat.backward_loop.default,
                          (key, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, m, dout,
                           torch.randn(h0.shape, generator=g), torch.randn(c0.shape, generator=g),
                           act, ract, clip, pclip, carry, cgrad, mm))


def test_an_unknown_backend_name_is_an_error():
    args = list(_loop_args(SPECS[0], "no_such_backend", False, False))
    with pytest.raises(ValueError, match="no lstmcompat time-loop backend named 'no_such_backend'"):
        torch.ops.lstmcompat.forward_loop(*args)


@pytest.mark.parametrize("merge_mode", ["concat", "ave", None])
@pytest.mark.parametrize("masked", [False, True])
def test_bidirectional_compiles_fullgraph(merge_mode, masked):
    layer = L.Bidirectional(L.LSTM(5, return_sequences=True, return_state=True),
                            merge_mode=merge_mode)
    layer(X)
    mask = MASK if masked else None
    _compare(layer, lambda m, x: m(x, mask=mask), X)


def test_cudnn_lstm_compiles_fullgraph():
    layer = L.CuDNNLSTM(5, return_sequences=True, return_state=True, input_shape=(None, 4))
    _compare(layer, lambda m, x: m(x), X)


def test_export_bidirectional_with_dynamic_batch_and_time():
    layer = L.Bidirectional(L.LSTM(5, return_sequences=True)).eval()
    layer(X)
    dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("time")},)
    ep = torch.export.export(layer, (X,), dynamic_shapes=dims)
    with torch.no_grad():
        for B, T in [(3, 6), (5, 2), (2, 11)]:
            x = torch.randn(B, T, 4)
            torch.testing.assert_close(ep.module()(x), layer(x), rtol=1e-5, atol=1e-6)


_FRESH_EXPORT = """
import warnings
import torch
import lstmcompat as L
warnings.simplefilter("error", RuntimeWarning)
layer = L.LSTM(5, return_sequences=True, input_shape=(None, 4)).eval()
x = torch.randn(3, 6, 4)
dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("time")},)
ep = torch.export.export(layer, (x,), dynamic_shapes=dims)
assert any("lstmcompat.forward_loop" in str(n.target) for n in ep.graph.nodes)
x = torch.randn(2, 9, 4)
torch.testing.assert_close(ep.module()(x), layer(x), rtol=1e-5, atol=1e-6)
print("ok")
"""


def test_export_as_the_first_call_of_a_process():
    # non-strict torch.export runs the capture-time decisions inside its trace (fake
    # tensors): the fused kernel's first use (loading the compiled loop) must not see them
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FRESH_EXPORT], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
