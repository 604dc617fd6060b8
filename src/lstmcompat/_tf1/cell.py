"""``LSTMCell``: TF1 ``tf.compat.v1.nn.rnn_cell.LSTMCell`` on the engine."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .. import _args, _weights_io
from .._engine import CellSpec, Weights, run_explained, start_stream
from .._engine.gates import permutation, permute
from .._engine.precision import LOW_PRECISION, autocast_dtype
from .._streaming import StreamingModule
from ._util import Initializer, as_tensor, check_floating, get_initializer, glorot_uniform, zeros
from .base import RNNCellBase, State
from .graph import get_default_graph, make_value
from .state import LSTMStateTuple

ActivationLike = str | Callable[[torch.Tensor], torch.Tensor] | None


class LSTMCell(StreamingModule, RNNCellBase):
    r"""Long short-term memory cell with optional peepholes, cell clipping and projection.

    TensorFlow equivalent: ``tf.compat.v1.nn.rnn_cell.LSTMCell`` (tf_keras
    ``legacy_cells.LSTMCell``), same arguments, weights, states and errors. With
    ``x`` the input, ``(c, m)`` the previous state and ``[x, m]`` their
    concatenation, one step is::

        i, j, f, o = split([x, m] @ kernel + bias, 4)        # gate order i, j, f, o
        c' = sigmoid(f + forget_bias + w_f_diag * c) * c
             + sigmoid(i + w_i_diag * c) * act(j)            # peepholes only if use_peepholes
        c' = clip(c', -cell_clip, cell_clip)                 # if cell_clip is not None
        m' = sigmoid(o + w_o_diag * c') * act(c')            # the clipped c'
        m' = clip(m' @ proj_kernel, -proj_clip, proj_clip)   # if num_proj (clip if proj_clip)

    ``act`` is ``activation`` (``None``: tanh); the gates are always sigmoid.
    The forget bias is added at run time, never stored in ``bias``.

    Args:
        num_units: number of units ``u`` (a positive integer: ``int``, NumPy
            integer or 0-d integer tensor).
        use_peepholes: diagonal peephole connections (``w_f_diag``, ``w_i_diag``
            read the previous ``c``; ``w_o_diag`` reads the new, clipped ``c``).
        cell_clip: clip ``c`` to ``[-cell_clip, cell_clip]`` before the output
            peephole and activation (``0`` clips to zero; ``None``: off). Any float,
            as TF: its ``clip_by_value`` is ``maximum(minimum(c, cell_clip),
            -cell_clip)``, so a negative value sets ``c`` to ``-cell_clip``, NaN
            gives NaN and ``inf`` clips nothing.
        initializer: initializer of the kernel, peepholes and projection: a
            callable ``(shape, dtype) -> Tensor``, a name (``"glorot_uniform"``,
            ``"zeros"``, ``"ones"``) or ``None`` (the enclosing
            ``variable_scope``'s initializer, else glorot_uniform over each
            whole weight: the fused kernel ``(depth + output_size, 4u)`` as one
            matrix). ``bias`` always starts at zeros.
        num_proj: projection size ``p`` (any positive size, also ``>= u``);
            ``None``: no projection.
        proj_clip: clip the projected output to ``[-proj_clip, proj_clip]``
            (any float, as ``cell_clip``). As in TF it applies only together with
            ``num_proj``.
        num_unit_shards: accepted with a ``DeprecationWarning``; it does not
            change the math (TF partitions the variables).
        num_proj_shards: as ``num_unit_shards``.
        forget_bias: added to the forget gate pre-activation at run time.
        state_is_tuple: states are ``LSTMStateTuple(c, h)``; ``False``: one
            tensor ``[c, h]`` concatenated on axis 1 (``DeprecationWarning``).
        activation: ``None`` (tanh), a Keras activation name, or a callable.
        reuse: TF reuse flag for the cell's own scope inside a ``Graph``
            (``True``: the variables must already exist; ``AUTO_REUSE``).
        name: the cell's name (its variable scope inside a ``Graph``; default
            ``"lstm_cell"``).
        dtype: weight dtype (``torch.dtype`` or name); ``None``: the dtype of
            the first input (float32 for a bare ``build``).
        **kwargs: ``trainable`` (bool) is accepted.

    Raises:
        TypeError: a float or string ``num_units``/``num_proj``, a non-number
            ``cell_clip``/``proj_clip``, an unknown ``dtype`` or keyword (TF's types).
        ValueError: a size below 1, a non-number ``forget_bias`` (TF's type),
            NaN, a non-floating ``dtype``. ``build`` refuses weights that cannot
            fit in memory before allocating (also a ``MemoryError``).

    Attributes:
        kernel: ``(depth + output_size, 4u)``, gate blocks ``i, j, f, o``
            (TF ``kernel``).
        bias: ``(4u,)`` (TF ``bias``).
        w_f_diag, w_i_diag, w_o_diag: ``(u,)`` peepholes (``use_peepholes``).
        proj_kernel: ``(u, num_proj)`` (TF ``projection/kernel``; ``num_proj``).
        last_kernel: ``(engine kernel name, reason)`` of the latest run, e.g.
            ``("native", ...)``; ``None`` before the first run.
        checkpoint_steps: ``None``, or a positive int: a differentiated
            ``dynamic_rnn`` over this cell longer than that runs in checkpointed
            segments of that many steps (backward recomputes each segment's
            forward; memory of about one segment for about one more forward pass of
            time; same numbers). Set it on each cell of a ``MultiRNNCell``.

    Examples:
        >>> import torch, lstmcompat
        >>> cell = lstmcompat.LSTMCell(4, num_proj=2, use_peepholes=True)
        >>> x = torch.randn(3, 5)
        >>> out, state = cell(x, cell.zero_state(3, torch.float32))
        >>> out.shape, state.c.shape, [tuple(w.shape) for w in cell.weights]
        (torch.Size([3, 2]), torch.Size([3, 4]), [(7, 16), (16,), (4,), (4,), (4,), (4, 2)])
    """

    _default_name = "lstm_cell"

    def __init__(self, num_units: int, use_peepholes: bool = False,
                 cell_clip: float | None = None,
                 initializer: str | Initializer | None = None, num_proj: int | None = None,
                 proj_clip: float | None = None, num_unit_shards: int | None = None,
                 num_proj_shards: int | None = None, forget_bias: float = 1.0,
                 state_is_tuple: bool = True, activation: ActivationLike = None,
                 reuse: Any = None, name: str | None = None, dtype: Any = None,
                 **kwargs: Any) -> None:
        trainable = kwargs.pop("trainable", True)
        if kwargs:
            raise TypeError(f"Keyword argument not understood: {sorted(kwargs)}")
        # Checked here, before anything is built; TF checks them only when the cell
        # runs, with these types (see lstmcompat._args): sizes TypeError for a float
        # or string, ValueError for a negative value (TF accepts num_units=0, we do
        # not; its num_proj=0 is an InvalidArgumentError); clips TypeError for a
        # non-number; forget_bias ValueError (None: "Attempt to convert a value
        # (None)"; a string: InvalidArgumentError); num_units=None ValueError
        # ("Prefix or suffix can't be None").
        if num_units is None:
            raise ValueError("`num_units` must be a positive integer, got None.")
        num_units = _args.positive_int(num_units, "num_units")
        num_proj = _args.optional_positive_int(num_proj, "num_proj")
        # NaN is accepted where TF accepts it: its formula makes the results NaN.
        cell_clip = _args.optional_number(cell_clip, "cell_clip", allow_nan=True)
        proj_clip = _args.optional_number(proj_clip, "proj_clip", allow_nan=True)
        forget_bias = _args.number(forget_bias, "forget_bias", ValueError, allow_nan=True)
        super().__init__(name=name, reuse=reuse, dtype=dtype)
        check_floating(self._dtype, "dtype")
        # Warnings point at the caller's line, past the __init__ of any subclass.
        level = 2 + sum(1 for c in type(self).__mro__[:-1]
                        if c is not LSTMCell and issubclass(c, LSTMCell) and "__init__" in vars(c))
        if not state_is_tuple:
            warnings.warn(
                f"{type(self).__name__}: Using a concatenated state is slower and will soon be "
                "deprecated.  Use state_is_tuple=True.", DeprecationWarning, stacklevel=level)
        if num_unit_shards is not None or num_proj_shards is not None:
            warnings.warn(
                f"{type(self).__name__}: The num_unit_shards and proj_unit_shards parameters "
                "are deprecated and will be removed in Jan 2017.  Use a variable scope with a "
                "partitioner instead.", DeprecationWarning, stacklevel=level)
        self._num_units = num_units
        self._use_peepholes = bool(use_peepholes)
        self._cell_clip = cell_clip
        self._initializer_arg = initializer
        self._initializer = get_initializer(initializer)
        self._num_proj = num_proj
        self._proj_clip = proj_clip
        self._num_unit_shards = num_unit_shards
        self._num_proj_shards = num_proj_shards
        self._forget_bias = forget_bias
        self._state_is_tuple = bool(state_is_tuple)
        self._activation_arg = activation
        self._trainable = bool(trainable)
        # TF: `if activation:` -- any falsy value means tanh.
        self._activation: str | Callable = activation if activation else "tanh"
        self.last_kernel: tuple[str, str] | None = None
        for attr in ("kernel", "bias", "w_f_diag", "w_i_diag", "w_o_diag", "proj_kernel"):
            self.register_parameter(attr, None)

    # -- sizes ----------------------------------------------------------------------
    @property
    def state_size(self) -> LSTMStateTuple | int:
        """``LSTMStateTuple(num_units, num_proj or num_units)``, or their sum when not a tuple."""
        p = self.output_size
        return LSTMStateTuple(self._num_units, p) if self._state_is_tuple else self._num_units + p

    @property
    def output_size(self) -> int:
        """``num_proj`` or ``num_units``."""
        return self._num_proj if self._num_proj is not None else self._num_units

    @property
    def weights(self) -> list[nn.Parameter]:
        """``[kernel, bias, (w_f_diag, w_i_diag, w_o_diag), (proj_kernel)]`` once built."""
        if not self.built:
            return []
        return [getattr(self, attr) for attr, _, _, _ in self._weight_specs(0)]

    # -- building ---------------------------------------------------------------------
    def build(self, input_shape: Sequence[int | None] | torch.Size | int) -> None:
        """Create the weights for inputs of ``input_shape[-1]`` features (TF ``build``).

        Inside a ``Graph`` the weights are created (or, with reuse, looked up)
        under the cell's variable scope.

        Raises:
            TypeError: ``input_shape`` is not a shape (or a size), or an entry is
                not ``None`` or an integer-like.
            ValueError: the last dimension is unknown (``None``), an entry is
                negative, the initializer returns another shape (``TypeError`` for
                a non-numeric value), a shared variable has another shape, or the
                weights cannot fit in memory
                (:class:`~lstmcompat._args.AllocationTooLargeError`, also a
                ``MemoryError``, raised before allocating).
        """
        if self.built:
            return
        if _args.dimension_like(input_shape):
            shape = (_args.dimension(input_shape, "input_shape"),)
        else:
            shape = _args.shape(input_shape, "input_shape")
        if not shape or shape[-1] is None:
            raise ValueError(
                f"Expected inputs.shape[-1] to be known, received shape: {input_shape}"
            )
        check_floating(self._dtype)
        if self._dtype is None:
            self._dtype = torch.float32
        dtype = self._dtype
        depth = shape[-1]
        u = self._num_units
        specs = self._weight_specs(depth)
        _args.check_allocation(
            [(attr, shp) for attr, _, shp, _ in specs], dtype,
            f"{type(self).__name__} `num_units`={u}" + (f", `num_proj`={self._num_proj}"
                                                        if self._num_proj is not None else "")
            + f" with {depth} input features")
        graph = get_default_graph()
        if graph is not None:
            self._set_scope(None)
        created = {}
        with self._own_scope():
            for attr, tf_name, shp, init in specs:
                if graph is not None and self._graph is graph:
                    param = graph.get_variable(tf_name, shp, dtype, init)
                else:
                    param = nn.Parameter(make_value(init or glorot_uniform, shp, dtype))
                created[attr] = param
        for attr, param in created.items():
            param.requires_grad_(self._trainable)
            setattr(self, attr, param)
        self._input_depth = depth
        self.built = True

    #: The peepholes in TF's creation order (``weights`` order, graph variable order).
    _peephole_order: tuple[str, ...] = ("w_f_diag", "w_i_diag", "w_o_diag")

    def _weight_specs(self, depth: int) -> list[tuple[str, str, tuple[int, ...], Initializer | None]]:
        """``(attribute, TF name, shape, initializer)`` of each weight, in TF's creation order."""
        u, p = self._num_units, self.output_size
        specs: list[tuple[str, str, tuple[int, ...], Initializer | None]] = [
            ("kernel", "kernel", (depth + p, 4 * u), self._initializer),
            ("bias", "bias", (4 * u,), zeros),
        ]
        if self._use_peepholes:
            specs += [(a, a, (u,), self._initializer) for a in self._peephole_order]
        if self._num_proj is not None:
            specs.append(("proj_kernel", "projection/kernel", (u, self._num_proj),
                          self._initializer))
        return specs

    def _prepare(self, depth: int, dtype: torch.dtype, scope: Any = None) -> None:
        if self._dtype is None:
            check_floating(dtype)
            self._dtype = dtype
        self._set_scope(scope)
        if not self.built:
            self.build((None, depth))
        elif depth != self._input_depth:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected '
                f"axis -1 of input shape to have value {self._input_depth}, but received "
                f"input with shape (..., {depth})"
            )

    # -- engine translation ---------------------------------------------------------------
    def cell_spec(self) -> CellSpec:
        """The engine :class:`~lstmcompat._engine.CellSpec` of this cell (TF1 masking rule)."""
        return CellSpec(
            units=self._num_units,
            activation=self._activation,
            recurrent_activation="sigmoid",
            forget_bias=self._forget_bias,
            use_peepholes=self._use_peepholes,
            cell_clip=self._cell_clip,
            num_proj=self._num_proj,
            proj_clip=self._proj_clip if self._num_proj is not None else None,
            mask_mode="zero",
        )

    def engine_weights(self) -> Weights:
        """The weights in the engine's canonical layout (differentiable, made from the
        parameters' current values on every call: nothing derived from them is cached)."""
        if not self.built:
            raise ValueError(f'Layer "{self.name}" is not built yet; call it or `build` first.')
        return _engine_weights(self.output_size, *self._param_list)

    @property
    def _param_list(self) -> tuple[torch.Tensor | None, ...]:
        """The parameters the engine weights derive from (``None`` where absent)."""
        return tuple(getattr(self, name) for name in _PARAM_NAMES)

    def _split_state(self, state: State, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        u, p = self._num_units, self.output_size
        if self._state_is_tuple:
            if isinstance(state, torch.Tensor) or not isinstance(state, Sequence) or len(state) != 2:
                raise ValueError(
                    f'Layer "{self.name}" expects `state` to be LSTMStateTuple(c, h) (or a pair), '
                    f"got {type(state).__name__}."
                )
            c, h = (as_tensor(s) for s in state)
        else:
            s = as_tensor(state)
            if s.dim() != 2 or s.shape[1] < u + p:
                raise ValueError(
                    f'Layer "{self.name}" expects a concatenated state of shape (batch, {u + p}), '
                    f"got {tuple(s.shape)}."
                )
            c, h = s[:, :u], s[:, u:u + p]
        if tuple(c.shape) != (batch, u) or tuple(h.shape) != (batch, p):
            raise ValueError(
                f'Layer "{self.name}" expects state shapes c ({batch}, {u}) and h ({batch}, {p}), '
                f"got {tuple(c.shape)} and {tuple(h.shape)}."
            )
        return c, h

    def _pack_state(self, c: torch.Tensor, h: torch.Tensor) -> State:
        return LSTMStateTuple(c, h) if self._state_is_tuple else torch.cat([c, h], dim=1)

    def _run_sequence(self, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
                      batch_first: bool) -> tuple[torch.Tensor, State]:
        bdim, tdim = (0, 1) if batch_first else (1, 0)
        B, T = x.shape[bdim], x.shape[tdim]
        weights_device = self.kernel.device
        if x.device != weights_device:
            raise ValueError(
                f'Layer "{self.name}" has its weights on {weights_device} but received '
                f"`inputs` on {x.device}; move the inputs or the cell (`cell.to(...)`)."
            )
        c0, h0 = self._split_state(state, B)
        if autocast_dtype(x.device.type, self.kernel.dtype) is not None:
            # Under autocast a layer before this one hands over low-precision outputs
            # (a stacked cell's, say): the cell takes them in its weights' type.
            x, c0, h0 = (t.to(self.kernel.dtype) if t.dtype in LOW_PRECISION else t
                         for t in (x, c0, h0))
        for t, what in ((c0, "c"), (h0, "h")):
            _args.check_device(t, "state", weights_device)
            check_floating(t.dtype)
            if t.dtype != x.dtype:
                raise TypeError(
                    f"The state `{what}` has dtype {t.dtype} but the inputs have dtype "
                    f"{x.dtype}; pass an `initial_state`/`dtype` matching the inputs."
                )
        if x.dtype != self.kernel.dtype:
            raise TypeError(
                f'Layer "{self.name}" has weights of dtype {self.kernel.dtype} but received '
                f"inputs of dtype {x.dtype}."
            )
        c0, h0 = c0.to(x.device), h0.to(x.device)
        u, p = self._num_units, self.output_size
        _weights_io.check_parameters(self.name, (
            ("kernel", self.kernel, (self._input_depth + p, 4 * u)),
            ("bias", self.bias, (4 * u,)),
            ("w_f_diag", self.w_f_diag, (u,)), ("w_i_diag", self.w_i_diag, (u,)),
            ("w_o_diag", self.w_o_diag, (u,)),
            ("proj_kernel", self.proj_kernel, (u, p))))
        out, h, c = _run_lstm(self, x, h0, c0, lengths, batch_first, B, T)
        return out, self._pack_state(c, h)

    # -- call ---------------------------------------------------------------------------
    def forward(self, inputs: Any, state: State, scope: Any = None) -> tuple[torch.Tensor, State]:
        """One step: ``output, new_state = cell(inputs, state)`` with ``inputs (batch, depth)``.

        Returns the output ``(batch, output_size)`` and the new state
        (``LSTMStateTuple(c, h)`` or the concatenated ``[c, h]``).
        """
        stream = self._stream if not torch.compiler.is_compiling() else False
        if stream is None and self.built:
            stream = self._start_streaming()
        if stream and scope is None and type(state) is LSTMStateTuple:
            new = stream.step(inputs, state[1], state[0])
            if new is not None:
                self.__dict__["last_kernel"] = stream.kernel
                return new[0], LSTMStateTuple(new[1], new[0])
        x = self._step_input(inputs, scope)
        out, new_state = self._run_sequence(x.unsqueeze(0), state, None, batch_first=False)
        return out[0], new_state

    def _start_streaming(self) -> Any:
        """Ask the engine (once per configuration) whether single steps can take a
        streaming path (:mod:`lstmcompat._streaming`): for a built cell with tuple
        state, ``choose`` decides from the spec and the parameters' device and
        dtype. The stream then runs a step whenever the call qualifies (tensors of
        the weights' device, dtype and shapes): the chosen kernel's single step
        (same numbers as the general path) reading the parameters in place on
        every call (the TF1 kernel as it is stored: ``[x; h]`` rows, gate blocks
        ``i, j, f, o``); recorded for autograd when it records.
        """
        stream = None
        if self._state_is_tuple:
            roles = {"W": "kernel", "b": "bias"}
            if self._use_peepholes:
                roles.update(w_i="w_i_diag", w_f="w_f_diag", w_o="w_o_diag")
            if self._num_proj is not None:
                roles["P"] = "proj_kernel"
            stream = start_stream(
                self.cell_spec(), self._parameters, _PARAM_NAMES, roles,
                functools.partial(_engine_weights, self.output_size), _engine_grads,
                device=self.kernel.device, dtype=self.kernel.dtype,
                gates=permutation("tf1", "canonical"))
        self.__dict__["_stream"] = stream or False
        return stream or False

    def extra_repr(self) -> str:
        parts = [f"{self._num_units}"]
        if self._num_proj is not None:
            parts.append(f"num_proj={self._num_proj}")
        if self._use_peepholes:
            parts.append("use_peepholes=True")
        if self._cell_clip is not None:
            parts.append(f"cell_clip={self._cell_clip}")
        parts.append(f"name={self.name!r}")
        return ", ".join(parts)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (TF ``get_config``); ``LSTMCell(**cfg)`` rebuilds the cell."""
        return {
            "num_units": self._num_units,
            "use_peepholes": self._use_peepholes,
            "cell_clip": self._cell_clip,
            "initializer": self._initializer_arg,
            "num_proj": self._num_proj,
            "proj_clip": self._proj_clip,
            "num_unit_shards": self._num_unit_shards,
            "num_proj_shards": self._num_proj_shards,
            "forget_bias": self._forget_bias,
            "state_is_tuple": self._state_is_tuple,
            "activation": self._activation_arg,
            "reuse": self._reuse,
            "name": self._base_name,
            "dtype": self._dtype_name(),
            "trainable": self._trainable,
        }

    def _dtype_name(self) -> str | None:
        """The weights' dtype as ``get_config`` writes it (``"float32"``; ``None``: unset)."""
        return None if self._dtype is None else str(self._dtype).replace("torch.", "")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LSTMCell:
        """Re-create a cell from :meth:`get_config` (``TypeError`` for a non-dict)."""
        return cls(**_args.config_dict(config))


#: The parameters engine weights derive from, in :func:`_engine_weights`'s order.
_PARAM_NAMES = ("kernel", "bias", "w_i_diag", "w_f_diag", "w_o_diag", "proj_kernel")


def _engine_weights(output_size: int, kernel: torch.Tensor, bias: torch.Tensor,
                    w_i: torch.Tensor | None, w_f: torch.Tensor | None,
                    w_o: torch.Tensor | None, proj: torch.Tensor | None) -> Weights:
    """The canonical engine :class:`Weights` of a cell's TF1 parameters."""
    depth = kernel.shape[0] - output_size
    return Weights(
        W=permute(kernel[:depth], "tf1", "canonical", dim=-1),
        R=permute(kernel[depth:], "tf1", "canonical", dim=-1),
        b=permute(bias, "tf1", "canonical", dim=-1),
        w_i=w_i, w_f=w_f, w_o=w_o, P=proj,
    )


def _engine_grads(dW: torch.Tensor | None, dR: torch.Tensor | None, db: torch.Tensor | None,
                  dw_i: torch.Tensor | None, dw_f: torch.Tensor | None,
                  dw_o: torch.Tensor | None, dP: torch.Tensor | None) -> tuple:
    """Gradients of the canonical weights mapped onto the parameters (in
    ``_PARAM_NAMES`` order): the adjoint of :func:`_engine_weights`."""
    dk = None if dW is None else permute(torch.cat([dW, dR]), "canonical", "tf1", dim=-1)
    return (dk, None if db is None else permute(db, "canonical", "tf1", dim=-1),
            dw_i, dw_f, dw_o, dP)


def _run_lstm(cell: LSTMCell, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
              lengths: torch.Tensor | None, batch_first: bool, B: int, T: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One engine call over the whole sequence, with TF1 ``sequence_length`` semantics.

    ``lengths`` becomes a right-padded mask (rows of length 0 output zeros and
    keep their initial state); the engine's choice is kept in ``cell.last_kernel``.
    As TF1's loops (``dynamic_rnn`` in graph mode, ``static_rnn``), the steps after
    the longest sequence (at least one step runs) are not computed at all: they
    output zeros, and NaN or inf in their inputs reaches no gradient.
    """
    mask = None
    run_T = T
    if lengths is not None:
        lengths = lengths.to(torch.int64).clamp(0, T)
        if B > 0 and T > 0 and not torch.compiler.is_compiling():
            # (a captured graph runs every step: the longest length is data)
            run_T = min(T, max(1, int(lengths.max())))
        steps = torch.arange(run_T, device=x.device)
        mask = steps.unsqueeze(1) < lengths.to(x.device).unsqueeze(0)  # (T, B)
        if batch_first:
            mask = mask.t()
    tdim = 1 if batch_first else 0
    x_run = x if run_T == T else x.narrow(tdim, 0, run_T)
    outputs, h, c, last_kernel = run_explained(
        cell.cell_spec(), x_run, cell.engine_weights(), h0, c0, mask=mask,
        batch_first=batch_first, checkpoint_steps=cell.__dict__.get("checkpoint_steps"))
    cell.__dict__["last_kernel"] = last_kernel  # a report, not configuration
    if run_T < T:
        pad = list(outputs.shape)
        pad[tdim] = T - run_T
        outputs = torch.cat([outputs, outputs.new_zeros(pad)], dim=tdim)
    return outputs, h, c
