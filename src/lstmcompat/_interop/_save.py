"""``save(module, path)`` / ``load(path)``: lstmcompat's own file format.

A saved module is a safetensors file (see :mod:`._safetensors`): its weights as
tensors under TensorFlow's names relative to the module, and in the metadata
(all strings)::

    format              "lstmcompat"
    format_version      "1"
    class               the public class name ("LSTM", "LSTMCell", "MultiRNNCell")
    config              JSON: get_config() (MultiRNNCell: {"cells": [...], "state_is_tuple"})
    input_depth         the input feature size the weights were built for (absent: unbuilt)
    dtype               the weights' dtype name (absent: unbuilt)
    lstmcompat_version  the writer's version

Tensor names: ``LSTM`` and ``CuDNNLSTM`` -> ``kernel``, ``recurrent_kernel``, ``bias``;
``Bidirectional`` -> ``forward_layer/`` and ``backward_layer/`` + those;
``LSTMCell`` -> ``kernel``, ``bias``, ``w_f_diag``, ``w_i_diag``, ``w_o_diag``,
``projection/kernel`` (``BasicLSTMCell``, ``LSTMBlockCell``, ``LSTMBlockFusedCell``,
``CudnnCompatibleLSTMCell``: the same names, in their ``weights`` order); ``MultiRNNCell`` -> ``cell_<k>/`` + the cell's names
(recursively; a cell passed twice is stored once, under its first index, as
TensorFlow names it).

Loading rebuilds the module through :data:`_KINDS` (class name -> how to save
and rebuild it), so further classes add themselves with :func:`register_module`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .._dtypes import dtype_name
from ._safetensors import SafetensorsFile, write_file
from ._source import _check_path

__all__ = ["load", "save", "register_module"]

FORMAT = "lstmcompat"
FORMAT_VERSION = "1"
#: Most cells a file may describe (all MultiRNNCells together): a hostile config of
#: millions of tiny entries is refused instead of built one module at a time.
MAX_CELLS = 10_000



class Tensors:
    """The saved tensors a rebuild reads, by module-relative name: their shapes first
    (checked against the module the config describes before anything is built, so
    that nothing is allocated that the file does not hold), then their values."""

    def __init__(self, source: SafetensorsFile, prefix: str = "",
                 used: set[str] | None = None, cells: list[int] | None = None) -> None:
        self._source = source
        self._prefix = prefix
        self._shapes = dict(source.variables())
        self.used: set[str] = set() if used is None else used
        self._cells = [0] if cells is None else cells  # shared count of cells described

    def sub(self, prefix: str) -> Tensors:
        """The tensors under ``prefix`` (``"cell_0/"``)."""
        return Tensors(self._source, self._prefix + prefix, self.used, self._cells)

    def count_cells(self, n: int) -> None:
        """Refuse a file describing more than :data:`MAX_CELLS` cells in all."""
        self._cells[0] += n
        if self._cells[0] > MAX_CELLS:
            raise ValueError(f"the config describes more than {MAX_CELLS} cells")

    def check(self, expected: list[tuple[str, tuple[int, ...]]]) -> None:
        """Every ``(name, shape)`` must be in the file with that shape."""
        for name, shape in expected:
            full = self._prefix + name
            if full not in self._shapes:
                raise ValueError(f"the file has no tensor {full!r}, which its config needs")
            if tuple(self._shapes[full]) != tuple(shape):
                raise ValueError(f"tensor {full!r} has shape {tuple(self._shapes[full])}; the "
                                 f"module its config describes needs {tuple(shape)}")

    def get(self, name: str) -> torch.Tensor:
        full = self._prefix + name
        if full not in self._shapes:
            raise ValueError(f"the file has no tensor {full!r}, which its config needs")
        self.used.add(full)
        return self._source.tensor(full)


@dataclass(frozen=True)
class ModuleKind:
    """How one class is saved and rebuilt.

    Attributes:
        name: the class name written in the metadata's ``class``.
        cls: the class (``save`` matches ``type(module) is cls``: a subclass is
            not silently saved as its base).
        describe: ``module -> (config, input_depth)``: a JSON-serialisable config
            and the input size the weights were built for (``None``: unbuilt).
        tensors: ``module -> [(name, tensor), ...]``, names relative to the module.
        rebuild: ``(config, input_depth, tensors) -> module``, built with the
            weights copied from ``tensors`` (:class:`Tensors`: check their shapes
            before building) when ``input_depth`` is not ``None``.
    """

    name: str
    cls: type
    describe: Callable[[Any], tuple[Any, int | None]]
    tensors: Callable[[Any], list[tuple[str, torch.Tensor]]]
    rebuild: Callable[[Any, int | None, Tensors], torch.nn.Module]


_KINDS: dict[str, ModuleKind] = {}


def register_module(kind: ModuleKind) -> None:
    """Make ``save``/``load`` handle one more class."""
    _KINDS[kind.name] = kind


def _kind_of(module: Any) -> ModuleKind:
    _register_builtin()
    for kind in _KINDS.values():
        if type(module) is kind.cls:
            return kind
    raise TypeError(f"`module` must be one of {', '.join(_KINDS)} (the modules lstmcompat "
                    f"can save), got {type(module).__name__}.")


# ----------------------------------------------------------------------------- configs


def _unsavable(cls: str, key: str, value: Any, why: str) -> ValueError:
    return ValueError(f"cannot save this {cls}: its `{key}` ({value!r}) {why}; pass a "
                      f"Keras name or a config dict instead of a Python callable.")


def _has_function(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get("class_name") == "function":
            return True
        return any(_has_function(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_function(v) for v in value)
    return False


def _getters() -> dict[str, Callable[[Any], Any]]:
    """How each serialised option is read back, by the end of its name."""
    from .._keras import constraints, initializers, regularizers
    return {"initializer": initializers.get, "regularizer": regularizers.get,
            "constraint": constraints.get}


def _check_config(cls: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` after a JSON round trip, every value checked to survive it (and each
    initializer, regularizer and constraint to be readable back by name)."""
    out = {}
    getters = _getters()
    for key, value in config.items():
        if _has_function(value):
            raise _unsavable(cls, key, value, "is a plain function, which a file cannot "
                                              "name")
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            raise _unsavable(cls, key, value, "is not JSON-serialisable") from None
        out[key] = json.loads(text)
        getter = getters.get(key.rsplit("_", 1)[-1])
        if getter is not None and out[key] is not None:
            try:
                getter(out[key])
            except (TypeError, ValueError) as e:
                raise _unsavable(cls, key, value, f"cannot be read back by name ({e})") from e
    return out


