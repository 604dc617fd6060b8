"""TF1's cell wrappers: ``DropoutWrapper``, ``ResidualWrapper``, ``DeviceWrapper``.

Mirrors ``tf_keras/src/layers/rnn/legacy_cell_wrappers.py``. A wrapper adds no
variable scope (the wrapped cell names its variables as if unwrapped) and, over
a whole sequence, keeps the wrapped cell's engine path wherever its math allows:
the step-by-step loop is used only for dropout on the state (it changes the
recurrence). Each whole-sequence shortcut is exactly TF's per-step wrapper
followed by ``dynamic_rnn``'s zeroing of outputs past a length.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._util import as_dtype, as_tensor
from .base import RNNCell, State, flatten, is_leaf, map_structure
from .state import LSTMStateTuple

__all__ = ["DeviceWrapper", "DropoutWrapper", "ResidualWrapper"]


def _check_wrapped(cell: Any) -> None:
    if not isinstance(cell, RNNCell):
        raise TypeError(
            f"The argument `cell` ({cell!r}) is not an RNNCell: pass an lstmcompat cell, a "
            "wrapper or a subclass of lstmcompat.RNNCell."
        )


class _Wrapper(RNNCell):
    """What the three wrappers share (TF ``_RNNCellWrapperV1``): the wrapped cell's
    sizes, zero state, weights and scope (none of its own)."""

    def __init__(self, cell: RNNCell, dtype: Any = None) -> None:
        _check_wrapped(cell)
        super().__init__(dtype=dtype)
        self.cell = cell

    @property
    def wrapped_cell(self) -> RNNCell:
        """The wrapped cell (TF ``wrapped_cell``; also ``.cell``)."""
        return self.cell

    @property
    def state_size(self) -> Any:
        """The wrapped cell's ``state_size``."""
        return self.cell.state_size

    @property
    def output_size(self) -> Any:
        """The wrapped cell's ``output_size``."""
        return self.cell.output_size

    @property
    def weights(self) -> list[torch.nn.Parameter]:
        """The wrapped cell's weights."""
        return self.cell.weights

    @property
    def scope_name(self) -> str:
        """The wrapped cell's scope (a wrapper has none of its own)."""
        return self.cell.scope_name

    def zero_state(self, batch_size: int | torch.Tensor, dtype: Any) -> State:
        """The wrapped cell's zero state (TF ``zero_state``)."""
        return self.cell.zero_state(batch_size, dtype)

    def _prepare(self, depth: int, dtype: torch.dtype, scope: Any = None) -> None:
        if self._dtype is None:
            self._dtype = dtype
        self.cell._prepare(depth, dtype, scope)
        self.built = True


# -- DropoutWrapper ----------------------------------------------------------------------

def _default_dropout_state_filter_visitor(substate: Any) -> Any:
    """TF's default filter: never drop the ``c`` of an ``LSTMStateTuple``."""
    if isinstance(substate, LSTMStateTuple):
        return LSTMStateTuple(c=False, h=True)
    return True


def _sequence_like(structure: Any, items: list[Any]) -> Any:
    if hasattr(structure, "_fields"):
        return type(structure)(*items)
    return type(structure)(items)


def traverse_shallow_structure(fn: Callable[[Any], Any], structure: Any) -> Any:
    """TF ``nest.get_traverse_shallow_structure``: a structure of bools, ``True`` at
    each leaf ``fn`` lets through, ``False`` where a whole subtree is kept."""
    to_traverse = fn(structure)
    if is_leaf(structure):
        if not isinstance(to_traverse, bool):
            raise TypeError(f"traverse_fn returned structure: {to_traverse} for non-structure: "
                            f"{structure}")
        return to_traverse
    if isinstance(to_traverse, bool):
        if not to_traverse:
            return False
        return _sequence_like(structure, [traverse_shallow_structure(fn, s) for s in structure])
    if is_leaf(to_traverse):
        raise TypeError(f"traverse_fn returned a non-bool scalar: {to_traverse} for input: "
                        f"{structure}")
    if len(to_traverse) != len(structure):
        raise ValueError(f"The shallow structure {to_traverse} returned by "
                         "`dropout_state_filter_visitor` does not match the state's structure.")
    level = []
    for t, branch in zip(to_traverse, structure, strict=True):
        if not isinstance(t, bool):
            raise TypeError("traverse_fn didn't return a depth=1 structure of bools.  saw: "
                            f"{to_traverse}  for structure: {structure}")
        level.append(traverse_shallow_structure(fn, branch) if t else False)
    return _sequence_like(structure, level)


