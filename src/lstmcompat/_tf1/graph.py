"""TF1 graph-mode variable naming and sharing: ``Graph`` and ``variable_scope``.

This module reproduces the rules of ``tensorflow/python/ops/variable_scope.py``
that decide the names of an RNN cell's variables and when they are shared:

* ``variable_scope("name")`` nests: the scope's full name is the parent's name
  plus ``/name``. Its ``reuse`` is ``reuse or parent.reuse`` (reuse is
  inherited by sub-scopes and cannot be switched off inside a reusing scope).
* ``variable_scope(None, default_name="lstm_cell")`` picks a unique name among
  the scopes opened in the current scope (``lstm_cell``, ``lstm_cell_1``, ...).
  The counts are per parent scope and are reset when a named parent scope is
  *exited*; so re-entering ``rnn`` and building a new cell there names it
  ``rnn/lstm_cell`` again, which collides with the old one (TF's famous
  "already exists" error) unless ``reuse=True``.
* Re-entering a captured :class:`VariableScope` object keeps its name (no
  uniquification) and its reuse flag unless ``reuse=True`` is given.
* ``get_variable`` semantics: an existing name with ``reuse`` False raises
  ``ValueError("Variable X already exists, disallowed. ...")``; a missing name
  with ``reuse=True`` raises ``ValueError("Variable X does not exist, or was not
  created with tf.get_variable(). ...")``; ``AUTO_REUSE`` creates or returns.
  Sharing checks shape and dtype.

Outside a ``Graph`` (the default, like TF2 eager) nothing is registered: cell
names are labels and weights are shared by sharing the module object.
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType

import torch
from torch import nn

from .. import _args
from ._util import Initializer, glorot_uniform


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1


#: ``tf.compat.v1.AUTO_REUSE``: create variables that do not exist, return those that do.
AUTO_REUSE = _ReuseMode.AUTO_REUSE

ReuseLike = bool | _ReuseMode | None


@dataclass(frozen=True)
class VariableScope:
    """A captured variable scope (TF ``tf.compat.v1.VariableScope``).

    Attributes:
        name: full scope name (``""`` at the root).
        reuse: ``False``, ``True`` or :data:`AUTO_REUSE`.
        initializer: default initializer of variables created in this scope.
    """

    name: str
    reuse: bool | _ReuseMode = False
    initializer: Initializer | None = None


class _State(threading.local):
    def __init__(self) -> None:
        self.graphs: list[Graph] = []


_STATE = _State()


def get_default_graph() -> Graph | None:
    """The innermost active :class:`Graph`, or ``None`` outside any (eager-like mode)."""
    return _STATE.graphs[-1] if _STATE.graphs else None


class Graph:
    """A TF1-style graph: a registry of named variables and of variable-scope state.

    TensorFlow equivalent: ``tf.Graph()`` used as ``with graph.as_default():``
    (here ``with lstmcompat.Graph() as g:`` or ``with g.as_default():``). Cells
    built while a graph is active register their parameters under TF1 scoped
    names (``rnn/lstm_cell/kernel``) and follow TF1 reuse rules (see
    :func:`variable_scope`).

    Examples:
        >>> import torch, lstmcompat
        >>> with lstmcompat.Graph() as g:
        ...     cell = lstmcompat.LSTMCell(4)
        ...     out, st = lstmcompat.dynamic_rnn(cell, torch.zeros(2, 3, 5), dtype="float32")
        >>> list(g.variables())
        ['rnn/lstm_cell/kernel', 'rnn/lstm_cell/bias']
    """

    def __init__(self) -> None:
        self._vars: OrderedDict[str, nn.Parameter] = OrderedDict()
        self._counts: dict[str, int] = {}
        self._scope = VariableScope("", False)

    # -- public -----------------------------------------------------------------
    def variables(self) -> OrderedDict[str, nn.Parameter]:
        """Full TF names (no ``:0`` suffix) to parameters, in creation order.

        TF equivalent: ``{v.op.name: v for v in tf.compat.v1.global_variables()}``.
        This is the restore target of a TF checkpoint.
        """
        return OrderedDict(self._vars)

    def get_variable_scope(self) -> VariableScope:
        """The current variable scope (TF ``tf.compat.v1.get_variable_scope()``)."""
        return self._scope

    def as_default(self) -> Graph:
        """Return ``self``, to be used as ``with graph.as_default():`` (TF spelling)."""
        return self

    def __enter__(self) -> Graph:
        _STATE.graphs.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if not _STATE.graphs or _STATE.graphs[-1] is not self:
            raise RuntimeError("Improper nesting of lstmcompat.Graph contexts.")
        _STATE.graphs.pop()

    def __repr__(self) -> str:
        return f"<lstmcompat.Graph with {len(self._vars)} variables>"

    # -- variable-scope store (TF _VariableScopeStore) -----------------------------
    def _open_scope(self, name: str) -> None:
        self._counts[name] = self._counts.get(name, 0) + 1

    def _close_subscopes(self, name: str) -> None:
        prefix = name + "/"
        for k in self._counts:
            if k.startswith(prefix):
                self._counts[k] = 0

    def _unique_scope_name(self, prefix: str) -> str:
        base = f"{self._scope.name}/{prefix}" if self._scope.name else prefix
        if self._counts.get(base, 0) == 0:
            return prefix
        idx = 1
        while self._counts.get(f"{base}_{idx}", 0) > 0:
            idx += 1
        return f"{prefix}_{idx}"

    # -- get_variable -------------------------------------------------------------
    def get_variable(self, name: str, shape: Sequence[int], dtype: torch.dtype,
                     initializer: Initializer | None = None) -> nn.Parameter:
        """TF ``tf.compat.v1.get_variable`` in the current scope: create, share, or raise."""
        scope = self._scope
        full = f"{scope.name}/{name}" if scope.name else name
        shape = tuple(int(s) for s in shape)
        reuse = scope.reuse
        if full in self._vars:
            if reuse is False:
                raise ValueError(
                    f"Variable {full} already exists, disallowed. Did you mean to set "
                    "reuse=True or reuse=tf.AUTO_REUSE in VarScope?"
                )
            found = self._vars[full]
            if tuple(found.shape) != shape:
                raise ValueError(
                    f"Trying to share variable {full}, but specified shape {shape} and "
                    f"found shape {tuple(found.shape)}."
                )
            if found.dtype != dtype:
                raise ValueError(
                    f"Trying to share variable {full}, but specified dtype "
                    f"{str(dtype).replace('torch.', '')} and found dtype "
                    f"{str(found.dtype).replace('torch.', '')}."
                )
            return found
        if reuse is True:
            raise ValueError(
                f"Variable {full} does not exist, or was not created with "
                "tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE in VarScope?"
            )
        init = initializer or scope.initializer or glorot_uniform
        param = nn.Parameter(make_value(init, shape, dtype))
        self._vars[full] = param
        return param


def make_value(init: Initializer, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Call an initializer and check what it returns (``ValueError`` naming
    ``initializer`` and both shapes for another shape, ``TypeError`` for a
    non-numeric value, as TF's variable creation)."""
    with torch.no_grad():
        value = _args.initial_value(init(shape, dtype), "initializer", shape, dtype)
    return value.detach().clone()


