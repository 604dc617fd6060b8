"""The streaming step (compiled ``Streamer``: reads the module's parameters in place on
every call) against the reference step, its applicability checks, and both front-ends'
use of it."""

import copy
import pickle

import pytest
import torch

import lstmcompat as L
from lstmcompat._engine import CellSpec, Weights
from lstmcompat._engine.fused import _extension, streamer
from lstmcompat._engine.reference import step as reference_step

needs_stream = pytest.mark.skipif(
    _extension.backend() is None or _extension.backend().module is None,
    reason="no compiled extension with its Python binding here")

SPECS = [
    CellSpec(units=96),
    CellSpec(units=96, recurrent_activation="hard_sigmoid", forget_bias=1.0),
    CellSpec(units=96, use_peepholes=True, cell_clip=0.5, forget_bias=1.0),
    CellSpec(units=96, use_peepholes=True, num_proj=40, proj_clip=0.3),
    CellSpec(units=70, activation="relu", num_proj=130),
]
NAMES = ("W", "R", "b", "w_i", "w_f", "w_o", "P")


def streamed(last_kernel):
    """Whether ``last_kernel`` is that of a call that ran on the streaming path."""
    return last_kernel is not None and "; single-step streaming: " in last_kernel[1]


def _weights(spec, depth, dtype, g):
    u, p = spec.units, spec.output_size

    def r(*s):
        return torch.randn(*s, generator=g, dtype=dtype) * 0.3

    return Weights(W=r(depth, 4 * u), R=r(p, 4 * u), b=r(4 * u),
                   w_i=r(u) if spec.use_peepholes else None,
                   w_f=r(u) if spec.use_peepholes else None,
                   w_o=r(u) if spec.use_peepholes else None,
                   P=r(u, spec.num_proj) if spec.num_proj else None)


def _roles(spec):
    """Every role the spec uses, each played by the parameter of the same name."""
    roles = ["W", "R", "b"]
    if spec.use_peepholes:
        roles += ["w_i", "w_f", "w_o"]
    if spec.num_proj is not None:
        roles.append("P")
    return {r: r for r in roles}


def _streamer(spec, w, **kw):
    params = {n: getattr(w, n) for n in NAMES if getattr(w, n) is not None}
    return streamer(spec, params, NAMES, _roles(spec), Weights, **kw), params


def _expected(spec, w, x, h, c):
    with torch.no_grad():
        return reference_step(spec, x @ w.W + w.b, h, c, w)


