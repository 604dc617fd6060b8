"""Helpers for the TF1 golden tests: rebuild a golden case with lstmcompat and run it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lstmcompat as L

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "tf1"
TOL = {"float32": 1e-5, "float64": 1e-10}


WEIGHT_NAMES = ["kernel", "bias", "w_f_diag", "w_i_diag", "w_o_diag", "projection/kernel"]


def _relative(tf_name: str) -> str:
    base = re.sub(r"/part_\d+$", "", tf_name)
    return "projection/kernel" if base.endswith("projection/kernel") else base.split("/")[-1]


def tf_weights(d: Any, cell: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """TF weights of cell ``cell`` by relative name: ``(value, gradient)``.

    TF partitions variables when ``num_unit_shards``/``num_proj_shards`` are set
    (``kernel/part_0``, ...); the parts are concatenated on axis 0 here, which is
    the unpartitioned variable lstmcompat keeps.
    """
    parts: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    k = 0
    while f"w_{cell}_{k}" in d.files:
        name = str(d[f"wname_{cell}_{k}"])
        parts.setdefault(_relative(name), []).append(
            (name, d[f"w_{cell}_{k}"], d[f"g_w_{cell}_{k}"]))
        k += 1
    out = {}
    for rel, ps in parts.items():
        ps.sort(key=lambda t: t[0])
        out[rel] = (np.concatenate([p[1] for p in ps], 0), np.concatenate([p[2] for p in ps], 0))
    return out


def golden_files() -> list[Path]:
    return sorted(GOLDENS.glob("*.npz"))


def flatten(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    out: list[torch.Tensor] = []
    for s in state:
        out += flatten(s)
    return out


def pack(size: Any, flat: list[torch.Tensor]) -> Any:
    it = iter(flat)

    def rec(s: Any) -> Any:
        if isinstance(s, int):
            return next(it)
        if isinstance(s, L.LSTMStateTuple):
            return L.LSTMStateTuple(rec(s.c), rec(s.h))
        return tuple(rec(x) for x in s)

    return rec(size)


def run_case(path: Path) -> dict[str, Any]:
    """Rebuild the case of ``path``, run it, and return our results next to TF's."""
    d = np.load(path)
    cfg = json.loads(str(d["config"]))
    dt = {"float32": torch.float32, "float64": torch.float64}[cfg["dtype"]]
    depth_x = d["x"].shape[-1]
    cells = []
    for i, kw in enumerate(cfg["cells"]):
        kw = dict(kw)
        depth = kw.pop("depth", depth_x)
        c = L.LSTMCell(**kw, dtype=dt)
        c.build((None, depth))
        tf_w = tf_weights(d, i)
        c.set_weights([tf_w[n][0] for n in WEIGHT_NAMES if n in tf_w])
        cells.append(c)
    runners = runners_of(cfg, cells)
    x, s0_flat, outs, flat_states = run_runners(cfg, d, runners, dt)
    loss, grads = loss_and_grads(d, outs, flat_states,
                                 [x, *s0_flat, *(p for c in cells for p in c.weights)])
    return dict(cfg=cfg, data=d, outs=outs, states=flat_states, grads=grads, cells=cells,
                runners=runners, n_s0=len(s0_flat), loss=loss)


def runners_of(cfg: dict[str, Any], cells: list[Any]) -> list[Any]:
    """What a case runs: a ``MultiRNNCell`` of ``cfg["stack"]``, the two cells of a
    bidirectional case, or the first cell."""
    if cfg["stack"] is not None:
        return [L.MultiRNNCell([cells[i] for i in cfg["stack"]],
                               state_is_tuple=cfg["multi_tuple"])]
    return cells[:2] if cfg["kind"] == "bidi" else cells[:1]

def run_runners(cfg: dict[str, Any], d: Any, runners: list[Any], dt: torch.dtype,
                requires_grad: bool = True
                ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Run a case's runners on its inputs and initial states: ``(x, flat initial
    states, outputs, flat final states)``. Kinds: ``step``, ``dynamic``,
    ``static``, ``bidi``, and ``fused`` (an ``LSTMBlockFusedCell`` call)."""
    kind = cfg["kind"]
    x = torch.tensor(d["x"], requires_grad=requires_grad)
    s0_flat: list[torch.Tensor] = []
    s0 = []
    for r_i, r in enumerate(runners):
        if cfg["init_state"]:
            n = len(flatten(r.zero_state(1, dt)))
            flat = [torch.tensor(d[f"s0_{r_i}_{k}"], requires_grad=requires_grad) for k in range(n)]
            s0_flat += flat
            s0.append(pack(r.state_size, flat) if not isinstance(r.state_size, int) else flat[0])
        else:
            s0.append(None)
    dtype_arg = None if cfg["init_state"] else cfg["dtype"]
    sl = cfg["seq_len"]
    tm = cfg["time_major"]
    if kind == "step":
        out, st = runners[0](x, s0[0])
        outs, states = [out], [st]
    elif kind == "dynamic":
        out, st = L.dynamic_rnn(runners[0], x, sequence_length=sl, initial_state=s0[0],
                                dtype=dtype_arg, time_major=tm)
        outs, states = [out], [st]
    elif kind == "static":
        xs = list(x.unbind(0 if tm else 1))
        out_list, st = L.static_rnn(runners[0], xs, initial_state=s0[0], dtype=dtype_arg,
                                    sequence_length=sl)
        outs, states = [torch.stack(out_list, 0)], [st]
    elif kind == "bidi":
        (of, ob), (sf, sb) = L.bidirectional_dynamic_rnn(
            runners[0], runners[1], x, sequence_length=sl, initial_state_fw=s0[0],
            initial_state_bw=s0[1], dtype=dtype_arg, time_major=tm)
        outs, states = [of, ob], [sf, sb]
    elif kind == "fused":
        out, st = runners[0](x, initial_state=s0[0], dtype=dtype_arg, sequence_length=sl)
        outs, states = [out], [st]
    else:
        raise ValueError(kind)
    flat_states: list[torch.Tensor] = []
    for s in states:
        flat_states += flatten(s)
    return x, s0_flat, outs, flat_states


def loss_and_grads(d: Any, outs: list[torch.Tensor], flat_states: list[torch.Tensor],
                   wrt: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The case's loss (its fixed weighting of outputs and final states, as the golden
    script's) and its gradients w.r.t. ``wrt`` (zeros where unused)."""
    loss = sum((o * torch.tensor(d[f"wout_{k}"])).sum() for k, o in enumerate(outs))
    loss = loss + sum((s * torch.tensor(d[f"wst_{k}"])).sum() for k, s in enumerate(flat_states))
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    return loss, [torch.zeros_like(w) if g is None else g for w, g in zip(wrt, grads, strict=True)]


def tf_input_gradients(d: Any) -> list[tuple[str, np.ndarray]]:
    """TF's gradients w.r.t. the inputs and then each initial-state leaf, in order."""
    out = [("g_x", d["g_x"])]
    keys = sorted((k for k in d.files if k.startswith("g_s0_")),
                  key=lambda k: tuple(int(p) for p in k.split("_")[2:]))
    return out + [(k, d[k]) for k in keys]


def tf_gradients(res: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    """TF's gradients in the order of ``res["grads"]`` (inputs, initial states, weights)."""
    d = res["data"]
    out = tf_input_gradients(d)
    for i, _ in enumerate(res["cells"]):
        tf_w = tf_weights(d, i)
        out += [(f"cell {i} {n}", tf_w[n][1]) for n in WEIGHT_NAMES if n in tf_w]
    assert len(out) == len(res["grads"])
    return out
