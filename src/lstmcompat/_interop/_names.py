"""How each writer names LSTM weights, and which weight sets a file holds.

Every reader gives its file's own variable names (``Source.variables``) and,
where the file knows them, other names of the same variables
(``Source.aliases``: a TF2 object checkpoint's Keras ``full_name``, an HDF5
weight name without ``:0``). :class:`NameView` adds the names older TensorFlow
versions used, modernised, so that one matcher serves every writer:

===========================================  ====================================
written as                                   matched as
===========================================  ====================================
``.../kernel/.ATTRIBUTES/VARIABLE_VALUE``     ``.../kernel``
``lstm/lstm/lstm_cell/kernel:0`` (HDF5)        ``lstm/lstm/lstm_cell/kernel``
TF 1.1 ``lstm_cell/weights``, ``biases``        ``lstm_cell/kernel``, ``bias``
TF 1.1 ``projection/weights``                  ``projection/kernel``
TF 1.0 ``LSTMCell/W_0``, ``B``, ``W_F_diag``,      ``lstm_cell/kernel``, ``bias``,
``W_I_diag``, ``W_O_diag``, ``W_P_0``             ``w_f_diag``, ..., ``projection/kernel``
TF 1.0 ``BasicLSTMCell/Linear/Matrix``, ``Bias``  ``basic_lstm_cell/kernel``, ``bias``
TF 1.0 scopes ``RNN``, ``BiRNN/FW``, ``BW``,      ``rnn``, ``bidirectional_rnn/fw``, ``bw``,
``MultiRNNCell/Cell0``                         ``multi_rnn_cell/cell_0``
TF 1.0 contrib ``LSTMBlockCell/W``, ``b``,        ``lstm_cell/kernel``, ``bias``,
``wci``, ``wcf``, ``wco``                          ``w_i_diag``, ``w_f_diag``, ``w_o_diag``
TF 1.1 ``lstm_block_wrapper/weights``           ``lstm_block_wrapper/kernel``
===========================================  ====================================

These are the renames of TensorFlow's ``contrib/rnn/python/tools/checkpoint_convert.py``
(its ``weights`` -> ``kernel`` and ``biases`` -> ``bias`` for every LSTM cell scope, the
TF 1.0 spellings it converts through its sharded-name table) for the cells lstmcompat
has. Partitioned TF 1.0 kernels (``W_0``, ``W_1``, ... of ``num_unit_shards > 1``)
are not joined: ``W_0`` alone is read as the kernel, and its shape then does not fit.

Optimizer slots and bookkeeping (``/Adam``, ``/Adam_1``, ``/Momentum``,
``global_step``, ``beta1_power``, ``save_counter``, TF2 ``.OPTIMIZER_SLOT`` and
``optimizer/`` objects, HDF5 ``optimizer_weights``) are never weights.

A weight set is found by its leaves: ``P/kernel`` + ``P/recurrent_kernel``
(+ ``P/bias``) is a Keras LSTM (a CuDNNLSTM when the bias is ``(8u,)``);
``P/kernel`` + ``P/bias`` (+ the three
peepholes, + ``P/projection/kernel``) a TF1 ``LSTMCell``; TF1 cells at
``M/cell_0/...``, ``M/cell_1/...`` (one each, numbered from 0) a
``MultiRNNCell`` at ``M``. Each set keeps every prefix it is known by (the
first is shown to users); ``restore`` accepts any of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._source import Source

__all__ = ["BidirectionalPair", "NameView", "WeightSet", "find_bidirectional_pairs",
           "find_weight_sets", "is_bookkeeping", "sets_at"]

_BOOKKEEPING = re.compile(
    r"(^|/)(global_step|beta1_power|beta2_power|save_counter|_CHECKPOINTABLE_OBJECT_GRAPH)"
    r"(/\.ATTRIBUTES/VARIABLE_VALUE)?$"
    r"|/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|Adadelta|Adadelta_\d+|Ftrl"
    r"|Ftrl_\d+|ExponentialMovingAverage|Nadam|Nadam_\d+|AdamW|AdamW_\d+)(:\d+)?$"
    r"|/\.OPTIMIZER_SLOT/|^optimizer(/|$)|^optimizer_weights/|(^|/)iterations(:\d+)?$")

_ATTRIBUTES = "/.ATTRIBUTES/VARIABLE_VALUE"

#: TF 1.0 scope spellings (one path component each) and their 1.2 names.
_OLD_SCOPES = {"RNN": "rnn", "BiRNN": "bidirectional_rnn", "FW": "fw", "BW": "bw",
               "MultiRNNCell": "multi_rnn_cell", "LSTMCell": "lstm_cell",
               "BasicLSTMCell": "basic_lstm_cell", "LSTMBlockCell": "lstm_cell"}
#: Old leaf names (trailing components) and their 1.2 names.
_OLD_LEAVES = (
    (("Linear", "Matrix"), "kernel"), (("Linear", "Bias"), "bias"),
    (("W_0",), "kernel"), (("B",), "bias"), (("W_F_diag",), "w_f_diag"),
    (("W_I_diag",), "w_i_diag"), (("W_O_diag",), "w_o_diag"),
    (("W_P_0",), "projection/kernel"),
    (("projection", "weights"), "projection/kernel"),
    (("weights",), "kernel"), (("biases",), "bias"),
)
#: TF 1.0 contrib ``LSTMBlockCell`` leaves (only directly under its ``LSTMBlockCell`` scope).
_OLD_BLOCK_LEAVES = {"W": "kernel", "b": "bias", "wci": "w_i_diag", "wcf": "w_f_diag",
                     "wco": "w_o_diag"}
_CELL_NUMBER = re.compile(r"Cell(\d+)$")


def is_bookkeeping(name: str) -> bool:
    """True for optimizer slots and counters (never restored, never a weight)."""
    return bool(_BOOKKEEPING.search(name))


def _plain(name: str) -> str:
    if name.endswith(_ATTRIBUTES):
        name = name[:-len(_ATTRIBUTES)]
    return re.sub(r":\d+$", "", name)


def _modernise(name: str) -> tuple[str, int] | None:
    """The TF >= 1.2 spelling of a pre-1.2 name and how many trailing components of
    ``name`` were its old leaf; ``None`` if the name is not an old one."""
    parts = name.split("/")
    leaf_parts, new_leaf = 0, None
    if len(parts) > 1 and parts[-2] == "LSTMBlockCell" and parts[-1] in _OLD_BLOCK_LEAVES:
        leaf_parts, new_leaf = 1, _OLD_BLOCK_LEAVES[parts[-1]]
    for old, new in () if new_leaf else _OLD_LEAVES:
        if tuple(parts[-len(old):]) == old and len(parts) > len(old):
            leaf_parts, new_leaf = len(old), new
            break
    scope = parts[:len(parts) - leaf_parts]
    new_scope = []
    for i, part in enumerate(scope):
        m = _CELL_NUMBER.match(part)
        if m and i and scope[i - 1] == "MultiRNNCell":
            new_scope.append(f"cell_{m.group(1)}")
        else:
            new_scope.append(_OLD_SCOPES.get(part, part))
    new = "/".join(new_scope + ([new_leaf] if new_leaf else parts[len(scope):]))
    return (new, max(leaf_parts, 1)) if new != name else None


@dataclass
class _Entry:
    file_name: str
    display: str  # the name a user would recognise for this entry's prefix
    leaf_parts: int  # components of ``display`` that are the leaf
    rank: tuple[int, int]  # (0, i) the file's i-th alias, (1, 0) its own name, (2, 0) modernised


class NameView:
    """The names a file's variables can be matched by, each mapped to the file's name.

    A name two different variables claim (two models with a layer ``lstm`` in
    one checkpoint) matches neither; their file names still do.
    """

    def __init__(self, source: Source):
        self.source = source
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.entries: dict[str, _Entry] = {}
        clashes: set[str] = set()
        aliases = source.aliases()
        for file_name, shape in source.variables():
            if is_bookkeeping(file_name):
                continue
            self.shapes[file_name] = tuple(shape)
            names = [(a, (0, i)) for i, a in enumerate(aliases.get(file_name, ()))]
            names.append((file_name, (1, 0)))
            for name, rank in names:
                name = _plain(name)
                if is_bookkeeping(name):
                    continue
                leaf = 2 if name.endswith("/projection/kernel") else 1
                self._add(name, _Entry(file_name, name, leaf, rank), clashes)
                old = _modernise(name)
                if old is not None:
                    self._add(old[0], _Entry(file_name, name, old[1], (2, 0)), clashes)
        for name in clashes:
            self.entries.pop(name, None)

    def _add(self, name: str, entry: _Entry, clashes: set[str]) -> None:
        have = self.entries.get(name)
        if have is None:
            self.entries[name] = entry
        elif have.file_name != entry.file_name:
            clashes.add(name)
        elif entry.rank < have.rank:
            self.entries[name] = entry

    def lookup(self, name: str) -> str | None:
        """The file name of the variable known as ``name`` (``None`` if none)."""
        e = self.entries.get(name)
        return e.file_name if e is not None else None

    def shape(self, name: str) -> tuple[int, ...] | None:
        f = self.lookup(name)
        return self.shapes[f] if f is not None else None


Kind = Literal["tf1_cell", "keras_lstm", "keras_cudnn", "multi"]


@dataclass(frozen=True)
class WeightSet:
    """One recognised LSTM weight set of a file.

    Attributes:
        kind: ``"tf1_cell"`` (``LSTMCell``/``BasicLSTMCell`` layout), ``"keras_lstm"``
            (Keras ``LSTM``), ``"keras_cudnn"`` (Keras ``CuDNNLSTM``: bias ``(8u,)``),
            ``"multi"`` (a ``MultiRNNCell`` of ``cells``).
        prefixes: every prefix the set is known by, the one to show first.
        variables: role (``kernel``, ``recurrent_kernel``, ``bias``, ``w_f_diag``,
            ``w_i_diag``, ``w_o_diag``, ``projection``) -> the file's variable name.
        shapes: role -> shape.
        units, input_size: ``u`` and the input depth ``d``.
        num_proj: the projection size, or ``None``.
        use_peepholes, use_bias: what the file holds.
        cells: the cells of a ``"multi"`` set.
        rank: how the shown prefix was found (``(0, i)`` the file's ``i``-th
            alias, ``(1, 0)`` the file's names, ``(2, 0)`` modernised pre-1.2 names).
    """

    kind: Kind
    prefixes: tuple[str, ...]
    variables: Mapping[str, str] = field(default_factory=dict)
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    units: int = 0
    input_size: int = 0
    num_proj: int | None = None
    use_peepholes: bool = False
    use_bias: bool = True
    cells: tuple[WeightSet, ...] = ()
    rank: tuple[int, int] = (1, 0)

    @property
    def prefix(self) -> str:
        return self.prefixes[0]

    def file_names(self) -> frozenset[str]:
        if self.kind == "multi":
            return frozenset().union(*(c.file_names() for c in self.cells))
        return frozenset(self.variables.values())

    def describe(self) -> str:
        """``LSTMCell units=5 input=3 peepholes projection=2`` and the like."""
        if self.kind == "multi":
            return f"MultiRNNCell of {len(self.cells)} cells"
        name = {"keras_lstm": "LSTM (Keras)", "keras_cudnn": "CuDNNLSTM (Keras)"}.get(
            self.kind, "LSTMCell (TF1)")
        bits = [name, f"units={self.units}", f"input_size={self.input_size}"]
        if self.kind == "tf1_cell":
            bits.append(f"peepholes={'yes' if self.use_peepholes else 'no'}")
            bits.append(f"projection={self.num_proj if self.num_proj else 'no'}")
        else:
            bits.append(f"bias={'yes' if self.use_bias else 'no'}")
        return " ".join(bits)

    def constructor(self) -> str:
        """The lstmcompat constructor call of a module these weights fit."""
        if self.kind == "multi":
            return "lstmcompat.MultiRNNCell([" + ", ".join(c.constructor() for c in self.cells) + "])"
        if self.kind == "keras_cudnn":
            return f"lstmcompat.CuDNNLSTM({self.units})"
        if self.kind == "keras_lstm":
            extra = "" if self.use_bias else ", use_bias=False"
            return f"lstmcompat.LSTM({self.units}{extra})"
        extra = ", use_peepholes=True" if self.use_peepholes else ""
        extra += f", num_proj={self.num_proj}" if self.num_proj else ""
        return f"lstmcompat.LSTMCell({self.units}{extra})"


def _parents(view: NameView) -> dict[str, dict[str, str]]:
    """``{prefix: {leaf: matched name}}`` (leaves ``kernel``, ``projection/kernel``, ...)."""
    out: dict[str, dict[str, str]] = {}
    for name in view.entries:
        if name.endswith("/projection/kernel") or name == "projection/kernel":
            parent, leaf = name[:-len("projection/kernel")].rstrip("/"), "projection"
        else:
            parent, _, leaf = name.rpartition("/")
        out.setdefault(parent, {})[leaf] = name
    return out


def _display_prefix(view: NameView, name: str) -> tuple[str, int]:
    e = view.entries[name]
    parts = e.display.split("/")
    return "/".join(parts[:len(parts) - e.leaf_parts]), e.rank


def _cell_set(view: NameView, prefix: str, leaves: dict[str, str]) -> WeightSet | None:
    kernel = view.shape(leaves["kernel"])
    if kernel is None or len(kernel) != 2 or kernel[1] % 4 or kernel[1] == 0:
        return None
    u = kernel[1] // 4
    roles = {"kernel": leaves["kernel"]}
    if "recurrent_kernel" in leaves:
        rec = view.shape(leaves["recurrent_kernel"])
        if rec != (u, 4 * u):
            return None
        roles["recurrent_kernel"] = leaves["recurrent_kernel"]
        kind = "keras_lstm"
        if "bias" in leaves:
            bias = view.shape(leaves["bias"])
            if bias == (8 * u,):  # CuDNNLSTM: input biases then recurrent biases
                kind = "keras_cudnn"
            elif bias != (4 * u,):
                return None
            roles["bias"] = leaves["bias"]
        p, depth, peep = None, kernel[0], False
    elif "bias" in leaves:
        if view.shape(leaves["bias"]) != (4 * u,):
            return None
        roles["bias"] = leaves["bias"]
        peep_names = ("w_f_diag", "w_i_diag", "w_o_diag")
        peep = all(n in leaves and view.shape(leaves[n]) == (u,) for n in peep_names)
        if peep:
            roles.update({n: leaves[n] for n in peep_names})
        p = None
        if "projection" in leaves:
            proj = view.shape(leaves["projection"])
            if proj is None or len(proj) != 2 or proj[0] != u:
                return None
            p = proj[1]
            roles["projection"] = leaves["projection"]
        kind, depth = "tf1_cell", kernel[0] - (p if p else u)
    else:
        return None
    if depth < 1:
        return None
    display, rank = _display_prefix(view, leaves["kernel"])
    return WeightSet(kind, (display, prefix) if display != prefix else (prefix,),
                     {r: view.lookup(n) for r, n in roles.items()},
                     {r: view.shape(n) for r, n in roles.items()},
                     units=u, input_size=depth, num_proj=p, use_peepholes=peep,
                     use_bias="bias" in roles, rank=rank)


_MULTI = re.compile(r"^(?:(.*)/)?cell_(\d+)(?:/[^/]+)?$")


def _merge(sets: list[WeightSet]) -> list[WeightSet]:
    """One set per group of file variables, with all its prefixes (best shown first)."""
    groups: dict[tuple[str, frozenset[str]], list[WeightSet]] = {}
    for s in sets:
        groups.setdefault((s.kind, s.file_names()), []).append(s)
    out = []
    for group in groups.values():
        group.sort(key=lambda s: (s.rank, len(s.prefix), s.prefix))
        prefixes = tuple(dict.fromkeys(p for s in group for p in s.prefixes))
        best = group[0]
        out.append(WeightSet(best.kind, prefixes, best.variables, best.shapes, best.units,
                             best.input_size, best.num_proj, best.use_peepholes,
                             best.use_bias, best.cells, best.rank))
    return out


def find_weight_sets(view: NameView) -> list[WeightSet]:
    """Every LSTM weight set of the file, sorted by shown prefix (multi sets first
    among equals). Cells of a multi set are also listed on their own."""
    singles = []
    for prefix, leaves in _parents(view).items():
        if "kernel" in leaves:
            s = _cell_set(view, prefix, leaves)
            if s is not None:
                singles.append(s)
    singles = _merge(singles)
    multis: dict[str, dict[int, list[tuple[WeightSet, str]]]] = {}
    for s in singles:
        if s.kind != "tf1_cell":
            continue
        for p in s.prefixes:
            m = _MULTI.match(p)
            if m:
                scope = m.group(1) or ""
                # the multi cell's display prefix: the cell's shown prefix less the
                # same number of trailing components
                drop = len(p.split("/")) - (len(scope.split("/")) if scope else 0)
                shown = "/".join(s.prefix.split("/")[:-drop]) if drop else s.prefix
                multis.setdefault(scope, {}).setdefault(int(m.group(2)), []).append((s, shown))
    found = []
    for scope, cells in multis.items():
        n = len(cells)
        if sorted(cells) != list(range(n)) or any(len(v) != 1 for v in cells.values()):
            continue
        ordered = tuple(cells[k][0][0] for k in range(n))
        shown = cells[0][0][1]
        found.append(WeightSet("multi", (shown, scope) if shown != scope else (scope,),
                               cells=ordered, units=ordered[0].units,
                               input_size=ordered[0].input_size,
                               rank=min(c.rank for c in ordered)))
    found = _merge(found)
    return sorted(found + singles, key=lambda s: (s.prefix, s.kind != "multi"))


def sets_at(sets: list[WeightSet], prefix: str) -> list[WeightSet]:
    """The sets known by ``prefix``; if none, those one level below it (``"lstm"``
    names ``"lstm/lstm_cell"``, as users name a Keras layer or a scope)."""
    prefix = prefix.strip("/")
    at = [s for s in sets if prefix in s.prefixes]
    if not at:
        at = [s for s in sets if any(p.startswith(prefix + "/") and "/" not in p[len(prefix) + 1:]
                                     for p in s.prefixes)]
    return at


# ------------------------------------------------------------------- Bidirectional

_DIRECTION = re.compile(r"^(forward|backward)_")


@dataclass(frozen=True)
class BidirectionalPair:
    """The two Keras weight sets of one ``Bidirectional`` layer.

    Keras names them ``<scope>/forward_<layer>/...`` and ``<scope>/backward_<layer>/...``
    (HDF5: ``bidi/bidi/forward_lstm/lstm_cell``), TF2 object checkpoints
    ``<scope>/forward_layer/cell`` and ``.../backward_layer/cell``; ``scopes`` are
    every ``<scope>`` the pair is known by (the first is shown to users).
    """

    forward: WeightSet
    backward: WeightSet
    scopes: tuple[str, ...]

    @property
    def scope(self) -> str:
        return self.scopes[0]


def find_bidirectional_pairs(sets: list[WeightSet]) -> list[BidirectionalPair]:
    """Every (forward, backward) pair of Keras weight sets under one scope: the sets
    whose prefix has a ``forward_*`` / ``backward_*`` component after the same scope,
    one of each."""
    by_scope: dict[str, dict[str, list[WeightSet]]] = {}
    for s in sets:
        if s.kind not in ("keras_lstm", "keras_cudnn"):
            continue
        for p in s.prefixes:
            parts = p.split("/")
            for i, part in enumerate(parts):
                m = _DIRECTION.match(part)
                if m:
                    side = by_scope.setdefault("/".join(parts[:i]), {}).setdefault(
                        m.group(1), [])
                    if s not in side:
                        side.append(s)
                    break
    pairs: dict[tuple[int, int], list[str]] = {}
    found: dict[tuple[int, int], tuple[WeightSet, WeightSet]] = {}
    for scope, sides in by_scope.items():
        fw, bw = sides.get("forward", []), sides.get("backward", [])
        if len(fw) == 1 and len(bw) == 1:
            key = (id(fw[0]), id(bw[0]))
            found[key] = (fw[0], bw[0])
            pairs.setdefault(key, []).append(scope)
    return [BidirectionalPair(*found[k], tuple(v)) for k, v in pairs.items()]
