"""``torch.nn.Module``'s dtype conversions (``.double()``, ``.float()``, ``.half()``,
``.bfloat16()``, ``.to(dtype)``) on both front-ends: the converted module computes in
the new dtype on whatever kernel the engine picks, with the numbers of the
reference kernel on the same converted weights, trains, reports the dtype
(``dtype``, ``get_config``) and round-trips its weights through
``get_weights``/``set_weights`` (bfloat16 through ``ml_dtypes`` or float32)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import lstmcompat as L
from lstmcompat._dtypes import dtype_name
from lstmcompat._engine import CellSpec, choose
from lstmcompat._engine.run import KERNEL_ENV

F32, F64, F16, BF16 = torch.float32, torch.float64, torch.float16, torch.bfloat16

#: name: (dtype the module is made in, the conversion, the dtype it converts to)
CONVERSIONS: dict[str, tuple[torch.dtype, Callable, torch.dtype]] = {
    "double": (F32, lambda m: m.double(), F64),
    "float": (F64, lambda m: m.float(), F32),
    "half": (F32, lambda m: m.half(), F16),
    "bfloat16": (F32, lambda m: m.bfloat16(), BF16),
    "to(float64)": (F32, lambda m: m.to(torch.float64), F64),
    "to(dtype=float16)": (F32, lambda m: m.to(dtype=torch.float16), F16),
    "to(cpu, bfloat16)": (F64, lambda m: m.to("cpu", torch.bfloat16), BF16),
}

#: Agreement with the reference kernel, relative to the largest magnitude compared.
TOL = {F64: 1e-10, F32: 1e-5, F16: 1e-2, BF16: 2e-2}

B, T, DEPTH = 2, 6, 3


@pytest.fixture(autouse=True)
def _engine_chooses(monkeypatch):
    """These tests force kernels themselves: a process-wide forced kernel would
    turn the dispatch checks into failures."""
    monkeypatch.delenv(KERNEL_ENV, raising=False)


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    assert got.dtype == want.dtype, what
    got, want = got.detach().double(), want.detach().double()
    err = float((got - want).abs().max()) if got.numel() else 0.0
    scale = max(1.0, float(want.abs().max()) if want.numel() else 0.0)
    assert err <= TOL[dtype] * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


def _inputs(dtype: torch.dtype, steps: int = T, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, steps, DEPTH, generator=g, dtype=torch.float64).to(dtype)


# ------------------------------------------------------------------------------ cases
@dataclass
class Case:
    """A module configuration: ``make(dtype)`` builds it (and runs it once, so that
    caches and the streaming step exist before the conversion); ``run(module, x)``
    returns every tensor of a call (outputs and final states)."""

    make: Callable[[torch.dtype], torch.nn.Module]
    run: Callable[[torch.nn.Module, torch.Tensor], list[torch.Tensor]]
    keras: bool


def _keras(**kw) -> Callable[[torch.dtype], torch.nn.Module]:
    def make(dtype):
        torch.manual_seed(0)
        if kw.get("stateful"):
            layer = L.LSTM(5, batch_input_shape=(B, None, DEPTH), dtype=dtype, **kw)
        else:
            layer = L.LSTM(5, input_shape=(None, DEPTH), dtype=dtype, **kw)
        layer(_inputs(dtype, seed=0))
        return layer
    return make


def _keras_run(layer, x):
    out = layer(x)
    return list(out) if isinstance(out, list) else [out]


def _stateful_run(layer, x):
    """Two calls (the second starts from the stored state), then the stored state."""
    first = layer(x[:, :3])
    second = layer(x[:, 3:])
    return [first, second, layer.states_h, layer.states_c]


def _stateful_steps(layer, x):
    """One step per call: the streaming path where it applies."""
    outs = [layer(x[:, t:t + 1]) for t in range(x.shape[1])]
    return outs + [layer.states_h, layer.states_c]


def _flat(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for s in state for t in _flat(s)]


def _cell(factory: Callable[[], torch.nn.Module]) -> Callable[[torch.dtype], torch.nn.Module]:
    def make(dtype):
        torch.manual_seed(0)
        cell = factory()
        L.dynamic_rnn(cell, _inputs(dtype, seed=0), dtype=dtype)
        return cell
    return make


def _dynamic_rnn(cell, x):
    out, state = L.dynamic_rnn(cell, x, sequence_length=[T, 3], dtype=x.dtype)
    return [out] + _flat(state)


def _steps(cell, x):
    state = cell.zero_state(B, x.dtype)
    outs = []
    for t in range(x.shape[1]):
        out, state = cell(x[:, t], state)
        outs.append(out)
    return outs + _flat(state)


def _plain():
    return L.LSTMCell(5)


def _peep_proj_clip():
    return L.LSTMCell(5, use_peepholes=True, num_proj=3, cell_clip=0.8, proj_clip=0.5)


def _stack():
    return L.MultiRNNCell([L.LSTMCell(5), _peep_proj_clip()])


CASES = {
    "LSTM": Case(_keras(return_sequences=True), _keras_run, True),
    "LSTM-sigmoid": Case(_keras(return_sequences=True, recurrent_activation="sigmoid"),
                         _keras_run, True),
    "LSTM-return_state": Case(_keras(return_state=True), _keras_run, True),
    "LSTM-stateful": Case(_keras(stateful=True, return_sequences=True), _stateful_run, True),
    "LSTM-stateful-steps": Case(_keras(stateful=True, recurrent_activation="sigmoid"),
                                _stateful_steps, True),
    "LSTMCell-dynamic_rnn": Case(_cell(_plain), _dynamic_rnn, False),
    "LSTMCell-peep-proj-clip-dynamic_rnn": Case(_cell(_peep_proj_clip), _dynamic_rnn, False),
    "LSTMCell-steps": Case(_cell(_plain), _steps, False),
    "LSTMCell-peep-proj-clip-steps": Case(_cell(_peep_proj_clip), _steps, False),
    "MultiRNNCell-dynamic_rnn": Case(_cell(_stack), _dynamic_rnn, False),
    "MultiRNNCell-steps": Case(_cell(_stack), _steps, False),
}


def _converted(case: Case, conversion: str) -> tuple[torch.nn.Module, torch.dtype]:
    start, convert, target = CONVERSIONS[conversion]
    module = case.make(start)
    assert convert(module) is module
    return module, target


def _kernels_used(module) -> set[str]:
    if isinstance(module, L.MultiRNNCell):
        return {c.last_kernel[0] for c in module.cells}
    return {module.last_kernel[0]}


def _run_both(case, module, x, monkeypatch, grad=False):
    """``case.run`` on ``module`` (whatever kernel the engine picks) and on a copy
    forced onto the reference kernel; with ``grad`` also the parameter gradients."""
    reference = copy.deepcopy(module)
    results = []
    for m, kernel in ((module, None), (reference, "reference")):
        with monkeypatch.context() as mp:
            if kernel is None:
                mp.delenv(KERNEL_ENV, raising=False)
            else:
                mp.setenv(KERNEL_ENV, kernel)
            xs = x.clone().requires_grad_(grad)
            tensors = case.run(m, xs)
            if kernel is not None:
                assert _kernels_used(m) == {"reference"}
        grads = []
        if grad:
            sum(t.float().sum() for t in tensors).backward()
            grads = [p.grad for p in m.weights] + [xs.grad]
        results.append((tensors, grads))
    return results


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("conversion", CONVERSIONS)
@pytest.mark.parametrize("name", CASES)
def test_converted_module_computes_in_new_dtype_like_reference(name, conversion, monkeypatch):
    case = CASES[name]
    module, dtype = _converted(case, conversion)
    assert module.dtype == dtype
    assert all(p.dtype == dtype for p in module.parameters())
    assert all(b.dtype == dtype for b in module.buffers())  # a stateful layer's states
    if hasattr(module, "get_config"):
        assert module.get_config()["dtype"] == dtype_name(dtype)
    (got, _), (want, _) = _run_both(case, module, _inputs(dtype), monkeypatch)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == dtype, f"tensor {i}"
        assert bool(torch.isfinite(g).all()), f"tensor {i}"
        _close(g, w, dtype, f"tensor {i}")


@pytest.mark.parametrize("conversion", CONVERSIONS)
@pytest.mark.parametrize("name", CASES)
def test_converted_module_trains(name, conversion, monkeypatch):
    case = CASES[name]
    module, dtype = _converted(case, conversion)
    (_, got), (_, want) = _run_both(case, module, _inputs(dtype), monkeypatch, grad=True)
    params = module.weights
    assert len(got) == len(params) + 1
    for i, (g, w) in enumerate(zip(got, want)):
        assert g is not None and w is not None, f"gradient {i}"
        assert g.dtype == dtype, f"gradient {i}"
        assert bool(torch.isfinite(g).all()), f"gradient {i}"
        _close(g, w, dtype, f"gradient {i}")
    torch.optim.SGD(module.parameters(), lr=0.1).step()
    assert all(p.dtype == dtype for p in module.parameters())


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.keras])
@pytest.mark.parametrize("conversion", ["double", "half", "bfloat16", "float"])
def test_keras_inputs_are_converted_to_the_new_dtype(name, conversion, monkeypatch):
    """The layer converts its inputs to its dtype: after ``.double()`` a float32 input
    computes in float64, after ``.float()`` a float64 input in float32."""
    case = CASES[name]
    module, dtype = _converted(case, conversion)
    other = F64 if dtype != F64 else F32
    x = _inputs(other)
    reference = copy.deepcopy(module)
    got = case.run(module, x)
    want = case.run(reference, x.to(dtype))
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == dtype
        _close(g, w, dtype, f"tensor {i}")


def _numpy_dtype(dtype: torch.dtype, with_ml_dtypes: bool):
    if dtype == BF16:
        if with_ml_dtypes:
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(np.float32)
    return np.dtype(dtype_name(dtype))


@pytest.mark.parametrize("ml_dtypes", ["installed", "absent"])
@pytest.mark.parametrize("conversion", CONVERSIONS)
@pytest.mark.parametrize("name", ["LSTM", "LSTMCell-peep-proj-clip-dynamic_rnn",
                                  "MultiRNNCell-dynamic_rnn"])
def test_get_set_weights_round_trip(name, conversion, ml_dtypes, monkeypatch):
    if ml_dtypes == "installed":
        pytest.importorskip("ml_dtypes")
    else:
        monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes fails
    module, dtype = _converted(CASES[name], conversion)
    arrays = module.get_weights()
    params = module.weights
    assert len(arrays) == len(params)
    for a, p in zip(arrays, params):
        assert isinstance(a, np.ndarray)
        assert a.dtype == _numpy_dtype(dtype, ml_dtypes == "installed")
        assert a.shape == tuple(p.shape)
        assert a.flags.c_contiguous
        np.testing.assert_array_equal(a.astype(np.float64), p.detach().double().numpy())
    other = copy.deepcopy(module)
    with torch.no_grad():
        for p in other.weights:
            p.zero_()
    other.set_weights(arrays)
    for p, q in zip(other.weights, params):
        assert p.dtype == dtype
        assert torch.equal(p, q)


def test_bfloat16_arrays_are_accepted_as_inputs():
    """``ml_dtypes.bfloat16`` arrays (what ``get_weights`` returns) are array-likes."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    layer = L.LSTM(4, input_shape=(None, DEPTH)).bfloat16()
    x = _inputs(BF16)
    out = layer(x.float().numpy().astype(ml_dtypes.bfloat16))
    assert out.dtype == BF16
    torch.testing.assert_close(out, layer(x), rtol=0, atol=0)


