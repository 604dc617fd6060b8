"""``python -m bench.ab OLD_SRC NEW_SRC``: :mod:`lstmcompat.bench.ab`."""

from lstmcompat.bench.ab import main

if __name__ == "__main__":
    raise SystemExit(main())
