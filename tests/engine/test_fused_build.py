"""Building, caching and falling back from the compiled extension of ``fused``.

Each scenario runs in a fresh interpreter (the load result is per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lstmcompat._engine.fused import _build, _extension

SRC = str(Path(__file__).resolve().parents[2] / "src")

PROBE = textwrap.dedent("""
    import json, torch
    from lstmcompat._engine import CellSpec, Weights, run, run_reference
    from lstmcompat._engine.fused import backend_for, _build, _extension, extension_status
    ok, why = extension_status()
    spec = CellSpec(3, recurrent_activation="hard_sigmoid", use_peepholes=True)
    g = torch.Generator().manual_seed(0)
    t = lambda *s: torch.randn(*s, generator=g, requires_grad=True)
    w = Weights(t(2, 12), t(3, 12), t(12), t(3), t(3), t(3))
    x, h0, c0 = t(4, 2, 2), t(2, 3), t(2, 3)
    got = run(spec, x, w, h0, c0, kernel="fused")
    want = run_reference(spec, x, w, h0, c0)
    gg = torch.autograd.grad(sum(o.sum() for o in got), [x, w.R])
    gw = torch.autograd.grad(sum(o.sum() for o in want), [x, w.R])
    err = max((a - b).abs().max().item() for a, b in zip([*got, *gg], [*want, *gw]))
    print(json.dumps(dict(ok=ok, why=why, backend=backend_for(spec)[1], err=err,
                          build_seconds=_build.last_build_seconds)))
""")


def probe(**env: str) -> dict:
    full = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
            **env}
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_disabled_by_environment_runs_pure_pytorch():
    r = probe(LSTMCOMPAT_NO_EXT="1")
    assert not r["ok"] and "LSTMCOMPAT_NO_EXT" in r["why"]
    assert r["backend"].startswith("pure-PyTorch") and "LSTMCOMPAT_NO_EXT" in r["backend"]
    assert r["err"] < 1e-5


def test_no_compiler_runs_pure_pytorch(tmp_path):
    r = probe(CXX=str(tmp_path / "no-such-c++"), LSTMCOMPAT_CACHE_DIR=str(tmp_path / "cache"))
    assert not r["ok"] and "no C++ compiler" in r["why"]
    assert "no C++ compiler" in r["backend"]
    assert r["err"] < 1e-5


def test_compile_error_runs_pure_pytorch(tmp_path):
    fake = tmp_path / "c++"
    fake.write_text("#!/bin/sh\necho 'error: simulated' >&2\nexit 1\n")
    fake.chmod(0o755)
    r = probe(CXX=str(fake), LSTMCOMPAT_CACHE_DIR=str(tmp_path / "cache"))
    assert not r["ok"] and "failed" in r["why"]
    assert r["err"] < 1e-5


def _needs_compiler():
    if _build.find_compiler() is None:
        pytest.skip("no C++ compiler here")
    if _build._disabled():
        pytest.skip("extension disabled by LSTMCOMPAT_NO_EXT")


def test_cached_build_is_reused():
    _needs_compiler()
    ok, why = _extension.status()  # builds into the default cache if needed
    assert ok, why
    r = probe()
    assert r["ok"] and r["build_seconds"] is None  # loaded, not rebuilt
    assert r["backend"] == "compiled C++ time loop"
    assert r["err"] < 1e-5


def test_build_uses_what_this_torch_exports():
    """MKL's packed GEMM (the per-step recurrent product) and BLAS are compiled in
    exactly when libtorch exports them; the status line says what was."""
    _needs_compiler()
    ok, why = _extension.status()
    assert ok, why
    features = _extension.backend().features()
    assert ("mkl-packed-gemm" in features) == _build._has_packed_gemm_symbols()
    assert ("blas" in features) == _build._has_blas_symbols()
    assert ", ".join(features) in why


@pytest.mark.slow
def test_concurrent_first_builds_share_one_library(tmp_path):
    """Two processes building into an empty cache at once: both load one .so."""
    _needs_compiler()
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "LSTMCOMPAT_CACHE_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["ok"] and r["err"] < 1e-5 for r in results)
    built = [r["build_seconds"] for r in results if r["build_seconds"] is not None]
    assert len(built) == 1  # the other process waited on the lock, then loaded it
    print(f"extension build took {built[0]:.1f}s")
    (lib,) = tmp_path.glob("*.so")
    assert _build._damage(lib) is None  # its size/hash record was written with it
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.slow
def test_without_python_headers_the_ops_build_alone(tmp_path):
    """No Python headers: the library is built from the ops source only and loaded with
    torch.ops.load_library; the loops run compiled, streaming steps take the general path."""
    _needs_compiler()
    patch = ("from lstmcompat._engine.fused import _build, _extension\n"
             "_build.python_include = lambda: None\n")
    script = textwrap.dedent("""
        import lstmcompat
        cell = lstmcompat.LSTMCell(8)
        x = torch.randn(1, 4)
        state = cell.zero_state(1, torch.float32)
        with torch.no_grad():
            cell(x, state)
            out, _ = cell(x, state)
        print(json.dumps(dict(module=_extension.backend().module is not None,
                              stream=cell._stream, kernel=cell.last_kernel[1])))
    """)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "LSTMCOMPAT_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", patch + PROBE + script], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    probe_result, cell_result = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
    assert probe_result["ok"] and probe_result["err"] < 1e-5
    assert probe_result["backend"] == "compiled C++ time loop"
    assert not cell_result["module"] and cell_result["stream"] is False
    assert "streaming" not in cell_result["kernel"]
    assert len(list(tmp_path.glob("*.so"))) == 1 and not list(tmp_path.glob("*.o"))
