"""Argument checks shared by both front-ends (Keras ``LSTM`` and the TF1 cells).

Every check raises before anything is allocated, with a message that names the
argument (in backticks), what was expected and what was given. The exception
types are TensorFlow's where TensorFlow has one (recorded by running TF 2.21 +
tf_keras; ``InvalidArgumentError`` becomes ``ValueError``):

* sizes (``units``, ``num_units``, ``num_proj``) and dimensions
  (``input_shape`` entries, ``input_dim``, ``batch_size``, ``zero_state``'s
  ``batch_size``): TensorFlow's ``Dimension`` accepts ``int``, NumPy integers
  and 0-d integer tensors (anything with ``__index__``); a float such as
  ``2.5`` (also ``4.0``) or a string raises ``TypeError`` ("Dimension value
  must be integer or None or have an __index__ method"), a negative value
  ``ValueError`` ("Dimension -3 must be >= 0"), a bool in a shape
  ``TypeError``. Here a bool is refused with ``TypeError`` everywhere (TF
  reads ``True`` as 1 in some places: an accident, not a feature).
* dropout rates: Keras clamps numbers to ``[0, 1]``; a string or ``None``
  raises ``TypeError`` (``'>' not supported ...``). NaN (which Keras turns into
  0 silently) raises ``ValueError`` here.
* ``cell_clip``/``proj_clip``: a non-number raises ``TypeError`` in TF (``bad
  operand type for unary -``); ``forget_bias=None`` raises ``ValueError``
  ("Attempt to convert a value (None) ... to a Tensor") and a string
  ``InvalidArgumentError``, so ``forget_bias`` raises ``ValueError``.

Sizes whose weights cannot fit in memory raise :class:`AllocationTooLargeError`
(both a ``ValueError`` and a ``MemoryError``) before allocating; TensorFlow has
no such check (it tries, and fails after seconds or is killed).
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch


def _describe(value: Any) -> str:
    """``2.5 (float)``: the value and its type, for error messages."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _is_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return True
    return isinstance(value, (torch.Tensor, np.ndarray)) and value.dtype in (torch.bool, np.bool_)


def _index(value: Any) -> int | None:
    """``operator.index(value)`` for integer-likes (``int``, NumPy integers, 0-d
    integer arrays and tensors), ``None`` for anything else (bools included). A
    symbolic size (graph capture) stays symbolic."""
    if isinstance(value, torch.SymInt) or (torch.compiler.is_compiling()
                                          and type(value) is int):
        return value  # type: ignore[return-value]
    if _is_bool(value) or isinstance(value, (str, bytes)):
        return None
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim != 0:
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def integer(value: Any, arg: str, minimum: int = 1) -> int:
    """An ``int`` from an integer-like ``value`` that is at least ``minimum``.

    Raises:
        TypeError: ``value`` is not an integer-like (a float such as ``2.5`` or
            ``4.0``, a string, a bool, ``None``, a tensor with more than one element).
        ValueError: ``value`` is below ``minimum``.
    """
    kind = "a positive integer" if minimum == 1 else (
        "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}")
    n = _index(value)
    if n is None:
        raise TypeError(f"`{arg}` must be {kind}, got {_describe(value)}.")
    if n < minimum:
        raise ValueError(f"`{arg}` must be {kind}, got {n}.")
    return n


def positive_int(value: Any, arg: str) -> int:
    """``integer(value, arg, minimum=1)``: e.g. ``units``, ``num_units``, ``num_proj``."""
    return integer(value, arg, 1)


def optional_positive_int(value: Any, arg: str) -> int | None:
    """:func:`positive_int`, or ``None`` for ``None``."""
    return None if value is None else integer(value, arg, 1)


def dimension_like(value: Any) -> bool:
    """Whether ``value`` is one integer-like (a size rather than a shape)."""
    return _index(value) is not None


def dimension(value: Any, arg: str) -> int | None:
    """One dimension as TensorFlow's ``Dimension`` takes it: ``None`` or a
    non-negative integer-like (``TypeError`` for other types, ``ValueError`` for
    negative values)."""
    if value is None:
        return None
    n = _index(value)
    if n is None:
        raise TypeError(
            f"`{arg}` must be None or a non-negative integer, got {_describe(value)}."
        )
    if n < 0:
        raise ValueError(f"`{arg}` must be None or a non-negative integer, got {n}.")
    return n


