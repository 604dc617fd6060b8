"""The ``lstmcompat`` command line: ``lstmcompat <subcommand> ...``.

Every subcommand is one row of :data:`SUBCOMMANDS`: its name, its one-line help and
the ``module:function`` that configures its parser (arguments, description, and the
``func`` it runs, as ``parser.set_defaults(func=...)``). A subcommand's module is
imported only when that subcommand is on the command line, so ``lstmcompat --help``
lists them all without loading any, and one subcommand never pays for another's
imports. To add one, add a row.

Exit codes: 0 success, 1 failure (an expected error, :data:`ERRORS`, printed as
``lstmcompat <command>: error: ...`` on stderr, without a traceback), 2 bad usage
(argparse), 130 interrupted (Ctrl-C). Options that mean the same thing are spelled
the same in every subcommand: ``-o``/``--out`` for what a command writes (``OUT``
after ``PATH`` still works for ``convert`` and ``export-onnx``), ``--device`` and
``--seed`` where a command has them (``demo``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# ``module:function`` of this file's own subcommands: ``__name__`` is ``__main__``
# under ``python -m lstmcompat`` (the running module, not a second copy).
_HERE = __name__

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("train a character-level LSTM language model on a bundled text in about a "
             "minute: samples, a saved model that reloads, a loss chart",
             "lstmcompat._demo._cli:configure"),
    "inspect": ("list a checkpoint's or weight file's variables and the LSTM weight sets "
                "in it", "lstmcompat._interop._cli:configure_inspect"),
    "convert": ("convert one LSTM weight set to an lstmcompat .safetensors file "
                "(lstmcompat.load reads it)", "lstmcompat._interop._cli:configure_convert"),
    "export-onnx": ("export a file's LSTM module to ONNX (one LSTM node per layer where "
                    "exact, else a Scan loop)", "lstmcompat._onnx._cli:configure"),
    "bench": ("run the benchmark suite (lstmcompat against torch.nn.LSTM; writes "
              "RESULTS.md and, with matplotlib, results.png)",
              "lstmcompat.bench.suite:configure"),
    "extension": ("build (if needed) and load the fused kernel's C++ extension, and say "
                  "from where", f"{_HERE}:configure_extension"),
}


#: The errors a command reports as a failure (exit code 1, the message on stderr);
#: anything else is a bug and keeps its traceback.
ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError, OSError,
                                          RuntimeError, ImportError)


def version_text() -> str:
    """``lstmcompat <version>``, what ``lstmcompat --version`` prints."""
    return f"lstmcompat {importlib.import_module('lstmcompat').__version__}"


def configure_extension(p: argparse.ArgumentParser) -> None:
    """``lstmcompat extension``: build the ``fused`` kernel's extension ahead of time."""
    p.description = ("Build (if needed) the fused kernel's compiled extension and say "
                     "whether it loads, and from where. Exit code 1 when it does not.")
    p.set_defaults(func=_extension)


def _extension(args: argparse.Namespace) -> int:
    from lstmcompat._engine.fused import _build, _extension

    ok, why = _extension.status()
    print(why)
    if _build.last_build_seconds is not None:
        print(f"built in {_build.last_build_seconds:.1f} s")
    return 0 if ok else 1


def _configurer(target: str) -> Callable[[argparse.ArgumentParser], None]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The command line's parser, with only the subcommand named in ``argv`` configured
    (the top-level parser has no options but ``--help``: the first word that is not an
    option is the subcommand)."""
    parser = argparse.ArgumentParser(
        prog="lstmcompat",
        description="lstmcompat command line tools (TensorFlow 1.x / Keras v1 LSTMs on "
                    "PyTorch). Start with `lstmcompat demo`.",
        epilog="`lstmcompat COMMAND --help` gives each command's options. Exit codes: 0 "
               "success, 1 failure (the reason on stderr), 2 bad usage, 130 interrupted.")
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (help_text, target) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _configurer(target)(p)
    return parser


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and len(e.args) == 1:
        return str(e.args[0])  # str(KeyError) is the key's repr
    return str(e) or type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lstmcompat ARGV...``; the exit code.

    Returns 0 on success and 1 on an expected failure (:data:`ERRORS`: a file that
    does not exist or cannot be read, a bad value), its message on stderr as
    ``lstmcompat <command>: error: <message>``; 130 after Ctrl-C. ``--help``,
    ``--version`` and bad usage exit through argparse (``SystemExit`` with code 0,
    or 2 and the usage on stderr).

    Examples:
        >>> from lstmcompat.__main__ import main
        >>> main(["inspect", "no-such-file"])  # doctest: +SKIP
        1
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser_for(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"lstmcompat {args.command}: interrupted", file=sys.stderr)
        return 130
    except ERRORS as e:
        print(f"lstmcompat {args.command}: error: {_message(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
