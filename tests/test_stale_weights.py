"""Every call path follows every way of changing a parameter (issue: stale weights).

Each case warms a call path (so that anything it might keep between calls
exists), changes the module's weights in one of the ways real code does, runs
the same path again and compares with the ``reference`` kernel run on the
module as it now is. Nothing derived from a weight may outlive a change it
cannot see: ``.data`` writes and writes through NumPy views do not bump a
tensor's version counter, and replacing a ``Parameter`` changes its identity.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch

import lstmcompat as L

B, T, D, U = 2, 5, 6, 8


def _x(steps: int = T, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, steps, D, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ call paths
# Each path: make() -> module; run(module) -> tensor (the same call each time).
def _keras(**kw) -> Callable[[], torch.nn.Module]:
    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        layer = L.LSTM(U, input_shape=(None, D), **kw)
        layer.eval()
        return layer
    return make


def _keras_seq(m: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return m(_x())


def _keras_train(m: torch.nn.Module) -> torch.Tensor:
    m.train()  # no dropout configured: training mode, autograd recording on the weights
    return m(_x()).detach()


def _keras_masked(m: torch.nn.Module) -> torch.Tensor:
    mask = torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        return m(_x(), mask=mask)


def _keras_one_step(m: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return m(_x(1))


def _stateful() -> torch.nn.Module:
    torch.manual_seed(0)
    layer = L.LSTM(U, stateful=True, batch_input_shape=(B, 1, D))
    layer.eval()
    return layer


def _stateful_step(m: torch.nn.Module) -> torch.Tensor:
    m.reset_states()
    with torch.no_grad():
        m(_x(1, 1))
        return m(_x(1, 2))


def _stateful_step_grad(m: torch.nn.Module) -> torch.Tensor:
    m.reset_states()
    m(_x(1, 1))
    return m(_x(1, 2)).detach()


def _cell(**kw) -> Callable[[], torch.nn.Module]:
    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        cell = L.LSTMCell(U, **kw)
        cell.build((None, D))
        return cell
    return make


def _cell_state(m: torch.nn.Module) -> object:
    g = torch.Generator().manual_seed(3)
    p = m.output_size
    c, h = torch.randn(B, U, generator=g), torch.randn(B, p, generator=g)
    return L.LSTMStateTuple(c, h) if m._state_is_tuple else torch.cat([c, h], 1)


def _cell_step(m: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        out, _ = m(_x(1)[:, 0], _cell_state(m))
    return out


def _cell_step_grad(m: torch.nn.Module) -> torch.Tensor:
    out, _ = m(_x(1)[:, 0], _cell_state(m))
    return out.detach()


def _dynamic(m: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        out, _ = L.dynamic_rnn(m, _x(), dtype=torch.float32)
    return out


def _dynamic_lengths(m: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        out, _ = L.dynamic_rnn(m, _x(), sequence_length=[5, 2], dtype=torch.float32)
    return out


def _dynamic_grad(m: torch.nn.Module) -> torch.Tensor:
    out, _ = L.dynamic_rnn(m, _x(), dtype=torch.float32)
    return out.detach()


def _multi() -> torch.nn.Module:
    torch.manual_seed(0)
    return L.MultiRNNCell([L.LSTMCell(U, use_peepholes=True), L.LSTMCell(U)])


def _multi_step(m: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        out, _ = m(_x(1)[:, 0], m.zero_state(B, torch.float32))
    return out


PATHS = {
    "keras sequence inference (fused)": (_keras(), _keras_seq),
    "keras sigmoid sequence inference (native)": (_keras(recurrent_activation="sigmoid"),
                                                  _keras_seq),
    "keras training, weights recording": (_keras(), _keras_train),
    "keras masked sequence": (_keras(), _keras_masked),
    "keras go_backwards": (_keras(go_backwards=True), _keras_seq),
    "keras one step, not stateful": (_keras(), _keras_one_step),
    "keras no bias": (_keras(use_bias=False), _keras_seq),
    "keras stateful streaming": (_stateful, _stateful_step),
    "keras stateful streaming with autograd": (_stateful, _stateful_step_grad),
    "tf1 cell streaming step": (_cell(), _cell_step),
    "tf1 cell peepholes projection clips step": (
        _cell(use_peepholes=True, num_proj=5, cell_clip=0.4, proj_clip=0.3), _cell_step),
    "tf1 cell step with autograd": (_cell(use_peepholes=True, num_proj=5), _cell_step_grad),
    "tf1 cell concatenated state step": (_cell(state_is_tuple=False), _cell_step),
    "tf1 dynamic_rnn (native)": (_cell(), _dynamic),
    "tf1 dynamic_rnn peepholes (fused)": (_cell(use_peepholes=True, num_proj=5), _dynamic),
    "tf1 dynamic_rnn sequence_length": (_cell(cell_clip=0.5), _dynamic_lengths),
    "tf1 dynamic_rnn with autograd": (_cell(use_peepholes=True), _dynamic_grad),
    "tf1 MultiRNNCell step": (_multi, _multi_step),
}


# ------------------------------------------------------------------- changes
def _new_value(p: torch.Tensor, k: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + k)
    return (torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5).to(p.dtype)


def _params(m: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return list(m.named_parameters())


def _data_mul(m: torch.nn.Module) -> None:
    for _, p in _params(m):
        p.data.mul_(-1.5)


def _data_copy(m: torch.nn.Module) -> None:
    for k, (_, p) in enumerate(_params(m)):
        p.data.copy_(_new_value(p, k))


def _numpy_view(m: torch.nn.Module) -> None:
    for k, (_, p) in enumerate(_params(m)):
        a = p.detach().numpy()  # shares memory, bumps no version counter
        a[...] = _new_value(p, k).numpy()


def _no_grad_inplace(m: torch.nn.Module) -> None:
    with torch.no_grad():
        for _, p in _params(m):
            p.clamp_(-0.1, 0.1).mul_(3.0)


def _set_weights(m: torch.nn.Module) -> None:
    if isinstance(m, L.MultiRNNCell):
        for cell in m._cells:
            cell.set_weights([_new_value(w, k).numpy() for k, w in enumerate(cell.weights)])
        return
    m.set_weights([_new_value(w, k).numpy() for k, w in enumerate(m.weights)])


def _load_state_dict(m: torch.nn.Module) -> None:
    sd = {n: _new_value(p, k) for k, (n, p) in enumerate(_params(m))}
    m.load_state_dict(sd, strict=False)


def _load_state_dict_assign(m: torch.nn.Module) -> None:
    sd = {n: _new_value(p, k) for k, (n, p) in enumerate(_params(m))}
    m.load_state_dict(sd, strict=False, assign=True)


def _optimizer_step(m: torch.nn.Module) -> None:
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for k, (_, p) in enumerate(_params(m)):
        p.grad = _new_value(p, k)
    opt.step()


def _replace_parameter(m: torch.nn.Module) -> None:
    for k, (name, p) in enumerate(_params(m)):
        owner = m.get_submodule(name.rpartition(".")[0]) if "." in name else m
        setattr(owner, name.rpartition(".")[2],
                torch.nn.Parameter(_new_value(p, k), requires_grad=p.requires_grad))


def _repoint_data(m: torch.nn.Module) -> None:
    for k, (_, p) in enumerate(_params(m)):
        p.data = _new_value(p, k)


def _double_then_float(m: torch.nn.Module) -> None:
    m.double()
    with torch.no_grad():
        for _, p in _params(m):
            p.mul_(0.5)
    m.float()


CHANGES = {
    "p.data.mul_": _data_mul,
    "p.data.copy_": _data_copy,
    "write through p.detach().numpy()": _numpy_view,
    "in place under no_grad": _no_grad_inplace,
    "set_weights": _set_weights,
    "load_state_dict": _load_state_dict,
    "load_state_dict(assign=True)": _load_state_dict_assign,
    "optimizer step": _optimizer_step,
    "replace the Parameter": _replace_parameter,
    "p.data = new tensor": _repoint_data,
    ".double() then .float()": _double_then_float,
}


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("path", list(PATHS))
def test_every_path_follows_every_change(path: str, change: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LSTMCOMPAT_KERNEL", raising=False)
    make, run = PATHS[path]
    m = make()
    before = run(m)
    run(m)  # twice: whatever a path keeps between calls now exists
    CHANGES[change](m)
    got = run(m)
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "reference")
    want = run(m)
    monkeypatch.delenv("LSTMCOMPAT_KERNEL")
    assert not torch.allclose(before, want), "the change did not change the result"
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # and a fresh copy of the changed module agrees too (no state hidden in the module)
    torch.testing.assert_close(run(copy.deepcopy(m)), want, rtol=1e-5, atol=1e-6)


def test_numpy_view_write_is_seen_by_the_stateful_stream() -> None:
    """The probe's exact case: a stateful streaming layer, weights edited through NumPy."""
    layer = _stateful()
    x = _x(1, 4)
    with torch.no_grad():
        layer(x)
        layer.reset_states()
        np.asarray(layer.recurrent_kernel.detach().numpy())[...] *= 2.0
        got = layer(x)
    layer.reset_states()
    ref = copy.deepcopy(layer)
    ref.engine_kernel = "reference"
    with torch.no_grad():
        torch.testing.assert_close(got, ref(x), rtol=1e-5, atol=1e-6)