def shape(value: Any, arg: str) -> tuple[int | None, ...]:
    """A shape (a sequence of :func:`dimension` entries) as a tuple of ``int``/``None``.

    Raises:
        TypeError: ``value`` is not a sequence (an ``int``, a string), or an entry
            is not ``None`` or an integer-like.
        ValueError: an entry is negative.
    """
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(
            value, (Iterable, torch.Size)) or (
            isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim != 1):
        raise TypeError(
            f"`{arg}` must be a tuple of dimensions (each None or a non-negative integer), "
            f"got {_describe(value)}."
        )
    dims = tuple(value)
    for d in dims:
        if d is not None and (_index(d) is None):
            raise TypeError(
                f"`{arg}` must be a tuple of dimensions (each None or a non-negative "
                f"integer), got {_describe(dims)} with the entry {_describe(d)}."
            )
        if d is not None and operator.index(d) < 0:
            raise ValueError(
                f"`{arg}` must be a tuple of dimensions (each None or a non-negative "
                f"integer), got {dims} with the entry {operator.index(d)}."
            )
    return tuple(None if d is None else operator.index(d) for d in dims)


def number(value: Any, arg: str, error: type[Exception] = TypeError,
           allow_nan: bool = False) -> float:
    """A ``float`` from a real number (``int``, ``float``, NumPy scalar, 0-d tensor).

    Args:
        value: the argument.
        arg: its name, for the message.
        error: the exception type for a non-number (``TypeError`` unless
            TensorFlow raises another type for this argument).
        allow_nan: accept NaN (where TensorFlow accepts it and its formula
            says what it does, e.g. a clip bound or the forget bias).

    Raises:
        error: ``value`` is not a real number (``None``, a string, a bool, a
            complex number, a list, a tensor with more than one element).
        ValueError: ``value`` is NaN.
    """
    ok = not _is_bool(value) and not isinstance(value, (str, bytes))
    if ok and isinstance(value, (torch.Tensor, np.ndarray)):
        ok = value.ndim == 0 and not (value.dtype.is_complex if isinstance(value, torch.Tensor)
                                      else np.iscomplexobj(value))
        ok = ok and (isinstance(value, torch.Tensor) or np.issubdtype(value.dtype, np.number))
    elif ok:
        ok = isinstance(value, (numbers.Real, np.floating, np.integer))
    if not ok:
        raise error(f"`{arg}` must be a real number, got {_describe(value)}.")
    result = float(value)
    if math.isnan(result) and not allow_nan:
        raise ValueError(f"`{arg}` must be a real number, got NaN.")
    return result


def optional_number(value: Any, arg: str, error: type[Exception] = TypeError,
                    allow_nan: bool = False) -> float | None:
    """:func:`number`, or ``None`` for ``None`` (e.g. ``cell_clip``, ``proj_clip``)."""
    return None if value is None else number(value, arg, error, allow_nan)


def rate(value: Any, arg: str) -> float:
    """A dropout rate: a real number, clamped to ``[0, 1]`` as Keras does."""
    return min(1.0, max(0.0, number(value, arg)))


def config_dict(config: Any, arg: str = "config") -> dict[str, Any]:
    """A copy of a ``from_config`` argument, which must be a mapping (``TypeError``)."""
    if not isinstance(config, Mapping):
        raise TypeError(
            f"`{arg}` must be a dict of constructor arguments (as `get_config()` returns), "
            f"got {_describe(config)}."
        )
    return dict(config)


# ---------------------------------------------------------------------- memory guard
class AllocationTooLargeError(ValueError, MemoryError):
    """Tensors an argument asks for cannot fit in memory: raised before allocating.

    Both a ``ValueError`` (a bad argument) and a ``MemoryError``, so that either
    ``except`` catches it.
    """


#: Bytes no tensor can take whatever the machine (torch sizes are int64).
_MAX_BYTES = 2**63 - 1


@functools.cache
def _physical_memory() -> int | None:
    """Bytes of memory this process can use at most: the physical memory, lowered
    by a cgroup limit (containers); ``None`` where neither can be read."""
    found: list[int] = []
    try:
        found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        found.extend(_windows_memory())
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < _MAX_BYTES:
            found.append(int(text))
    found = [n for n in found if n > 0]
    return min(found) if found else None