def _trial(cls: str, build: Callable[[], Any]) -> None:
    """Refuse a config that would not rebuild (a custom initializer class, ...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build()
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot save this {cls}: its config does not rebuild it: {e}") from e


def _zeros(shape: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.zeros(tuple(shape), dtype=dtype)


@contextlib.contextmanager
def _zero_initializers(module: Any, attrs: tuple[str, ...]) -> Iterator[None]:
    """Build with zeros (the file's values replace them): no initializer's cost (an
    orthogonal QR), no draw from torch's global RNG."""
    saved = {a: getattr(module, a) for a in attrs}
    try:
        for a in attrs:
            setattr(module, a, _zeros)
        yield
    finally:
        for a, v in saved.items():
            setattr(module, a, v)


def _copy_into(params: list[tuple[str, torch.nn.Parameter | None]], tensors: Tensors) -> None:
    with torch.no_grad():
        for name, p in params:
            if p is None:
                continue
            t = tensors.get(name)
            if tuple(t.shape) != tuple(p.shape) or t.dtype != p.dtype:
                raise ValueError(f"tensor {name!r} has shape {tuple(t.shape)} and dtype "
                                 f"{dtype_name(t.dtype)}; the module built from the file's "
                                 f"config needs {tuple(p.shape)} {dtype_name(p.dtype)}")
            p.copy_(t)


# -------------------------------------------------------------------------------- LSTM


def _lstm_describe(layer: Any) -> tuple[dict[str, Any], int | None]:
    from .._keras.lstm import LSTM
    config = _check_config("LSTM", layer.get_config())
    trial = {k: v for k, v in config.items() if k != "batch_input_shape"}  # no weights
    _trial("LSTM", lambda: LSTM.from_config(trial))
    return config, layer._input_features if layer.built else None


def _lstm_tensors(layer: Any) -> list[tuple[str, torch.Tensor]]:
    return [(n, p) for n, p in (("kernel", layer.kernel),
                                ("recurrent_kernel", layer.recurrent_kernel),
                                ("bias", layer.bias)) if p is not None]


def _lstm_rebuild(config: Any, depth: int | None, tensors: Tensors) -> torch.nn.Module:
    from .._args import config_dict
    from .._keras.lstm import LSTM, _batch_input_shape
    config = config_dict(config)
    shape = config.pop("batch_input_shape", None)  # built below, with zeros
    layer = LSTM.from_config(config)
    if shape is not None:
        layer.batch_input_shape = _batch_input_shape(None, None, None, shape, None)
        known = layer.batch_input_shape[-1]
        if known is not None and known != depth:
            raise ValueError(f"`input_depth` {depth} disagrees with the config's "
                             f"batch_input_shape {shape}")
    if depth is None:
        return layer
    u = layer.units
    expected = [("kernel", (depth, 4 * u)), ("recurrent_kernel", (u, 4 * u))]
    if layer.use_bias:
        expected.append(("bias", (4 * u,)))
    tensors.check(expected)
    with _zero_initializers(layer, ("kernel_initializer", "recurrent_initializer",
                                    "bias_initializer")):
        layer.build(layer.batch_input_shape if shape is not None else (None, None, depth))
    _copy_into([("kernel", layer.kernel), ("recurrent_kernel", layer.recurrent_kernel),
                ("bias", layer.bias)], tensors)
    return layer


# ------------------------------------------------------------ CuDNNLSTM, Bidirectional


def _cudnn_describe(layer: Any) -> tuple[dict[str, Any], int | None]:
    from .._keras.cudnn_lstm import CuDNNLSTM
    config = _check_config("CuDNNLSTM", layer.get_config())
    trial = {k: v for k, v in config.items() if k != "batch_input_shape"}  # no weights
    _trial("CuDNNLSTM", lambda: CuDNNLSTM.from_config(trial))
    return config, layer._input_features if layer.built else None


def _cudnn_rebuild(config: Any, depth: int | None, tensors: Tensors) -> torch.nn.Module:
    from .._args import config_dict
    from .._keras.cudnn_lstm import CuDNNLSTM
    config = config_dict(config)
    shape = config.pop("batch_input_shape", None)  # built below, with zeros
    layer = CuDNNLSTM.from_config(config)
    if shape is not None:
        layer.batch_input_shape = tuple(shape)
        if len(shape) == 3 and shape[-1] is not None and shape[-1] != depth:
            raise ValueError(f"`input_depth` {depth} disagrees with the config's "
                             f"batch_input_shape {shape}")
    if depth is None:
        return layer
    u = layer.units
    tensors.check([("kernel", (depth, 4 * u)), ("recurrent_kernel", (u, 4 * u)),
                   ("bias", (8 * u,))])
    with _zero_initializers(layer, ("kernel_initializer", "recurrent_initializer",
                                    "bias_initializer")):
        built = tuple(shape) if shape is not None and len(shape) == 3 else None
        layer.build(built if built is not None else (None, None, depth))
    _copy_into([("kernel", layer.kernel), ("recurrent_kernel", layer.recurrent_kernel),
                ("bias", layer.bias)], tensors)
    return layer


def _bidi_describe(bi: Any) -> tuple[dict[str, Any], int | None]:
    from .._keras.bidirectional import Bidirectional
    config = _check_config("Bidirectional", bi.get_config())
    with torch.random.fork_rng(devices=[]):  # a trial build draws its initial weights
        _trial("Bidirectional", lambda: Bidirectional.from_config(config))
    built = [la for la in (bi.forward_layer, bi.backward_layer) if la.built]
    return config, built[0]._input_features if built else None  # half built: that half's


def _bidi_tensors(bi: Any) -> list[tuple[str, torch.Tensor]]:
    return [(f"{side}/{n}", t) for side, layer in (("forward_layer", bi.forward_layer),
                                                   ("backward_layer", bi.backward_layer))
            for n, t in _lstm_tensors(layer)]


def _bidi_rebuild(config: Any, depth: int | None, tensors: Tensors) -> torch.nn.Module:
    from .._keras.bidirectional import Bidirectional
    with torch.random.fork_rng(devices=[]):  # initial weights are replaced by the file's
        bi = Bidirectional.from_config(config)
        if depth is None:
            return bi
        expected = []
        sides = [(side, layer) for side, layer in (("forward_layer", bi.forward_layer),
                                                   ("backward_layer", bi.backward_layer))
                 if f"{side}/kernel" in tensors._shapes]  # a half-built one saved one side
        for side, layer in sides:
            u = layer.units
            if layer.built and layer._input_features != depth:
                raise ValueError(f"`input_depth` {depth} disagrees with the {side}'s "
                                 f"batch_input_shape")
            expected += [(f"{side}/kernel", (depth, 4 * u)),
                         (f"{side}/recurrent_kernel", (u, 4 * u))]
            if layer.use_bias:
                expected.append((f"{side}/bias", tuple(layer._bias_shape())))
        tensors.check(expected)
        bi.build((None, None, depth))
    for side, layer in sides:
        _copy_into([(f"{side}/{n}", p) for n, p in (("kernel", layer.kernel),
                                                    ("recurrent_kernel", layer.recurrent_kernel),
                                                    ("bias", layer.bias))], tensors)
    return bi


# ---------------------------------------------------------------------------- LSTMCell

def _cell_config(cell: Any) -> dict[str, Any]:
    from .. import _activations
    from .._keras import initializers
    from .._tf1.graph import AUTO_REUSE
    config = cell.get_config()
    act = config.get("activation")
    if act is not None and not isinstance(act, str):
        name = _activations.canonical_name(act)
        if name is not None:
            config["activation"] = name
    init = config.get("initializer")
    if isinstance(init, initializers.Initializer):
        config["initializer"] = initializers.serialize(init)
    if config.get("reuse") is AUTO_REUSE:
        config["reuse"] = "AUTO_REUSE"
    return config


def _cell_from_config(config: dict[str, Any], cls: type | None = None) -> Any:
    from .._tf1 import LSTMCell
    from .._tf1.graph import AUTO_REUSE
    config = dict(config)
    if config.get("reuse") == "AUTO_REUSE":
        config["reuse"] = AUTO_REUSE
    with warnings.catch_warnings():  # the deprecation warnings were given at first construction
        warnings.simplefilter("ignore", DeprecationWarning)
        return (cls or LSTMCell).from_config(config)


def _cell_describe(cell: Any) -> tuple[dict[str, Any], int | None]:
    name = type(cell).__name__
    config = _check_config(name, _cell_config(cell))
    _trial(name, lambda: _cell_from_config(config, type(cell)))
    return config, cell._input_depth if cell.built else None


def _cell_tensors(cell: Any) -> list[tuple[str, torch.Tensor]]:
    """The weights under their TF names, in TF's creation order (``cell.weights``)."""
    if not cell.built:
        return []
    return [(tf, getattr(cell, attr)) for attr, tf, _, _ in cell._weight_specs(0)]


def _cell_rebuild(config: Any, depth: int | None, tensors: Tensors,
                  cls: type | None = None) -> torch.nn.Module:
    cell = _cell_from_config(config, cls)
    if depth is None:
        return cell
    specs = cell._weight_specs(depth)
    tensors.check([(tf, shape) for _, tf, shape, _ in specs])
    with _zero_initializers(cell, ("_initializer",)):
        cell.build((None, depth))
    _copy_into([(tf, getattr(cell, attr)) for attr, tf, _, _ in specs], tensors)
    return cell


# ------------------------------------------------------------------------ MultiRNNCell


def _multi_describe(multi: Any) -> tuple[dict[str, Any], int | None]:
    cells: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    for k, cell in enumerate(multi.cells):
        if id(cell) in seen:
            cells.append({"same_as": seen[id(cell)]})
            continue
        seen[id(cell)] = k
        kind = _kind_of(cell)
        config, depth = kind.describe(cell)
        cells.append({"class": kind.name, "config": config, "input_depth": depth})
    first = cells[0]
    depth = first.get("input_depth") if multi.built else None
    return {"cells": cells, "state_is_tuple": multi._state_is_tuple}, depth


def _multi_tensors(multi: Any) -> list[tuple[str, torch.Tensor]]:
    out: list[tuple[str, torch.Tensor]] = []
    seen: set[int] = set()
    for k, cell in enumerate(multi.cells):
        if id(cell) in seen:
            continue
        seen.add(id(cell))
        out += [(f"cell_{k}/{n}", t) for n, t in _kind_of(cell).tensors(cell)]
    return out


def _multi_rebuild(config: Any, depth: int | None, tensors: Tensors) -> torch.nn.Module:
    from .._tf1 import MultiRNNCell
    if not isinstance(config, dict) or not isinstance(config.get("cells"), list) \
            or not config["cells"] or not isinstance(config.get("state_is_tuple"), bool):
        raise ValueError("a MultiRNNCell config needs a non-empty `cells` list and a "
                         "boolean `state_is_tuple`")
    tensors.count_cells(len(config["cells"]))
    cells: list[Any] = []
    for k, entry in enumerate(config["cells"]):
        if isinstance(entry, dict) and set(entry) == {"same_as"}:
            ref = entry["same_as"]
            if not isinstance(ref, int) or isinstance(ref, bool) or not 0 <= ref < k:
                raise ValueError(f"cell {k}: `same_as` must name an earlier cell, got {ref!r}")
            cells.append(cells[ref])
            continue
        cells.append(_rebuild_entry(entry, tensors.sub(f"cell_{k}/"), f"cell {k}"))
    with warnings.catch_warnings():  # shared cells: the warning was given when first built
        warnings.simplefilter("ignore", UserWarning)
        multi = MultiRNNCell(cells, state_is_tuple=config["state_is_tuple"])
    if depth is not None:
        multi._dtype = cells[0].dtype
        multi.built = True
    return multi


def _rebuild_entry(entry: Any, tensors: Tensors, where: str) -> torch.nn.Module:
    if not isinstance(entry, dict) or set(entry) != {"class", "config", "input_depth"}:
        raise ValueError(f"{where}: expected {{class, config, input_depth}}, got "
                         f"{_short(entry)}")
    kind = _KINDS.get(entry["class"]) if isinstance(entry["class"], str) else None
    if kind is None:
        raise ValueError(f"{where}: unknown class {entry['class']!r} (known: "
                         f"{', '.join(_KINDS)})")
    return kind.rebuild(entry["config"], _depth(entry["input_depth"], where), tensors)


def _depth(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}: `input_depth` must be a non-negative integer, got "
                         f"{value!r}")
    return value


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


