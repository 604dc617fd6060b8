"""``restore``: fill a module's weights from a file, by the writers' TF names, strictly."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._names import (
    BidirectionalPair,
    NameView,
    WeightSet,
    find_bidirectional_pairs,
    find_weight_sets,
    sets_at,
)
from ._source import open_source

__all__ = ["restore"]

#: A TF1 cell's parameters: attribute, role in a weight set, TF name under the prefix.
_CELL_PARAMS = (("kernel", "kernel", "kernel"), ("bias", "bias", "bias"),
                ("w_f_diag", "w_f_diag", "w_f_diag"), ("w_i_diag", "w_i_diag", "w_i_diag"),
                ("w_o_diag", "w_o_diag", "w_o_diag"),
                ("proj_kernel", "projection", "projection/kernel"))
_KERAS_PARAMS = (("kernel", "kernel", "kernel"),
                 ("recurrent_kernel", "recurrent_kernel", "recurrent_kernel"),
                 ("bias", "bias", "bias"))


def _classes():
    from .._keras.lstm import LSTM
    from .._tf1.cell import LSTMCell
    from .._tf1.graph import Graph
    from .._tf1.multi import MultiRNNCell
    return LSTM, LSTMCell, MultiRNNCell, Graph


def _unwrap(module: Any) -> Any:
    """The cell a wrapper (``DropoutWrapper``, ...) wraps, through any depth: a wrapper
    adds no scope, so its weights are the wrapped cell's."""
    from .._tf1.wrappers import _Wrapper
    while isinstance(module, _Wrapper):
        module = module.cell
    return module


def _cells(multi: Any) -> list[Any]:
    return [_unwrap(c) for c in multi.cells]


def _family():
    from .._keras.bidirectional import Bidirectional
    from .._keras.cudnn_lstm import CuDNNLSTM
    return CuDNNLSTM, Bidirectional


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


class _Plan:
    """Parameters to fill, checked all together before any is written."""

    def __init__(self, source, path: str):
        self.source = source
        self.path = path
        self.builds: list[tuple[Any, int, str]] = []  # module, depth, its kernel's file name
        self.copies: list[tuple[Any, str, str]] = []  # owner, attr, file name
        #: Keras layers filled from the other Keras layout (CuDNNLSTM <-> LSTM), converted
        #: as tf_keras converts them: module, (kernel, recurrent_kernel, bias) file names.
        self.converts: list[tuple[Any, tuple[str, ...]]] = []

    def run(self) -> None:
        """Read and check every array, then build and copy (a failed read changes nothing)."""
        arrays, dtypes = {}, {}
        names = [c[2] for c in self.copies] + [n for _, ns in self.converts for n in ns]
        for file_name in names:
            if file_name not in arrays:
                value = self.source.read(file_name)
                dtypes[file_name] = getattr(getattr(value, "dtype", None), "name", None)
                arrays[file_name] = _floating(value, file_name, self.path)
        for module, depth, kernel_name in self.builds:
            # the file's own dtype (a bfloat16 file builds a bfloat16 cell: the arrays
            # are read as exact float32)
            _build(module, depth, _DTYPES.get(dtypes[kernel_name]))
        with torch.no_grad():
            for owner, attr, file_name in self.copies:
                param = getattr(owner, attr)
                param.copy_(torch.from_numpy(arrays[file_name]).reshape(param.shape))
            for module, file_names in self.converts:
                _convert_into(module, [torch.from_numpy(arrays[n]) for n in file_names])


def _convert_into(module: Any, values: list[torch.Tensor]) -> None:
    """Copy Keras weights of the other layout into ``module``, as tf_keras's
    ``_convert_rnn_weights`` converts them when loading (in float64 when the file
    is float64; the re-layout is a permutation, the bias sum one addition)."""
    from .._keras.cudnn_lstm import cudnn_to_keras, keras_to_cudnn
    CuDNNLSTM, _ = _family()
    if isinstance(module, CuDNNLSTM):
        converted = keras_to_cudnn(*values)
    else:
        converted = cudnn_to_keras(*values)
    for param, value in zip(module.weights, converted):
        param.copy_(value)


_DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64,
           "bfloat16": torch.bfloat16}


def _floating(value: Any, file_name: str, path: str) -> np.ndarray:
    """A file array as one torch can copy from (bfloat16 as float32: exact)."""
    if not isinstance(value, np.ndarray) or not (
            value.dtype.kind == "f" or value.dtype.name == "bfloat16"):
        got = getattr(value, "dtype", type(value).__name__)
        raise ValueError(f"variable {file_name!r} of {path!r} is not a floating-point tensor "
                         f"(got {got})")
    if value.dtype.name == "bfloat16":
        bits = value.view(np.uint16).astype(np.uint32) << 16
        out = bits.view(np.float32)
        out.flags.writeable = True
        return out
    return np.ascontiguousarray(value.astype(value.dtype.newbyteorder("=")))


def _build(module: Any, depth: int, dtype: torch.dtype | None) -> None:
    LSTM, LSTMCell, _, _ = _classes()
    if module.built:
        return
    if isinstance(module, LSTMCell):  # a cell without `dtype=` takes the file's
        if module._dtype is None and dtype is not None:
            module._dtype = dtype
        module.build((None, depth))
    elif isinstance(module, LSTM):
        module.build((None, None, depth))


_KIND_NAMES = {"tf1_cell": "a TF1 LSTMCell", "keras_lstm": "a Keras LSTM",
               "keras_cudnn": "a Keras CuDNNLSTM", "multi": "a MultiRNNCell"}
#: The other Keras layout a Keras layer accepts, converted as tf_keras converts it.
_CONVERTIBLE = {"keras_lstm": "keras_cudnn", "keras_cudnn": "keras_lstm"}


def _accepts(module: Any, kind: str) -> bool:
    own = _module_kind(module)
    return kind == own or _CONVERTIBLE.get(own) == kind


def _conversion_problems(module: Any, ws: WeightSet) -> list[str]:
    """Why a weight set of the other Keras layout cannot be converted into ``module``."""
    CuDNNLSTM, _ = _family()
    if isinstance(module, CuDNNLSTM):
        if not ws.use_bias:
            return ["the file's LSTM has no bias, and a CuDNNLSTM has one (tf_keras does not "
                    "convert it either)"]
        return []
    out = []
    if not module.use_bias:
        out.append("`use_bias`: a CuDNNLSTM weight set has biases, the module has "
                   "use_bias=False")
    for option, want in (("recurrent_activation", "sigmoid"), ("activation", "tanh")):
        name = _activation_name(getattr(module, option))
        if name != want:
            out.append(f"`{option}`: a CuDNNLSTM weight set computes {want} there (cuDNN's "
                       f"LSTM), the module's {option} is {name!r}; pass {option}={want!r} "
                       "(its weights are then converted exactly as tf_keras converts them)")
    return out


def _activation_name(fn: Any) -> Any:
    from .. import _activations
    name = _activations.canonical_name(fn)
    return name if name is not None else getattr(fn, "__name__", fn)


def _depth(module: Any, ws: WeightSet, depth: int | None, found: list[str]) -> list[str]:
    """The input-depth mismatch of a built module (only when nothing else is wrong)."""
    if found or not module.built or depth == ws.input_size:
        return []
    return [f"input depth: the file's kernel {ws.shapes['kernel']} is for {ws.input_size} "
            f"input features, the module's {tuple(module.kernel.shape)} for {depth}"]


