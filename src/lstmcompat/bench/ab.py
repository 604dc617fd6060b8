"""Before/after in one run: the suite's targets for two source trees, measured in
alternating processes on the same machine (this VM's noise hits both alike).

    python -m lstmcompat.bench.ab OLD_SRC NEW_SRC [--rounds 5] [--repeats 2] [--out FILE.md]

(``python -m bench.ab`` in a source checkout.) ``OLD_SRC`` and ``NEW_SRC`` are ``src``
folders (e.g. of a ``git worktree`` of the old revision); the benchmark code is this
one's (:mod:`.suite`, loaded from its file, so an old tree need not have it). Each repeat runs the whole
suite once per tree (old, new, old, new, ...); a target's ratio is the best
of its repeats, so one noisy process does not decide. A second table gives each
lstmcompat variant's own time (min over all rounds and repeats), which the noise
of the ``torch.nn.LSTM`` denominators does not touch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("_lstmcompat_bench_suite", {suite!r})
S = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(S)  # its lstmcompat: the tree on PYTHONPATH
import lstmcompat
shapes = {shapes!r} or S.SHAPES
rows = S.bench_shapes(shapes, {rounds}, lambda s: None)
stream = S.bench_streaming({rounds}, steps={steps})
print(json.dumps(dict(targets=S.targets(rows, stream, []), rows=rows, stream=stream,
                      lstmcompat=lstmcompat.__file__)))
"""


def run_tree(src: str, rounds: int, shapes: list[tuple[int, int, int, int]] | None = None,
             steps: int = 2000) -> dict:
    """The suite's results for the ``lstmcompat`` of the folder ``src`` (default shapes
    unless given; ``steps`` per streaming round); ``"lstmcompat"``: the file it ran."""
    env = {**os.environ, "PYTHONPATH": src}
    code = WORKER.format(suite=str(HERE / "suite.py"), rounds=rounds, shapes=shapes,
                         steps=steps)
    with tempfile.TemporaryDirectory() as tmp:  # not this checkout's folder on sys.path
        proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp,
                              capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lstmcompat.bench.ab",
                                description=__doc__.split("\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    best: dict[str, dict[str, tuple[float, str]]] = {"old": {}, "new": {}}
    times: dict[str, dict[str, float]] = {"old": {}, "new": {}}
    for r in range(a.repeats):
        for tag, src in (("old", a.old), ("new", a.new)):
            print(f"repeat {r + 1}/{a.repeats}: {tag} ({src})", file=sys.stderr, flush=True)
            res = run_tree(src, a.rounds)
            for t in res["targets"]:
                key = f"{t['what']} at {tuple(t['shape'])}"
                better = min if t["better"] == "lower" else max
                cur = best[tag].get(key)
                value = t["ratio"] if cur is None else better(cur[0], t["ratio"])
                limit = ("<= " if t["better"] == "lower" else ">= ") + f"{t['limit']:.2f}"
                best[tag][key] = (value, limit)
            # each variant's own time: free of the noise of the nn.LSTM denominators
            for row in res["rows"]:
                if row["variant"].startswith("nn"):
                    continue
                key = f"{row['variant']} {row['mode']} at {tuple(row['shape'])}"
                times[tag][key] = min(times[tag].get(key, float("inf")), row["min"])
            for row in res["stream"]:
                if not row["variant"].startswith("nn"):
                    key = f"streaming {row['variant']}"
                    times[tag][key] = min(times[tag].get(key, float("inf")), row["min"])
    lines = ["| target | limit | old | new | new / old |", "|---|---|---|---|---|"]
    for what, (new, limit) in best["new"].items():
        old = best["old"].get(what, (float("nan"), ""))[0]
        lines.append(f"| {what} | {limit} | {old:.2f} | {new:.2f} | {new / old:.2f} |")
    lines += ["", "| lstmcompat's own time (min, ms) | old | new | new / old |", "|---|---|---|---|"]
    for what, new in times["new"].items():
        old = times["old"].get(what, float("nan"))
        lines.append(f"| {what} | {old * 1e3:.3f} | {new * 1e3:.3f} | {new / old:.2f} |")
    md = "\n".join(lines)
    print(md)
    if a.out:
        Path(a.out).write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