def _close(got, want, dtype):
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@needs_stream
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("spec", SPECS)
def test_streamer_step_equals_reference(spec, batch, dtype, threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        depth = 200  # large enough for the step to split units across threads
        w = _weights(spec, depth, dtype, g)
        x = torch.randn(batch, depth, generator=g, dtype=dtype)
        h = torch.randn(batch, spec.output_size, generator=g, dtype=dtype)
        c = torch.randn(batch, spec.units, generator=g, dtype=dtype)
        s, _ = _streamer(spec, w)
        h1, c1 = s.step(x, h, c)
        h_ref, c_ref = _expected(spec, w, x, h, c)
        _close(h1, h_ref, dtype)
        _close(c1, c_ref, dtype)
    finally:
        torch.set_num_threads(old)


@needs_stream
@pytest.mark.parametrize("axis", [0, 1])
def test_streamer_3d_input_and_stateful_buffers(axis):
    spec = SPECS[3]
    g = torch.Generator().manual_seed(1)
    w = _weights(spec, 24, torch.float32, g)
    x = torch.randn(2, 24, generator=g)
    h = torch.randn(2, spec.output_size, generator=g)
    c = torch.randn(2, spec.units, generator=g)
    s, _ = _streamer(spec, w, x_time_axis=axis)
    h_ref, c_ref = _expected(spec, w, x, h, c)
    h1, c1 = s.step(x.unsqueeze(axis), h, c)
    _close(h1, h_ref, torch.float32)
    assert s.step(x, h, c) is None  # 2-D input for a 3-D streamer
    assert s.step(torch.randn(2, 2, 24).movedim(0, axis), h, c) is None  # two steps
    buffers = {"h": h.clone(), "c": c.clone()}
    h2, c2 = s.step_stateful(x.unsqueeze(axis), buffers, "h", "c")
    _close(h2, h_ref, torch.float32)
    _close(c2, c_ref, torch.float32)
    # the stored state is updated, with copies that the returned tensors do not alias
    torch.testing.assert_close(buffers["h"], h2)
    assert buffers["h"].data_ptr() != h2.data_ptr()
    assert buffers["c"].data_ptr() != c2.data_ptr()


@needs_stream
def test_streamer_declines_what_it_does_not_run(monkeypatch):
    spec = SPECS[0]
    g = torch.Generator().manual_seed(2)
    w = _weights(spec, 16, torch.float32, g)
    x, h, c = torch.randn(1, 16), torch.zeros(1, 96), torch.zeros(1, 96)
    s, params = _streamer(spec, w)
    assert s.step(x, h, c) is not None
    assert s.step(x.double(), h.double(), c.double()) is None  # dtype
    assert s.step(torch.randn(1, 17), h, c) is None  # depth
    assert s.step(x, torch.zeros(2, 96), c) is None  # batch mismatch
    strided = torch.stack([x[0], x[0]], dim=1)[:, :1].t()  # a (1, 16) view, stride 2
    assert not strided.is_contiguous()
    torch.testing.assert_close(s.step(strided, h, c)[0], s.step(x, h, c)[0])
    assert s.step(torch.nn.Parameter(x), h, c) is None  # a subclass
    assert s.step(x.numpy(), h, c) is None
    assert s.step(x.unsqueeze(0), h, c) is None  # 3-D into a 2-D streamer
    assert s.step(x.requires_grad_(), h, c) is None  # autograd would record
    with torch.no_grad():
        assert s.step(x, h, c) is not None
    x = x.detach()
    params["W"].requires_grad_()
    assert s.step(x, h, c) is None
    with torch.no_grad():
        assert s.step(x, h, c) is not None
    params["W"].requires_grad_(False)
    # whether a module streams is decided in Python before a Streamer is made: the
    # compiled step itself never reads the environment
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "reference")
    assert s.step(x, h, c) is not None
    monkeypatch.delenv("LSTMCOMPAT_KERNEL")
    params["W"] = params["W"].half()  # parameters the step cannot run
    assert s.step(x, h, c) is None


@needs_stream
def test_streamer_follows_parameter_changes():
    spec = SPECS[2]
    g = torch.Generator().manual_seed(3)
    w = _weights(spec, 16, torch.float32, g)
    x = torch.randn(1, 16, generator=g)
    h, c = torch.randn(1, 96, generator=g), torch.randn(1, 96, generator=g)
    s, params = _streamer(spec, w)

    def check():
        cur = Weights(**{n: params.get(n) for n in NAMES})
        got = s.step(x, h, c)
        want = _expected(spec, cur, x, h, c)
        _close(got[0], want[0], torch.float32)
        _close(got[1], want[1], torch.float32)

    check()
    params["R"].mul_(0.5)  # in place
    check()
    params["w_f"] = torch.randn(96, generator=g)  # replaced
    check()
    params["W"].data = torch.randn(16, 384, generator=g)  # re-pointed
    check()
    other = torch.randn(384, generator=g)
    torch.utils.swap_tensors(params["b"], other)  # swapped under the same object
    check()
    del params["b"]  # removed: no bias
    got = s.step(x, h, c)
    zero_b = Weights(**{**{n: params.get(n) for n in NAMES}, "b": torch.zeros(384)})
    _close(got[0], _expected(spec, zero_b, x, h, c)[0], torch.float32)


def _grad_case(spec, batch, dtype, seed=4):
    g = torch.Generator().manual_seed(seed)
    w = _weights(spec, 12, dtype, g)
    params = {n: getattr(w, n).requires_grad_() for n in NAMES if getattr(w, n) is not None}
    x = torch.randn(batch, 12, generator=g, dtype=dtype, requires_grad=True)
    h = torch.randn(batch, spec.output_size, generator=g, dtype=dtype, requires_grad=True)
    c = torch.randn(batch, spec.units, generator=g, dtype=dtype, requires_grad=True)
    return params, x, h, c


def _canonical_grads(*grads):
    return grads  # params are the canonical weights themselves