class variable_scope:  # noqa: N801 - TF spelling
    """Open a TF1 variable scope (``tf.compat.v1.variable_scope``).

    Inside a :class:`Graph`, cells built in the block register their variables
    under ``<scope>/<cell name>/...``; ``reuse=True`` makes them share the
    variables already registered under those names (``ValueError`` if there are
    none), ``reuse=AUTO_REUSE`` creates or shares, and the default
    (``reuse=None``) inherits the parent's flag. Outside a graph the scope is a
    label only and has no effect.

    Args:
        name_or_scope: a scope name (nested under the current scope) or a
            captured :class:`VariableScope` (re-entered under its own full name).
        default_name: used, made unique in the current scope, when
            ``name_or_scope`` is ``None``.
        reuse: ``True``, ``None``/``False`` (inherit), or :data:`AUTO_REUSE`.
        initializer: default initializer for variables created in the scope
            (a callable ``(shape, dtype) -> Tensor``).

    Raises:
        TypeError: neither ``name_or_scope`` nor ``default_name`` given, or a
            ``name_or_scope`` that is not a string or ``VariableScope``.
        ValueError: an invalid ``reuse`` value, or ``reuse=True`` with only a
            ``default_name``.

    Examples:
        >>> import torch, lstmcompat
        >>> x = torch.zeros(2, 3, 5)
        >>> with lstmcompat.Graph() as g:
        ...     with lstmcompat.variable_scope("enc"):
        ...         _ = lstmcompat.dynamic_rnn(lstmcompat.LSTMCell(4), x, dtype="float32")
        ...     with lstmcompat.variable_scope("enc", reuse=True):
        ...         _ = lstmcompat.dynamic_rnn(lstmcompat.LSTMCell(4), x, dtype="float32")
        >>> list(g.variables())
        ['enc/rnn/lstm_cell/kernel', 'enc/rnn/lstm_cell/bias']
    """

    def __init__(self, name_or_scope: str | VariableScope | None, default_name: str | None = None,
                 reuse: ReuseLike = None, initializer: Callable | None = None) -> None:
        if default_name is None and name_or_scope is None:
            raise TypeError("If default_name is None then name_or_scope is required")
        if reuse is False:
            reuse = None
        if not (reuse is True or reuse is None or reuse is AUTO_REUSE):
            raise ValueError("The reuse parameter must be True or False or None.")
        if name_or_scope is not None and not isinstance(name_or_scope, (str, VariableScope)):
            raise TypeError("VariableScope: name_or_scope must be a string or VariableScope.")
        if name_or_scope is None and reuse:
            raise ValueError("reuse=True cannot be used without a name_or_scope")
        from ._util import get_initializer

        self._name_or_scope = name_or_scope
        self._default_name = default_name
        self._reuse = reuse
        self._initializer = get_initializer(initializer)
        self._graph: Graph | None = None
        self._old: VariableScope | None = None
        self._saved_counts: dict[str, int] | None = None
        self._new: VariableScope | None = None

    def __enter__(self) -> VariableScope:
        graph = get_default_graph()
        self._graph = graph
        if graph is None:
            # Eager-like: a label only.
            if isinstance(self._name_or_scope, VariableScope):
                return self._name_or_scope
            name = self._name_or_scope if self._name_or_scope is not None else self._default_name
            return VariableScope(name or "", bool(self._reuse) if self._reuse is not AUTO_REUSE
                                 else AUTO_REUSE, self._initializer)
        old = graph._scope
        self._old = old
        if isinstance(self._name_or_scope, VariableScope):
            captured = self._name_or_scope
            graph._open_scope(captured.name)
            self._saved_counts = dict(graph._counts)
            new = replace(captured, reuse=self._reuse if self._reuse else captured.reuse)
            if self._initializer is not None:
                new = replace(new, initializer=self._initializer)
        else:
            if self._name_or_scope is None:
                part = graph._unique_scope_name(self._default_name)  # type: ignore[arg-type]
            else:
                part = self._name_or_scope
            name = f"{old.name}/{part}" if old.name else part
            reuse = self._reuse or old.reuse
            new = VariableScope(name, reuse, self._initializer or old.initializer)
            graph._open_scope(name)
        self._new = new
        graph._scope = new
        return new

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        graph = self._graph
        if graph is None:
            return
        if graph._scope is not self._new:
            raise RuntimeError("Improper nesting of variable_scope.")
        if self._saved_counts is not None:
            graph._counts = self._saved_counts
        else:
            graph._close_subscopes(self._new.name)  # type: ignore[union-attr]
        graph._scope = self._old  # type: ignore[assignment]


def get_variable_scope() -> VariableScope:
    """The current variable scope of the default graph (root scope outside a graph)."""
    graph = get_default_graph()
    return graph.get_variable_scope() if graph is not None else VariableScope("", False)

