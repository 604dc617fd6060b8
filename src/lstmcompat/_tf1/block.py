"""The contrib block cells: ``LSTMBlockCell``, ``LSTMBlockFusedCell``, ``CudnnCompatibleLSTMCell``.

TF 1.x ``tf.contrib.rnn.LSTMBlockCell`` / ``LSTMBlockFusedCell`` (contrib
``rnn/python/ops/lstm_ops.py``, on the ``LSTMBlockCell`` / ``BlockLSTM`` ops) and
``tf.contrib.cudnn_rnn.CudnnCompatibleLSTMCell`` (an ``LSTMBlockCell`` with
``forget_bias=0``), on the same engine as :class:`~lstmcompat.LSTMCell`: the ops
compute ``LSTMCell``'s math (gate order i, j, f, o, peepholes, the cell clip
before the output peephole) with two differences that live here: ``cell_clip``
``<= 0`` (or ``None``) means no clip, and the ops' backward ignores the clip
(``CellSpec.cell_clip_gradient="identity"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import _args
from .._engine import CellSpec
from ._util import as_dtype, as_tensor, check_floating
from .cell import LSTMCell
from .state import LSTMStateTuple


def _block_clip(cell_clip: Any) -> tuple[float | None, float | None]:
    """``(as given, as the engine runs it)``: the ops clip only when ``cell_clip > 0``."""
    given = _args.optional_number(cell_clip, "cell_clip", allow_nan=True)
    return given, given if given is not None and given > 0 else None


class LSTMBlockCell(LSTMCell):
    r"""TF1 contrib ``LSTMBlockCell``: the LSTM step of the fused ``LSTMBlockCell`` op.

    TensorFlow equivalent: ``tf.contrib.rnn.LSTMBlockCell`` (TF 1.x), same
    arguments, weights, states and names (scope ``lstm_cell``: a checkpoint of
    an ``LSTMCell`` restores into it and back). One step::

        i, ci, f, o = split([x, h] @ kernel + bias, 4)     # gate order i, j, f, o
        i = sigmoid(i + w_i_diag * c)                      # peepholes if use_peephole
        f = sigmoid(f + forget_bias + w_f_diag * c)
        c' = f * c + i * tanh(ci)
        c' = clip(c', -cell_clip, cell_clip)               # only if cell_clip > 0
        o = sigmoid(o + w_o_diag * c')
        h' = o * tanh(c')

    As the op's hand-written backward, the clip does not stop gradients (they
    pass as if ``c'`` were not clipped; ``LSTMCell``'s ``clip_by_value`` zeroes
    them where it clips). Calls with an active clip run on the ``fused``
    kernel's PyTorch time loop (its compiled loop, ``torch.lstm`` and Triton do
    not have that gradient); all others on the same kernels as ``LSTMCell``.

    Args:
        num_units: number of units ``u`` (a positive integer).
        forget_bias: added to the forget gate pre-activation at run time.
        cell_clip: clip ``c`` to ``[-cell_clip, cell_clip]`` when ``> 0``;
            ``None``, ``0`` or a negative value: no clip (unlike ``LSTMCell``,
            whose ``cell_clip=0`` clips to 0).
        use_peephole: diagonal peephole connections, created in the order
            ``w_i_diag, w_f_diag, w_o_diag``.
        dtype: weight dtype; ``None``: the first input's dtype.
        reuse: TF reuse flag for the cell's scope inside a ``Graph``.
        name: the cell's name and variable scope (default ``"lstm_cell"``).

    Raises:
        TypeError: a float or string ``num_units``, a non-number ``cell_clip``.
        ValueError: ``num_units`` below 1, a non-number ``forget_bias``; a
            ``state`` that is not a pair ``(c, h)`` when called.

    Attributes:
        kernel: ``(depth + u, 4u)``, gate blocks ``i, j, f, o``.
        bias: ``(4u,)``, zeros at first.
        w_i_diag, w_f_diag, w_o_diag: ``(u,)`` peepholes (``use_peephole``).

    Examples:
        >>> import torch, lstmcompat
        >>> cell = lstmcompat.LSTMBlockCell(4, use_peephole=True, cell_clip=3.0)
        >>> with lstmcompat.Graph() as g:
        ...     out, st = lstmcompat.dynamic_rnn(cell, torch.randn(2, 3, 5), dtype="float32")
        >>> list(g.variables())  # doctest: +NORMALIZE_WHITESPACE
        ['rnn/lstm_cell/kernel', 'rnn/lstm_cell/bias', 'rnn/lstm_cell/w_i_diag',
         'rnn/lstm_cell/w_f_diag', 'rnn/lstm_cell/w_o_diag']
    """

    _default_name = "lstm_cell"
    _peephole_order = ("w_i_diag", "w_f_diag", "w_o_diag")

    def __init__(self, num_units: int, forget_bias: float = 1.0, cell_clip: float | None = None,
                 use_peephole: bool = False, dtype: Any = None, reuse: Any = None,
                 name: str | None = "lstm_cell") -> None:
        given, clip = _block_clip(cell_clip)
        super().__init__(num_units, use_peepholes=use_peephole, cell_clip=clip,
                         forget_bias=forget_bias, reuse=reuse, name=name, dtype=dtype)
        self._block_cell_clip = given

    def cell_spec(self) -> CellSpec:
        """``LSTMCell``'s spec with the block ops' clip gradient (the identity)."""
        return dataclasses.replace(super().cell_spec(), cell_clip_gradient="identity")

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (TF ``get_config``); ``cls(**cfg)`` rebuilds the cell."""
        return {
            "num_units": self._num_units,
            "forget_bias": self._forget_bias,
            "cell_clip": self._block_cell_clip,
            "use_peephole": self._use_peepholes,
            "dtype": self._dtype_name(),
            "reuse": self._reuse,
            "name": self._base_name,
        }

    def extra_repr(self) -> str:
        parts = [f"{self._num_units}"]
        if self._use_peepholes:
            parts.append("use_peephole=True")
        if self._block_cell_clip is not None:
            parts.append(f"cell_clip={self._block_cell_clip}")
        parts.append(f"name={self.name!r}")
        return ", ".join(parts)


