"""``dynamic_rnn``, ``static_rnn`` and ``bidirectional_dynamic_rnn`` on the engine.

Each runs a cell over the whole sequence with one engine call per LSTM layer
(never a Python loop over ``cell(...)``; a cell of your own, a subclass of
``RNNCell``, runs step by step), with TF1 ``sequence_length``
semantics: outputs past a sequence's length are zeros and its state is held,
so the final state is the state after its last valid step (the initial state
for length 0). Mirrors ``tensorflow/python/ops/rnn.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._util import as_dtype, as_tensor, check_floating
from .base import RNNCellBase, State, map_structure
from .graph import VariableScope, variable_scope


def _check_cell(name: str, cell: Any) -> None:
    if not isinstance(cell, RNNCellBase):
        raise TypeError(
            f"The argument `{name}` ({cell!r}) is not an RNNCell: pass an lstmcompat cell "
            "(LSTMCell, MultiRNNCell, a wrapper) or a subclass of lstmcompat.RNNCell."
        )


def _run(cell: RNNCellBase, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
         batch_first: bool) -> tuple[Any, State]:
    """``cell._run_sequence`` after telling every cell of the tree a sequence begins."""
    for m in cell.modules():
        if isinstance(m, RNNCellBase):
            m._begin_sequence()
    return cell._run_sequence(x, state, lengths, batch_first)


def _length_tensor(sequence_length: Any, integers_only: bool = False) -> torch.Tensor:
    """``sequence_length`` as an int64 tensor (any shape; the callers check it).

    TF's ``dynamic_rnn`` casts the lengths to int32: floats are truncated, bools
    read as 0/1, negative lengths act as 0; strings raise (``UnimplementedError``
    there, ``TypeError`` here), as do complex numbers. NaN or infinite lengths
    raise ``ValueError`` (TF casts them to an arbitrary int32).
    ``integers_only``: floats and bools raise ``ValueError`` (TF's
    ``reverse_sequence`` in ``bidirectional_dynamic_rnn`` takes int32/int64 only,
    ``InvalidArgumentError``).
    """
    sl = sequence_length
    if isinstance(sl, torch.Tensor):
        if sl.device.type == "meta":
            raise ValueError("`sequence_length` is on the meta device (it holds no data).")
    else:
        try:
            array = np.asarray(sl)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"`sequence_length` must be a vector of integers, got {sl!r}: {e}") from None
        if array.dtype.kind not in "biuf":
            raise TypeError(
                "`sequence_length` must be a vector of integers, got values of dtype "
                f"{array.dtype} ({sl!r})."
            )
        sl = torch.as_tensor(array)
    if sl.is_complex():
        raise TypeError(f"`sequence_length` must be a vector of integers, got dtype {sl.dtype}.")
    if integers_only and (sl.is_floating_point() or sl.dtype == torch.bool):
        raise ValueError(
            "`sequence_length` must hold int32 or int64 values in "
            f"bidirectional_dynamic_rnn, got dtype {str(sl.dtype).replace('torch.', '')} "
            "(TensorFlow's reverse_sequence raises InvalidArgumentError)."
        )
    if sl.is_floating_point():
        if not bool(torch.isfinite(sl).all()):
            raise ValueError(f"`sequence_length` must be finite, got {sl.tolist()}.")
        sl = sl.clamp(-(2**62), 2**62)
    return sl.to(torch.int64)


def _lengths(sequence_length: Any, batch: int, scope_name: str,
             message_vector: str) -> torch.Tensor | None:
    if sequence_length is None:
        return None
    sl = _length_tensor(sequence_length)
    if sl.dim() != 1:
        raise ValueError(message_vector.format(sl=sl, shape=tuple(sl.shape)))
    if sl.shape[0] != batch:
        # TF: InvalidArgumentError from the CheckSeqLen assertion.
        raise ValueError(
            f"`sequence_length` needs one entry per batch row: Expected shape for Tensor "
            f"{scope_name}/sequence_length:0 is [{batch}] but saw shape: [{sl.shape[0]}]"
        )
    return sl.to("cpu", torch.int64)


def _initial_state(cell: RNNCellBase, initial_state: State | None, dtype: Any, batch: int,
                   x: torch.Tensor) -> State:
    """The initial state (converted, or zeros of ``dtype``), after building ``cell``
    for ``x``: the weights' memory guard runs before the zero state is allocated."""
    device = x.device
    if initial_state is not None:
        state = _map_state(initial_state,
                           lambda t: as_tensor(t, "initial_state", device=device))
        cell._prepare(x.shape[-1], x.dtype)
        return state
    dt = as_dtype(dtype)
    if not dt:
        raise ValueError("If no initial_state is provided, argument `dtype` must be specified")
    cell._prepare(x.shape[-1], x.dtype)
    state = cell.get_initial_state(inputs=None, batch_size=batch, dtype=dt)
    return _map_state(state, lambda t: t.to(device))


