"""Benchmark rows for mixed precision: a training step (forward + backward) of the Keras
default ``LSTM`` in float32 and under ``torch.autocast`` (bfloat16, CPU), side by side
in interleaved rounds; the target is a 2x speed-up on a CPU with AMX / AVX-512 BF16."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import lstmcompat as L

#: (batch, time, input, units) of the mixed-precision rows (the issue's two shapes).
PRECISION_SHAPES = [(64, 50, 128, 512), (32, 100, 64, 256)]
#: The speed-up bfloat16 must reach on a CPU with bfloat16 matrix units.
TARGET = 2.0


def cpu_bf16_units() -> str:
    """The CPU's bfloat16 matrix units, as /proc/cpuinfo names them ("" when none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    return " ".join(u for u in ("amx_bf16", "avx512_bf16") if u in flags)
    except OSError:
        pass
    return ""


def products_by() -> str:
    """How this build computes the bfloat16 products on CPU, in words."""
    from .._engine.fused import _extension

    ext = _extension.backend()
    if ext is None or not ext.bf16_gemm:
        return "float32 GEMMs of the rounded operands (no bfloat16 GEMM in this build)"
    if "avx512-bf16-gemm" in ext.features():
        return ("the library's AVX-512 BF16 GEMM (`vdpbf16ps`; on a CPU without AMX, "
                "MKL's bfloat16 GEMM is no faster than its float32 one)")
    return "MKL's `gemm_bf16bf16f32` (AMX / AVX-512 BF16)"


def bench_precision(rounds: int, log: Callable[[str], None],
                    shapes: list[tuple[int, int, int, int]] | None = None) -> list[dict]:
    """Rows ``{shape, float32, bfloat16, speedup, kernel, max_diff}`` (times: the min over
    ``rounds`` interleaved rounds of a forward + backward step)."""
    rows = []
    for shape in shapes or PRECISION_SHAPES:
        B, T, D, U = shape
        torch.manual_seed(0)
        layer = L.LSTM(U, return_sequences=True, input_shape=(None, D))
        x = torch.randn(B, T, D, requires_grad=True)

        def f32(layer: L.LSTM = layer, x: torch.Tensor = x) -> torch.Tensor:
            y = layer(x)
            y.sum().backward()
            return y

        def bf16(layer: L.LSTM = layer, x: torch.Tensor = x) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = layer(x)
            y.float().sum().backward()
            return y

        with torch.no_grad():
            ref = layer(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = layer(x)
            kernel = layer.last_kernel[0]
        diff = ((low.float() - ref).abs().max() / ref.abs().max()).item()
        best = {"float32": float("inf"), "bfloat16": float("inf")}
        f32(), bf16()  # warm up
        for _ in range(rounds):
            for name, step in (("float32", f32), ("bfloat16", bf16)):
                t = time.perf_counter()
                step()
                best[name] = min(best[name], time.perf_counter() - t)
        row = dict(shape=list(shape), float32=best["float32"], bfloat16=best["bfloat16"],
                   speedup=best["float32"] / best["bfloat16"], kernel=kernel, max_diff=diff)
        rows.append(row)
        log(f"  {shape}: float32 {row['float32'] * 1e3:.1f} ms, bfloat16 "
            f"{row['bfloat16'] * 1e3:.1f} ms ({row['speedup']:.2f}x)")
    return rows


def markdown(rows: list[dict]) -> list[str]:
    """The RESULTS.md section for :func:`bench_precision`'s rows."""
    if not rows:
        return []
    units = cpu_bf16_units()
    lines = ["", "## Mixed precision (bfloat16 autocast on CPU, Keras default LSTM, "
             "forward + backward)", "",
             f"CPU bfloat16 units: {units or 'none (no AMX / AVX-512 BF16: no speed-up expected)'}"
             f"{'' if 'amx_bf16' in units or not units else ' (this CPU has no AMX)'}."
             f" Products in bfloat16 by {products_by()}; cell state and pointwise "
             "work in float32; largest output difference relative to float32 in the last "
             "column.", "",
             "| shape (B,T,D,U) | kernel | float32 ms | bfloat16 ms | speed-up | target | met "
             "| max rel. diff |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "yes" if r["speedup"] >= TARGET else "**no**"
        lines.append(f"| {tuple(r['shape'])} | {r['kernel']} | {r['float32'] * 1e3:.1f} | "
                     f"{r['bfloat16'] * 1e3:.1f} | {r['speedup']:.2f}x | >= {TARGET:.2f}x | "
                     f"{met} | {r['max_diff']:.1e} |")
    return lines