class CudnnCompatibleLSTMCell(LSTMBlockCell):
    r"""The cell that runs ``CudnnLSTM``-trained weights on any device.

    TensorFlow equivalent: ``tf.contrib.cudnn_rnn.CudnnCompatibleLSTMCell``
    (TF 1.x): an :class:`LSTMBlockCell` with ``forget_bias=0``, no clip, no
    peepholes, in the scope ``cudnn_compatible_lstm_cell``, the names
    ``CudnnLSTM``'s checkpoints use (``cudnn_lstm/rnn/multi_rnn_cell/cell_0/
    cudnn_compatible_lstm_cell/kernel``: ``[d + u, 4u]``, gates i, j, f, o;
    ``bias``: cuDNN's input and recurrent biases summed). Wrap it in
    :class:`~lstmcompat.MultiRNNCell` and run it with ``dynamic_rnn`` (inside a
    ``Graph`` ``variable_scope("cudnn_lstm")``) to match those names.

    Args:
        num_units: number of units ``u``.
        reuse: TF reuse flag for the cell's scope inside a ``Graph``.

    Examples:
        >>> import torch, lstmcompat
        >>> cells = lstmcompat.MultiRNNCell([lstmcompat.CudnnCompatibleLSTMCell(4)])
        >>> with lstmcompat.Graph() as g, lstmcompat.variable_scope("cudnn_lstm"):
        ...     out, _ = lstmcompat.dynamic_rnn(cells, torch.randn(2, 3, 5), dtype="float32")
        >>> list(g.variables())[0]
        'cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/kernel'
    """

    def __init__(self, num_units: int, reuse: Any = None) -> None:
        super().__init__(num_units, forget_bias=0.0, cell_clip=None, use_peephole=False,
                         reuse=reuse, name="cudnn_compatible_lstm_cell")

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments; ``CudnnCompatibleLSTMCell(**cfg)`` rebuilds the cell."""
        return {"num_units": self._num_units, "reuse": self._reuse}

    def extra_repr(self) -> str:
        return f"{self._num_units}"


class LSTMBlockFusedCell(LSTMBlockCell):
    r"""TF1 contrib ``LSTMBlockFusedCell``: the whole (time-major) sequence in one call.

    TensorFlow equivalent: ``tf.contrib.rnn.LSTMBlockFusedCell`` (TF 1.x, the
    ``BlockLSTM`` op), same arguments, weights and names (scope
    ``lstm_fused_cell``: ``lstm_fused_cell/kernel``, ``bias``, and with
    peepholes ``w_i_diag, w_f_diag, w_o_diag`` in that order). The math of each
    step is :class:`LSTMBlockCell`'s (``cell_clip <= 0``: no clip; the clip
    passes gradients). Called as::

        outputs, LSTMStateTuple(c, h) = fused(inputs, initial_state=None, dtype=None,
                                              sequence_length=None)

    It is not an ``RNNCell``: ``dynamic_rnn`` and ``MultiRNNCell`` refuse it,
    as TensorFlow's do.

    Args:
        num_units: number of units ``u``.
        forget_bias: added to the forget gate pre-activation at run time.
        cell_clip: clip ``c`` when ``> 0`` (``None`` or ``<= 0``: no clip).
        use_peephole: diagonal peephole connections.
        reuse: TF reuse flag for the cell's scope inside a ``Graph``.
        dtype: weight dtype; ``None``: the first input's dtype.
        name: the layer's name and variable scope (default ``"lstm_fused_cell"``).

    Examples:
        >>> import torch, lstmcompat
        >>> fused = lstmcompat.LSTMBlockFusedCell(4)
        >>> out, st = fused(torch.randn(6, 2, 3), dtype=torch.float32, sequence_length=[6, 2])
        >>> out.shape, bool((out[2:, 1] == 0).all()), st.h.shape
        (torch.Size([6, 2, 4]), True, torch.Size([2, 4]))
    """

    _default_name = "lstm_fused_cell"

    def __init__(self, num_units: int, forget_bias: float = 1.0, cell_clip: float | None = None,
                 use_peephole: bool = False, reuse: Any = None, dtype: Any = None,
                 name: str | None = "lstm_fused_cell") -> None:
        super().__init__(num_units, forget_bias=forget_bias, cell_clip=cell_clip,
                         use_peephole=use_peephole, dtype=dtype, reuse=reuse, name=name)

    @property
    def num_units(self) -> int:
        """Number of units (TF ``LSTMBlockWrapper.num_units``)."""
        return self._num_units

    def _prepare(self, depth: int, dtype: torch.dtype, scope: Any = None) -> None:
        raise TypeError(
            f"The cell ({self!r}) is not an RNNCell: LSTMBlockFusedCell runs a whole sequence "
            "itself; call it as `outputs, state = fused(inputs, initial_state, dtype, "
            "sequence_length)` (inputs time-major), or use LSTMBlockCell in dynamic_rnn."
        )

    def forward(self, inputs: Any, initial_state: Any = None, dtype: Any = None,
                sequence_length: Any = None) -> tuple[Any, LSTMStateTuple]:
        """Run the LSTM over ``inputs`` from ``initial_state`` (TF ``LSTMBlockWrapper.call``).

        Args:
            inputs: ``(time, batch, depth)``, or a list of ``time`` tensors
                ``(batch, depth)``.
            initial_state: ``(c, h)``, each ``(batch, num_units)``; ``None``: zeros
                of ``dtype``.
            dtype: the zero state's dtype (required without ``initial_state``).
            sequence_length: integer ``(batch,)`` in ``[0, time]``: outputs at
                and after each length are zeros and the final state is the
                state after step ``length - 1`` (the initial state for 0).

        Returns:
            ``(outputs, LSTMStateTuple(c, h))``: outputs ``(time, batch,
            num_units)`` (a list when ``inputs`` is one).

        Raises:
            ValueError: ``inputs`` not of rank 3 or of unknown depth, neither
                ``initial_state`` nor ``dtype``, an ``initial_state`` that is not
                a pair, or a ``sequence_length`` that is not ``batch`` integers in
                ``[0, time]`` (TF's ``InvalidArgumentError`` from ``gather_nd``).
            TypeError: a non-integer ``sequence_length``, or dtypes that disagree.
        """
        is_list = isinstance(inputs, (list, tuple))
        if is_list:
            if not inputs:
                raise ValueError("Argument `inputs` must not be empty.")
            x = torch.stack([as_tensor(t) for t in inputs], dim=0)
        else:
            x = as_tensor(inputs)
        if x.dim() != 3:
            raise ValueError(f"Shape {tuple(x.shape)} must have rank 3 (argument `inputs`: "
                             "(time, batch, depth))")
        if not x.shape[2]:
            raise ValueError(f"Expecting inputs_shape[2] to be set: {tuple(x.shape)}")
        check_floating(x.dtype)
        T, B = x.shape[0], x.shape[1]
        if initial_state is None:
            dt = as_dtype(dtype)
            if dt is None:
                raise ValueError("Either initial_state or dtype needs to be specified")
            check_floating(dt, "dtype")
            z = torch.zeros(B, self._num_units, dtype=dt, device=x.device)
            state = LSTMStateTuple(z, z)
        else:
            if isinstance(initial_state, torch.Tensor) or not isinstance(
                    initial_state, Sequence) or len(initial_state) != 2:
                raise ValueError("Expecting initial_state to be a tuple with length 2 or None")
            state = LSTMStateTuple(*(as_tensor(s, "initial_state", device=x.device)
                                     for s in initial_state))
        lengths = None if sequence_length is None else _fused_lengths(sequence_length, B, T)
        LSTMCell._prepare(self, x.shape[2], x.dtype)
        outputs, final = self._run_sequence(x, state, lengths, batch_first=False)
        return (list(outputs.unbind(0)) if is_list else outputs), final


def _fused_lengths(sequence_length: Any, batch: int, steps: int) -> torch.Tensor:
    """``sequence_length`` checked as TF's ``sequence_mask`` + ``gather_nd`` take it."""
    sl = sequence_length
    if not isinstance(sl, torch.Tensor):
        array = np.asarray(sl)
        if array.dtype.kind not in "iu":
            raise TypeError("`sequence_length` must hold integers (int32 or int64), got "
                            f"{array.dtype} ({sequence_length!r}).")
        sl = torch.as_tensor(array)
    elif sl.is_floating_point() or sl.is_complex() or sl.dtype == torch.bool:
        raise TypeError(f"`sequence_length` must hold integers (int32 or int64), got {sl.dtype}.")
    sl = sl.to("cpu", torch.int64)
    if sl.dim() != 1 or sl.shape[0] != batch:
        raise ValueError(f"`sequence_length` must be a vector of {batch} lengths (one per batch "
                         f"row), got shape {tuple(sl.shape)}.")
    bad = torch.nonzero((sl < 0) | (sl > steps))
    if len(bad):
        b = int(bad[0, 0])
        raise ValueError(
            f"`sequence_length` must lie in [0, {steps}] (the number of steps): "
            f"sequence_length[{b}] = {int(sl[b])} (TensorFlow's gather_nd: indices[{b}] = "
            f"[{int(sl[b])}, {b}] does not index into the {steps + 1} saved states)."
        )
    return sl