@needs_stream
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("spec", SPECS)
def test_streamer_step_with_autograd_equals_reference(spec, batch, dtype):
    params, x, h, c = _grad_case(spec, batch, dtype)
    s = streamer(spec, params, NAMES, _roles(spec), Weights, _canonical_grads)
    h1, c1 = s.step(x, h, c)
    assert h1.grad_fn is not None and "StepFunction" in type(h1.grad_fn).__name__
    w = Weights(**{n: params.get(n) for n in NAMES})
    h_ref, c_ref = reference_step(spec, x @ w.W + w.b, h, c, w)
    _close(h1, h_ref, dtype)
    _close(c1, c_ref, dtype)
    g = torch.Generator().manual_seed(5)
    dh, dc = torch.randn(h1.shape, generator=g, dtype=dtype), torch.randn(
        c1.shape, generator=g, dtype=dtype)
    inputs = [x, h, c, *params.values()]
    got = torch.autograd.grad([h1, c1], inputs, [dh, dc])
    want = torch.autograd.grad([h_ref, c_ref], inputs, [dh, dc])
    for name, a, b in zip(["x", "h", "c", *params], got, want):
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=name)


@needs_stream
def test_streamer_step_with_autograd_gradcheck():
    spec = CellSpec(units=5, use_peepholes=True, cell_clip=0.4, num_proj=3, proj_clip=0.35,
                    recurrent_activation="hard_sigmoid", forget_bias=1.0)
    params, x, h, c = _grad_case(spec, 2, torch.float64)
    names = list(params)

    def f(x, h, c, *ps):
        local = dict(zip(names, ps))
        return streamer(spec, local, NAMES, _roles(spec), Weights, _canonical_grads).step(x, h, c)

    assert torch.autograd.gradcheck(f, (x, h, c, *params.values()))


@needs_stream
def test_streamer_autograd_only_for_what_requires_grad():
    spec = SPECS[3]
    params, x, h, c = _grad_case(spec, 2, torch.float32)
    for p in params.values():
        p.requires_grad_(False)
    s = streamer(spec, params, NAMES, _roles(spec), Weights, _canonical_grads)
    h1, _ = s.step(x.detach(), h, c.detach())  # only h requires grad
    (dh,) = torch.autograd.grad(h1.sum(), [h])
    w = Weights(**{n: params.get(n) for n in NAMES})
    h_ref, _ = reference_step(spec, x.detach() @ w.W + w.b, h, c.detach(), w)
    torch.testing.assert_close(dh, torch.autograd.grad(h_ref.sum(), [h])[0])
    with torch.no_grad():
        assert s.step(x, h, c)[0].grad_fn is None
    assert streamer(spec, params, NAMES, _roles(spec), Weights).step(x, h, c) is None  # no adjoint given


def _stepped_cell(units, depth, batch):
    """A seeded cell called twice without autograd (built, then a streaming step when it
    can): ``(cell, x, state, out)``."""
    torch.manual_seed(0)
    cell = L.LSTMCell(units)
    x = torch.randn(batch, depth)
    state = cell.zero_state(batch, torch.float32)
    with torch.no_grad():
        cell(x, state)
        out, _ = cell(x, state)
    return cell, x, state, out


def test_without_the_binding_there_is_no_streamer(monkeypatch):
    ext = _extension.backend()
    if ext is not None:
        monkeypatch.setattr(ext, "module", None)
    assert streamer(SPECS[0], {}, NAMES, _roles(SPECS[0]), Weights) is None
    cell, _, _, out = _stepped_cell(8, 4, 1)
    assert not streamed(cell.last_kernel)
    assert cell._stream is False
    assert out.shape == (1, 8)