_BUILTIN_DONE = False


def _register_builtin() -> None:
    global _BUILTIN_DONE
    if _BUILTIN_DONE:
        return
    from .._keras.bidirectional import Bidirectional
    from .._keras.cudnn_lstm import CuDNNLSTM
    from .._keras.lstm import LSTM
    from .._tf1 import (
        BasicLSTMCell,
        CudnnCompatibleLSTMCell,
        LSTMBlockCell,
        LSTMBlockFusedCell,
        LSTMCell,
        MultiRNNCell,
    )
    for kind in (ModuleKind("LSTM", LSTM, _lstm_describe, _lstm_tensors, _lstm_rebuild),
                 ModuleKind("LSTMCell", LSTMCell, _cell_describe, _cell_tensors, _cell_rebuild),
                 ModuleKind("MultiRNNCell", MultiRNNCell, _multi_describe, _multi_tensors,
                            _multi_rebuild)):
        _KINDS.setdefault(kind.name, kind)
    from ._save_wrappers import wrapper_kinds
    for kind in wrapper_kinds():
        _KINDS.setdefault(kind.name, kind)
    # The family cells keep LSTMCell's weights (names, shapes) in their own creation order.
    for cls in (BasicLSTMCell, LSTMBlockCell, LSTMBlockFusedCell, CudnnCompatibleLSTMCell):
        _KINDS.setdefault(cls.__name__, ModuleKind(
            cls.__name__, cls, _cell_describe, _cell_tensors,
            functools.partial(_cell_rebuild, cls=cls)))
    for kind in (ModuleKind("CuDNNLSTM", CuDNNLSTM, _cudnn_describe, _lstm_tensors,
                            _cudnn_rebuild),
                 ModuleKind("Bidirectional", Bidirectional, _bidi_describe, _bidi_tensors,
                            _bidi_rebuild)):
        _KINDS.setdefault(kind.name, kind)
    _BUILTIN_DONE = True


