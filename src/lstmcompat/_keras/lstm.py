"""``lstmcompat.LSTM``: the Keras v1 LSTM layer (``tf.compat.v1.keras.layers.LSTM``).

The layer translates its arguments into one engine call
(:func:`lstmcompat._engine.run`): a :class:`~lstmcompat._engine.CellSpec`,
its weights (already in the engine's canonical ``i, f, c, o`` order, which is
Keras's), the sequence, the initial state, a Keras mask (``mask_mode="carry"``)
and the variational dropout masks.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from .. import _activations, _args, _weights_io
from .._dtypes import applied_dtype, as_tensor, dtype_name, resolve_dtype
from .._engine import CellSpec, Dropout, Weights, run_explained, start_stream
from .._streaming import StreamingModule
from . import constraints as _constraints_mod
from . import initializers as _initializers
from . import regularizers as _regularizers

_UIDS: dict[str, itertools.count] = {}
_LOCK_INIT = threading.Lock()


def _unique_name(base: str) -> str:
    """Keras-style default layer names: ``lstm``, ``lstm_1``, ``lstm_2``, ..."""
    n = next(_UIDS.setdefault(base, itertools.count()))
    return base if n == 0 else f"{base}_{n}"


def _shape_str(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _batch_input_shape(input_shape: Any, input_dim: Any, input_length: Any,
                       batch_input_shape: Any, batch_size: Any) -> tuple[int | None, ...] | None:
    """Keras's base ``Layer`` rule, every entry checked as TF's ``TensorShape`` does:
    ``input_dim``/``input_length`` -> ``input_shape`` -> ``batch_input_shape``.

    Raises:
        TypeError: an entry is not ``None`` or an integer-like (TF: "Dimension
            value must be integer or None"), or a shape is not a sequence.
        ValueError: an entry is negative (TF: "Dimension -3 must be >= 0"), or the
            batch input shape does not have 3 dimensions.
    """
    input_dim = _args.dimension(input_dim, "input_dim")
    input_length = _args.dimension(input_length, "input_length")
    batch_size = _args.dimension(batch_size, "batch_size")
    if input_shape is not None:
        input_shape = _args.shape(input_shape, "input_shape")
    if batch_input_shape is not None:
        return _check_ndim(_args.shape(batch_input_shape, "batch_input_shape"))
    if input_shape is None and (input_dim is not None or input_length is not None):
        input_shape = (input_length, input_dim)
    if input_shape is None:
        return None
    return _check_ndim((batch_size,) + input_shape)


def _check_ndim(batch_input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
    if len(batch_input_shape) != 3:
        raise ValueError(
            "`batch_input_shape` (or `input_shape` plus a batch) must have 3 dimensions "
            f"(batch, time, features), got {batch_input_shape}."
        )
    return batch_input_shape


#: TF's ``set_weights`` message for a weight of another shape.
SHAPE_MESSAGE = ("Layer {name} weight shape {expected} is not compatible with provided weight "
                 "shape {got}.")

#: The parameters the engine weights derive from, in :func:`_engine_weights`'s order.
_PARAM_NAMES = ("kernel", "recurrent_kernel", "bias")


def _engine_weights(kernel: torch.Tensor, recurrent_kernel: torch.Tensor,
                    bias: torch.Tensor | None) -> Weights:
    """The canonical engine :class:`Weights` (Keras gate order is the canonical one)."""
    return Weights(W=kernel, R=recurrent_kernel, b=bias)


def _engine_grads(dW: torch.Tensor | None, dR: torch.Tensor | None, db: torch.Tensor | None,
                  *_: torch.Tensor | None) -> tuple:
    """The adjoint of :func:`_engine_weights` (the identity: no re-layout)."""
    return dW, dR, db


def _gate_major_parameter(value: torch.Tensor, requires_grad: bool) -> torch.nn.Parameter:
    """A ``(in, 4*units)`` Parameter stored gate-major, as ``(4*units, in)`` in memory.

    Shape, values and gradients are Keras's; only the strides differ, so that
    ``param.t()`` is the contiguous ``(4*units, in)`` weight that ``torch.lstm``
    (oneDNN, cuDNN) reads without re-laying it out on every call. With one input
    row (or column) both layouts are the same memory: then it is stored plainly
    contiguous, whose strides are the ones its gradients get (DDP, for one, warns
    when a parameter's strides differ from its gradient's).
    """
    if 1 in value.shape:
        return torch.nn.Parameter(value.contiguous(), requires_grad=requires_grad)
    storage = torch.empty(value.shape[1], value.shape[0], dtype=value.dtype, device=value.device)
    storage.t().copy_(value)
    return torch.nn.Parameter(storage.t(), requires_grad=requires_grad)


class LSTM(StreamingModule, torch.nn.Module):
    """Long Short-Term Memory layer with the exact semantics of ``tf.compat.v1.keras.layers.LSTM``.

    TensorFlow equivalent: ``tf.compat.v1.keras.layers.LSTM`` (tf_keras
    ``lstm_v1.LSTM``), i.e. ``RNN(LSTMCell(...))`` without cuDNN.

    For input ``x_t`` and previous state ``(h, c)`` (gate order ``i, f, c, o``
    in every fused weight)::

        i = recurrent_activation(x_t W_i + h U_i + b_i)
        f = recurrent_activation(x_t W_f + h U_f + b_f)
        c = f * c + i * activation(x_t W_c + h U_c + b_c)
        o = recurrent_activation(x_t W_o + h U_o + b_o)
        h = o * activation(c)

    ``recurrent_activation`` defaults to Keras's ``hard_sigmoid``,
    ``clip(0.2 * x + 0.5, 0, 1)`` (tf_keras's); Keras 3's ``hard_sigmoid``,
    ``relu6(x + 3) / 6``, is the name ``"keras3_hard_sigmoid"``.

    Args:
        units: positive integer (``int``, NumPy integer or 0-d integer tensor),
            the size of ``h`` and ``c``.
        activation: Keras name, callable, or ``None`` (linear).
        recurrent_activation: the gates' activation, as ``activation``.
        use_bias: whether the layer has ``bias``.
        kernel_initializer: Keras name, ``{"class_name", "config"}`` dict, or
            callable ``(shape, dtype) -> Tensor``; drawn from torch's global RNG.
        recurrent_initializer: as ``kernel_initializer``.
        bias_initializer: as ``kernel_initializer``.
        unit_forget_bias: initialise the forget slice of ``bias`` to ones.
        kernel_regularizer: Keras regularizer (its penalty is in ``losses``).
        recurrent_regularizer: as ``kernel_regularizer``.
        bias_regularizer: as ``kernel_regularizer``.
        activity_regularizer: as ``kernel_regularizer``, on the outputs.
        kernel_constraint: Keras constraint, applied by
            :func:`lstmcompat.apply_constraints` after an optimizer step (never in
            forward or ``set_weights``).
        recurrent_constraint: as ``kernel_constraint``.
        bias_constraint: as ``kernel_constraint``.
        dropout: variational dropout rate of the inputs (a real number), clamped
            to ``[0, 1]``.
        recurrent_dropout: the same, for the recurrent state.
        return_sequences: return the whole output sequence instead of the last output.
        return_state: also return the final ``h`` and ``c`` (a list ``[output, h, c]``).
        go_backwards: process the sequence backwards; the output sequence is in
            processing order (as Keras), not re-reversed.
        stateful: keep the final state of each call as the next call's initial state.
        unroll: accepted for compatibility; the numerics are identical.
        time_major: inputs (and masks) are ``(time, batch, ...)``.
        implementation: 1 (per-gate dropout masks) or 2 (one shared input mask).
        input_shape: as Keras (each dimension ``None`` or a non-negative
            integer-like); when it (or ``input_dim``, ``batch_input_shape``)
            gives the feature size the weights are built at construction.
        input_dim: as Keras.
        input_length: as Keras (the time size, with ``input_dim``).
        batch_input_shape: as Keras.
        batch_size: as Keras.
        name: layer name (default ``lstm``, ``lstm_1``, ...).
        dtype: ``torch.dtype`` or its name; default float32. Inputs (and
            ``initial_state``) are converted to it. ``torch.nn.Module``'s
            conversions (``.double()``, ``.half()``, ``.bfloat16()``,
            ``.to(dtype)``) change it with the weights and the stored states.
        trainable: whether the weights require gradients.
        engine_kernel: force an engine kernel (``"native"``, ``"reference"``, ...);
            ``None`` lets :func:`lstmcompat.choose` pick the fastest exact one. A
            kernel that cannot run a call exactly raises ``ValueError``.

    Attribute ``checkpoint_steps`` (``None`` by default, not part of the config): set
    to a positive int, a differentiated call longer than that runs in checkpointed
    segments of that many steps (``torch.utils.checkpoint``): backward recomputes
    each segment's forward, so the memory kept for backward is about one segment's
    (plus the segments' boundaries), for about one more forward pass of time. Same
    numbers. Under ``torch.autocast`` the products run in the autocast type (see the
    training guide, "Mixed precision").

    Shapes:
        ``kernel (features, 4*units)``, ``recurrent_kernel (units, 4*units)``,
        ``bias (4*units,)``.

    Raises:
        TypeError: an argument of the wrong type (a float or string size or
            dimension, a non-number rate, an unknown ``dtype``, an initializer
            returning a non-numeric value), as TensorFlow.
        ValueError: a value out of range (a size below 1, a negative dimension,
            a non-floating ``dtype``, an initializer returning another shape), as
            TensorFlow; weights that cannot fit in memory, before allocating
            (also a ``MemoryError``). At call time: inputs of the wrong rank or
            features, no time steps (TF's ``InvalidArgumentError``), states of
            the wrong count, shape or dtype, tensors on the meta device.

    Examples:
        >>> import torch, lstmcompat
        >>> layer = lstmcompat.LSTM(8, return_sequences=True, input_shape=(None, 3))
        >>> layer(torch.zeros(2, 5, 3)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "hard_sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        time_major: bool = False,
        implementation: int = 1,
        *,
        input_shape: Sequence[int | None] | None = None,
        input_dim: int | None = None,
        input_length: int | None = None,
        batch_input_shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        engine_kernel: str | None = None,
    ) -> None:
        super().__init__()
        # Every argument is checked before anything is built (see _args for TF's types).
        self.units = _args.positive_int(units, "units")
        dropout = _args.rate(dropout, "dropout")
        recurrent_dropout = _args.rate(recurrent_dropout, "recurrent_dropout")
        implementation = _args.integer(implementation, "implementation", 0)
        if implementation not in (0, 1, 2):
            raise ValueError(f"`implementation` must be 1 or 2, got {implementation!r}.")
        self.dtype = resolve_dtype(dtype)
        if not self.dtype.is_floating_point:
            # TF: ValueError("Expected floating point type, got <dtype: 'int32'>.")
            raise ValueError(
                f"`dtype` must be a floating point type, got {dtype_name(self.dtype)} "
                "(Expected floating point type)."
            )
        batch_input_shape = _batch_input_shape(input_shape, input_dim, input_length,
                                               batch_input_shape, batch_size)
        self.activation = _activations.get(activation)
        self.recurrent_activation = _activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.recurrent_initializer = _initializers.get(recurrent_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = _regularizers.get(recurrent_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.activity_regularizer = _regularizers.get(activity_regularizer)
        self.kernel_constraint = _constraints_mod.get(kernel_constraint)
        self.recurrent_constraint = _constraints_mod.get(recurrent_constraint)
        self.bias_constraint = _constraints_mod.get(bias_constraint)
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        # Keras: recurrent dropout forces implementation 1.
        self.implementation = 1 if self.recurrent_dropout != 0 else int(implementation)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.time_major = bool(time_major)
        self.trainable = bool(trainable)
        self.name = name if name is not None else _unique_name("lstm")
        self.engine_kernel = engine_kernel  # force an engine kernel (None: `choose` decides)
        #: Keras's ``RNN(zero_output_for_mask=...)``: masked steps output zeros instead of
        #: the previous output (``Bidirectional`` sets it to ``return_sequences``).
        self.zero_output_for_mask = False

        self.batch_input_shape = batch_input_shape

        self.kernel: torch.nn.Parameter | None = None
        self.recurrent_kernel: torch.nn.Parameter | None = None
        self.bias: torch.nn.Parameter | None = None
        self.built = False
        self._input_features: int | None = None
        self._batch: int | None = None
        self._activity_losses: list[torch.Tensor] = []
        #: ``(kernel_name, reason)`` of the engine's choice in the latest call.
        self.last_kernel: tuple[str, str] | None = None
        self._constraints: dict[str, Callable] = {
            n: c for n, c in (("kernel", self.kernel_constraint),
                              ("recurrent_kernel", self.recurrent_constraint),
                              ("bias", self.bias_constraint)) if c is not None
        }
        if self.batch_input_shape is not None and self.batch_input_shape[-1] is not None:
            self.build(self.batch_input_shape)

    # ------------------------------------------------------------------ build
    def build(self, input_shape: Sequence[int | None]) -> None:
        """Create the weights for inputs of ``input_shape`` (``(batch, time, features)``).

        Raises:
            TypeError: ``input_shape`` is not a shape (see ``batch_input_shape``).
            ValueError: it does not have 3 dimensions, the feature size is
                ``None``, an initializer returns a value of another shape
                (``TypeError`` for a non-numeric value), or the weights cannot fit
                in memory (:class:`~lstmcompat._args.AllocationTooLargeError`,
                also a ``MemoryError``, raised before allocating).
        """
        input_shape = _args.shape(input_shape, "input_shape")
        if len(input_shape) != 3:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected '
                f"ndim=3, found ndim={len(input_shape)}. Full shape received: {_shape_str(input_shape)}"
            )
        features = input_shape[-1]
        if features is None:
            raise ValueError(
                "The last dimension of the inputs to `LSTM` should be defined. Found `None`."
            )
        if self.built:
            return
        u, dt = self.units, self.dtype
        n = features
        shapes = [("kernel", (n, 4 * u)), ("recurrent_kernel", (u, 4 * u))]
        if self.use_bias:
            shapes.append(("bias", self._bias_shape()))
        _args.check_allocation(shapes, dt, f"LSTM `units`={u} with {n} input features")

        def initial(initializer: Callable, arg: str, shape: tuple[int, ...]) -> torch.Tensor:
            return _args.initial_value(initializer(shape, dtype=dt), arg, shape, dt)

        kernel = initial(self.kernel_initializer, "kernel_initializer", (n, 4 * u))
        recurrent = initial(self.recurrent_initializer, "recurrent_initializer", (u, 4 * u))
        bias = self._initial_bias(initial) if self.use_bias else None
        self._input_features = n
        self.kernel = _gate_major_parameter(kernel, self.trainable)
        self.recurrent_kernel = _gate_major_parameter(recurrent, self.trainable)
        if bias is not None:
            self.bias = torch.nn.Parameter(bias, requires_grad=self.trainable)
        self.built = True
        if self.stateful:
            batch_index = 1 if self.time_major else 0
            self._batch = input_shape[batch_index]
            if self._batch is not None:
                self.reset_states()

    def _bias_shape(self) -> tuple[int, ...]:
        return (4 * self.units,)

    def _initial_bias(self, initial: Callable) -> torch.Tensor:
        """The built bias: ``bias_initializer``'s values, the forget slice ones with
        ``unit_forget_bias`` (``initial(initializer, arg, shape)`` draws and checks)."""
        u = self.units
        if self.unit_forget_bias:
            return torch.cat([
                initial(self.bias_initializer, "bias_initializer", (u,)),
                torch.ones(u, dtype=self.dtype),
                initial(self.bias_initializer, "bias_initializer", (2 * u,)),
            ])
        return initial(self.bias_initializer, "bias_initializer", (4 * u,))

    def _checked_weights(self) -> Weights:
        """The engine :class:`Weights` of the current parameters, after checking that
        none was replaced by one of another shape, dtype or device."""
        u = self.units
        _weights_io.check_parameters(self.name, (
            ("kernel", self.kernel, (self._input_features, 4 * u)),
            ("recurrent_kernel", self.recurrent_kernel, (u, 4 * u)),
            ("bias", self.bias, self._bias_shape())))
        return _engine_weights(self.kernel, self.recurrent_kernel, self.bias)

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> LSTM:
        """``torch.nn.Module``'s conversions (``.double()``, ``.half()``, ``.to(dtype)``,
        ...) convert the weights and the stored states; the layer's dtype (what
        inputs are converted to, :meth:`get_config`'s ``"dtype"``) follows them.
        An unbuilt layer takes the new dtype for the weights it will build."""
        super()._apply(fn, *args, **kwargs)
        self.dtype = applied_dtype(fn, self.dtype, self.kernel)
        return self

    # ---------------------------------------------------------------- weights
    @property
    def weights(self) -> list[torch.nn.Parameter]:
        """``[kernel, recurrent_kernel, bias]`` (no bias when ``use_bias=False``)."""
        if not self.built:
            return []
        return [p for p in (self.kernel, self.recurrent_kernel, self.bias) if p is not None]

    @property
    def trainable_weights(self) -> list[torch.nn.Parameter]:
        return self.weights if self.trainable else []

    def get_weights(self) -> list[np.ndarray]:
        """The weights as NumPy arrays, in the order of :attr:`weights`.

        NumPy has no bfloat16: the weights of a bfloat16 layer come back as
        ``ml_dtypes.bfloat16`` arrays when the optional package ``ml_dtypes`` is
        installed, else as float32 arrays (the same values); :meth:`set_weights`
        takes either.
        """
        return _weights_io.get_weights(self.weights)

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set the weights from array-likes in the order of :attr:`weights` (shape-checked),
        converted to the weights' dtype (``ml_dtypes.bfloat16`` arrays too).

        Raises:
            ValueError: wrong number of arrays or a shape that does not match.
        """
        _weights_io.set_weights(self.name, self.weights, weights, SHAPE_MESSAGE)

    # ----------------------------------------------------------------- losses
    @property
    def losses(self) -> list[torch.Tensor]:
        """Activity penalties of the latest call, then the weight penalties of the current weights."""
        out = list(self._activity_losses)
        if self.built:
            for reg, p in ((self.kernel_regularizer, self.kernel),
                           (self.recurrent_regularizer, self.recurrent_kernel),
                           (self.bias_regularizer, self.bias)):
                if reg is not None and p is not None:
                    out.append(reg(p))
        return out

    # ----------------------------------------------------------------- states
    @property
    def states(self) -> list[torch.Tensor | None]:
        """``[h, c]`` of a stateful layer (``[None, None]`` before they exist)."""
        return [self._buffers.get("states_h"), self._buffers.get("states_c")]

    def reset_states(self, states: Sequence[Any] | None = None) -> None:
        """Reset the stored states of a stateful layer to zeros, or to ``states`` (``[h, c]``).

        Raises:
            AttributeError: the layer is not stateful.
            ValueError: the batch size is unknown, or ``states`` has the wrong
                number of arrays or shapes.
        """
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        with self._state_lock:
            self._reset_states(states)

    def _reset_states(self, states: Sequence[Any] | None) -> None:
        if not self._batch:
            raise ValueError(
                "If a RNN is stateful, it needs to know its batch size. Specify the batch "
                "size of your input tensors: pass `batch_input_shape` (or `batch_size` with "
                "`input_shape`) to the layer, or call it once on a batch."
            )
        shape = (self._batch, self.units)
        device = self.kernel.device if self.kernel is not None else None
        _args.check_allocation(
            [("states_h", shape), ("states_c", shape)], self.dtype,
            f"Stateful LSTM states for batch size {self._batch} (`batch_input_shape` or "
            "`batch_size`)", device)
        if states is None:
            values = [torch.zeros(shape, dtype=self.dtype, device=device) for _ in range(2)]
        else:
            values = self._state_pair(
                states, "states", shape, device,
                f"Layer {self.name} expects 2 states, but it received {{n}} state values.",
                f"State {{i}} is incompatible with layer {self.name}: expected "
                "shape={expected} but found shape={got}", any_dtype=True)
        self._set_states(values[0], values[1])

    def _state_pair(self, states: Any, arg: str, shape: tuple[int, int],
                    device: torch.device | None, count_message: str,
                    shape_message: str, any_dtype: bool = False) -> list[torch.Tensor]:
        """Validate ``[h, c]`` array-likes (TF's messages: ``count_message`` formatted
        with ``n``, ``shape_message`` with ``i``, ``expected``, ``got``) and convert them
        to the layer's dtype and device (``any_dtype``: also from integer arrays, as
        assigning values to TF's state variables does; else a tensor or array of
        another floating dtype is refused, as TF's ``InvalidArgumentError`` in the
        cell's MatMul; Python lists take the layer's dtype). A state on the meta
        device is refused (``ValueError``); other devices are moved to the weights'."""
        if isinstance(states, (np.ndarray, torch.Tensor)):
            states = [states]
        if isinstance(states, (str, bytes)) or not isinstance(states, Iterable):
            raise TypeError(
                f"`{arg}` must be a list [h, c] of tensors, got {type(states).__name__}."
            )
        states = list(states)
        if len(states) != 2:
            raise ValueError(count_message.format(n=len(states)))
        values = []
        for i, s in enumerate(states):
            if not any_dtype and isinstance(s, (np.ndarray, torch.Tensor)):
                floating = (s.is_floating_point() if isinstance(s, torch.Tensor)
                            else np.issubdtype(s.dtype, np.floating))
                name = dtype_name(s.dtype) if isinstance(s, torch.Tensor) else s.dtype.name
                if floating and name != dtype_name(self.dtype):
                    raise ValueError(
                        f"`{arg}` state {i} has dtype {name} but the layer "
                        f"computes in {dtype_name(self.dtype)}; pass states of dtype "
                        f"{dtype_name(self.dtype)}. (TensorFlow raises InvalidArgumentError.)"
                    )
            t = as_tensor(s, arg, dtype=None if any_dtype else self.dtype, device=device)
            if tuple(t.shape) != shape:
                raise ValueError(shape_message.format(i=i, expected=shape, got=tuple(t.shape)))
            values.append(t.to(self.dtype))
        return values

    def _set_states(self, h: torch.Tensor, c: torch.Tensor) -> None:
        """Store copies of ``[h, c]``, detached: no gradient flows into earlier calls.

        The buffers are replaced, never written in place: the previous states may
        be saved for a backward pass that is still to come.
        """
        if "states_h" in self._buffers:
            self._buffers["states_h"] = h.detach().clone()
            self._buffers["states_c"] = c.detach().clone()
        else:
            self.register_buffer("states_h", h.detach().clone())
            self.register_buffer("states_c", c.detach().clone())

    # ------------------------------------------------------------------- call
    def _spec(self) -> CellSpec:
        # Bidirectional sets `zero_output_for_mask` on layers returning sequences (Keras).
        mode = "zero" if self.zero_output_for_mask else "carry"
        key = (self.units, self.activation, self.recurrent_activation, mode)
        cached = self.__dict__.get("_spec_cache")
        if cached is None or cached[0] != key:
            spec = CellSpec(units=self.units, activation=self.activation,
                            recurrent_activation=self.recurrent_activation, mask_mode=mode)
            cached = self.__dict__["_spec_cache"] = (key, spec)
        return cached[1]

    def _dropout_masks(self, batch: int, features: int, training: bool,
                       device: torch.device) -> Dropout | None:
        if not training or (self.dropout == 0 and self.recurrent_dropout == 0):
            return None
        for rate, arg in ((self.dropout, "dropout"), (self.recurrent_dropout, "recurrent_dropout")):
            if rate >= 1.0:
                raise ValueError(
                    f"`{arg}` rate must be a float in the range [0, 1) in training, got "
                    f"rate={rate}. (TensorFlow's dropout raises the same error.)"
                )

        def masks(rate: float, count: int, size: int) -> torch.Tensor:
            keep = torch.rand(count, batch, size, device=device, dtype=self.dtype) >= rate
            return keep.to(self.dtype) * (1.0 / (1.0 - rate))

        dx = dh = None
        if self.dropout > 0:
            dx = masks(self.dropout, 4, features)
            if self.implementation != 1:
                dx = dx[:1]
        if self.recurrent_dropout > 0:
            dh = masks(self.recurrent_dropout, 4, self.units)
        return Dropout(x=dx, h=dh)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected '
                f"ndim=3, found ndim={x.dim()}. Full shape received: {_shape_str(tuple(x.shape))}"
            )
        batch_index = 1 if self.time_major else 0
        expected: list[int | None] = [None, None, self._input_features]
        if self.stateful and self._batch:
            expected[batch_index] = self._batch
        actual = tuple(x.shape)
        if any(e is not None and e != a for e, a in zip(expected, actual)):
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected '
                f"shape={_shape_str(expected)}, found shape={_shape_str(actual)}"
            )

    def _initial_state(self, initial_state: Any, batch: int,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (batch, self.units)
        if initial_state is not None:
            h, c = self._state_pair(
                initial_state, "initial_state", shape, device,
                "Layer has 2 states but was passed {n} initial states. "
                "Pass `initial_state=[h, c]`.",
                "An `initial_state` was passed that is not compatible with `cell.state_size`: "
                "state {i} has shape {got}, expected {expected} (batch, units).")
            initial = (h, c)
        else:
            initial = None
        if self.stateful:
            stored = (self._buffers["states_h"], self._buffers["states_c"])
            if initial is None or self._stored_states_win(stored):
                return stored[0], stored[1]
            return initial
        if initial is not None:
            return initial
        zeros = torch.zeros(shape, dtype=self.dtype, device=device)
        return zeros, zeros

    def _stored_states_win(self, stored: tuple[torch.Tensor, torch.Tensor]) -> bool:
        """Keras: a passed initial_state is used only while the stored states are all zero."""
        return bool(stored[0].any()) or bool(stored[1].any())

    @property
    def _state_lock(self) -> threading.RLock:
        """Serialises the calls of a stateful layer (read state, run, store state)."""
        lock = self.__dict__.get("_lock")
        if lock is None:
            with _LOCK_INIT:
                lock = self.__dict__.setdefault("_lock", threading.RLock())
        return lock

    def forward(self, inputs: Any, mask: Any = None, training: bool | None = None,
                initial_state: Any = None) -> torch.Tensor | list[torch.Tensor]:
        """Run the layer.

        Thread safety: a layer may be called from several threads at once.
        Stateless calls are independent (each gives what it gives alone); the
        calls of a stateful layer, and :meth:`reset_states`, hold a per-layer
        lock, so concurrent calls behave as if made one after another in some
        order, each continuing from the state the previous one left.

        Args:
            inputs: ``(batch, time, features)`` (``(time, batch, features)`` when
                ``time_major``), or a list ``[inputs, h, c]``.
            mask: bool or 0/1 ``(batch, time)`` (``(time, batch)`` when ``time_major``).
            training: apply dropout; ``None`` uses ``self.training``.
            initial_state: ``[h, c]``, each ``(batch, units)``.

        Returns:
            The last output ``(batch, units)``, or the sequence with
            ``return_sequences``; with ``return_state`` the list ``[output, h, c]``.
        """
        if self.stateful and not torch.compiler.is_compiling():  # (a graph runs whole)
            with self._state_lock:
                return self._call(inputs, mask, training, initial_state)
        return self._call(inputs, mask, training, initial_state)

    def _call(self, inputs: Any, mask: Any, training: bool | None,
              initial_state: Any) -> torch.Tensor | list[torch.Tensor]:
        stream = self._stream if not torch.compiler.is_compiling() else False
        if stream is None and self.built:
            stream = self._start_streaming()
        if stream and mask is None and initial_state is None and not (
                training and (self.dropout > 0 or self.recurrent_dropout > 0)):
            new = stream.step_stateful(inputs, self._buffers, "states_h", "states_c")
            if new is not None:
                return self._streamed(stream, *new)
        if isinstance(inputs, list):
            if len(inputs) > 1:
                if initial_state is not None:
                    raise ValueError(
                        "`initial_state` was given both in the `inputs` list and as a keyword."
                    )
                initial_state = inputs[1:]
            inputs = inputs[0]
        device = self.kernel.device if self.kernel is not None else None
        x = as_tensor(inputs, "inputs", dtype=self.dtype, device=device)
        if device is None:  # the weights will be built on the CPU
            _args.check_device(x, "inputs", torch.device("cpu"))
        if x.dim() != 3:
            self._check_input(x)
        if x.shape[0 if self.time_major else 1] == 0:
            # TF: InvalidArgumentError "slice index 0 of dimension 0 out of bounds",
            # with and without return_sequences.
            raise ValueError(
                f'Input 0 of layer "{self.name}" has no time steps: `inputs` has shape '
                f"{_shape_str(tuple(x.shape))} and the layer needs at least one step "
                f"(axis {0 if self.time_major else 1}); TensorFlow raises "
                "InvalidArgumentError here too."
            )
        if not self.built:
            self.build(tuple(x.shape))
        elif self.stateful and not self._batch:
            self._batch = x.shape[1 if self.time_major else 0]
            self.reset_states()
        self._check_input(x)
        batch_first = not self.time_major
        batch = x.shape[0 if batch_first else 1]
        steps = x.shape[1 if batch_first else 0]

        m = None
        if mask is not None:
            m = as_tensor(mask, "mask", device=x.device)
            expected = (batch, steps) if batch_first else (steps, batch)
            if tuple(m.shape) != expected:
                raise ValueError(
                    f"`mask` must have shape {expected} "
                    f"({'batch, time' if batch_first else 'time, batch'}), "
                    f"got {tuple(m.shape)}."
                )
            m = m.bool()

        h0, c0 = self._initial_state(initial_state, batch, x.device)
        if training is None:
            training = self.training
        dropout = self._dropout_masks(batch, x.shape[-1], bool(training), x.device)
        w = self._checked_weights()
        outputs, h, c, last_kernel = run_explained(
            self._spec(), x, w, h0, c0, mask=m, reverse=self.go_backwards, dropout=dropout,
            batch_first=batch_first, kernel=self.engine_kernel,
            checkpoint_steps=self.__dict__.get("checkpoint_steps"))
        if self.stateful:
            self._set_states(h, c)
        if self.return_sequences:
            output = outputs
        else:
            output = outputs[:, -1] if batch_first else outputs[-1]
        result: torch.Tensor | list[torch.Tensor] = [output, h, c] if self.return_state else output
        # Plain attributes set through __dict__: nn.Module.__setattr__ costs more than a step.
        self.__dict__["last_kernel"] = last_kernel
        activity: list[torch.Tensor] = []
        if self.activity_regularizer is not None:
            for t in (result if isinstance(result, list) else [result]):
                activity.append(self.activity_regularizer(t) / t.shape[0])
        self.__dict__["_activity_losses"] = activity
        return result

    def _start_streaming(self) -> Any:
        """Ask the engine (once per configuration) whether calls can take a streaming
        path (:mod:`lstmcompat._streaming`): for a built stateful layer with its batch
        size known and no activity regularizer, ``choose`` decides from the
        parameters' device and dtype, the dropout in effect and ``engine_kernel``.
        The stream then runs a call whenever it is one time step of the layer's
        batch size and dtype (no mask, no initial_state, no dropout in effect):
        the chosen kernel's single step (same numbers as the general path)
        reading the parameters in place on every call, recorded for autograd
        when it records, the stored states updated in place of the general path.
        """
        stream = None
        if self.stateful and self._batch and self.activity_regularizer is None:
            dropout = self.training and (self.dropout > 0 or self.recurrent_dropout > 0)
            stream = start_stream(
                self._spec(), self._parameters, _PARAM_NAMES,
                {"W": "kernel", "R": "recurrent_kernel", "b": "bias"},
                _engine_weights, _engine_grads, device=self.kernel.device,
                dtype=self.kernel.dtype, batch=self._batch,
                dropout_kind="other" if dropout else "none", kernel=self.engine_kernel,
                x_time_axis=0 if self.time_major else 1)
        self.__dict__["_stream"] = stream or False
        return stream or False

    def _streamed(self, stream: Any, h: torch.Tensor, c: torch.Tensor
                  ) -> torch.Tensor | list[torch.Tensor]:
        """The result of a call that ran on the streaming path."""
        d = self.__dict__
        d["last_kernel"] = stream.kernel
        d["_activity_losses"] = []
        output = h.unsqueeze(0 if self.time_major else 1) if self.return_sequences else h
        return [output, h, c] if self.return_state else output

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """The Keras config dict (same keys and values as TensorFlow's)."""
        config: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": dtype_name(self.dtype),
        }
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = self.batch_input_shape
        config.update({
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "time_major": self.time_major,
            "units": self.units,
            "activation": _activations.serialize(self.activation),
            "recurrent_activation": _activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": _initializers.serialize(self.recurrent_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": _regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": _regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": _constraints_mod.serialize(self.kernel_constraint),
            "recurrent_constraint": _constraints_mod.serialize(self.recurrent_constraint),
            "bias_constraint": _constraints_mod.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "implementation": self.implementation,
        })
        if self.zero_output_for_mask:  # as Keras's RNN.get_config
            config["zero_output_for_mask"] = True
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LSTM:
        """Re-create a layer from :meth:`get_config` (or a TensorFlow config dict).

        Raises:
            TypeError: ``config`` is not a dict, or has an unknown key.
        """
        config = _args.config_dict(config)
        if config.get("implementation") == 0:
            config["implementation"] = 1
        config.pop("enable_caching_device", None)
        zero_output = bool(config.pop("zero_output_for_mask", False))
        layer = cls(**config)
        layer.zero_output_for_mask = zero_output
        return layer

    def extra_repr(self) -> str:
        feats = self._input_features
        return f"name={self.name!r}, units={self.units}, input_features={feats}"