def test_from_config_builds_in_the_converted_dtype():
    layer = L.LSTM(4, input_shape=(None, DEPTH)).half()
    again = L.LSTM.from_config(layer.get_config())
    assert again.dtype == F16 and again.kernel.dtype == F16
    cell = _cell(_plain)(F32).double()
    assert L.LSTMCell.from_config(cell.get_config()).dtype == F64


# -------------------------------------------------------------------- unbuilt modules
def test_unbuilt_keras_layer_builds_in_the_converted_dtype():
    layer = L.LSTM(4).double()
    assert layer.dtype == F64 and layer.get_config()["dtype"] == "float64"
    out = layer(_inputs(F32))
    assert out.dtype == F64 and layer.kernel.dtype == F64
    assert L.LSTM(4).to("cpu").dtype == F32  # a device move keeps the dtype
    assert L.LSTM(4, dtype="float64").to(dtype=torch.float16).dtype == F16


def test_unbuilt_cell_builds_in_the_converted_dtype():
    cell = L.LSTMCell(4).half()
    assert cell.dtype == F16
    out, _ = L.dynamic_rnn(cell, _inputs(F16), dtype=F16)
    assert out.dtype == F16 and cell.kernel.dtype == F16
    assert L.LSTMCell(4).to("cpu").dtype is None  # still the first input's dtype
    stack = L.MultiRNNCell([L.LSTMCell(4), L.LSTMCell(3)]).double()
    assert stack.dtype == F64 and all(c.dtype == F64 for c in stack.cells)
    out, _ = L.dynamic_rnn(stack, _inputs(F64), dtype=F64)
    assert out.dtype == F64