# A parameter replaced by one the layer cannot use: a clear error on every path,
# never a read past a buffer or silent garbage.
BAD = {
    "keras kernel": ("keras", "kernel", (D, 4 * U + 1)),
    "keras recurrent_kernel": ("keras", "recurrent_kernel", (U, 30)),
    "keras bias": ("keras", "bias", (4 * U - 2,)),
    "tf1 kernel": ("tf1", "kernel", (D + U - 1, 4 * U)),
    "tf1 bias": ("tf1", "bias", (3,)),
    "tf1 peephole": ("tf1", "w_f_diag", (U + 1,)),
}


@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("case", list(BAD))
def test_a_replaced_parameter_of_another_shape_raises(case: str, stateful: bool) -> None:
    api, name, shape = BAD[case]
    if api == "keras":
        m = _stateful() if stateful else _keras()()
        run = _stateful_step if stateful else _keras_seq
    else:
        m = _cell(use_peepholes=True)()
        run = _cell_step if stateful else _dynamic
    run(m)  # warmed: the streaming path exists
    setattr(m, name, torch.nn.Parameter(torch.randn(shape)))
    with pytest.raises(ValueError, match=name):
        run(m)


def test_a_replaced_parameter_of_another_dtype_raises() -> None:
    m = _keras()()
    _keras_seq(m)
    m.recurrent_kernel = torch.nn.Parameter(torch.randn(U, 4 * U, dtype=torch.float64))
    with pytest.raises(TypeError, match="recurrent_kernel"):
        _keras_seq(m)
