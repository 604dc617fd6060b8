"""A damaged compiled-extension cache cannot take the process down.

Each scenario copies the library already built in the default cache (with its
size/hash record) into a fresh cache directory, damages it, and runs an LSTM in a
fresh interpreter: a crash (SIGBUS when mapping a truncated library) fails the
test instead of killing pytest. Rebuilds are made to fail fast with a compiler
that answers ``--version`` like the real one (so that the cache key, and so the
library looked up, are the same) but compiles nothing; one test rebuilds for real.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lstmcompat._engine.fused import _build

SRC = str(Path(__file__).resolve().parents[2] / "src")

PROBE = textwrap.dedent("""
    import json, torch, lstmcompat
    from lstmcompat._engine.fused import _build, extension_status
    torch.manual_seed(0)
    layer = lstmcompat.LSTM(5, return_sequences=True)  # hard_sigmoid: the fused kernel
    x = torch.randn(3, 7, 4)
    got = layer(x)
    kernel = layer.last_kernel[1]
    layer.engine_kernel = "reference"
    want = layer(x)
    ok, why = extension_status()
    print(json.dumps(dict(ok=ok, why=why, kernel=kernel, err=(got - want).abs().max().item(),
                          built=_build.last_build_seconds)))
""")


@pytest.fixture(scope="module")
def good() -> Path:
    """A verified library in the default cache (built there if needed)."""
    if _build.find_compiler() is None:
        pytest.skip("no C++ compiler here")
    if _build._disabled():
        pytest.skip("extension disabled by LSTMCOMPAT_NO_EXT")
    lib = _build.build()
    assert _build._damage(lib) is None
    return lib


@pytest.fixture
def cache(tmp_path: Path, good: Path) -> Path:
    """A fresh cache directory holding a copy of the good library and its record."""
    directory = tmp_path / "cache"
    directory.mkdir()
    for src in (good, _build._record(good)):
        shutil.copyfile(src, directory / src.name)
    return directory


def no_compile(tmp_path: Path) -> str:
    """A compiler that reports the real one's version and fails to compile anything."""
    fake = tmp_path / "fake-c++"
    fake.write_text("#!/bin/sh\n"
                    f'case "$1" in --version) exec "{_build.find_compiler()}" "$@";; esac\n'
                    "echo 'error: compiling is disabled in this test' >&2\nexit 1\n")
    fake.chmod(0o755)
    return str(fake)


