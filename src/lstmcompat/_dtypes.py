"""Dtype names and array-like conversion shared by both front-ends (docs/api.md §4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import _args

_NAMES = {
    "float16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32, "float": torch.float32,
    "float64": torch.float64, "double": torch.float64,
    # Integer names resolve so that callers can reject them with their own message.
    "int32": torch.int32, "int64": torch.int64,
}


def resolve_dtype(dtype: Any, default: torch.dtype | None = torch.float32,
                  arg: str = "dtype") -> torch.dtype | None:
    """A ``torch.dtype`` from a dtype, its name (``"float32"``), a NumPy dtype, or ``None``."""
    if dtype is None:
        return default
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, dict):  # a Keras mixed-precision Policy config
        dtype = dtype.get("config", {}).get("name", dtype)
    name = getattr(dtype, "name", dtype)  # tf.DType / np.dtype expose .name
    if isinstance(dtype, type) and issubclass(dtype, np.generic):
        name = np.dtype(dtype).name
    if isinstance(name, str):
        key = name.replace("torch.", "")
        if key in _NAMES:
            return _NAMES[key]
    raise TypeError(
        f"`{arg}` must be a torch.dtype or its name ({', '.join(sorted(_NAMES))}), "
        f"got {dtype!r}."
    )


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def applied_dtype(fn: Callable[[torch.Tensor], Any], current: torch.dtype | None,
                  param: torch.Tensor | None) -> torch.dtype | None:
    """A module's compute dtype after ``module._apply(fn)`` (``.double()``, ``.half()``,
    ``.to(dtype)``, ...): the dtype of its (already converted) floating parameter
    ``param``; without one (not built yet), the dtype ``fn`` converts every floating
    tensor to, or ``current`` when ``fn`` keeps dtypes (``.to(device)``, ``.cpu()``)
    or cannot be probed.
    """
    if param is not None:
        return param.dtype if param.is_floating_point() else current
    try:
        probes = [fn(torch.empty(0, dtype=d)) for d in (torch.float32, torch.float64)]
    except Exception:  # a probe only: e.g. .cuda() without a GPU
        return current
    if all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in probes) \
            and probes[0].dtype == probes[1].dtype:
        return probes[0].dtype
    return current


def as_tensor(x: Any, arg: str, dtype: torch.dtype | None = None,
              device: torch.device | None = None) -> torch.Tensor:
    """Convert an array-like to a tensor (cast to ``dtype`` when given).

    Raises ``ValueError`` naming ``arg`` when it cannot be converted, when a
    non-floating array is passed where ``dtype`` is floating (TensorFlow raises
    ``InvalidArgumentError`` there), or when a tensor on the meta device (no
    data) is to be moved to a real ``device``.
    """
    if isinstance(x, torch.Tensor):
        _args.check_device(x, arg, device)
    else:
        try:
            x = _from_numpy(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"`{arg}` must be a tensor or an array-like of numbers: {e}") from None
    if dtype is not None and dtype.is_floating_point and not x.dtype.is_floating_point:
        raise ValueError(
            f"`{arg}` must be a floating tensor (the layer computes in {dtype_name(dtype)}), "
            f"got dtype {dtype_name(x.dtype)}."
        )
    if dtype is not None or device is not None:
        x = x.to(device=device if device is not None else x.device,
                 dtype=dtype if dtype is not None else x.dtype)
    return x


def _from_numpy(a: np.ndarray) -> torch.Tensor:
    """``torch.as_tensor`` that also takes ``ml_dtypes`` arrays (NumPy extension dtypes):
    bfloat16 bit for bit (what ``get_weights`` returns for bfloat16 weights), the
    others (float8, ...) through float32."""
    if a.dtype.kind == "V" and a.dtype.names is None \
            and a.dtype.type.__module__.startswith("ml_dtypes"):
        if a.dtype.name == "bfloat16":
            bits = np.array(a, order="C").view(np.int16)
            return torch.from_numpy(bits).view(torch.bfloat16)
        a = a.astype(np.float32)
    return torch.as_tensor(a)
