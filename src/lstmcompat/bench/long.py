"""Benchmark rows for long sequences: a training step (forward + backward) at T = 10,000
of the Keras default ``LSTM`` (also with ``checkpoint_steps``: recompute in backward)
and of ``torch.nn.LSTM``, its time, and the bytes kept for backward in all and per step
(``saved_tensors_hooks``, each storage once)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import lstmcompat as L

#: (batch, time, input, units) of the long-sequence rows.
LONG_SHAPE = (16, 10_000, 32, 128)
#: The segment length of the recompute row (``LSTM.checkpoint_steps``).
CHECKPOINT_STEPS = 500


def bench_long(rounds: int, log: Callable[[str], None],
               shape: tuple[int, int, int, int] = LONG_SHAPE) -> list[dict]:
    """Rows ``{variant, min, saved_bytes, bytes_per_step, finite}``."""
    from lstmcompat.bench.suite import saved_bytes

    B, T, D, U = shape
    torch.manual_seed(0)
    x = torch.randn(B, T, D, requires_grad=True)
    keras = L.LSTM(U, return_sequences=True, input_shape=(None, D))
    segmented = L.LSTM(U, return_sequences=True, input_shape=(None, D))
    segmented.checkpoint_steps = min(CHECKPOINT_STEPS, max(1, T // 4))
    nn_lstm = torch.nn.LSTM(D, U, batch_first=True)
    steps = {"keras_hard": lambda: keras(x).sum().backward(),
             f"keras_hard, checkpoint_steps={segmented.checkpoint_steps}":
                 lambda: segmented(x).sum().backward(),
             "nn": lambda: nn_lstm(x)[0].sum().backward()}
    rows = []
    for name, step in steps.items():
        mem = saved_bytes(step)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        finite = bool(torch.isfinite(x.grad).all())
        rows.append(dict(shape=list(shape), variant=name, min=min(times), saved_bytes=mem,
                         bytes_per_step=mem / T, finite=finite))
        log(f"  {name}: {min(times) * 1e3:.0f} ms, {mem / 2**20:.0f} MiB saved")
    return rows


def markdown(rows: list[dict]) -> list[str]:
    """The RESULTS.md section for :func:`bench_long`'s rows."""
    if not rows:
        return []
    shape = tuple(rows[0]["shape"])
    lines = ["", f"## Long sequences (training step at {shape})", "",
             "| variant | fwd+bwd ms (min) | time / keras_hard | saved MiB | saved KiB per step "
             "| memory / keras_hard | gradients finite |",
             "|---|---|---|---|---|---|---|"]
    base = rows[0]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['min'] * 1e3:.0f} | {r['min'] / base['min']:.2f}x | "
                     f"{r['saved_bytes'] / 2**20:.1f} | {r['bytes_per_step'] / 1024:.1f} | "
                     f"{r['saved_bytes'] / base['saved_bytes']:.2f}x | "
                     f"{'yes' if r['finite'] else 'no'} |")
    return lines