def _mismatches(module: Any, ws: WeightSet) -> list[str]:
    """Why ``ws`` cannot fill ``module`` (empty if it can)."""
    LSTM, LSTMCell, MultiRNNCell, _ = _classes()
    out = []
    if isinstance(module, MultiRNNCell):
        if ws.kind != "multi":
            return [f"it is a single {ws.describe().split()[0]}, not a MultiRNNCell"]
        if len(ws.cells) != len(module.cells):
            return [f"it has {len(ws.cells)} cells, the module {len(module.cells)}"]
        for k, (cell, cws) in enumerate(zip(_cells(module), ws.cells)):
            out += [f"cell {k}: {m}" for m in _mismatches(cell, cws)]
        return out
    if (isinstance(module, LSTMCell) and ws.kind != "tf1_cell") or (
            isinstance(module, LSTM) and not _accepts(module, ws.kind)):
        return [f"it holds {_KIND_NAMES[ws.kind]} ({ws.describe()})"]
    if isinstance(module, LSTMCell):
        if ws.units != module._num_units:
            out.append(f"`num_units`: the file's kernel {ws.shapes['kernel']} and bias "
                       f"{ws.shapes['bias']} have {ws.units} units, the module {module._num_units}")
        if ws.use_peepholes != module._use_peepholes:
            out.append(f"`use_peepholes`: the file {'has' if ws.use_peepholes else 'has no'} "
                       f"peepholes ({_join(ws.prefix, 'w_f_diag')}), the module has "
                       f"use_peepholes={module._use_peepholes}")
        if ws.num_proj != module._num_proj:
            out.append(f"`num_proj`: the file's projection is {ws.num_proj} "
                       f"({_join(ws.prefix, 'projection/kernel')}), the module's {module._num_proj}")
        return out + _depth(module, ws, getattr(module, "_input_depth", None), out)
    if isinstance(module, LSTM):
        if ws.units != module.units:
            out.append(f"`units`: the file's kernel {ws.shapes['kernel']} has {ws.units} units, "
                       f"the module {module.units}")
        if ws.kind != _module_kind(module):
            out += _conversion_problems(module, ws)
        elif ws.use_bias != module.use_bias:
            out.append(f"`use_bias`: the file {'has' if ws.use_bias else 'has no'} bias, the "
                       f"module has use_bias={module.use_bias}")
        return out + _depth(module, ws, getattr(module, "_input_features", None), out)
    raise TypeError(f"`module` must be an lstmcompat LSTM, LSTMCell, MultiRNNCell or Graph, got "
                    f"{type(module).__name__}")


def _plan_set(plan: _Plan, module: Any, ws: WeightSet) -> None:
    LSTM, LSTMCell, MultiRNNCell, _ = _classes()
    if isinstance(module, MultiRNNCell):
        for cell, cws in zip(_cells(module), ws.cells):
            _plan_set(plan, cell, cws)
        return
    params = _KERAS_PARAMS if isinstance(module, LSTM) else _CELL_PARAMS
    if not module.built:
        plan.builds.append((module, ws.input_size, ws.variables["kernel"]))
    if isinstance(module, LSTM) and ws.kind != _module_kind(module):
        plan.converts.append((module, tuple(ws.variables[r] for r in
                                            ("kernel", "recurrent_kernel", "bias")
                                            if r in ws.variables)))
        return
    for attr, role, _ in params:
        if role in ws.variables:
            plan.copies.append((module, attr, ws.variables[role]))


def _module_kind(module: Any) -> str:
    LSTM, LSTMCell, MultiRNNCell, _ = _classes()
    if isinstance(module, MultiRNNCell):
        return "multi"
    if isinstance(module, _family()[0]):
        return "keras_cudnn"
    return "keras_lstm" if isinstance(module, LSTM) else "tf1_cell"


