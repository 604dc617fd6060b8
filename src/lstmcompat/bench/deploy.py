"""Benchmark rows for deployment: onnxruntime running :func:`lstmcompat.export_onnx`'s two
forms (one ``LSTM`` node per layer, the ``Scan`` loop) and ``torch.compile``, each
against the eager PyTorch module, inference (``torch.no_grad``), rounds interleaved,
each round the fastest of five consecutive calls.

Variants, on one shape ``(batch, time, input, units)``: the Keras ``LSTM`` (default
``hard_sigmoid``, ``return_sequences``) and the TF1 ``dynamic_rnn`` over an
``LSTMCell`` with peepholes (both export as one node, and as a loop with
``form="loop"``), and the TF1 cell with a projection and clips (a loop only).
Without onnxruntime the ONNX rows are left out.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import lstmcompat as L


def _time(f: Callable[[], object], calls: int = 5) -> float:
    """The fastest of ``calls`` consecutive calls: one call takes a few milliseconds,
    about the length of this VM's scheduling stalls, which a single call would catch."""
    best = float("inf")
    for _ in range(calls):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def _modules(D: int, U: int) -> dict[str, tuple[torch.nn.Module, Callable, dict]]:
    torch.manual_seed(0)
    keras = L.LSTM(U, return_sequences=True, input_shape=(None, D))
    peep = L.LSTMCell(U, use_peepholes=True)
    proj = L.LSTMCell(U, use_peepholes=True, num_proj=U // 2, cell_clip=3.0, proj_clip=2.0)
    def tf1(cell):
        return lambda x: L.dynamic_rnn(cell, x, dtype=torch.float32)[0]
    return {"keras_hard": (keras, keras, {}), "tf1_peephole": (peep, tf1(peep), {}),
            "tf1_proj_clip": (proj, tf1(proj), {})}


def bench_deploy(shape: tuple[int, int, int, int], rounds: int,
                 log: Callable[[str], None]) -> list[dict]:
    """Rows ``{variant, runner, form, min, median, ratio}`` (ratio: min time over the
    eager module's min time; lower is better)."""
    B, T, D, U = shape
    x = torch.randn(B, T, D)
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
        log("  onnxruntime not installed: no ONNX rows (pip install lstmcompat[onnx])")
    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp())
    for name, (module, call, _) in _modules(D, U).items():
        with torch.no_grad():
            call(x)  # built
        runners: dict[tuple[str, str], Callable[[], object]] = {}

        def eager(call=call):
            with torch.no_grad():
                return call(x)

        runners[("eager", "-")] = eager
        compiled = torch.compile(call, fullgraph=True, dynamic=False)
        with torch.no_grad():
            compiled(x)  # compiled here, not in the first round
        runners[("torch.compile", "-")] = lambda compiled=compiled: eager(compiled)
        if ort is not None:
            for form in ("node", "loop"):
                try:
                    rep = L.export_onnx(module, tmp / f"{name}_{form}.onnx", x, form=form)
                except ValueError:
                    continue  # no exact node for this configuration
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = torch.get_num_threads()
                sess = ort.InferenceSession(rep.path, opts, providers=["CPUExecutionProvider"])
                feed = {"x": x.numpy()}
                sess.run(None, feed)
                runners[("onnxruntime", form)] = (lambda s=sess, f=feed: s.run(None, f))
        times: dict[tuple[str, str], list[float]] = {k: [] for k in runners}
        for _ in range(rounds):
            for k, f in runners.items():
                times[k].append(_time(f))
        base = min(times[("eager", "-")])
        for (runner, form), ts in times.items():
            rows.append(dict(shape=list(shape), variant=name, runner=runner, form=form,
                             min=min(ts), median=statistics.median(ts), ratio=min(ts) / base))
        log(f"  {name}: " + ", ".join(f"{r} {f} {min(ts) * 1e3:.1f}ms"
                                      for (r, f), ts in times.items()))
    torch._dynamo.reset()
    return rows


def markdown(rows: list[dict]) -> list[str]:
    """The RESULTS.md section for :func:`bench_deploy`'s rows."""
    if not rows:
        return []
    shape = tuple(rows[0]["shape"])
    lines = ["", f"## Deployment (inference at {shape}; ms, min / median; ratio to eager)", "",
             "| variant | runner | ONNX form | time | / eager |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['runner']} | {r['form']} | "
                     f"{r['min'] * 1e3:.2f} / {r['median'] * 1e3:.2f} | {r['ratio']:.2f}x |")
    return lines
