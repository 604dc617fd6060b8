"""``MultiRNNCell``: TF1 ``tf.compat.v1.nn.rnn_cell.MultiRNNCell`` (stacked cells)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .. import _args
from ._util import as_tensor, check_floating
from .base import RNNCellBase, State, total_size, zero_state_args
from .graph import variable_scope


class MultiRNNCell(RNNCellBase):
    """Cells stacked in order: each cell's output is the next cell's input.

    TensorFlow equivalent: ``tf.compat.v1.nn.rnn_cell.MultiRNNCell``. Inside a
    ``Graph`` the cell ``k`` builds under ``<scope>/multi_rnn_cell/cell_k/``.
    Passing the same cell object twice shares its weights (the second use
    reuses the first one's variables, as in TF). Over a whole sequence
    (``dynamic_rnn`` and friends) the stack runs layer by layer, one engine call
    per layer: with TF1 ``sequence_length`` semantics this is exactly the
    step-by-step stack (steps past a length are zeroed and their state held in
    every layer). That holds for any mix of cells (a cell of your own runs its
    layer step by step, lstmcompat's cells in one engine call each): the layer
    above a zeroed step only sees zeros where its own output is zeroed and its
    state held anyway.

    Args:
        cells: a non-empty list or tuple of cells.
        state_is_tuple: states are a tuple with one entry per cell; ``False``:
            one tensor, every cell's (concatenated) state concatenated on axis 1
            (then every cell must have ``state_is_tuple=False``).

    Raises:
        ValueError: ``cells`` is empty, or ``state_is_tuple=False`` with a cell
            whose state is a tuple.
        TypeError: ``cells`` is not a list or tuple.

    Examples:
        >>> import torch, lstmcompat
        >>> stack = lstmcompat.MultiRNNCell([lstmcompat.LSTMCell(4), lstmcompat.LSTMCell(3)])
        >>> out, states = lstmcompat.dynamic_rnn(stack, torch.randn(2, 5, 6), dtype="float32")
        >>> out.shape, states[1].h.shape
        (torch.Size([2, 5, 3]), torch.Size([2, 3]))
    """

    _default_name = "multi_rnn_cell"

    def __init__(self, cells: Sequence[RNNCellBase], state_is_tuple: bool = True) -> None:
        super().__init__()
        if not cells:
            raise ValueError("Must specify at least one cell for MultiRNNCell.")
        if not isinstance(cells, (list, tuple)):
            raise TypeError(f"cells must be a list or tuple, but received: {cells}. "
                            "(argument `cells`)")
        for c in cells:
            if not isinstance(c, RNNCellBase):
                raise TypeError(
                    "MultiRNNCell takes RNNCells in `cells` (lstmcompat cells, wrappers or "
                    f"subclasses of lstmcompat.RNNCell), got {c!r}."
                )
        if len({id(c) for c in cells}) < len(cells):
            warnings.warn("At least two cells provided to MultiRNNCell are the same object and "
                          "will share weights.", UserWarning, stacklevel=2)
        self._cells = nn.ModuleList(cells)
        self._cell_list = list(cells)
        self._state_is_tuple = bool(state_is_tuple)
        if not state_is_tuple and any(not isinstance(c.state_size, int) for c in cells):
            raise ValueError(
                "Some cells return tuples of states, but the flag state_is_tuple is not set. "
                f"State sizes are: {[c.state_size for c in cells]}"
            )

    @property
    def cells(self) -> list[RNNCellBase]:
        """The stacked cells, in order."""
        return list(self._cell_list)

    @property
    def state_size(self) -> tuple[Any, ...] | int:
        if self._state_is_tuple:
            return tuple(c.state_size for c in self._cell_list)
        return sum(c.state_size for c in self._cell_list)

    @property
    def output_size(self) -> int:
        return self._cell_list[-1].output_size

    @property
    def weights(self) -> list[nn.Parameter]:
        """Every cell's weights, cell by cell (a cell listed twice appears twice, as in TF)."""
        ws: list[nn.Parameter] = []
        for c in self._cell_list:
            ws += c.weights
        return ws

    def zero_state(self, batch_size: int | torch.Tensor, dtype: Any) -> State:
        """Every cell's zero state (a tuple), or one concatenated tensor; checked as
        :meth:`RNNCellBase.zero_state`, for all the cells' states together."""
        b, dt = zero_state_args(batch_size, dtype)
        _args.check_allocation([("state", (b, total_size(self.state_size)))], dt,
                               lambda: f"zero_state with `batch_size`={b}")
        if self._state_is_tuple:
            return tuple(c.zero_state(batch_size, dtype) for c in self._cell_list)
        return super().zero_state(batch_size, dtype)

    def _prepare(self, depth: int, dtype: torch.dtype, scope: Any = None) -> None:
        if self._dtype is None:
            self._dtype = dtype
        self._set_scope(scope)
        with self._own_scope():
            for k, c in enumerate(self._cell_list):
                with variable_scope(f"cell_{k}"):
                    c._prepare(depth, dtype)
                depth = c.output_size
        self.built = True

    def _split_states(self, state: State) -> list[State]:
        n = len(self._cell_list)
        if self._state_is_tuple:
            if isinstance(state, torch.Tensor) or not isinstance(state, Sequence):
                raise ValueError(
                    f"Expected state to be a tuple of length {n}, but received: {state}"
                )
            if len(state) != n:
                raise ValueError(
                    f"Expected state to be a tuple of length {n}, but received a tuple of "
                    f"length {len(state)}."
                )
            return list(state)
        s = as_tensor(state)
        total = self.state_size
        if s.dim() != 2 or s.shape[1] != total:
            raise ValueError(
                f"Expected a concatenated state of shape (batch, {total}), got {tuple(s.shape)}."
            )
        parts, pos = [], 0
        for c in self._cell_list:
            parts.append(s[:, pos:pos + c.state_size])
            pos += c.state_size
        return parts

    def _pack_states(self, states: list[State]) -> State:
        return tuple(states) if self._state_is_tuple else torch.cat(states, dim=1)

    def _run_sequence(self, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
                      batch_first: bool) -> tuple[torch.Tensor, State]:
        new_states = []
        for c, s in zip(self._cell_list, self._split_states(state), strict=True):
            x, s = c._run_sequence(x, s, lengths, batch_first)
            new_states.append(s)
        return x, self._pack_states(new_states)

    def forward(self, inputs: Any, state: State, scope: Any = None) -> tuple[torch.Tensor, State]:
        """One step through every cell: ``output, new_states = stack(inputs, states)``."""
        x = as_tensor(inputs)
        check_floating(x.dtype)
        if x.dim() != 2:
            raise ValueError(
                f"Expected inputs of shape (batch, depth) for one step, got {tuple(x.shape)}."
            )
        self._prepare(x.shape[1], x.dtype, scope)
        out, new_state = self._run_sequence(x.unsqueeze(0), state, None, batch_first=False)
        return out[0], new_state
