"""``lstmcompat inspect`` and ``lstmcompat convert``: weight files from the command line.

Exit codes: 0 success, 1 a file that cannot be read or converted (the reason on
stderr), 2 bad usage (argparse).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._names import NameView, WeightSet, find_weight_sets, sets_at
from ._source import Source, open_source

_KINDS = {"tf_checkpoint": "TF checkpoint", "keras_h5": "Keras (tf_keras) HDF5 file",
          "keras3_weights": "Keras 3 weights file", "keras_archive": "Keras 3 .keras archive",
          "lstmcompat": "safetensors file"}


class CommandError(Exception):
    """A failure to report on stderr with exit code 1."""


def _dtype(source: Source, name: str) -> str:
    get = getattr(source, "dtype_name", None)
    return get(name) if get is not None else "?"


def top_level(sets: list[WeightSet]) -> list[WeightSet]:
    """The sets that are not cells of a listed multi set."""
    inner = {c.file_names() for s in sets if s.kind == "multi" for c in s.cells}
    return [s for s in sets if s.kind == "multi" or s.file_names() not in inner]


def inspect_text(path: Any) -> str:
    """What ``lstmcompat inspect PATH`` prints."""
    source = open_source(path)
    variables = source.variables()
    lines = [f"{source.path}: {_KINDS.get(source.kind, source.kind)}, "
             f"{len(variables)} variables", ""]
    width = max((len(n) for n, _ in variables), default=0)
    for name, shape in variables:
        lines.append(f"  {name:<{width}}  {str(tuple(shape)):<14} {_dtype(source, name)}")
    sets = find_weight_sets(NameView(source))
    lines += ["", "LSTM weight sets:" if sets else "No LSTM weight set recognised."]
    shown = repr(str(path))
    for s in sets:
        also = f" (also {', '.join(repr(p) for p in s.prefixes[1:])})" if len(s.prefixes) > 1 else ""
        lines.append(f"  prefix {s.prefix!r}{also}: {s.describe()}")
        if s.kind == "multi":
            for k, c in enumerate(s.cells):
                lines.append(f"    cell {k}: {c.describe()}")
        lines.append(f"    lstmcompat.restore({s.constructor()}, {shown}, prefix={s.prefix!r})")
    saved = source.module_config()
    if saved:
        lines += ["", f"Saved lstmcompat module: {saved['class']} (its config and weights): "
                      f"lstmcompat.load({shown})"]
    layers = source.keras_layers()
    if layers:
        lines += ["", "Keras layers (lstmcompat.load_keras_layers):"]
        for layer in layers:
            lines.append(f"  {layer.name}: {layer.class_name}")
    if sets and not saved:
        lines += ["", "Files do not store forget_bias, clips or activations: the module's own "
                      "are used (pass them to the constructor)."]
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    print(inspect_text(args.path))
    return 0


def _choose(sets: list[WeightSet], prefix: str | None, path: str) -> WeightSet:
    if prefix is not None:
        found = sets_at(sets, prefix)
        if len(found) > 1:
            raise CommandError(f"prefix {prefix!r} names {len(found)} weight sets in {path}: "
                               + ", ".join(repr(s.prefix) for s in found))
        if not found:
            raise CommandError(f"no LSTM weight set at prefix {prefix!r} in {path}; sets: "
                               + (", ".join(repr(s.prefix) for s in sets) or "none"))
        return found[0]
    tops = top_level(sets)
    if len(tops) != 1:
        raise CommandError(
            (f"{len(tops)} LSTM weight sets in {path}; choose one with --prefix: "
             + ", ".join(repr(s.prefix) for s in tops)) if tops
            else f"no LSTM weight set recognised in {path} (see `lstmcompat inspect`)")
    return tops[0]


def _cell_kwargs(args: argparse.Namespace, ws: WeightSet) -> dict[str, Any]:
    kw: dict[str, Any] = {"use_peepholes": ws.use_peepholes, "num_proj": ws.num_proj,
                          "forget_bias": args.forget_bias}
    if args.cell_clip is not None:
        kw["cell_clip"] = args.cell_clip
    if args.proj_clip is not None:
        kw["proj_clip"] = args.proj_clip
    if args.activation is not None:
        kw["activation"] = args.activation
    return kw


def build_module(args: argparse.Namespace) -> Any:
    """The module ``convert`` writes: the chosen weight set restored into the front-end
    its file was written by, then moved to ``--api`` when that differs."""
    from .. import LSTM, LSTMCell, MultiRNNCell
    from ._convert import keras_to_tf1, tf1_to_keras
    from ._restore import restore

    source = open_source(args.path)
    ws = _choose(find_weight_sets(NameView(source)), args.prefix, str(source.path))
    native = "keras" if ws.kind in ("keras_lstm", "keras_cudnn") else "tf1"
    api = args.api or native
    if ws.kind == "multi":
        if api != "tf1":
            raise CommandError("a MultiRNNCell converts to --api tf1 only (a stack of Keras "
                               "layers is not one module)")
        module = MultiRNNCell([LSTMCell(c.units, **_cell_kwargs(args, c)) for c in ws.cells])
    elif ws.kind == "tf1_cell":
        module = LSTMCell(ws.units, **_cell_kwargs(args, ws))
    elif ws.kind == "keras_cudnn":
        from .. import CuDNNLSTM
        if api != native:
            raise CommandError("CuDNNLSTM weights convert to --api keras only (restore them "
                               "into a sigmoid-gated lstmcompat.LSTM to convert them)")
        module = CuDNNLSTM(ws.units)
    else:
        kw: dict[str, Any] = {"use_bias": ws.use_bias}
        if args.activation is not None:
            kw["activation"] = args.activation
        if args.recurrent_activation is not None:
            kw["recurrent_activation"] = args.recurrent_activation
        module = LSTM(ws.units, **kw)
    restore(module, args.path, prefix=ws.prefix)
    if api == native:
        return module
    if isinstance(module, LSTM):
        if args.recurrent_activation is None:
            raise CommandError("--api tf1 from Keras weights: a TF1 LSTMCell's gates are "
                               "sigmoid, and Keras files do not store the recurrent activation; "
                               "pass --recurrent-activation sigmoid if the model used sigmoid")
        return keras_to_tf1(module)
    return tf1_to_keras(module)


def _convert(args: argparse.Namespace) -> int:
    from ._save import save

    module = build_module(args)
    save(module, args.out)
    print(f"wrote {args.out}: {type(module).__name__} ({module!r})")
    print(f"load it with: lstmcompat.load({str(args.out)!r})")
    return 0


def guard(fn):
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (CommandError, ValueError, OSError, TypeError, ModuleNotFoundError) as e:
            print(f"lstmcompat {args.command}: error: {e}", file=sys.stderr)
            return 1
    return run


def configure_inspect(p: argparse.ArgumentParser) -> None:
    """The ``lstmcompat inspect`` subcommand (listed in ``lstmcompat.__main__``)."""
    p.description = ("List the variables (name, shape, dtype) of a TF checkpoint, Keras "
                     "HDF5/.keras file or lstmcompat file, then each LSTM weight set "
                     "recognised, with the restore call to use.")
    p.add_argument("path", help="checkpoint prefix or directory, .h5, .keras, .weights.h5 or "
                                ".safetensors file")
    p.set_defaults(func=guard(_inspect))


def configure_convert(p: argparse.ArgumentParser) -> None:
    """The ``lstmcompat convert`` subcommand (listed in ``lstmcompat.__main__``)."""
    p.description = ("Restore one LSTM weight set of PATH into an lstmcompat module and "
                     "save it (safetensors + config).")
    p.add_argument("path", help="checkpoint prefix or directory, or a Keras/lstmcompat file")
    add_out_argument(p, "the .safetensors file to write (atomically)")
    add_module_arguments(p)
    p.set_defaults(func=guard(with_out(p, _convert)))


def add_out_argument(p: argparse.ArgumentParser, help_text: str) -> None:
    """The file a command writes: ``OUT`` after ``PATH`` (as documented first) or
    ``-o``/``--out`` (every command's spelling); :func:`with_out` requires one."""
    p.add_argument("out_positional", nargs="?", metavar="OUT", help=help_text)
    p.add_argument("-o", "--out", help="the same as OUT")


def with_out(p: argparse.ArgumentParser, fn):
    """``fn`` with ``args.out`` set from ``OUT`` or ``-o``/``--out`` (a usage error,
    exit code 2, when neither or two different ones are given)."""
    def run(args: argparse.Namespace) -> int:
        positional = args.out_positional
        if positional is not None and args.out is not None and positional != args.out:
            p.error(f"OUT {positional!r} and -o/--out {args.out!r} differ: give one")
        if positional is None and args.out is None:
            p.error("the file to write is required: OUT or -o/--out")
        args.out = args.out if args.out is not None else positional
        return fn(args)
    return run


def module_from(args: argparse.Namespace) -> Any:
    """The module a file holds for a command: a file written by ``save`` loads as it was
    saved (every hyperparameter kept); any other file's weight set is restored into a
    module built from :func:`add_module_arguments`' options (:func:`build_module`)."""
    from ._save import load

    if open_source(args.path).module_config() is not None:
        return load(args.path)
    return build_module(args)


def add_module_arguments(p: argparse.ArgumentParser) -> None:
    """The options that say which weight set of a file to use and the hyperparameters
    files do not store (``convert``, ``export-onnx``)."""
    p.add_argument("--prefix", help="the weight set's prefix (see `lstmcompat inspect`); "
                                    "needed when the file holds several")
    p.add_argument("--api", choices=("keras", "tf1"),
                   help="the module to write: a Keras LSTM or a TF1 LSTMCell (default: the "
                        "file's own kind)")
    p.add_argument("--forget-bias", type=float, default=1.0,
                   help="the TF1 cell's forget_bias (not stored in checkpoints; default 1.0)")
    p.add_argument("--cell-clip", type=float, help="the TF1 cell's cell_clip")
    p.add_argument("--proj-clip", type=float, help="the TF1 cell's proj_clip")
    p.add_argument("--activation", help="the cell activation (default tanh)")
    p.add_argument("--recurrent-activation",
                   help="a Keras LSTM's recurrent activation (default hard_sigmoid, "
                        "tf.compat.v1's)")