def _explicit(view: NameView, module: Any, prefix: str, sets: list[WeightSet]) -> WeightSet:
    """The set at ``prefix``, or the ValueError that says what is missing there."""
    kind = _module_kind(module)
    at = sets_at(sets, prefix)
    fitting = [s for s in at if s.kind == kind]
    if not fitting and kind in _CONVERTIBLE:
        fitting = [s for s in at if s.kind == _CONVERTIBLE[kind]]
    if len(fitting) > 1:
        raise ValueError(f"prefix {prefix!r} names {len(fitting)} weight sets of "
                         f"{view.source.path}: " + ", ".join(repr(s.prefix) for s in fitting))
    if fitting:
        return fitting[0]
    if at:
        raise ValueError(f"the weights at prefix {prefix!r} of {view.source.path} do not fit "
                         f"the {type(module).__name__}: " + "; ".join(_mismatches(module, at[0])))
    # Name what the module needs that is not there, the way Saver.restore does.
    LSTM, LSTMCell, MultiRNNCell, _ = _classes()
    if isinstance(module, MultiRNNCell):
        need = [_join(prefix, "cell_0/lstm_cell/kernel")]
    else:
        params = _KERAS_PARAMS if isinstance(module, LSTM) else _CELL_PARAMS
        need = [_join(prefix, n) for a, _, n in params if _needed(module, a)]
    missing = [n for n in need if view.lookup(n) is None]
    shapes = [(n, view.shape(n)) for n in need if view.lookup(n) is not None]
    detail = (f"variable {missing[0]!r} not found" if missing else
              "; ".join(f"{n!r} has shape {s}" for n, s in shapes))
    raise ValueError(f"no {type(module).__name__} weights at prefix {prefix!r} in "
                     f"{view.source.path}: {detail}. " + _listing(sets))


def _needed(module: Any, attr: str) -> bool:
    LSTM, LSTMCell, _, _ = _classes()
    if isinstance(module, LSTM):
        return attr != "bias" or module.use_bias
    if attr.startswith("w_"):
        return module._use_peepholes
    if attr == "proj_kernel":
        return module._num_proj is not None
    return True


def _listing(sets: list[WeightSet]) -> str:
    if not sets:
        return "The file holds no LSTM weights lstmcompat recognises."
    return "Weight sets in the file: " + "; ".join(
        f"prefix={s.prefix!r}: {s.describe()}" for s in sets) + "."


def _auto(view: NameView, module: Any, sets: list[WeightSet]) -> WeightSet:
    kind = _module_kind(module)
    same = [s for s in sets if s.kind == kind]
    fit = [s for s in same if not _mismatches(module, s)]
    if not fit and kind in _CONVERTIBLE:  # the other Keras layout, converted
        other = [s for s in sets if s.kind == _CONVERTIBLE[kind]]
        if other:
            same = same + other
            fit = [s for s in other if not _mismatches(module, s)]
    scope = getattr(module, "_scope", None)
    if scope is not None and len(fit) > 1:  # built in a Graph: its own full names first
        own = [s for s in fit if scope.name in s.prefixes]
        if own:
            return own[0]
    if len(fit) == 1:
        return fit[0]
    name = type(module).__name__
    if len(fit) > 1:
        raise ValueError(
            f"{len(fit)} weight sets in {view.source.path} fit the {name}; pass `prefix=` "
            "to choose one: " + ", ".join(repr(s.prefix) for s in fit)
            + ". " + _listing(fit))
    if same:
        raise ValueError(
            f"no weight set in {view.source.path} fits the {name}: " + "; ".join(
                f"prefix={s.prefix!r}: " + "; ".join(_mismatches(module, s)) for s in same))
    raise ValueError(f"no {name} weights in {view.source.path}. " + _listing(sets))


def _restore_graph(view: NameView, graph: Any, prefix: str | None, plan: _Plan) -> None:
    variables = graph.variables()
    if not variables:
        raise ValueError("the Graph has no variables yet: build its cells (run them once, or "
                         "call `build`) before restoring")
    names = list(variables)
    if prefix is None:
        candidates = [""]
        first = names[0]
        for have in view.entries:
            if have.endswith("/" + first):
                candidates.append(have[:-len(first) - 1])
        full = [p for p in dict.fromkeys(candidates)
                if all(view.lookup(_join(p, n)) is not None for n in names)]
        if len(full) > 1 and "" in full:
            full = [""]
        if len(full) != 1:
            if full:
                raise ValueError(f"the Graph's variables are found under several prefixes of "
                                 f"{view.source.path}; pass `prefix=`: "
                                 + ", ".join(repr(p) for p in full))
            missing = next(n for n in names if view.lookup(n) is None)
            raise ValueError(f"variable {missing!r} not found in {view.source.path} (the "
                             f"Graph's variables: {names}). " + _listing(find_weight_sets(view)))
        prefix = full[0]
    for name, param in variables.items():
        key = _join(prefix, name)
        file_name = view.lookup(key)
        if file_name is None:
            raise ValueError(f"variable {key!r} not found in {view.source.path}")
        shape = view.shapes[file_name]
        if shape != tuple(param.shape):
            raise ValueError(f"shape mismatch for variable {key!r}: the file has {shape}, the "
                             f"Graph's variable {tuple(param.shape)}")
        plan.copies.append((_Fixed(param), "value", file_name))