# --------------------------------------------------------------------------- public


def _version() -> str:
    from .. import __version__
    return __version__


def save(module: torch.nn.Module, path: Any) -> None:
    """Save a module's config and weights to one safetensors file (no pickle).

    The file holds the weights bit for bit under TensorFlow's names relative to
    the module (``kernel``, ``recurrent_kernel``, ``bias`` for an ``LSTM``;
    ``kernel``, ``bias``, ``w_f_diag``, ``w_i_diag``, ``w_o_diag``,
    ``projection/kernel`` for an ``LSTMCell``; ``cell_<k>/...`` in a
    ``MultiRNNCell``), and in its metadata the class, its ``get_config()`` as
    JSON, the input size and dtype. The ``safetensors`` package (and any other
    safetensors reader) reads it; :func:`load` rebuilds the module from it. An
    unbuilt module saves its config only and loads unbuilt.

    The write is atomic: the file is written to a temporary file in the same
    folder, flushed to disk and renamed over ``path``, so an interrupted save
    leaves any previous file at ``path`` intact (and no temporary file behind).

    Not saved: the states of a stateful ``LSTM`` (as Keras's ``save_weights``;
    a loaded layer starts from zeros), ``engine_kernel``, the variable scope
    and graph a cell was built in, weight sharing with modules outside
    ``module`` (sharing inside a ``MultiRNNCell`` is kept).

    Args:
        module: an :class:`~lstmcompat.LSTM`, :class:`~lstmcompat.LSTMCell` or
            :class:`~lstmcompat.MultiRNNCell` (of those), a
            :class:`~lstmcompat.CuDNNLSTM` or a :class:`~lstmcompat.Bidirectional`.
        path: the file to write (str or ``os.PathLike``); replaced if it exists.

    Raises:
        TypeError: ``module`` is not a class ``save`` supports, or ``path`` is not
            a path.
        ValueError: the config holds something a file cannot name (a plain
            Python function as activation, initializer, regularizer or
            constraint), naming the option; weights on the meta device.
        FileNotFoundError: the folder does not exist.
        OSError: the write failed (nothing is left at ``path`` but what was there).

    Examples:
        >>> import lstmcompat
        >>> layer = lstmcompat.LSTM(4, input_shape=(None, 3))
        >>> lstmcompat.save(layer, "lstm.safetensors")  # doctest: +SKIP
        >>> lstmcompat.load("lstm.safetensors").get_config() == layer.get_config()  # doctest: +SKIP
        True
    """
    kind = _kind_of(module)
    p = _check_path(path)
    config, depth = kind.describe(module)
    tensors = kind.tensors(module)  # none for an unbuilt module
    for name, t in tensors:
        if t.is_meta:
            raise ValueError(f"cannot save weight {name!r}: it is on the meta device (no "
                             f"values); materialise the module first")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": kind.name,
        "config": json.dumps(config),
        "lstmcompat_version": _version(),
    }
    if depth is not None:
        metadata["input_depth"] = str(depth)
    if tensors:
        metadata["dtype"] = dtype_name(tensors[0][1].dtype)
    write_file(p, tensors, metadata)


