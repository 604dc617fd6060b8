"""``BasicLSTMCell``: TF1 ``tf.compat.v1.nn.rnn_cell.BasicLSTMCell`` on the engine."""

from __future__ import annotations

from typing import Any

from .. import _activations
from .cell import ActivationLike, LSTMCell


class BasicLSTMCell(LSTMCell):
    r"""The basic LSTM cell: no peepholes, clips or projection.

    TensorFlow equivalent: ``tf.compat.v1.nn.rnn_cell.BasicLSTMCell`` (tf_keras
    ``legacy_cells.BasicLSTMCell``), same arguments, weights, states and names
    (scope ``basic_lstm_cell``). One step, ``[x, h]`` the input and previous
    output concatenated::

        i, j, f, o = split([x, h] @ kernel + bias, 4)     # gate order i, j, f, o
        c' = c * sigmoid(f + forget_bias) + sigmoid(i) * act(j)
        h' = act(c') * sigmoid(o)

    It is :class:`~lstmcompat.LSTMCell`'s math without its options, so it runs
    on the same engine kernels (``torch.lstm`` where exact, the fused kernel
    otherwise) in ``dynamic_rnn``, ``static_rnn``, ``bidirectional_dynamic_rnn``
    and ``MultiRNNCell``.

    Args:
        num_units: number of units ``u`` (a positive integer).
        forget_bias: added to the forget gate pre-activation at run time (never
            stored in ``bias``; checkpoints restored from a CudnnLSTM need 0).
        state_is_tuple: states are ``LSTMStateTuple(c, h)``; ``False``: one
            tensor ``[c, h]`` of ``2u`` columns (``DeprecationWarning``).
        activation: ``None`` (tanh), a Keras activation name, or a callable.
        reuse: TF reuse flag for the cell's scope inside a ``Graph``.
        name: the cell's name (its variable scope inside a ``Graph``; default
            ``"basic_lstm_cell"``).
        dtype: weight dtype (``torch.dtype`` or name); ``None``: the first
            input's dtype.

    Raises:
        TypeError, ValueError: as :class:`~lstmcompat.LSTMCell` for the same
            arguments.

    Attributes:
        kernel: ``(depth + u, 4u)``, gate blocks ``i, j, f, o`` (TF ``kernel``).
        bias: ``(4u,)`` (TF ``bias``), zeros at first.

    Examples:
        >>> import torch, lstmcompat
        >>> cell = lstmcompat.BasicLSTMCell(4)
        >>> with lstmcompat.Graph() as g:
        ...     out, st = lstmcompat.dynamic_rnn(cell, torch.randn(2, 3, 5), dtype="float32")
        >>> list(g.variables()), out.shape
        (['rnn/basic_lstm_cell/kernel', 'rnn/basic_lstm_cell/bias'], torch.Size([2, 3, 4]))
    """

    _default_name = "basic_lstm_cell"

    def __init__(self, num_units: int, forget_bias: float = 1.0, state_is_tuple: bool = True,
                 activation: ActivationLike = None, reuse: Any = None, name: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__(num_units, forget_bias=forget_bias, state_is_tuple=state_is_tuple,
                         activation=activation, reuse=reuse, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (TF ``get_config``); ``BasicLSTMCell(**cfg)`` rebuilds it."""
        return {
            "num_units": self._num_units,
            "forget_bias": self._forget_bias,
            "state_is_tuple": self._state_is_tuple,
            "activation": self._activation_arg,
            "reuse": self._reuse,
            "name": self._base_name,
            "dtype": self._dtype_name(),
        }

    def extra_repr(self) -> str:
        act = self._activation_arg
        act_name = None if act is None else _activations.canonical_name(act) or act
        return f"{self._num_units}, name={self.name!r}" + (
            f", activation={act_name!r}" if act_name not in (None, "tanh") else "")
