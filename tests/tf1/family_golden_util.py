"""Helpers for the TF1 family goldens (``tests/goldens/tf1_family``, written by
``tools/goldens_tf1_family.py``): rebuild a case with lstmcompat and run it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tf1_golden_util import loss_and_grads, run_runners, runners_of, tf_input_gradients

import lstmcompat as L

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "tf1_family"
TOL = {"float32": 2e-5, "float64": 1e-10}


def golden_files() -> list[Path]:
    return sorted(GOLDENS.glob("*_float*.npz"))


def make_cell(cfg: dict[str, Any], dtype: torch.dtype) -> Any:
    kw = dict(cfg)
    kw.pop("depth", None)
    cls = getattr(L, kw.pop("cls"))
    if cls is L.CudnnCompatibleLSTMCell:
        cell = cls(**kw)
        cell._dtype = dtype  # its constructor takes no dtype (TF: the first input's)
        return cell
    return cls(**kw, dtype=dtype)


def tf_weights(d: Any, cell: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(TF name, value, gradient)`` of each weight of cell ``cell``, in TF's order."""
    out = []
    k = 0
    while f"w_{cell}_{k}" in d.files:
        out.append((str(d[f"wname_{cell}_{k}"]), d[f"w_{cell}_{k}"], d[f"g_w_{cell}_{k}"]))
        k += 1
    return out


def run_case(path: Path, graph: bool = True) -> dict[str, Any]:
    """Rebuild the case of ``path`` and run it (inside a ``Graph`` when ``graph``: the
    first run names and builds the cells, the second, with TF's weights, is compared)."""
    d = np.load(path)
    cfg = json.loads(str(d["config"]))
    dt = {"float32": torch.float32, "float64": torch.float64}[cfg["dtype"]]
    cells = [make_cell(c, dt) for c in cfg["cells"]]
    runners = runners_of(cfg, cells)
    names: list[str] = []
    with torch.no_grad():  # builds (and, in a Graph, names) the cells
        if graph:
            with L.Graph() as g:
                _run(cfg, d, runners, dry=True)
            names = list(g.variables())
        else:
            _run(cfg, d, runners, dry=True)
    for i, c in enumerate(cells):
        c.set_weights([w for _, w, _ in tf_weights(d, i)])
    res = _run(cfg, d, runners, cells=cells)
    res.update(cfg=cfg, data=d, names=names, cells=cells)
    return res


def _run(cfg: dict[str, Any], d: Any, runners: list[Any], dry: bool = False,
         cells: list[Any] | None = None) -> dict[str, Any]:
    dt = {"float32": torch.float32, "float64": torch.float64}[cfg["dtype"]]
    x, s0_flat, outs, flat_states = run_runners(cfg, d, runners, dt, requires_grad=not dry)
    if dry:
        return {}
    params = [p for c in (cells or []) for p in c.weights]
    loss, grads = loss_and_grads(d, outs, flat_states, [x, *s0_flat, *params])
    return dict(outs=outs, states=flat_states, grads=grads, n_s0=len(s0_flat), loss=loss,
                runners=runners)


def tf_gradients(res: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    """TF's gradients in the order of ``res["grads"]`` (inputs, initial states, weights)."""
    d = res["data"]
    out = tf_input_gradients(d)
    for i, _ in enumerate(res["cells"]):
        out += [(name, g) for name, _, g in tf_weights(d, i)]
    assert len(out) == len(res["grads"])
    return out
