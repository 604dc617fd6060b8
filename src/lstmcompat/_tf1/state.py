"""``LSTMStateTuple``: the ``(c, h)`` state of a TF1 LSTM cell."""

from __future__ import annotations

from typing import Any, NamedTuple


class LSTMStateTuple(NamedTuple):
    """State of an LSTM cell, ``(c, h)`` in that order (c is the cell state, h the output).

    TensorFlow equivalent: ``tf.compat.v1.nn.rnn_cell.LSTMStateTuple``. It is a
    plain ``namedtuple`` so that unpacking ``c, h = state`` and indexing
    ``state[0]`` work as in TF; a cell's ``state_size`` is an
    ``LSTMStateTuple`` of ints and its states are ``LSTMStateTuple`` s of
    tensors ``(batch, num_units)`` and ``(batch, num_proj or num_units)``.

    Examples:
        >>> import torch, lstmcompat
        >>> s = lstmcompat.LSTMStateTuple(torch.zeros(2, 3), torch.zeros(2, 3))
        >>> s.dtype
        torch.float32
    """

    c: Any
    h: Any

    @property
    def dtype(self) -> Any:
        """The common dtype of ``c`` and ``h``; ``TypeError`` when they differ (as TF)."""
        c, h = self
        if c.dtype != h.dtype:
            raise TypeError(f"Inconsistent dtypes for internal state: {c.dtype} vs {h.dtype}")
        return c.dtype