def test_cell_keeps_tf1_dtype_rule_after_conversion():
    """TF1 cells do not convert their inputs: after ``.double()`` a float32 input is
    refused, as for a cell made in float64."""
    cell = _cell(_plain)(F32).double()
    with pytest.raises(TypeError, match="weights of dtype torch.float64"):
        L.dynamic_rnn(cell, _inputs(F32), dtype=F32)


# ----------------------------------------------------------------------- kernels
def _last_kernel(module):
    return sorted(_kernels_used(module))


@pytest.mark.parametrize("dtype", [F16, BF16])
def test_half_precision_kernels_on_cpu(dtype):
    """What ``choose`` picks in float16/bfloat16 on CPU: ``torch.lstm`` for the
    sigmoid/tanh cells (it runs them, as accurately as the reference in that dtype),
    ``reference`` for the rest (``fused`` runs float32/float64 only)."""
    x = _inputs(dtype)
    layer = _keras(return_sequences=True)(F32).to(dtype)
    layer(x)
    assert _last_kernel(layer) == ["reference"]
    layer = _keras(return_sequences=True, recurrent_activation="sigmoid")(F32).to(dtype)
    layer(x)
    assert _last_kernel(layer) == ["native"]
    cell = _cell(_plain)(F32).to(dtype)
    L.dynamic_rnn(cell, x, dtype=dtype)
    assert _last_kernel(cell) == ["native"]
    cell(x[:, 0], cell.zero_state(B, dtype))
    assert _last_kernel(cell) == ["native"]
    cell = _cell(_peep_proj_clip)(F32).to(dtype)
    L.dynamic_rnn(cell, x, dtype=dtype)
    assert _last_kernel(cell) == ["reference"]