def _map_up_to(shallow: Any, fn: Callable[..., Any], values: Any, *more: Any) -> Any:
    """``nest.map_structure_up_to(shallow, fn, shallow, values, *more)``."""
    if is_leaf(shallow):
        return fn(shallow, values, *more)
    return _sequence_like(values, [_map_up_to(s, fn, v, *(m[k] for m in more))
                                   for k, (s, v) in enumerate(zip(shallow, values, strict=True))])


KeepProb = float | torch.Tensor


def _keep_prob(value: Any, attr: str) -> KeepProb:
    """A keep probability: a float in (0, 1], or a tensor (read at each call)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or not (value.is_floating_point() or value.dtype in (
                torch.int32, torch.int64)):
            raise ValueError(f"Parameter {attr} must be a scalar, got a tensor of shape "
                             f"{tuple(value.shape)} and dtype {value.dtype}.")
        return value
    if isinstance(value, (bool, str)) or not isinstance(value, (numbers.Real, np.ndarray,
                                                                np.generic)):
        raise TypeError(f"Parameter {attr} must be a number in (0, 1] or a scalar tensor, "
                        f"got {value!r}.")
    arr = np.asarray(value)
    # TF converts the number to a tensor first (int32 or float32) and keeps
    # float(its value): 0.7 is kept as 0.699999988079071, as TF does.
    shown: Any = int(arr) if arr.dtype.kind in "iu" else float(np.float32(arr))
    if math.isnan(float(shown)) or shown < 0 or shown > 1:
        raise ValueError(f"Parameter {attr} must be between 0 and 1. Received {shown}")
    p = float(shown)
    _check_prob(p, attr)
    return p


def _check_prob(p: float, attr: str) -> None:
    if math.isnan(p) or p < 0 or p > 1:
        raise ValueError(f"Parameter {attr} must be between 0 and 1. Received {p}")
    if p == 0:
        # TF accepts 0 here and its dropout raises when the cell runs.
        raise ValueError(f"`rate` must be a scalar tensor or a float in the range [0, 1). "
                         f"Received: rate=1.0 (Parameter {attr} must be in (0, 1], got 0)")


def _should_dropout(p: KeepProb) -> bool:
    """TF: a tensor always goes through dropout, a float only below 1."""
    return not isinstance(p, float) or p < 1


class DropoutWrapper(_Wrapper):
    r"""Dropout on a cell's inputs, outputs and new states (TF ``DropoutWrapper``).

    TensorFlow equivalent: ``tf.compat.v1.nn.rnn_cell.DropoutWrapper``. Each
    step drops the cell's input (``input_keep_prob``), its new state
    (``state_keep_prob``, only the leaves ``dropout_state_filter_visitor`` lets
    through: by default every state but the ``c`` of an ``LSTMStateTuple``) and
    its output (``output_keep_prob``), with TF's scaling::

        dropout(x) = x * (1 / keep) * (U >= 1 - keep)            # U ~ uniform[0, 1), per element
        dropout(x) = x / keep * floor(keep + noise)               # variational_recurrent

    Dropout is active only in training mode (``module.train()``, the PyTorch
    default); in eval mode (``.eval()``) the wrapper is the identity, as is a
    float keep probability of 1. With ``variational_recurrent=True`` each of
    input, state and output gets one noise ``(1, size)`` per sequence, as TF:
    the same mask at every step and for every batch row; it is drawn again
    at the start of each :func:`~lstmcompat.dynamic_rnn` /
    :func:`~lstmcompat.static_rnn` / :func:`~lstmcompat.bidirectional_dynamic_rnn`
    call (TF: each ``session.run``); direct ``cell(inputs, state)`` calls keep
    the current masks. The random numbers are torch's (a ``seed`` seeds the
    wrapper's own generator), not TensorFlow's.

    Over a whole sequence the wrapped cell keeps its engine path (one call for
    an lstmcompat cell) unless state dropout is active: input dropout is then
    applied to the whole input tensor and output dropout to the whole output
    (the same distribution as TF's per-step masks; outputs past a
    ``sequence_length`` stay zeros); with state dropout the wrapper runs step
    by step.

    Args:
        cell: the :class:`~lstmcompat.RNNCell` to wrap.
        input_keep_prob: keep probability: a float in ``(0, 1]`` or a scalar
            tensor (read at each call, so a tensor can be changed in place like a
            fed placeholder; a tensor always runs the dropout path, as in TF).
        output_keep_prob: as ``input_keep_prob``, for the outputs.
        state_keep_prob: as ``input_keep_prob``, for the state.
        variational_recurrent: one mask per sequence (Gal & Ghahramani).
        input_size: the input depth (an int or nested ints); required with
            ``variational_recurrent`` when ``input_keep_prob`` is below 1 or a
            tensor.
        dtype: the noise dtype; required with ``variational_recurrent``.
        seed: seeds the wrapper's own ``torch.Generator`` (per device).
        dropout_state_filter_visitor: a callable taking a (sub)state and
            returning a bool, or a depth-1 structure of bools, saying what to
            drop (``False``: keep that whole subtree).

    Raises:
        TypeError: ``cell`` is not an ``RNNCell``, or the filter is not callable.
        ValueError: a keep probability outside ``(0, 1]`` (TF's message for
            ``< 0`` or ``> 1``), ``variational_recurrent`` without ``dtype``, or
            without ``input_size`` when the input is dropped.

    Examples:
        >>> import torch, lstmcompat
        >>> cell = lstmcompat.DropoutWrapper(lstmcompat.LSTMCell(4), output_keep_prob=0.5)
        >>> out, st = lstmcompat.dynamic_rnn(cell, torch.randn(2, 5, 3), dtype="float32")
        >>> _ = cell.eval()  # identity from now on
        >>> out.shape
        torch.Size([2, 5, 4])
    """

    def __init__(self, cell: RNNCell, input_keep_prob: KeepProb = 1.0,
                 output_keep_prob: KeepProb = 1.0, state_keep_prob: KeepProb = 1.0,
                 variational_recurrent: bool = False, input_size: Any = None,
                 dtype: Any = None, seed: int | None = None,
                 dropout_state_filter_visitor: Callable[[Any], Any] | None = None) -> None:
        _check_wrapped(cell)
        if dropout_state_filter_visitor is not None and not callable(
                dropout_state_filter_visitor):
            raise TypeError("dropout_state_filter_visitor must be callable. "
                            f"Received: {dropout_state_filter_visitor}")
        probs = {attr: _keep_prob(p, attr) for p, attr in (
            (input_keep_prob, "input_keep_prob"), (state_keep_prob, "state_keep_prob"),
            (output_keep_prob, "output_keep_prob"))}
        dt = as_dtype(dtype)
        super().__init__(cell)  # the noise dtype is not the cell's dtype
        self._noise_dtype = dt
        self._dropout_state_filter = (dropout_state_filter_visitor
                                      or _default_dropout_state_filter_visitor)
        self._input_keep_prob = probs["input_keep_prob"]
        self._state_keep_prob = probs["state_keep_prob"]
        self._output_keep_prob = probs["output_keep_prob"]
        self._variational_recurrent = bool(variational_recurrent)
        self._input_size = input_size
        if seed is not None and (isinstance(seed, bool) or not isinstance(
                seed, (int, np.integer))):
            raise TypeError(f"`seed` must be an integer or None, got {seed!r}.")
        self._seed = None if seed is None else int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._noise: dict[str, Any] | None = None
        if self._variational_recurrent:
            if dt is None:
                raise ValueError("When variational_recurrent=True, dtype must be provided")
            if _should_dropout(self._input_keep_prob) and input_size is None:
                raise ValueError("When variational_recurrent=True and input_keep_prob < 1.0 or "
                                 "is unknown, input_size must be provided")

    # -- properties -----------------------------------------------------------------
    @property
    def input_keep_prob(self) -> KeepProb:
        return self._input_keep_prob

    @property
    def output_keep_prob(self) -> KeepProb:
        return self._output_keep_prob

    @property
    def state_keep_prob(self) -> KeepProb:
        return self._state_keep_prob

    @property
    def variational_recurrent(self) -> bool:
        return self._variational_recurrent

    # -- randomness -------------------------------------------------------------------
    def _uniform(self, shape: tuple[int, ...], dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
        if self._seed is None:
            return torch.rand(shape, dtype=dtype, device=device)
        gen = self._generators.get(device)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self._seed)
            self._generators[device] = gen
        return torch.rand(shape, dtype=dtype, device=device, generator=gen)

    def _begin_sequence(self) -> None:
        self.__dict__["_noise"] = None

    def _variational_noise(self, kind: str, like: torch.Tensor) -> Any:
        """The sequence's noise of ``kind`` (``input``, ``state``, ``output``), drawn on
        first use: ``(1, s)`` for each size ``s`` (TF ``batch_noise``)."""
        noise = self.__dict__.get("_noise")
        if noise is None:
            noise = {}
            self.__dict__["_noise"] = noise
        if kind not in noise:
            sizes = {"input": self._input_size, "state": self.cell.state_size,
                     "output": self.cell.output_size}[kind]
            dt = self._noise_dtype

            def draw(s: Any) -> torch.Tensor:
                dims = (int(s),) if isinstance(s, (int, np.integer)) else tuple(
                    int(d) for d in s)
                return self._uniform((1,) + dims, dt, like.device)

            noise[kind] = _map_sizes_up_to(sizes, draw)
        return noise[kind]

    # -- dropout ------------------------------------------------------------------------
    def _active(self) -> bool:
        return self.training and any(_should_dropout(p) for p in (
            self._input_keep_prob, self._state_keep_prob, self._output_keep_prob))

    def _keep(self, p: KeepProb, attr: str) -> KeepProb:
        if isinstance(p, torch.Tensor):
            _check_prob(float(p.detach().reshape(())), attr)
        return p

    def _drop_value(self, v: torch.Tensor, keep: KeepProb, noise: Any) -> torch.Tensor:
        if noise is not None:  # variational: x / keep * floor(keep + noise)
            k = keep if isinstance(keep, float) else keep.to(v.dtype)
            return torch.div(v, k) * torch.floor(k + noise.to(v.dtype))
        # tf.nn.dropout (v2): x * (1 / (1 - rate)) * (U >= rate), rate = 1 - keep
        if isinstance(keep, float):
            rate = 1.0 - keep
            scale = 1.0 / (1.0 - rate)
        else:
            rate = 1.0 - keep.to(v.dtype)
            scale = 1.0 / (1.0 - rate)
        u = self._uniform(tuple(v.shape), v.dtype, v.device)
        return v * scale * (u >= rate).to(v.dtype)

    def _dropout(self, values: Any, kind: str, keep: KeepProb,
                 shallow: Any = None) -> Any:
        keep = self._keep(keep, f"{kind}_keep_prob")
        noise = None
        if self._variational_recurrent:
            noise = self._variational_noise(kind, flatten(values)[0])
            if kind == "input" and isinstance(values, torch.Tensor) and \
                    noise.shape[-1] not in (1, values.shape[-1]):
                raise ValueError(
                    f"`input_size`={self._input_size} does not match the inputs' depth "
                    f"{values.shape[-1]} (the variational input noise is (1, input_size)).")
        if shallow is None:
            shallow = map_structure(lambda _: True, values)

        def drop(do: bool, v: Any, n: Any = None) -> Any:
            if not do:
                return v
            return self._drop_value(v, keep, n)

        if noise is None:
            return _map_up_to(shallow, drop, values)
        return _map_up_to(shallow, drop, values, noise)

    def _state_filter(self, state: State) -> Any:
        return traverse_shallow_structure(self._dropout_state_filter, state)

    def call(self, inputs: torch.Tensor, state: State) -> tuple[Any, State]:
        """One step of TF's ``DropoutWrapper`` (identity in eval mode)."""
        if not self.training:
            return self.cell(inputs, state)
        if _should_dropout(self._input_keep_prob):
            inputs = self._dropout(inputs, "input", self._input_keep_prob)
        output, new_state = self.cell(inputs, state)
        if _should_dropout(self._state_keep_prob):
            new_state = self._dropout(new_state, "state", self._state_keep_prob,
                                      self._state_filter(new_state))
        if _should_dropout(self._output_keep_prob):
            output = self._dropout(output, "output", self._output_keep_prob)
        return output, new_state

    def _run_sequence(self, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
                      batch_first: bool) -> tuple[Any, State]:
        if not self._active():
            return self.cell._run_sequence(x, state, lengths, batch_first)
        drops_state = _should_dropout(self._state_keep_prob) and any(
            flatten(self._state_filter(state)))
        if drops_state:
            return RNNCell._run_sequence(self, x, state, lengths, batch_first)
        # No state dropout: the masks do not touch the recurrence, so they apply to
        # the whole input and output tensors (TF draws the same distribution per step;
        # the zeros past a length stay zeros).
        if _should_dropout(self._input_keep_prob):
            x = self._dropout(x, "input", self._input_keep_prob)
        outputs, final = self.cell._run_sequence(x, state, lengths, batch_first)
        if _should_dropout(self._output_keep_prob):
            outputs = self._dropout(outputs, "output", self._output_keep_prob)
        return outputs, final

    def extra_repr(self) -> str:
        return (f"input_keep_prob={self._input_keep_prob}, "
                f"output_keep_prob={self._output_keep_prob}, "
                f"state_keep_prob={self._state_keep_prob}, "
                f"variational_recurrent={self._variational_recurrent}")