def test_streaming_cell_equals_the_sequence_path(monkeypatch):
    torch.manual_seed(0)
    cell = L.LSTMCell(96, use_peepholes=True, num_proj=48, cell_clip=1.0)
    x = torch.randn(5, 1, 32)
    state = cell.zero_state(1, torch.float32)
    fast, slow = [], []
    with torch.no_grad():
        s = state
        for t in range(5):
            out, s = cell(x[t], s)
            fast.append(out)
        streamed_kernel = cell.last_kernel
    s = state
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "fused")  # the whole engine path, no shortcut
    cell._stream = None  # decided again at the next call (as after any configuration change)
    for t in range(5):
        out, s = cell(x[t], s)
        slow.append(out.detach())
    assert not streamed(cell.last_kernel)
    monkeypatch.delenv("LSTMCOMPAT_KERNEL")
    torch.testing.assert_close(torch.stack(fast), torch.stack(slow), rtol=1e-5, atol=1e-6)
    if _extension.backend() is not None and _extension.backend().module is not None:
        assert streamed(streamed_kernel)
    # the step follows in-place updates and replacements of the parameters
    with torch.no_grad():
        cell.kernel.mul_(0.5)
        a, _ = cell(x[0], state)
    b, _ = cell(x[0], state)
    torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)
    cell.w_f_diag = torch.nn.Parameter(torch.randn(96))
    with torch.no_grad():
        a, _ = cell(x[0], state)
    b, _ = cell(x[0], state)
    torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


@needs_stream
def test_streamed_cell_copies_and_pickles():
    cell, x, state, want = _stepped_cell(16, 8, 1)
    assert cell._stream
    for clone in (copy.deepcopy(cell), pickle.loads(pickle.dumps(cell))):
        with torch.no_grad():
            got, _ = clone(x, state)
        assert streamed(clone.last_kernel)
        torch.testing.assert_close(got, want)
        with torch.no_grad():
            clone.kernel.zero_()  # the copy has its own parameters
        assert not torch.equal(clone(x, state)[0], want)
    with torch.no_grad():
        torch.testing.assert_close(cell(x, state)[0], want)


@needs_stream
def test_streaming_cell_other_calls_take_the_general_path():
    cell, x, state, _ = _stepped_cell(16, 8, 2)
    assert streamed(cell.last_kernel)
    with torch.no_grad():
        with pytest.raises(TypeError, match="dtype"):
            cell(x.double(), cell.zero_state(2, torch.float64))
        with pytest.raises(ValueError, match="incompatible"):
            cell(torch.randn(2, 9), state)
        with pytest.raises(ValueError, match="state shapes"):
            cell(x, cell.zero_state(3, torch.float32))
        out, new = cell(x.numpy(), state)  # array-likes: converted by the general path
        assert not streamed(cell.last_kernel)
        want, _ = cell(x, state)
        torch.testing.assert_close(out, want)
        assert isinstance(new, L.LSTMStateTuple)


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("rec", ["hard_sigmoid", "keras3_hard_sigmoid", "sigmoid"])
def test_stateful_keras_streaming_equals_one_sequence(rec, time_major):
    torch.manual_seed(0)
    layer = L.LSTM(96, recurrent_activation=rec, stateful=True, return_sequences=True,
                   time_major=time_major, batch_input_shape=(2, None, 16))
    layer.eval()
    x = torch.randn(2, 6, 16)
    if time_major:
        x = x.transpose(0, 1).contiguous()
    tdim = 0 if time_major else 1
    with torch.no_grad():
        whole = layer(x)
        end = [s.clone() for s in layer.states]
        layer.reset_states()
        steps = torch.cat([layer(x.narrow(tdim, t, 1).contiguous()) for t in range(6)],
                          dim=tdim)
    torch.testing.assert_close(steps, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.states[0], end[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.states[1], end[1], rtol=1e-5, atol=1e-6)
    if _extension.backend() is not None and _extension.backend().module is not None:
        assert streamed(layer.last_kernel)


@needs_stream
def test_stateful_keras_streaming_follows_the_configuration():
    torch.manual_seed(0)
    layer = L.LSTM(16, stateful=True, return_state=True, dropout=0.5,
                   batch_input_shape=(1, None, 4))
    x = torch.randn(1, 1, 4)
    with torch.no_grad():
        layer(x)
        layer(x)  # training (a fresh module): dropout in effect, general path
        assert not streamed(layer.last_kernel)
        layer.eval()
        layer.reset_states()
        out, h, c = layer(x)
        assert streamed(layer.last_kernel)
        assert out.shape == (1, 16) and torch.equal(out, h)
        layer(x, training=True)  # explicit training: dropout, general path
        assert not streamed(layer.last_kernel)
        layer(x)
        assert streamed(layer.last_kernel)
        layer.engine_kernel = "reference"  # a forced kernel is honoured at once
        layer(x)
        assert layer.last_kernel[0] == "reference"
        layer.engine_kernel = None
        layer.reset_states()
        a = layer(x)[0]
        layer.reset_states()
        b = layer(x, mask=torch.ones(1, 1, dtype=torch.bool))[0]  # with a mask: general path
        assert not streamed(layer.last_kernel)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@needs_stream
@pytest.mark.parametrize("kw", [{}, dict(use_peepholes=True, num_proj=6, cell_clip=0.3,
                                         proj_clip=0.2, activation="relu")])
def test_streaming_cell_trains_like_the_sequence_path(kw, monkeypatch):
    """Backpropagation through a few streamed steps (autograd on) gives the engine's
    gradients for the inputs, the initial state and every TF1 parameter."""
    torch.manual_seed(0)
    cell = L.LSTMCell(10, dtype=torch.float64, **kw)
    x = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(3, 10, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, cell.output_size, dtype=torch.float64, requires_grad=True)
    cell(x[0], L.LSTMStateTuple(c0, h0))  # builds the cell

    def run():
        s, outs = L.LSTMStateTuple(c0, h0), []
        for t in range(4):
            out, s = cell(x[t], s)
            outs.append(out)
        loss = torch.stack(outs).sin().sum() + s.c.cos().sum()
        return torch.autograd.grad(loss, [x, c0, h0, *cell.weights])

    got = run()
    assert streamed(cell.last_kernel)
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "reference")
    cell._stream = None  # decided again at the next call
    want = run()
    assert cell.last_kernel[0] == "reference"
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


