"""``python -m lstmcompat.bench``: run the benchmark suite (see :mod:`lstmcompat.bench.suite`)."""

from lstmcompat.bench.suite import main

if __name__ == "__main__":
    raise SystemExit(main())