def _map_state(state: State, fn: Any) -> State:
    if isinstance(state, (torch.Tensor, np.ndarray)) or not isinstance(state, (tuple, list)):
        return fn(state)
    if hasattr(state, "_fields"):
        return type(state)(*(_map_state(s, fn) for s in state))
    return type(state)(_map_state(s, fn) for s in state)


def _scope_label(scope: str | VariableScope | None, default: str) -> str:
    if isinstance(scope, VariableScope):
        return scope.name
    return scope or default


def dynamic_rnn(cell: RNNCellBase, inputs: Any, sequence_length: Any = None,
                initial_state: State | None = None, dtype: Any = None,
                parallel_iterations: int | None = None, swap_memory: bool = False,
                time_major: bool = False, scope: str | VariableScope | None = None
                ) -> tuple[torch.Tensor, State]:
    """Run ``cell`` over a whole sequence (TF ``tf.compat.v1.nn.dynamic_rnn``).

    Args:
        cell: an ``LSTMCell``, ``MultiRNNCell``, a wrapper, or any ``RNNCell``
            subclass of your own (run step by step; its outputs may be nested).
        inputs: ``(batch, time, depth)``, or ``(time, batch, depth)`` when
            ``time_major``.
        sequence_length: optional integer ``(batch,)``: outputs at and after
            ``t = length`` are zeros and the state is held (length 0 returns the
            initial state; lengths above ``time`` act as ``time``).
        initial_state: the cell's state structure (``LSTMStateTuple``, a tuple
            for ``MultiRNNCell``, or a concatenated tensor).
        dtype: required when ``initial_state`` is ``None`` (dtype of the zero state).
        parallel_iterations: accepted for compatibility; no effect.
        swap_memory: accepted for compatibility; no effect.
        time_major: layout of ``inputs`` and of the returned outputs.
        scope: variable scope (name or captured scope) inside a ``Graph``;
            default ``"rnn"``.

    Returns:
        ``(outputs, state)``: outputs ``(batch, time, output_size)`` (time-major
        when ``time_major``) and the final state.

    Raises:
        TypeError: ``cell`` is not an ``RNNCell``.
        ValueError: ``dtype`` missing without ``initial_state``; inputs of rank
            below 3; ``sequence_length`` not a vector of ``batch`` entries (TF's
            ``InvalidArgumentError`` for the size).

    Examples:
        >>> import torch, lstmcompat
        >>> cell = lstmcompat.LSTMCell(4)
        >>> out, st = lstmcompat.dynamic_rnn(cell, torch.randn(2, 5, 3), sequence_length=[5, 2],
        ...                                  dtype=torch.float32)
        >>> bool((out[1, 2:] == 0).all()), st.h.shape
        (True, torch.Size([2, 4]))
    """
    del parallel_iterations, swap_memory
    _check_cell("cell", cell)
    with variable_scope(scope or "rnn") as vs:
        x = as_tensor(inputs)
        if x.dim() < 2:
            raise ValueError(f"Input tensor should have rank >= 2. Received input={x!r} of "
                             f"rank {x.dim()}")
        if x.dim() != 3:
            raise ValueError(f"Shape {tuple(x.shape)} must have rank at least 3"
                             if x.dim() < 3 else
                             f"lstmcompat cells take inputs of rank 3, got shape {tuple(x.shape)}")
        check_floating(x.dtype)
        batch = x.shape[1] if time_major else x.shape[0]
        lengths = _lengths(
            sequence_length, batch, vs.name or _scope_label(scope, "rnn"),
            "Argument `sequence_length` must be a vector of length batch_size. Received "
            "sequence_length={sl} of shape: {shape}")
        state = _initial_state(cell, initial_state, dtype, batch, x)
        outputs, final = _run(cell, x, state, lengths, batch_first=not time_major)
    return outputs, final