def _map_sizes_up_to(sizes: Any, fn: Callable[[Any], Any]) -> Any:
    """``fn`` on each size of a (nested) size structure (an int or a list of ints that
    is a shape stays one size only inside a tuple of sizes: TF's ``TensorShape``)."""
    if isinstance(sizes, (int, np.integer)):
        return fn(sizes)
    if hasattr(sizes, "_fields") or isinstance(sizes, tuple):
        return _sequence_like(sizes, [_map_sizes_up_to(s, fn) for s in sizes])
    return fn(sizes)


# -- ResidualWrapper ---------------------------------------------------------------------

def _assert_same_structure(a: Any, b: Any) -> None:
    if is_leaf(a) != is_leaf(b) or (not is_leaf(a) and len(a) != len(b)):
        raise ValueError("The two structures don't have the same nested structure: "
                         f"inputs {type(a).__name__}, outputs {type(b).__name__}.")
    if not is_leaf(a):
        for x, y in zip(a, b, strict=True):
            _assert_same_structure(x, y)


def _shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _residual(inputs: Any, outputs: Any, drop_dim: int | None = None) -> Any:
    """TF's ``default_residual_fn``: same structure, compatible shapes, ``inputs + outputs``
    (``drop_dim``: the time axis of whole sequences, left out of the message)."""
    _assert_same_structure(inputs, outputs)

    def add(i: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        if tuple(i.shape) != tuple(o.shape):
            si, so = list(i.shape), list(o.shape)
            if drop_dim is not None:
                del si[drop_dim], so[drop_dim]
            raise ValueError(f"Shapes {_shape_str(tuple(si))} and {_shape_str(tuple(so))} are "
                             "incompatible (ResidualWrapper adds the cell's `inputs` to its "
                             "outputs: their sizes must match).")
        return i + o

    return map_structure(add, inputs, outputs)


class ResidualWrapper(_Wrapper):
    """Adds the cell's inputs to its outputs (TF ``ResidualWrapper``).

    TensorFlow equivalent: ``tf.compat.v1.nn.rnn_cell.ResidualWrapper``. One
    step returns ``(residual_fn(inputs, output), new_state)``; the default
    ``residual_fn`` is ``inputs + output`` (over nested structures), which needs
    the cell's ``output_size`` to equal the input depth (``ValueError`` naming
    both shapes otherwise, as TF). Over a whole sequence the wrapped cell keeps
    its engine path and the residual is added to the whole output afterwards
    (a custom ``residual_fn`` is called step by step on it); as TF's
    ``dynamic_rnn`` zeroes the wrapper's output past each ``sequence_length``,
    those outputs are zeros (not the inputs).

    Args:
        cell: the :class:`~lstmcompat.RNNCell` to wrap.
        residual_fn: ``(inputs, outputs) -> outputs``; ``None``: their sum.

    Examples:
        >>> import torch, lstmcompat
        >>> cell = lstmcompat.ResidualWrapper(lstmcompat.LSTMCell(3))
        >>> out, st = lstmcompat.dynamic_rnn(cell, torch.randn(2, 5, 3), sequence_length=[5, 2],
        ...                                  dtype="float32")
        >>> out.shape, bool((out[1, 2:] == 0).all())
        (torch.Size([2, 5, 3]), True)
    """

    def __init__(self, cell: RNNCell, residual_fn: Callable[[Any, Any], Any] | None = None
                 ) -> None:
        if residual_fn is not None and not callable(residual_fn):
            raise TypeError(f"`residual_fn` must be callable or None, got {residual_fn!r}.")
        super().__init__(cell)
        self._residual_fn = residual_fn

    def call(self, inputs: torch.Tensor, state: State) -> tuple[Any, State]:
        """One step: ``(residual_fn(inputs, output), new_state)``."""
        output, new_state = self.cell(inputs, state)
        fn = self._residual_fn or _residual
        return fn(inputs, output), new_state

    def _run_sequence(self, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
                      batch_first: bool) -> tuple[Any, State]:
        outputs, final = self.cell._run_sequence(x, state, lengths, batch_first)
        tdim = 1 if batch_first else 0
        if self._residual_fn is None:
            res = _residual(x, outputs, drop_dim=tdim)
        else:
            steps = [self._residual_fn(x.select(tdim, t),
                                       map_structure(lambda o, t=t: o.select(tdim, t), outputs))
                     for t in range(x.shape[tdim])]
            if not steps:
                return outputs, final
            res = map_structure(lambda *o: torch.stack(o, dim=tdim), *steps)
        if lengths is not None:
            T = x.shape[tdim]
            valid = torch.arange(T, device=x.device).unsqueeze(1) < lengths.to(
                x.device).unsqueeze(0)  # (T, B)
            if batch_first:
                valid = valid.t()

            def zero_past(o: torch.Tensor) -> torch.Tensor:
                v = valid.reshape(valid.shape + (1,) * (o.dim() - 2))
                return torch.where(v, o, torch.zeros_like(o))

            res = map_structure(zero_past, res)
        return res, final


# -- DeviceWrapper -----------------------------------------------------------------------

_TF_DEVICE = re.compile(r"(?:/job:[^/]*)?(?:/replica:\d+)?(?:/task:\d+)?/?(?:device:)?"
                        r"(cpu|gpu)(?::(\d+))?", re.IGNORECASE)


def _torch_device(device: Any) -> torch.device:
    """A ``torch.device`` from one, a torch device string or a TF device string
    (``"/gpu:0"``, ``"/device:GPU:1"``, ``"/cpu:0"``: TF's GPU ``k`` is ``cuda:k``)."""
    if isinstance(device, torch.device):
        return device
    if isinstance(device, int) and not isinstance(device, bool):
        return torch.device("cuda", device)
    if not isinstance(device, str):
        raise TypeError(f"`device` must be a torch.device or a device string, got {device!r}.")
    m = _TF_DEVICE.fullmatch(device.strip())
    if m is not None:
        if m.group(1).lower() == "cpu":
            return torch.device("cpu")
        return torch.device("cuda", int(m.group(2) or 0))
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"`device` {device!r} is not a device: {e}") from None