def module_config(source: SafetensorsFile) -> dict[str, Any] | None:
    """``{"class", "config", "input_depth", "dtype", "lstmcompat_version"}`` of a file
    written by :func:`save`; ``None`` for any other safetensors file.

    Raises:
        ValueError: the metadata says ``format: lstmcompat`` but is not readable
            (unknown ``format_version``, bad JSON, missing keys).
    """
    meta = source.metadata or {}
    if meta.get("format") != FORMAT:
        return None
    where = f"{str(source.path)!r}"
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{where} was written in lstmcompat format version {version!r} "
                         f"(by lstmcompat {meta.get('lstmcompat_version', '?')}); this "
                         f"lstmcompat reads version {FORMAT_VERSION}: upgrade lstmcompat")
    for key in ("class", "config"):
        if key not in meta:
            raise ValueError(f"{where}: its lstmcompat metadata has no `{key}`")
    try:
        config = json.loads(meta["config"])
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{where}: its `config` metadata is not valid JSON ({e})") from None
    depth = None
    if "input_depth" in meta:
        text = meta["input_depth"]
        if not text.isdigit() or len(text) > 18:
            raise ValueError(f"{where}: `input_depth` must be a non-negative integer, got "
                             f"{_short(text)}")
        depth = int(text)
    return {"class": meta["class"], "config": config, "input_depth": depth,
            "dtype": meta.get("dtype"), "lstmcompat_version": meta.get("lstmcompat_version")}