def static_rnn(cell: RNNCellBase, inputs: Sequence[Any], initial_state: State | None = None,
               dtype: Any = None, sequence_length: Any = None,
               scope: str | VariableScope | None = None
               ) -> tuple[list[torch.Tensor], State]:
    """Run ``cell`` over a list of steps (TF ``tf.compat.v1.nn.static_rnn``).

    Same math and ``sequence_length`` rule as :func:`dynamic_rnn`, in one
    engine call; only the layout differs: ``inputs`` is a list of ``T`` tensors
    ``(batch, depth)`` and the outputs are a list of ``T`` tensors
    ``(batch, output_size)``.

    Raises:
        TypeError: ``inputs`` is not a list or tuple.
        ValueError: ``inputs`` is empty, ``dtype`` is missing without
            ``initial_state``, or ``sequence_length`` is not a vector of
            ``batch`` entries.

    Examples:
        >>> import torch, lstmcompat
        >>> cell = lstmcompat.LSTMCell(4)
        >>> outs, st = lstmcompat.static_rnn(cell, [torch.randn(2, 3)] * 5, dtype="float32")
        >>> len(outs), outs[0].shape
        (5, torch.Size([2, 4]))
    """
    _check_cell("cell", cell)
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"Argument `inputs` must be a sequence. Received: {inputs}")
    if not inputs:
        raise ValueError("Argument `inputs` must not be empty.")
    with variable_scope(scope or "rnn"):
        steps = [as_tensor(t) for t in inputs]
        for t in steps:
            if t.dim() != 2:
                raise ValueError(
                    f"static_rnn takes a list of (batch, depth) tensors, got shape {tuple(t.shape)}."
                )
            if t.shape != steps[0].shape:
                raise ValueError(
                    f"All inputs must have the same shape, got {tuple(steps[0].shape)} and "
                    f"{tuple(t.shape)}."
                )
        x = torch.stack(steps, dim=0)
        check_floating(x.dtype)
        batch = x.shape[1]
        lengths = None
        if sequence_length is not None:
            sl = _length_tensor(sequence_length)
            if sl.dim() != 1:
                raise ValueError(
                    f"Argument `sequence_length` must be a vector of length {batch}. Received "
                    f"sequence_length={sl}.")
            lengths = _lengths(sl, batch, _scope_label(scope, "rnn"), "{sl}")
        state = _initial_state(cell, initial_state, dtype, batch, x)
        outputs, final = _run(cell, x, state, lengths, batch_first=False)
    if isinstance(outputs, torch.Tensor):
        return list(outputs.unbind(0)), final
    return [map_structure(lambda o, t=t: o[t], outputs) for t in range(x.shape[0])], final


def reverse_sequence(x: torch.Tensor, lengths: torch.Tensor | None, time_dim: int) -> torch.Tensor:
    """TF ``reverse_sequence``: reverse the first ``lengths[b]`` steps of each sequence.

    Steps past a length stay where they are; ``lengths=None`` reverses all steps.
    Differentiable (a gather).
    """
    if lengths is None:
        return x.flip(time_dim)
    T = x.shape[time_dim]
    lengths = lengths.to(x.device)
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    idx = torch.where(t < lengths.unsqueeze(0), lengths.unsqueeze(0) - 1 - t, t)  # (T, B)
    if time_dim == 1:
        idx = idx.t()
    idx = idx.reshape(idx.shape + (1,) * (x.dim() - 2)).expand_as(x)
    return x.gather(time_dim, idx)