def _restore_bidirectional(view: NameView, bi: Any, prefix: str | None, plan: _Plan) -> None:
    """Plan a ``Bidirectional``'s two layers from one (forward, backward) pair of sets."""
    sets = find_weight_sets(view)
    pairs = find_bidirectional_pairs(sets)
    if prefix is not None:
        pairs = [p for p in pairs
                 if any(sc == prefix or sc.endswith("/" + prefix) for sc in p.scopes)]

    def problems(pair: BidirectionalPair) -> list[str]:
        return ([f"forward layer: {m}" for m in _mismatches(bi.forward_layer, pair.forward)]
                + [f"backward layer: {m}" for m in _mismatches(bi.backward_layer,
                                                                pair.backward)])

    fit = [p for p in pairs if not problems(p)]
    path = view.source.path
    if len(fit) > 1:
        raise ValueError(f"{len(fit)} Bidirectional weight sets in {path} fit the "
                         "Bidirectional; pass `prefix=` to choose one: "
                         + ", ".join(repr(p.scope) for p in fit))
    if not fit:
        if pairs:
            raise ValueError(f"no Bidirectional weights in {path} fit the Bidirectional: "
                             + "; ".join(f"prefix={p.scope!r}: " + "; ".join(problems(p))
                                         for p in pairs))
        where = f" under prefix {prefix!r}" if prefix is not None else ""
        raise ValueError(f"no Bidirectional weights (a `forward_*` and a `backward_*` Keras "
                         f"layer side by side){where} in {path}. " + _listing(sets))
    _plan_set(plan, bi.forward_layer, fit[0].forward)
    _plan_set(plan, bi.backward_layer, fit[0].backward)


class _Fixed:
    """A Graph variable as an (owner, attribute) pair of the plan."""

    def __init__(self, value):
        self.value = value