def run_probe(tmp_path: Path, cache_dir: Path | str, **env: str) -> tuple[dict, str]:
    """Run PROBE in a fresh interpreter; its JSON result and its stderr."""
    full = {k: v for k, v in os.environ.items()
            if k not in ("LSTMCOMPAT_NO_EXT", "LSTMCOMPAT_KERNEL", "CXX")}
    tmp = tmp_path / "tmp"  # the fallback cache goes under $TMPDIR: keep it in the test
    tmp.mkdir(exist_ok=True)
    full.update(PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                LSTMCOMPAT_CACHE_DIR=str(cache_dir), TMPDIR=str(tmp), **env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, f"exit code {out.returncode}:\n{out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def lib_in(directory: Path, good: Path) -> Path:
    return directory / good.name


def truncate_half(lib: Path) -> None:
    os.truncate(lib, lib.stat().st_size // 2)


def zero_bytes(lib: Path) -> None:
    lib.write_bytes(b"")


def overwrite_middle(lib: Path) -> None:
    size = lib.stat().st_size
    with open(lib, "r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(4096))
    assert lib.stat().st_size == size


def random_bytes_without_record(lib: Path) -> None:
    lib.write_bytes(os.urandom(lib.stat().st_size))
    _build._record(lib).unlink()


def garbage_record(lib: Path) -> None:
    _build._record(lib).write_bytes(b"\x00\xff{not json")


def record_of_wrong_shape(lib: Path) -> None:
    _build._record(lib).write_text(json.dumps({"size": "1348360", "sha256": None}))


def record_deleted(lib: Path) -> None:
    _build._record(lib).unlink()


@pytest.mark.parametrize("damage, problem", [
    (truncate_half, "bytes, its record says"),
    (zero_bytes, "it is 0 bytes"),
    (overwrite_middle, "sha256 differs"),
    (random_bytes_without_record, "record is missing"),
    (garbage_record, "record is unreadable"),
    (record_of_wrong_shape, "record is unreadable"),
    (record_deleted, "record is missing"),
])
def test_damaged_library_is_never_loaded(tmp_path, good, cache, damage, problem):
    """Damaged and not rebuildable: one notice, then the pure-PyTorch loops, with the
    same result as the reference kernel; the damaged files are removed."""
    lib = lib_in(cache, good)
    damage(lib)
    r, stderr = run_probe(tmp_path, cache, CXX=no_compile(tmp_path))
    notices = [line for line in stderr.splitlines() if "is damaged" in line]
    assert len(notices) == 1 and problem in notices[0] and str(lib) in notices[0], stderr
    assert not r["ok"] and "damaged" in r["why"] and "rebuilding it failed" in r["why"]
    assert "pure-PyTorch loop" in r["kernel"]
    assert r["err"] < 1e-5
    assert not lib.exists() and not _build._record(lib).exists()
    assert not list(cache.glob("*.tmp*"))


def test_record_without_library_is_rebuilt_silently(tmp_path, good, cache):
    """A record left without its library (a crash between the two renames) is no damage:
    the library is built again (here: fails to) and the notice is the compile one."""
    lib_in(cache, good).unlink()
    r, stderr = run_probe(tmp_path, cache, CXX=no_compile(tmp_path))
    assert "is damaged" not in stderr and "compiling the fused LSTM kernel" in stderr
    assert not r["ok"] and r["why"].startswith("compiled extension unavailable: compiling")
    assert "pure-PyTorch loop" in r["kernel"] and r["err"] < 1e-5


def test_verified_library_that_cannot_be_loaded_falls_back(tmp_path, good, cache):
    """Random bytes with a matching record pass the check but are no ELF file: the load
    error is reported and the pure-PyTorch loops run."""
    lib = lib_in(cache, good)
    lib.write_bytes(os.urandom(4096))
    size, sha = _build._digest(lib)
    _build._record(lib).write_text(json.dumps({"size": size, "sha256": sha}))
    r, stderr = run_probe(tmp_path, cache, CXX=no_compile(tmp_path))
    assert "could not be loaded" in stderr and "is damaged" not in stderr
    assert not r["ok"] and f"loading {lib} failed" in r["why"]
    assert "pure-PyTorch loop" in r["kernel"] and r["err"] < 1e-5


def test_library_with_a_missing_symbol_falls_back(tmp_path, good, cache):
    """A verified library whose load fails (an undefined symbol: ImportError) falls back."""
    lib = lib_in(cache, good)
    source = tmp_path / "missing.cpp"
    source.write_text('extern "C" void lstmcompat_no_such_symbol();\n'
                      'extern "C" void* PyInit__fused_ext() { lstmcompat_no_such_symbol(); '
                      "return nullptr; }\n")
    subprocess.run([_build.find_compiler(), "-shared", "-fPIC", str(source), "-o", str(lib)],
                   check=True, timeout=300)
    size, sha = _build._digest(lib)
    _build._record(lib).write_text(json.dumps({"size": size, "sha256": sha}))
    r, stderr = run_probe(tmp_path, cache, CXX=no_compile(tmp_path))
    assert "could not be loaded" in stderr and "lstmcompat_no_such_symbol" in stderr
    assert not r["ok"] and "lstmcompat_no_such_symbol" in r["why"]
    assert "pure-PyTorch loop" in r["kernel"] and r["err"] < 1e-5


def test_a_good_copy_with_its_record_is_loaded(tmp_path, good, cache):
    """The control: the undamaged copy loads without compiling and without a notice."""
    r, stderr = run_probe(tmp_path, cache, CXX=no_compile(tmp_path))
    assert r["ok"] and str(lib_in(cache, good)) in r["why"] and r["built"] is None
    assert "compiled C++ time loop" in r["kernel"] and r["err"] < 1e-5
    assert "lstmcompat" not in stderr


def _fallback(tmp_path: Path) -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return tmp_path / "tmp" / f"lstmcompat-cache-{uid}"


def test_cache_dir_that_is_a_file_uses_a_private_fallback(tmp_path, good):
    """``LSTMCOMPAT_CACHE_DIR`` naming a file: a notice, the build goes to a directory
    of this user's own under ``$TMPDIR``; a verified library there is loaded."""
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    r, stderr = run_probe(tmp_path, not_a_dir, CXX=no_compile(tmp_path))
    fallback = _fallback(tmp_path)
    assert "cache directory is unusable" in stderr and str(fallback) in stderr
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700
    assert not r["ok"] and "pure-PyTorch loop" in r["kernel"] and r["err"] < 1e-5
    for src in (good, _build._record(good)):
        shutil.copyfile(src, fallback / src.name)
    r, stderr = run_probe(tmp_path, not_a_dir / "below", CXX=no_compile(tmp_path))
    assert r["ok"] and str(fallback) in r["why"] and r["err"] < 1e-5


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_fallback_that_others_can_write_is_not_trusted(tmp_path, good):
    """A fallback directory others can write could hold a planted library with a
    matching record: it is neither loaded nor built into."""
    fallback = _fallback(tmp_path)
    fallback.mkdir(parents=True)
    for src in (good, _build._record(good)):
        shutil.copyfile(src, fallback / src.name)
    fallback.chmod(0o777)
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    r, _ = run_probe(tmp_path, not_a_dir, CXX=no_compile(tmp_path))
    assert not r["ok"] and "no writable cache directory" in r["why"]
    assert "pure-PyTorch loop" in r["kernel"] and r["err"] < 1e-5


def test_read_only_cache(tmp_path, good, cache):
    """A read-only cache: a verified library in it is loaded; a damaged one is reported
    and the library is built in the private fallback instead."""
    cache.chmod(0o555)
    try:
        (cache / "probe").touch()
    except PermissionError:
        pass
    else:
        cache.chmod(0o755)
        pytest.skip("this user writes into read-only directories (root)")
    try:
        r, stderr = run_probe(tmp_path, cache, CXX=no_compile(tmp_path))
        assert r["ok"] and str(cache) in r["why"]
        cache.chmod(0o755)
        truncate_half(lib_in(cache, good))
        cache.chmod(0o555)
        r, stderr = run_probe(tmp_path, cache, CXX=no_compile(tmp_path))
        assert "cannot be replaced there" in stderr and str(_fallback(tmp_path)) in stderr
        assert not r["ok"] and "pure-PyTorch loop" in r["kernel"] and r["err"] < 1e-5
    finally:
        cache.chmod(0o755)


@pytest.mark.slow
def test_damaged_library_is_rebuilt(tmp_path, good, cache):
    """With a working compiler a truncated library is rebuilt (once) and loaded; the new
    one matches its record and a later run loads it without a notice."""
    lib = lib_in(cache, good)
    truncate_half(lib)
    (cache / f"{lib.name}.12345.tmp.fused_lstm.o").write_bytes(b"left by a killed build")
    r, stderr = run_probe(tmp_path, cache)
    assert "is damaged" in stderr and "compiling the fused LSTM kernel" in stderr
    assert r["ok"] and r["built"] is not None and str(lib) in r["why"]
    assert "compiled C++ time loop" in r["kernel"] and r["err"] < 1e-5
    assert _build._damage(lib) is None and not list(cache.glob("*.tmp*"))
    r, stderr = run_probe(tmp_path, cache)
    assert r["ok"] and r["built"] is None and "lstmcompat" not in stderr