def _windows_memory() -> list[int]:
    try:
        import ctypes

        class _Status(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                        ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                        ("ullTotalPageFile", ctypes.c_ulonglong),
                        ("ullAvailPageFile", ctypes.c_ulonglong),
                        ("ullTotalVirtual", ctypes.c_ulonglong),
                        ("ullAvailVirtual", ctypes.c_ulonglong),
                        ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

        status = _Status()
        status.dwLength = ctypes.sizeof(_Status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return [int(status.ullTotalPhys)]
    except Exception:  # noqa: BLE001 - no way to tell: no limit but the int64 one
        pass
    return []


def memory_limit(device: torch.device | str | None = None) -> int | None:
    """Bytes that tensors on ``device`` (default CPU) can take at most, or ``None``
    when unknown: the machine's memory for the CPU, the card's for CUDA."""
    dev = torch.device("cpu") if device is None else torch.device(device)
    if dev.type == "cpu":
        return _physical_memory()
    if dev.type == "cuda":
        try:
            return int(torch.cuda.get_device_properties(dev).total_memory)
        except Exception:  # noqa: BLE001 - no CUDA runtime: unknown
            return None
    return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_allocation(tensors: Sequence[tuple[str, Sequence[int]]], dtype: torch.dtype,
                     what: str | Callable[[], str],
                     device: torch.device | str | None = None) -> None:
    """Raise :class:`AllocationTooLargeError` when ``tensors`` cannot fit in memory.

    Args:
        tensors: ``(name, shape)`` of every tensor about to be allocated together.
        dtype: their dtype.
        what: what asks for them, for the message, or a function making it (then
            made only for an error) (``"LSTM `units`=100000000 with 8
            input features"``).
        device: where they will live (default CPU).
    """
    if torch.compiler.is_compiling():  # sizes may be symbolic; the graph allocates them
        return
    itemsize = torch.empty((), dtype=dtype).element_size()
    total = 0
    for _, shp in tensors:
        numel = math.prod(int(s) for s in shp)
        total += numel * itemsize
        if numel > _MAX_BYTES:  # also guards torch's int64 sizes
            break
    limit = memory_limit(device)
    cap = _MAX_BYTES if limit is None else min(limit, _MAX_BYTES)
    if total <= cap:
        return
    listed = ", ".join(f"{name} {tuple(int(s) for s in shp)}" for name, shp in tensors)
    where = (f"this machine's memory ({limit} bytes, {_gib(limit)})" if limit is not None
             else f"the largest size a tensor can have ({_MAX_BYTES} bytes)")
    if callable(what):
        what = what()
    raise AllocationTooLargeError(
        f"{what} needs {total} bytes ({_gib(total)}) of {str(dtype).replace('torch.', '')} "
        f"tensors ({listed}), more than {where}; nothing was allocated. Use smaller sizes."
    )


# ------------------------------------------------------------------- tensors passed in
def check_device(t: torch.Tensor, arg: str, device: torch.device | None) -> None:
    """Refuse a tensor on the ``meta`` device (it holds no data) where the layer
    computes on a real ``device`` (``ValueError``). Tensors on other devices are
    moved by the callers, as TensorFlow copies between devices (a layer on the
    meta device computes shapes only: any input moves there)."""
    if device is None:
        return
    device = torch.device(device)
    if t.device.type == "meta" and device.type != "meta":
        raise ValueError(
            f"`{arg}` is on the meta device (a meta tensor holds no data) but the layer "
            f"computes on {device}; pass `{arg}` with values."
        )


def initial_value(value: Any, arg: str, expected: tuple[int, ...],
                  dtype: torch.dtype) -> torch.Tensor:
    """What an initializer returned, checked and converted to a ``dtype`` tensor.

    TensorFlow (``tf.Variable`` creation) raises ``ValueError`` for ``None`` and
    for a value of another shape ("the initial value's shape ((3, 3)) is not
    compatible with the explicitly supplied `shape` argument ((3, 16))"), and
    ``TypeError`` for a value that is not numeric ("Cannot convert 'abc' to
    EagerTensor"); a scalar is not broadcast.

    Args:
        value: the initializer's result.
        arg: the initializer argument (``kernel_initializer``, ``initializer``).
        expected: the shape the weight has.
        dtype: the weight dtype.
    """
    if value is None:
        raise ValueError(f"`{arg}` returned None; expected a tensor of shape {expected}.")
    if not isinstance(value, torch.Tensor):
        try:
            array = np.asarray(value)
            if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
                raise TypeError
            value = torch.as_tensor(array)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"`{arg}` must return a tensor of shape {expected}, got {_describe(value)}."
            ) from None
    if value.is_complex():
        raise TypeError(f"`{arg}` returned a complex tensor ({value.dtype}); expected real values.")
    if tuple(value.shape) != tuple(expected):
        raise ValueError(
            f"`{arg}` returned a tensor of shape {tuple(value.shape)}, but the weight has "
            f"shape {tuple(expected)}."
        )
    if value.device.type == "meta":
        raise ValueError(f"`{arg}` returned a tensor on the meta device (no values).")
    return value.to(dtype)