@pytest.mark.parametrize("dtype", [F16, BF16])
def test_forced_fused_kernel_refuses_half_precision(dtype, monkeypatch):
    layer = L.LSTM(4, input_shape=(None, DEPTH), engine_kernel="fused").to(dtype)
    with pytest.raises(ValueError, match=rf"`kernel='fused'` cannot run this call exactly: "
                                         rf"dtype {dtype} \(fused runs float32 and float64\)"):
        layer(_inputs(dtype))
    monkeypatch.setenv(KERNEL_ENV, "fused")
    cell = L.LSTMCell(4).to(dtype)
    with pytest.raises(ValueError, match="cannot run this call exactly: dtype"):
        L.dynamic_rnn(cell, _inputs(dtype), dtype=dtype)


@pytest.mark.parametrize("kernel", ["native", "fused", "reference"])
@pytest.mark.parametrize("name", ["LSTM-sigmoid", "LSTM-stateful-steps", "LSTMCell-dynamic_rnn",
                                  "LSTMCell-steps", "MultiRNNCell-dynamic_rnn"])
def test_float64_after_double_on_every_kernel(name, kernel, monkeypatch):
    """``.double()`` then each CPU kernel that takes the call: float64 numbers agree
    to 1e-10 (``native`` declines peepholes and clips with a ValueError)."""
    case = CASES[name]
    module, dtype = _converted(case, "double")
    x = _inputs(F64)
    reference = copy.deepcopy(module)
    monkeypatch.setenv(KERNEL_ENV, "reference")
    want = case.run(reference, x)
    monkeypatch.setenv(KERNEL_ENV, kernel)
    if kernel == "native" and name.startswith("MultiRNNCell"):
        with pytest.raises(ValueError, match="`kernel='native'` cannot run this call exactly"):
            case.run(module, x)
        return
    got = case.run(module, x)
    assert _last_kernel(module) == [kernel]
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == F64
        _close(g, w, F64, f"tensor {i}")


@pytest.mark.parametrize("kernel", ["fused", "reference"])
def test_float64_keras_default_on_every_kernel(kernel):
    module, _ = _converted(CASES["LSTM"], "double")
    want = copy.deepcopy(module)
    want.engine_kernel = "reference"
    module.engine_kernel = kernel
    x = _inputs(F64)
    _close(module(x), want(x), F64, "output")
    module.engine_kernel = "native"
    with pytest.raises(ValueError, match="recurrent_activation='hard_sigmoid'"):
        module(x)


@pytest.mark.parametrize("dtype,sigmoid,expected", [
    (F16, True, "native"), (BF16, True, "native"), (F64, True, "native"),
    (F16, False, "reference"), (BF16, False, "reference"), (F64, False, "reference"),
])
def test_cuda_choice_by_dtype(dtype, sigmoid, expected):
    """On CUDA (a pure decision, no GPU needed): ``triton`` runs float32 only, so
    the other dtypes go to cuDNN (``native``) when it can run the spec, else
    ``reference``."""
    spec = CellSpec(units=8, recurrent_activation="sigmoid" if sigmoid else "hard_sigmoid")
    name, reason = choose(spec, device="cuda", dtype=dtype, steps=T, batch=B)
    assert name == expected
    if not sigmoid:
        assert f"not triton: dtype {dtype}" in reason
