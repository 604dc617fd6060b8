"""``save``/``load`` of the TF1 cell wrappers (``DropoutWrapper``, ``ResidualWrapper``,
``DeviceWrapper``): the wrapped cell's tensors under its own names (a wrapper adds
no scope), and a config ``{"cell": {class, config, input_depth}, <wrapper args>}``."""

from __future__ import annotations

from typing import Any

import torch

from .._dtypes import dtype_name

__all__ = ["wrapper_kinds"]


def _inner_entry(wrapper: Any) -> tuple[dict[str, Any], int | None]:
    from ._save import _kind_of
    kind = _kind_of(wrapper.cell)
    config, depth = kind.describe(wrapper.cell)
    return {"class": kind.name, "config": config, "input_depth": depth}, depth


def _tensors(wrapper: Any) -> list[tuple[str, torch.Tensor]]:
    from ._save import _kind_of
    return _kind_of(wrapper.cell).tensors(wrapper.cell)


def _rebuild_inner(config: Any, tensors: Any, keys: set[str]) -> Any:
    from ._save import _rebuild_entry
    if not isinstance(config, dict) or set(config) != keys:
        raise ValueError(f"a wrapper config needs exactly the keys {sorted(keys)}, got "
                         f"{sorted(config) if isinstance(config, dict) else config!r}")
    return _rebuild_entry(config["cell"], tensors, "the wrapped cell")


def _keep(value: Any) -> float:
    if isinstance(value, torch.Tensor):  # a keep probability read at each call: its value now
        return float(value.detach().reshape(()))
    return float(value)


def _dropout_describe(w: Any) -> tuple[dict[str, Any], int | None]:
    from .._tf1.wrappers import _default_dropout_state_filter_visitor
    if w._dropout_state_filter is not _default_dropout_state_filter_visitor:
        raise ValueError("cannot save this DropoutWrapper: its `dropout_state_filter_visitor` "
                         "is a Python callable, which a file cannot name.")
    cell, depth = _inner_entry(w)
    size = w._input_size
    if size is not None and not isinstance(size, int):
        raise ValueError(f"cannot save this DropoutWrapper: its `input_size` ({size!r}) is "
                         "not an integer.")
    return {"cell": cell, "input_keep_prob": _keep(w._input_keep_prob),
            "output_keep_prob": _keep(w._output_keep_prob),
            "state_keep_prob": _keep(w._state_keep_prob),
            "variational_recurrent": w._variational_recurrent, "input_size": size,
            "dtype": None if w._noise_dtype is None else dtype_name(w._noise_dtype),
            "seed": w._seed}, depth


def _dropout_rebuild(config: Any, depth: int | None, tensors: Any) -> Any:
    from .._tf1.wrappers import DropoutWrapper
    keys = {"cell", "input_keep_prob", "output_keep_prob", "state_keep_prob",
            "variational_recurrent", "input_size", "dtype", "seed"}
    cell = _rebuild_inner(config, tensors, keys)
    kw = {k: config[k] for k in keys - {"cell"}}
    return DropoutWrapper(cell, **kw)


def _residual_describe(w: Any) -> tuple[dict[str, Any], int | None]:
    if w._residual_fn is not None:
        raise ValueError("cannot save this ResidualWrapper: its `residual_fn` is a Python "
                         "callable, which a file cannot name.")
    cell, depth = _inner_entry(w)
    return {"cell": cell}, depth


def _residual_rebuild(config: Any, depth: int | None, tensors: Any) -> Any:
    from .._tf1.wrappers import ResidualWrapper
    return ResidualWrapper(_rebuild_inner(config, tensors, {"cell"}))


def _device_describe(w: Any) -> tuple[dict[str, Any], int | None]:
    cell, depth = _inner_entry(w)
    return {"cell": cell, "device": str(w.device)}, depth


def _device_rebuild(config: Any, depth: int | None, tensors: Any) -> Any:
    from .._tf1.wrappers import DeviceWrapper
    cell = _rebuild_inner(config, tensors, {"cell", "device"})
    if not isinstance(config["device"], str):
        raise ValueError(f"`device` must be a string, got {config['device']!r}")
    return DeviceWrapper(cell, config["device"])


def wrapper_kinds() -> list[Any]:
    """The :class:`~._save.ModuleKind` of each wrapper."""
    from .._tf1.wrappers import DeviceWrapper, DropoutWrapper, ResidualWrapper
    from ._save import ModuleKind
    return [ModuleKind("DropoutWrapper", DropoutWrapper, _dropout_describe, _tensors,
                       _dropout_rebuild),
            ModuleKind("ResidualWrapper", ResidualWrapper, _residual_describe, _tensors,
                       _residual_rebuild),
            ModuleKind("DeviceWrapper", DeviceWrapper, _device_describe, _tensors,
                       _device_rebuild)]
