"""What every TF1 cell shares: name and scope capture, weights I/O, zero states.

Mirrors ``tf_keras/src/legacy_tf_layers/base.py`` (``Layer._set_scope``,
``add_weight``) and ``legacy_cells.RNNCell`` (``zero_state``,
``get_initial_state``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _args, _weights_io
from .._dtypes import applied_dtype
from ._util import as_dtype, as_tensor, check_floating
from .graph import Graph, VariableScope, get_default_graph, variable_scope

StateSize = Any  # int, LSTMStateTuple of ints, or a tuple of those
State = Any  # tensor, LSTMStateTuple of tensors, or a tuple of those


class RNNCell(nn.Module):
    """The base class of every TF1 cell, and of your own (TF ``tf.compat.v1.nn.rnn_cell.RNNCell``).

    A cell of your own subclasses it and defines the properties
    :attr:`state_size` and :attr:`output_size` and the method
    ``call(inputs, state) -> (output, new_state)`` for one step (``inputs``
    ``(batch, depth)``; ``state`` shaped as :attr:`state_size`: an int gives a
    ``(batch, n)`` tensor, a tuple or an ``LSTMStateTuple`` of them the same
    structure of tensors). It may create its weights in ``build(inputs_shape)``
    (called once, before the first ``call``, with ``inputs_shape = (None,
    depth)``, a tuple that also has ``as_list()``) through :meth:`add_weight`: inside a :class:`~lstmcompat.Graph`
    they get TensorFlow's names, ``<scope>/<cell name>/<weight name>`` (the cell
    name is ``name=`` or the snake-case class name: ``rnn/my_gru_cell/kernel``),
    and follow its reuse rules. Plain ``torch.nn.Parameter`` attributes work too
    (they get no TF names). ``cell(inputs, state)`` runs one step;
    :func:`~lstmcompat.dynamic_rnn`, :func:`~lstmcompat.static_rnn`,
    :func:`~lstmcompat.bidirectional_dynamic_rnn` and
    :class:`~lstmcompat.MultiRNNCell` run the cell step by step with TF's
    ``sequence_length`` rule (outputs past a length are zeros, every state
    leaf is held). lstmcompat's own cells are ``RNNCell`` s too and run a whole
    sequence in one engine call.

    TensorFlow equivalent: ``tf.compat.v1.nn.rnn_cell.RNNCell`` (tf_keras
    ``legacy_cells.RNNCell``; its ``add_weight`` is the legacy layers' one).

    Args:
        trainable: default of :meth:`add_weight`'s ``trainable``.
        name: the cell's name, its variable scope inside a ``Graph``
            (default: the snake-case class name).
        dtype: weight dtype (``None``: the first input's dtype).
        reuse: TF's reuse flag for the cell's scope (``True``, ``AUTO_REUSE``).
        **kwargs: ``_reuse`` (TF's spelling of ``reuse``) is accepted.

    Examples:
        >>> import torch, lstmcompat
        >>> class MinimalRNNCell(lstmcompat.RNNCell):
        ...     def __init__(self, units):
        ...         super().__init__()
        ...         self.units = units
        ...     @property
        ...     def state_size(self):
        ...         return self.units
        ...     @property
        ...     def output_size(self):
        ...         return self.units
        ...     def build(self, inputs_shape):
        ...         self.kernel = self.add_weight("kernel", [inputs_shape[-1] + self.units,
        ...                                                  self.units])
        ...     def call(self, inputs, state):
        ...         h = torch.tanh(torch.cat([inputs, state], 1) @ self.kernel)
        ...         return h, h
        >>> with lstmcompat.Graph() as g:
        ...     out, h = lstmcompat.dynamic_rnn(MinimalRNNCell(4), torch.randn(2, 5, 3),
        ...                                     sequence_length=[5, 2], dtype="float32")
        >>> list(g.variables()), out.shape, bool((out[1, 2:] == 0).all())
        (['rnn/minimal_rnn_cell/kernel'], torch.Size([2, 5, 4]), True)
    """

    _default_name: str = "rnn_cell"

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: Any = None,
                 reuse: Any = None, **kwargs: Any) -> None:
        super().__init__()
        if "_reuse" in kwargs:
            reuse = kwargs.pop("_reuse")
        if kwargs:
            raise TypeError(f"Keyword argument not understood: {sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string or None, got {name!r}.")
        self._base_name = name or _default_name(type(self))
        self._cell_trainable = bool(trainable)
        self._has_called = False
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
        """The cell's parameters in TF's order (empty before the cell is built).

        For a cell of your own: every parameter of the module (and of its
        sub-modules), in creation order (:meth:`add_weight` order)."""
        return list(self.parameters())

    def add_weight(self, name: str, shape: Sequence[int], dtype: Any = None,
                   initializer: Any = None, trainable: bool | None = None,
                   **kwargs: Any) -> nn.Parameter:
        """Create a weight, with its TF name inside a ``Graph`` (TF legacy ``add_weight``).

        Inside a :class:`~lstmcompat.Graph` the weight is the graph variable
        ``<cell scope>/<name>`` (``tf.compat.v1.get_variable`` in the cell's
        scope, reusing once the cell is built or with ``reuse``); outside one it
        is a new parameter. Either way it is registered on the module (as the
        attribute ``name`` with ``/`` replaced by ``_``), so ``parameters()``
        and optimizers see it. ``add_variable`` is the same method.

        Args:
            name: the variable's name in the cell's scope (``"kernel"``,
                ``"gates/kernel"``).
            shape: its shape.
            dtype: default: the cell's dtype, else float32.
            initializer: a callable ``(shape, dtype) -> Tensor``, a Keras
                initializer name, or ``None`` (the scope's initializer, else
                glorot_uniform; TF's ``get_variable`` default).
            trainable: ``False`` sets ``requires_grad=False`` (default: the
                cell's ``trainable``).
            **kwargs: TF's ``regularizer``, ``constraint``, ``partitioner``,
                ``use_resource``, ``synchronization``, ``aggregation``,
                ``getter`` are accepted and ignored when ``None``.

        Raises:
            ValueError: a graph variable of that name exists and may not be
                reused, does not exist under ``reuse=True``, or has another
                shape or dtype (TF's messages).
            TypeError: an unknown keyword, or a ``name`` that is not a string.
        """
        from ._util import get_initializer
        from .graph import make_value

        for key, value in kwargs.items():
            if key not in _IGNORED_WEIGHT_ARGS:
                raise TypeError(f"Keyword argument not understood: {key!r}")
            if value is not None and key not in ("synchronization", "aggregation",
                                                 "use_resource"):
                raise ValueError(f"add_weight: `{key}` is not supported by lstmcompat "
                                 f"(got {value!r}); pass None.")
        if not isinstance(name, str) or not name:
            raise TypeError(f"`name` must be a non-empty string, got {name!r}.")
        dt = as_dtype(dtype) or self._dtype or torch.float32
        shp = tuple(_args.shape(shape, "shape"))
        if any(d is None for d in shp):
            raise ValueError(f"add_weight `shape` must be fully defined, got {shape!r}.")
        init = get_initializer(initializer)
        graph = get_default_graph()
        self._set_scope(None)
        if graph is not None and self._graph is graph:
            reuse = True if self.built else self._reuse
            with variable_scope(self._scope, reuse=reuse):
                param = graph.get_variable(name, shp, dt, init)
        else:
            from ._util import glorot_uniform
            param = nn.Parameter(make_value(init or glorot_uniform, shp, dt))
        if trainable is None:
            trainable = self._cell_trainable
        param.requires_grad_(bool(trainable))
        attr = name.replace("/", "_")
        existing = self._parameters.get(attr)
        if attr in self._parameters and existing is not None and existing is not param:
            k = 1
            while f"{attr}_{k}" in self._parameters:
                k += 1
            attr = f"{attr}_{k}"
        self.register_parameter(attr, param)
        return param

    add_variable = add_weight

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

    # -- running ------------------------------------------------------------------
    def build(self, inputs_shape: Any) -> None:
        """Create the weights (TF ``build``), called once before the first step with
        ``inputs_shape = (None, depth)``; a cell of your own overrides it and calls
        :meth:`add_weight`. The default creates nothing."""

    def call(self, inputs: torch.Tensor, state: State) -> tuple[Any, State]:
        """One step, ``(output, new_state)``: what a cell of your own defines (TF ``call``)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define `call(inputs, state)` returning "
            "`(output, new_state)` (and the properties `state_size`, `output_size`).")

    def forward(self, inputs: Any, state: State, scope: Any = None) -> tuple[Any, State]:
        """One step: ``output, new_state = cell(inputs, state)`` (TF ``cell.__call__``).

        Builds the cell first (inside a ``Graph``: in its variable scope, under
        ``scope`` when given), then runs :meth:`call` in that scope.
        """
        return self._step(self._step_input(inputs, scope), state)

    def _step_input(self, inputs: Any, scope: Any = None) -> torch.Tensor:
        """A step's ``inputs (batch, depth)`` as a tensor (TF's rank error otherwise),
        with the cell named and built for them."""
        x = as_tensor(inputs)
        check_floating(x.dtype)
        if x.dim() != 2:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected '
                f"ndim=2, found ndim={x.dim()}. Full shape received: {tuple(x.shape)}"
            )
        self._prepare(x.shape[1], x.dtype, scope)
        return x

    def _prepare(self, depth: int, dtype: torch.dtype, scope: Any = None) -> None:
        """Name (in a graph) and build the cell for inputs of ``depth`` features."""
        if self._dtype is None:
            check_floating(dtype)
            self._dtype = dtype
        self._set_scope(scope)
        if not self.built:
            with self._own_scope():
                self.build(InputShape((None, depth)))
            self.built = True

    def _step(self, x: torch.Tensor, state: State) -> tuple[Any, State]:
        """One :meth:`call` in the cell's scope (creating on the first call, as TF's
        ``Layer.__call__``: reuse afterwards); ``call`` gets ``scope=`` when it takes one."""
        scope = contextlib.nullcontext(self._scope)
        if self._scope is not None and get_default_graph() is self._graph:
            scope = variable_scope(self._scope,
                                   reuse=True if self._has_called else self._reuse)
        with scope as vs:
            if _takes_scope(type(self).call):
                result = self.call(x, state, scope=vs)
            else:
                result = self.call(x, state)
        self.__dict__["_has_called"] = True
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise TypeError(f"{type(self).__name__}.call must return `(output, new_state)`, "
                            f"got {type(result).__name__}.")
        return result[0], result[1]

    def _begin_sequence(self) -> None:
        """Called by the runners on every cell of the tree before a sequence runs
        (``DropoutWrapper`` draws its variational masks again); default: nothing."""

    def _run_sequence(self, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
                      batch_first: bool) -> tuple[Any, State]:
        """The whole sequence, ``(outputs, final_state)``, with TF1's ``sequence_length``
        rule (``rnn.py``'s ``_rnn_step``): an output at ``t >= length`` is zeros and
        every state leaf is copied through. lstmcompat's cells override this with one
        engine call; this default loops over :meth:`_step`. As TF's loops, steps
        after the longest sequence (at least one step runs) are not computed."""
        tdim = 1 if batch_first else 0
        T = x.shape[tdim]
        run_T = T
        if lengths is not None:
            lengths = lengths.to(torch.int64).clamp(min=0)
            if x.shape[1 - tdim] > 0 and T > 0:
                run_T = min(T, max(1, int(lengths.max())))
            lengths = lengths.to(x.device)
        outs = []
        for t in range(run_T):
            out, new_state = self._step(x.select(tdim, t), state)
            if lengths is not None:
                out, new_state = _copy_through(t < lengths, out, new_state, state)
            outs.append(out)
            state = new_state
        if not outs:  # no steps: outputs of shape (.., 0, output_size)
            outputs = _zero_outputs(self.output_size, x, tdim, 0)
        else:
            outputs = map_structure(lambda *o: torch.stack(o, dim=tdim), *outs)
        if run_T < T:
            outputs = map_structure(
                lambda o: torch.cat([o, o.new_zeros(o.shape[:tdim] + (T - run_T,)
                                                   + o.shape[tdim + 1:])], dim=tdim),
                outputs)
        return outputs, state


class InputShape(tuple):
    """The ``inputs_shape`` a user ``build`` gets: ``(None, depth)``, a tuple with
    ``TensorShape``'s ``as_list()`` and ``rank`` for ported code."""

    def as_list(self) -> list[int | None]:
        return list(self)

    @property
    def rank(self) -> int:
        return len(self)

    ndims = rank


#: ``add_weight`` keywords of TF accepted (when ``None``: ignored).
_IGNORED_WEIGHT_ARGS = ("regularizer", "constraint", "partitioner", "use_resource",
                        "synchronization", "aggregation", "getter")

#: The internal name the TF1 cells use for the base class.
RNNCellBase = RNNCell


@functools.lru_cache(maxsize=256)
def _takes_scope(fn: Callable) -> bool:
    """Whether a ``call`` takes ``scope=`` (TF passes the cell's scope then)."""
    try:
        return "scope" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _copy_through(valid: torch.Tensor, out: Any, new_state: State, state: State
                  ) -> tuple[Any, State]:
    """TF's ``_copy_some_through``: zeros and the old state where ``valid`` is false."""
    out = map_structure(lambda o: _where_rows(valid, o, torch.zeros_like(o)), out)
    return out, map_structure(lambda n, o: _where_rows(valid, n, o), new_state, state)


def _where_rows(valid: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``where(valid[b], a[b], b[b])`` row by row (``valid`` is ``(batch,)``)."""
    return torch.where(valid.reshape((-1,) + (1,) * (a.dim() - 1)), a, b)


def _zero_outputs(size: Any, x: torch.Tensor, tdim: int, steps: int) -> Any:
    batch = x.shape[1 - tdim]
    shape = (batch, steps) if tdim == 1 else (steps, batch)
    return _map_sizes(size, lambda s: x.new_zeros(shape + (s,)))


def is_leaf(x: Any) -> bool:
    """A leaf of a state/output structure (anything but tuples, lists and namedtuples)."""
    return not isinstance(x, (tuple, list))


def map_structure(fn: Callable, *structures: Any) -> Any:
    """``tf.nest.map_structure`` over tuples, lists and namedtuples (same structures)."""
    first = structures[0]
    if is_leaf(first):
        return fn(*structures)
    for s in structures[1:]:
        if is_leaf(s) or len(s) != len(first):
            raise ValueError(
                "The two structures don't have the same nested structure: "
                f"{_describe(first)} and {_describe(s)}.")
    parts = [map_structure(fn, *items) for items in zip(*structures, strict=True)]
    if hasattr(first, "_fields"):
        return type(first)(*parts)
    return type(first)(parts)


def flatten(structure: Any) -> list[Any]:
    """The leaves of a structure, in order (``tf.nest.flatten``)."""
    if is_leaf(structure):
        return [structure]
    return [leaf for s in structure for leaf in flatten(s)]


def _describe(x: Any) -> str:
    if is_leaf(x):
        return f"a {type(x).__name__}" + (f" of shape {tuple(x.shape)}"
                                           if isinstance(x, torch.Tensor) else "")
    return f"{type(x).__name__} of {len(x)} elements"


def _default_name(cls: type) -> str:
    """A cell's default name: its class's own ``_default_name``, else TF's
    ``to_snake_case`` of the class name (``MyGRUCell`` -> ``my_gru_cell``)."""
    own = cls.__dict__.get("_default_name")
    if isinstance(own, str):
        return own
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", cls.__name__)
    insecure = re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()
    return insecure if insecure[0] != "_" else "private" + insecure


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
    if isinstance(size, list):  # TF's nest keeps lists lists
        return [_map_sizes(s, fn) for s in size]
    return tuple(_map_sizes(s, fn) for s in size)
