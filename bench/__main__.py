"""``python -m bench``: :mod:`lstmcompat.bench.suite`, writing the results into ``bench/``."""

from pathlib import Path

from lstmcompat.bench.suite import main

if __name__ == "__main__":
    raise SystemExit(main(out=str(Path(__file__).resolve().parent)))