@needs_stream
def test_stateful_keras_streaming_with_autograd(monkeypatch):
    torch.manual_seed(0)
    layer = L.LSTM(12, stateful=True, return_state=True, dtype="float64",
                   batch_input_shape=(2, None, 5))
    layer.eval()
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)

    def run():
        layer.reset_states()
        outs = [layer(x[:, t:t + 1])[0] for t in range(3)]
        states = [s.clone() for s in layer.states]
        loss = torch.stack(outs).sin().sum()
        return states, torch.autograd.grad(loss, [x, *layer.weights])

    states, got = run()
    assert streamed(layer.last_kernel)
    assert not any(s.requires_grad for s in layer.states)  # stored states are detached
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "reference")
    layer._stream = None  # decided again at the next call
    states_ref, want = run()
    assert layer.last_kernel[0] == "reference"
    for a, b in zip([*states, *got], [*states_ref, *want]):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


@needs_stream
def test_a_streamed_call_reports_chooses_own_reason():
    """``last_kernel`` of a streamed call is ``choose``'s answer for the module's
    configuration (``streaming=True``), not a constant."""
    from lstmcompat._engine import choose

    cell, *_ = _stepped_cell(16, 8, 1)
    want = choose(cell.cell_spec(), device="cpu", dtype=torch.float32, streaming=True)
    assert cell.last_kernel == want and streamed(want)
    assert "a single step on CPU" in want[1]
    torch.manual_seed(0)
    layer = L.LSTM(8, stateful=True, batch_input_shape=(2, None, 4))
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(2, 1, 4))
        layer(torch.randn(2, 1, 4))
    assert layer.last_kernel == choose(layer._spec(), dtype=torch.float32, batch=2,
                                       streaming=True)


def test_a_forced_kernel_is_honoured_by_the_streaming_decision(monkeypatch):
    """``LSTMCOMPAT_KERNEL`` (as it is when a module decides) and ``engine_kernel``
    reach ``choose``: the forced kernel's general path runs, and says so."""
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "fused")
    cell, *_ = _stepped_cell(16, 8, 1)
    assert cell._stream is False
    assert cell.last_kernel[0] == "fused" and "requested explicitly" in cell.last_kernel[1]
    monkeypatch.delenv("LSTMCOMPAT_KERNEL")
    layer = L.LSTM(8, stateful=True, batch_input_shape=(1, None, 4), engine_kernel="fused")
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(1, 1, 4))
        layer(torch.randn(1, 1, 4))
    assert layer._stream is False and not streamed(layer.last_kernel)
    assert "requested explicitly" in layer.last_kernel[1]