def bidirectional_dynamic_rnn(cell_fw: RNNCellBase, cell_bw: RNNCellBase, inputs: Any,
                              sequence_length: Any = None,
                              initial_state_fw: State | None = None,
                              initial_state_bw: State | None = None, dtype: Any = None,
                              parallel_iterations: int | None = None, swap_memory: bool = False,
                              time_major: bool = False,
                              scope: str | VariableScope | None = None
                              ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[State, State]]:
    """Forward and backward RNNs over the same inputs (TF ``tf.compat.v1.nn.bidirectional_dynamic_rnn``).

    The backward cell reads each sequence reversed over its own length only
    (``reverse_sequence``); its outputs are reversed back, so ``out_bw[:, t]``
    belongs to input step ``t``. Inside a ``Graph`` the cells build under
    ``bidirectional_rnn/fw/...`` and ``bidirectional_rnn/bw/...`` (or
    ``scope``).

    Returns:
        ``((out_fw, out_bw), (state_fw, state_bw))``.

    Raises:
        ValueError: as :func:`dynamic_rnn`, and a length above the number of
            steps (TF's ``reverse_sequence`` ``InvalidArgumentError``).

    Examples:
        >>> import torch, lstmcompat
        >>> fw, bw = lstmcompat.LSTMCell(3), lstmcompat.LSTMCell(2)
        >>> (of, ob), (sf, sb) = lstmcompat.bidirectional_dynamic_rnn(
        ...     fw, bw, torch.randn(2, 4, 5), sequence_length=[4, 1], dtype="float32")
        >>> of.shape, ob.shape
        (torch.Size([2, 4, 3]), torch.Size([2, 4, 2]))
    """
    _check_cell("cell_fw", cell_fw)
    _check_cell("cell_bw", cell_bw)
    time_dim, batch_dim = (0, 1) if time_major else (1, 0)
    x = as_tensor(inputs)
    lengths = None
    if sequence_length is not None and x.dim() == 3:
        lengths = _lengths(
            _length_tensor(sequence_length, integers_only=True), x.shape[batch_dim],
            "bidirectional_rnn/fw/fw",
            "Argument `sequence_length` must be a vector of length batch_size. Received "
            "sequence_length={sl} of shape: {shape}")
        T = x.shape[time_dim]
        # (the values are checked in eager mode only: a captured graph cannot branch on data)
        if not torch.compiler.is_compiling() and bool((lengths > T).any()):
            bad = int(torch.nonzero(lengths > T)[0, 0])
            raise ValueError(
                f"`sequence_length` exceeds the number of steps: seq_lens({bad}) > "
                f"input.dims({time_dim}): {int(lengths[bad])} > {T}"
            )
        if not torch.compiler.is_compiling() and bool((lengths < 0).any()):
            bad = int(torch.nonzero(lengths < 0)[0, 0])
            raise ValueError(f"`sequence_length` is negative: seq_lens({bad}) < 0: "
                             f"{int(lengths[bad])}")
    with variable_scope(scope or "bidirectional_rnn"):
        with variable_scope("fw") as fw_scope:
            out_fw, st_fw = dynamic_rnn(cell_fw, x, sequence_length=lengths,
                                        initial_state=initial_state_fw, dtype=dtype,
                                        time_major=time_major, scope=fw_scope)
        with variable_scope("bw") as bw_scope:
            x_rev = reverse_sequence(x, lengths, time_dim) if x.dim() == 3 else x
            tmp, st_bw = dynamic_rnn(cell_bw, x_rev, sequence_length=lengths,
                                     initial_state=initial_state_bw, dtype=dtype,
                                     time_major=time_major, scope=bw_scope)
    out_bw = reverse_sequence(tmp, lengths, time_dim)
    return (out_fw, out_bw), (st_fw, st_bw)
