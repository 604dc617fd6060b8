"""The ``lstmcompat`` command line: ``lstmcompat <subcommand> ...``.

Subcommands (argparse; add more with :func:`_subcommands`):

* ``inspect PATH``: a checkpoint's or weight file's variables and the LSTM weight
  sets in it, with the ``restore`` call to use.
* ``convert PATH OUT.safetensors``: one weight set as an lstmcompat file.

* ``bench``: run the benchmark suite of a source checkout (``bench/``; see
  ``bench/suite.py``), writing ``bench/RESULTS.md`` and a chart.
* ``extension``: build (if needed) the ``fused`` kernel's compiled extension
  and say whether it loads, and from where.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _import_bench():
    """The ``bench`` package: importable from the working directory, or found
    next to the ``src/`` folder this package was loaded from."""
    try:
        import bench.suite as suite

        return suite
    except ImportError:
        root = Path(__file__).resolve().parents[2]
        if (root / "bench" / "suite.py").exists():
            sys.path.insert(0, str(root))
            import bench.suite as suite

            return suite
    raise SystemExit("lstmcompat bench: the benchmark suite ships with the source "
                     "checkout (bench/); run it from there: python -m bench")


def _bench(args: argparse.Namespace) -> int:
    return _import_bench().run(args)


def _extension(args: argparse.Namespace) -> int:
    from lstmcompat._engine.fused import _build

    ok, why = _build.status()
    print(why)
    if _build.last_build_seconds is not None:
        print(f"built in {_build.last_build_seconds:.1f} s")
    return 0 if ok else 1


def _subcommands(sub: argparse._SubParsersAction) -> None:
    from lstmcompat._interop._cli import add_subcommands

    add_subcommands(sub)
    p = sub.add_parser("bench", help="run the benchmark suite (source checkout)")
    try:
        _import_bench().add_arguments(p)
    except SystemExit:
        pass
    p.set_defaults(func=_bench)
    p = sub.add_parser("extension", help="build/load the fused kernel's C++ extension")
    p.set_defaults(func=_extension)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lstmcompat",
                                     description="lstmcompat command line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    _subcommands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