def restore(module: Any, path: Any, prefix: str | None = None) -> Any:
    """Fill every weight of ``module`` from a checkpoint or weight file, strictly.

    TensorFlow equivalent: ``tf.compat.v1.train.Saver().restore`` /
    ``model.load_weights``. The file is read without TensorFlow; weights are
    matched by the names their writers gave them (TF1 cells under ``rnn/``,
    ``multi_rnn_cell/cell_k/``, ``bidirectional_rnn/fw|bw/``, ``projection/kernel``;
    compat.v1 Keras layers ``lstm/lstm_cell/...`` and the older ``lstm_1/kernel``;
    TF2 object checkpoints by their Keras names or object paths; Keras HDF5 and
    ``.keras`` files; files from :func:`lstmcompat.save`; the TF <= 1.1 names such
    as ``LSTMCell/W_0`` and ``BasicLSTMCell/Linear/Matrix``). Optimizer slots and
    counters are ignored. The values are copied bit for bit (converted only when
    the module's dtype differs from the file's). Hyperparameters that files do
    not store (``forget_bias``, clips, activations) are the module's own. Nothing
    is changed when an error is raised.

    A ``CuDNNLSTM`` weight set (``kernel``, ``recurrent_kernel``, ``bias (8u,)``)
    restored into an ``LSTM`` is converted exactly as tf_keras converts it when
    loading (each input gate block from cuDNN's row-major reading, each recurrent
    block transposed, the two biases summed), into a sigmoid-gated, tanh ``LSTM``
    with a bias only (else ``ValueError`` saying why); an ``LSTM`` weight set into
    a ``CuDNNLSTM`` the other way (bias halved into both halves, as tf_keras). A
    :class:`~lstmcompat.Bidirectional` takes the ``forward_*`` and ``backward_*``
    layers of one Keras ``Bidirectional`` (HDF5 ``bidi/bidi/forward_lstm/...``, TF2
    ``.../forward_layer/cell/...``, Keras 3 files).

    Args:
        module: an :class:`~lstmcompat.LSTM`, :class:`~lstmcompat.CuDNNLSTM`,
            :class:`~lstmcompat.Bidirectional` (of those), :class:`~lstmcompat.LSTMCell`
            (or one of its family: ``BasicLSTMCell``, ``LSTMBlockCell``,
            ``LSTMBlockFusedCell``, ``CudnnCompatibleLSTMCell``, whose files use
            the same leaves under their own scopes, e.g. CudnnLSTM's
            ``cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell``),
            :class:`~lstmcompat.MultiRNNCell` or :class:`~lstmcompat.Graph`; a
            wrapper (:class:`~lstmcompat.DropoutWrapper`, ...) fills its
            wrapped cell, also inside a ``MultiRNNCell``. An
            unbuilt module is built for the file's input depth (an ``LSTMCell``
            without ``dtype`` in the file's dtype).
        path: any path :func:`lstmcompat.list_variables` takes.
        prefix: the weights' scope in the file (``"rnn/lstm_cell"``; for a
            ``Bidirectional`` the scope above its two layers, e.g. ``"bidi"``,
            ``"lstm/lstm_cell"``, ``"rnn/multi_rnn_cell"``), or the scope or layer
            name one level above it (``"rnn"``, ``"lstm"``) when that names one
            set; for a ``Graph`` a scope in front of its variables' full names. ``None``: the one weight set
            that fits the module (a cell built inside a ``Graph`` prefers its own
            scope; a ``Graph`` its variables' own names).

    Returns:
        ``module``.

    Raises:
        TypeError: ``module`` is not one of the classes above, or ``prefix`` is
            not a string.
        ValueError: a variable is missing or has another shape (naming it, with
            both shapes); no weight set fits; several fit and ``prefix`` is
            ``None`` (listing every candidate prefix); a corrupt file.
        FileNotFoundError: nothing at ``path``.

    Examples:
        >>> import lstmcompat
        >>> cell = lstmcompat.LSTMCell(16, use_peepholes=True)
        >>> lstmcompat.restore(cell, "train_dir/model.ckpt-20000")  # doctest: +SKIP
    """
    LSTM, LSTMCell, MultiRNNCell, Graph = _classes()
    wrapper, module = module, _unwrap(module)
    _, Bidirectional = _family()
    if not isinstance(module, (LSTM, LSTMCell, MultiRNNCell, Graph, Bidirectional)):
        raise TypeError(f"`module` must be an lstmcompat LSTM, CuDNNLSTM, Bidirectional, "
                        f"LSTMCell, MultiRNNCell or Graph, got {type(module).__name__}")
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"`prefix` must be a string or None, got {type(prefix).__name__}")
    if prefix is not None:
        prefix = prefix.strip("/")
    source = open_source(path)
    view = NameView(source)
    plan = _Plan(source, str(source.path))
    if isinstance(module, Graph):
        _restore_graph(view, module, prefix, plan)
    elif isinstance(module, Bidirectional):
        _restore_bidirectional(view, module, prefix, plan)
    else:
        if isinstance(module, MultiRNNCell):
            for k, cell in enumerate(_cells(module)):
                if not isinstance(cell, LSTMCell):
                    raise TypeError(f"restore fills MultiRNNCells of LSTMCells; cell "
                                    f"{k} is a {type(cell).__name__}")
        sets = find_weight_sets(view)
        ws = _explicit(view, module, prefix, sets) if prefix is not None else _auto(view, module, sets)
        problems = _mismatches(module, ws)
        if problems:
            raise ValueError(f"the weights at prefix {ws.prefix!r} of {source.path} do not fit "
                             f"the {type(module).__name__}: " + "; ".join(problems))
        _plan_set(plan, module, ws)
    plan.run()
    return wrapper