class DeviceWrapper(_Wrapper):
    """Runs the wrapped cell on one device (TF ``DeviceWrapper``).

    TensorFlow equivalent: ``tf.compat.v1.nn.rnn_cell.DeviceWrapper``. The
    cell's weights are moved to ``device`` when it is built (TF creates them
    under ``tf.device``), its inputs and states are moved there on every call,
    and its outputs and states stay there (stack wrappers on different GPUs in
    a :class:`~lstmcompat.MultiRNNCell` to split a model, as TF programs do).
    The wrapped cell keeps its engine path.

    Args:
        cell: the :class:`~lstmcompat.RNNCell` to wrap.
        device: a ``torch.device``, a torch device string (``"cuda:1"``) or a
            TF device string (``"/gpu:1"``, ``"/device:GPU:1"``, ``"/cpu:0"``).

    Raises:
        TypeError: ``device`` is not a device or a string (TF's device
            functions are not supported).
        ValueError: the string names no device.

    Examples:
        >>> import torch, lstmcompat
        >>> cell = lstmcompat.DeviceWrapper(lstmcompat.LSTMCell(4), "/cpu:0")
        >>> out, st = lstmcompat.dynamic_rnn(cell, torch.randn(2, 5, 3), dtype="float32")
        >>> out.device, cell.device
        (device(type='cpu'), device(type='cpu'))
    """

    def __init__(self, cell: RNNCell, device: Any) -> None:
        super().__init__(cell)
        self._device_arg = device
        self._device = _torch_device(device)

    @property
    def device(self) -> torch.device:
        """Where the wrapped cell runs."""
        return self._device

    def _target(self) -> torch.device:
        d = self._device
        if d.type == "cuda" and d.index is None and torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return d

    def _move(self, value: Any) -> Any:
        dev = self._target()
        return map_structure(lambda t: as_tensor(t, "inputs").to(dev), value)

    def zero_state(self, batch_size: int | torch.Tensor, dtype: Any) -> State:
        """The wrapped cell's zero state, on the device."""
        return self._move(self.cell.zero_state(batch_size, dtype))

    def _prepare(self, depth: int, dtype: torch.dtype, scope: Any = None) -> None:
        super()._prepare(depth, dtype, scope)
        dev = self._target()
        if any(w.device != dev for w in self.cell.weights):
            self.cell.to(dev)

    def call(self, inputs: torch.Tensor, state: State) -> tuple[Any, State]:
        """One step of the wrapped cell on the device."""
        return self.cell(self._move(inputs), self._move(state))

    def _run_sequence(self, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
                      batch_first: bool) -> tuple[Any, State]:
        return self.cell._run_sequence(self._move(x), self._move(state), lengths, batch_first)

    def extra_repr(self) -> str:
        return f"device={str(self._device)!r}"
