"""What every TF1 cell shares: name and scope capture, weights I/O, zero states.

Mirrors ``tf_keras/src/legacy_tf_layers/base.py`` (``Layer._set_scope``,
``add_weight``) and ``legacy_cells.RNNCell`` (``zero_state``,
``get_initial_state``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _args, _weights_io
from .._dtypes import applied_dtype
from ._util import as_dtype
from .graph import Graph, VariableScope, get_default_graph, variable_scope

StateSize = Any  # int, LSTMStateTuple of ints, or a tuple of those
State = Any  # tensor, LSTMStateTuple of tensors, or a tuple of those


class RNNCellBase(nn.Module):
    """Base of the TF1 cells (TF ``tf.compat.v1.nn.rnn_cell.RNNCell``); not public API."""

    _default_name: str = "rnn_cell"

    def __init__(self, name: str | None = None, reuse: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string or None, got {name!r}.")
        self._base_name = name or self._default_name
        self._reuse = reuse
        self._dtype = as_dtype(dtype)
        self._scope: VariableScope | None = None
        self._graph: Graph | None = None
        self.built = False

    # -- naming -------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The cell's name: ``name=`` or the snake-case class name (a label outside a graph)."""
        return self._base_name

    @property
    def scope_name(self) -> str:
        """Full variable-scope name, known once the cell was first built inside a ``Graph``."""
        if self._scope is None:
            raise ValueError(
                f'No name available for layer scope because the layer "{self.name}" has not '
                "been used yet. The scope name is determined the first time the layer "
                "instance is called. You must therefore call the layer before querying "
                "`scope_name`."
            )
        return self._scope.name

    @property
    def dtype(self) -> torch.dtype | None:
        """Weight dtype: ``dtype=`` or the dtype of the first input (``None`` until then);
        ``torch.nn.Module``'s conversions (``.double()``, ``.half()``, ``.to(dtype)``)
        change it with the weights."""
        return self._dtype

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> RNNCellBase:
        """``.double()``, ``.half()``, ``.to(dtype)``, ...: the weights are converted and
        the cell's dtype follows them (an unbuilt cell builds in the new dtype)."""
        super()._apply(fn, *args, **kwargs)
        ws = self.weights
        self._dtype = applied_dtype(fn, self._dtype, ws[0] if ws else None)
        return self

    def _set_scope(self, scope: str | VariableScope | None = None) -> None:
        """Capture the cell's variable scope the first time it is used in a graph (TF rule)."""
        graph = get_default_graph()
        if graph is None or self._scope is not None:
            return
        self._graph = graph
        if self._reuse:
            with variable_scope(scope if scope is not None else self._base_name) as s:
                self._scope = s
        else:
            with variable_scope(scope, default_name=self._base_name) as s:
                self._scope = s

    @contextlib.contextmanager
    def _own_scope(self) -> Iterator[None]:
        """Enter the captured scope as TF's ``add_weight`` does (reuse once built)."""
        if self._scope is None or get_default_graph() is not self._graph:
            yield
            return
        with variable_scope(self._scope, reuse=True if self.built else self._reuse):
            yield

    # -- weights ------------------------------------------------------------------
    @property
    def weights(self) -> list[nn.Parameter]:
        """The cell's parameters in TF's order (empty before the cell is built)."""
        return []

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return self.weights

    @property
    def variables(self) -> list[nn.Parameter]:
        return self.weights

    def get_weights(self) -> list[np.ndarray]:
        """The weights as NumPy arrays, in :attr:`weights` order (TF ``get_weights``).

        NumPy has no bfloat16: bfloat16 weights come back as ``ml_dtypes.bfloat16``
        arrays when the optional package ``ml_dtypes`` is installed, else as
        float32 arrays (the same values); :meth:`set_weights` takes either.
        """
        return _weights_io.get_weights(self.weights)

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Copy arrays into the weights, in :attr:`weights` order (TF ``set_weights``),
        converted to the weights' dtype (``ml_dtypes.bfloat16`` arrays too).

        Raises:
            ValueError: wrong number of arrays or a shape that does not match.
        """
        _weights_io.set_weights(
            self.name, self.weights, weights,
            "Layer weight shape {expected} not compatible with provided weight shape {got}")

    # -- states -------------------------------------------------------------------
    @property
    def state_size(self) -> StateSize:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    def zero_state(self, batch_size: int | torch.Tensor, dtype: Any) -> State:
        """Zero state(s) shaped ``(batch_size, s)`` for each ``s`` in :attr:`state_size`.

        TF equivalent: ``cell.zero_state(batch_size, dtype)``.

        Raises:
            TypeError: ``batch_size`` is not an integer-like (a float, a string, a
                bool), or ``dtype`` is ``None`` or not a dtype (TF's types).
            ValueError: ``batch_size`` is negative or ``None`` (TF's types), or the
                states cannot fit in memory
                (:class:`~lstmcompat._args.AllocationTooLargeError`, also a
                ``MemoryError``, raised before allocating).
        """
        b, dt = zero_state_args(batch_size, dtype)
        _args.check_allocation([("state", (b, total_size(self.state_size)))], dt,
                               lambda: f"zero_state with `batch_size`={b}")
        return _map_sizes(self.state_size, lambda s: torch.zeros(b, s, dtype=dt))

    def get_initial_state(self, inputs: Any = None, batch_size: int | torch.Tensor | None = None,
                          dtype: Any = None) -> State:
        """TF ``get_initial_state``: the zero state, with batch and dtype checked against ``inputs``.

        Raises:
            ValueError: ``batch_size`` or ``dtype`` disagree with ``inputs``, or
                neither ``inputs`` nor both of them are given.
        """
        dt = as_dtype(dtype)
        if batch_size is not None:
            batch_size = _args.integer(batch_size, "batch_size", 0)
        if inputs is not None:
            inputs = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(
                np.asarray(inputs))
            if batch_size is not None and inputs.shape[0] != batch_size:
                raise ValueError(
                    "batch size from input tensor is different from the input param. Input "
                    f"tensor batch: {inputs.shape[0]}, batch_size: {batch_size}"
                )
            if dt is not None and inputs.dtype != dt:
                raise ValueError(
                    "dtype from input tensor is different from the input param. Input tensor "
                    f"dtype: {inputs.dtype}, dtype: {dt}"
                )
            batch_size = inputs.shape[0]
            dt = inputs.dtype
        if batch_size is None or dt is None:
            raise ValueError(
                "batch_size and dtype cannot be None while constructing initial state: "
                f"batch_size={batch_size}, dtype={dt}"
            )
        return self.zero_state(batch_size, dt)

    # -- running (implemented by subclasses) ------------------------------------------
    def _prepare(self, depth: int, dtype: torch.dtype, scope: Any = None) -> None:
        """Name (in a graph) and build the cell for inputs of ``depth`` features."""
        raise NotImplementedError

    def _run_sequence(self, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
                      batch_first: bool) -> tuple[torch.Tensor, State]:
        """Run the whole sequence through the engine; returns ``(outputs, final_state)``."""
        raise NotImplementedError


def zero_state_args(batch_size: Any, dtype: Any) -> tuple[int, torch.dtype]:
    """``zero_state``'s arguments checked, with TF's types (``None`` batch size:
    ``ValueError``; ``None`` dtype: ``TypeError``)."""
    if batch_size is None:
        raise ValueError("`batch_size` must be a non-negative integer, got None.")
    b = _args.integer(batch_size, "batch_size", 0)
    dt = as_dtype(dtype)
    if dt is None:
        raise TypeError("`dtype` must be a torch.dtype or its name, got None.")
    return b, dt


def total_size(size: StateSize) -> int:
    """The sum of the sizes in a (nested) state size."""
    if isinstance(size, int):
        return size
    return sum(total_size(s) for s in size)


def _map_sizes(size: StateSize, fn: Any) -> State:
    if isinstance(size, int):
        return fn(size)
    if hasattr(size, "_fields"):  # namedtuple (LSTMStateTuple)
        return type(size)(*(_map_sizes(s, fn) for s in size))
    return tuple(_map_sizes(s, fn) for s in size)