def load(path: Any) -> torch.nn.Module:
    """Rebuild a module saved by :func:`save`: same class, config and weights (bit for
    bit), so the same outputs; on the CPU, in the saved dtype.

    Args:
        path: a file written by :func:`save`.

    Returns:
        The module (``LSTM``, ``LSTMCell`` or ``MultiRNNCell``), built when it was
        saved built.

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: nothing at ``path``.
        ValueError: not a safetensors file, a corrupt one, a safetensors file
            without lstmcompat's metadata (use :func:`lstmcompat.load_variables`
            for those), an unknown class or format version, or weights that do
            not fit the config.

    Examples:
        >>> import lstmcompat
        >>> cell = lstmcompat.load("cell.safetensors")  # doctest: +SKIP
    """
    p = _check_path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{str(p)!r} is a directory, not a file written by "
                                f"lstmcompat.save")
    source = SafetensorsFile(p)
    info = module_config(source)
    if info is None:
        raise ValueError(f"{str(p)!r} is a safetensors file without lstmcompat's metadata "
                         f"(not written by lstmcompat.save): read its tensors with "
                         f"lstmcompat.load_variables, or restore them into a module")
    _register_builtin()
    tensors = Tensors(source)
    entry = {"class": info["class"], "config": info["config"], "input_depth": info["input_depth"]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = _rebuild_entry(entry, tensors, "the saved module")
    except OSError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
            RecursionError) as e:
        # A config that no constructor accepts (every argument is checked there).
        raise ValueError(f"{str(p)!r} does not hold a module lstmcompat can rebuild: "
                         f"{e}") from e
    extra = sorted({n for n, _ in source.variables()} - tensors.used)
    if extra:
        raise ValueError(f"{str(p)!r} holds tensors its config does not use: "
                         f"{', '.join(map(repr, extra[:5]))}{' ...' if len(extra) > 5 else ''}")
    return module

