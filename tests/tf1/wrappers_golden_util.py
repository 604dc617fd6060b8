"""Helpers for the user-cell and wrapper goldens (``tools/goldens_tf1_wrappers.py``):
the golden script's user cells written in torch, and each case rebuilt with lstmcompat."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tf1_golden_util import flatten

import lstmcompat as L

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "tf1_wrappers"
LENGTHS = [5, 2, 0]


class MyGRUCell(L.RNNCell):
    """The golden script's ``MyGRUCell``, in torch."""

    def __init__(self, units: int, name: str | None = None) -> None:
        super().__init__(name=name)
        self._u = units

    @property
    def state_size(self) -> int:
        return self._u

    @property
    def output_size(self) -> int:
        return self._u

    def build(self, inputs_shape: Any) -> None:
        d, u = inputs_shape[-1], self._u
        self._gk = self.add_weight("gates/kernel", [d + u, 2 * u])
        self._gb = self.add_weight("gates/bias", [2 * u], initializer="ones")
        self._ck = self.add_weight("candidate/kernel", [d + u, u])
        self._cb = self.add_weight("candidate/bias", [u], initializer="zeros")

    def call(self, inputs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.sigmoid(torch.cat([inputs, state], 1) @ self._gk + self._gb)
        r, z = g.chunk(2, dim=1)
        c = torch.tanh(torch.cat([inputs, r * state], 1) @ self._ck + self._cb)
        h = z * state + (1 - z) * c
        return h, h


class MyLSTMCell(L.RNNCell):
    """The golden script's ``MyLSTMCell`` (an ``LSTMStateTuple`` state), in torch."""

    def __init__(self, units: int, name: str | None = None) -> None:
        super().__init__(name=name)
        self._u = units

    @property
    def state_size(self) -> L.LSTMStateTuple:
        return L.LSTMStateTuple(self._u, self._u)

    @property
    def output_size(self) -> int:
        return self._u

    def build(self, inputs_shape: Any) -> None:
        d, u = inputs_shape[-1], self._u
        self.kernel = self.add_weight("kernel", [d + u, 4 * u])
        self.bias = self.add_weight("bias", [4 * u], initializer="zeros")

    def call(self, inputs: torch.Tensor, state: Any) -> tuple[torch.Tensor, L.LSTMStateTuple]:
        c, h = state
        i, j, f, o = (torch.cat([inputs, h], 1) @ self.kernel + self.bias).chunk(4, dim=1)
        c2 = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(j)
        h2 = torch.sigmoid(o) * torch.tanh(c2)
        return h2, L.LSTMStateTuple(c2, h2)


def _lstm(u: int) -> L.LSTMCell:
    return L.LSTMCell(u)


Runner = Callable[[torch.Tensor, dict[str, np.ndarray]], tuple[torch.Tensor, Any]]


def _dyn(make: Callable[[], Any], lengths: bool = True, time_major: bool = False,
         init: bool = False) -> Runner:
    def run(x: torch.Tensor, d: Any) -> tuple[torch.Tensor, Any]:
        cell = make()
        xs = x.transpose(0, 1) if time_major else x
        kw: dict[str, Any] = {"dtype": torch.float32}
        if init:
            zs = cell.zero_state(x.shape[0], torch.float32)
            leaves = iter(torch.from_numpy(d[f"init_{i}"]) for i in range(len(flatten(zs))))
            kw["initial_state"] = L._tf1.base.map_structure(lambda _: next(leaves), zs)
        out, st = L.dynamic_rnn(cell, xs, sequence_length=LENGTHS if lengths else None,
                                time_major=time_major, **kw)
        return (out.transpose(0, 1) if time_major else out), st
    return run


def _static(make: Callable[[], Any]) -> Runner:
    def run(x: torch.Tensor, d: Any) -> tuple[torch.Tensor, Any]:
        outs, st = L.static_rnn(make(), list(x.unbind(1)), sequence_length=LENGTHS,
                                dtype=torch.float32)
        return torch.stack(outs, 1), st
    return run


def _bidi(make_fw: Callable[[], Any], make_bw: Callable[[], Any]) -> Runner:
    def run(x: torch.Tensor, d: Any) -> tuple[torch.Tensor, Any]:
        (of, ob), (sf, sb) = L.bidirectional_dynamic_rnn(
            make_fw(), make_bw(), x, sequence_length=LENGTHS, dtype=torch.float32)
        return torch.cat([of, ob], 2), (sf, sb)
    return run


CASES: dict[str, Runner] = {
    "dyn_gru_len": _dyn(lambda: MyGRUCell(4)),
    "dyn_gru_tm_init": _dyn(lambda: MyGRUCell(4), lengths=False, time_major=True, init=True),
    "dyn_gru_named": _dyn(lambda: MyGRUCell(4, name="custom_gru"), lengths=True),
    "dyn_mylstm_len_init": _dyn(lambda: MyLSTMCell(4), init=True),
    "static_gru_len": _static(lambda: MyGRUCell(4)),
    "bidi_gru_len": _bidi(lambda: MyGRUCell(4), lambda: MyLSTMCell(2)),
    "multi_mixed_len": _dyn(lambda: L.MultiRNNCell([MyGRUCell(4), _lstm(3), MyLSTMCell(2)])),
    "residual_lstm_len": _dyn(lambda: L.ResidualWrapper(_lstm(3))),
    "residual_fn_len": _dyn(lambda: L.ResidualWrapper(
        _lstm(3), residual_fn=lambda i, o: o - 0.5 * i)),
    "residual_gru_len": _dyn(lambda: L.ResidualWrapper(MyGRUCell(3))),
    "residual_static_len": _static(lambda: L.ResidualWrapper(_lstm(3))),
    "multi_residual_len": _dyn(lambda: L.MultiRNNCell([_lstm(3), L.ResidualWrapper(_lstm(3))])),
    "device_lstm_len": _dyn(lambda: L.DeviceWrapper(_lstm(4), "/cpu:0")),
    "dropout1_lstm_len": _dyn(lambda: L.DropoutWrapper(_lstm(4))),
    "dropout1_var_gru_len": _dyn(lambda: L.DropoutWrapper(
        MyGRUCell(4), variational_recurrent=True, dtype=torch.float32)),
    "multi_wrapped_len": _dyn(lambda: L.MultiRNNCell([
        L.DeviceWrapper(L.DropoutWrapper(_lstm(3)), "/cpu:0"),
        L.ResidualWrapper(L.DropoutWrapper(_lstm(3))),
        L.ResidualWrapper(MyGRUCell(3))])),
    "bidi_wrapped_len": _bidi(lambda: L.ResidualWrapper(_lstm(3)),
                              lambda: L.DropoutWrapper(MyGRUCell(2))),
}


def load(name: str) -> Any:
    return np.load(GOLDENS / f"{name}.npz")


def names_of(name: str, d: Any) -> list[str]:
    """The variable names lstmcompat gives case ``name`` in a fresh Graph."""
    x = torch.from_numpy(d["x"])
    with L.Graph() as g:
        CASES[name](x, d)
    return list(g.variables())


def run_case(name: str, d: Any) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor,
                                         dict[str, torch.nn.Parameter]]:
    """Run case ``name`` with the golden's weights (the Graph holds them before the
    cells build, found under AUTO_REUSE); returns outputs, state leaves, the input
    tensor and the variables, after backward of the golden's loss."""
    names = json.loads(str(d["names"]))
    x = torch.from_numpy(d["x"]).requires_grad_(True)
    with L.Graph() as g:
        for i, n in enumerate(names):
            g._vars[n] = torch.nn.Parameter(torch.from_numpy(d[f"var_{i}"].copy()))
        with L.variable_scope("", reuse=L.AUTO_REUSE):
            out, st = CASES[name](x, d)
    assert list(g.variables()) == names
    leaves = flatten(st)
    loss = (out * torch.from_numpy(d["w_out"])).sum()
    for i, s in enumerate(leaves):
        loss = loss + (s * torch.from_numpy(d[f"w_st_{i}"])).sum()
    loss.backward()
    return out, leaves, x, g.variables()
