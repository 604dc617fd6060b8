"""Build and cache the compiled time loops of the ``fused`` kernel (loading and
calling them is :mod:`._extension`'s job).

The C++ sources under ``csrc/`` are compiled on first use into a shared
library that registers ``torch.ops.lstmcompat_fused.{forward,backward,step}``
(``TORCH_LIBRARY``). Where the Python headers are installed it is also a
Python extension module (``stream.cpp``: the pybind11 ``Streamer`` that runs
streaming steps without the per-call cost of ``torch.ops``) and is imported as
one; without them the library is built from ``ops.cpp`` alone and loaded
with ``torch.ops.load_library`` (then streaming steps take the general path).
No ninja or other build tool is needed: the C++ compiler (``$CXX``, else
``c++``/``g++``/``clang++`` on ``PATH``) is invoked directly with torch's include
and library paths, one process per source file, in parallel.

The library is cached under ``$LSTMCOMPAT_CACHE_DIR`` (default
``~/.cache/lstmcompat``; ``$XDG_CACHE_HOME/lstmcompat`` when set), keyed by a
hash of the sources, the torch version, the compiler, the flags and the CPU
(it is built with ``-march=native``). Where that directory cannot be created or
written (a read-only file system, a path naming a file), the build goes to
``lstmcompat-cache-<uid>`` under the system's temporary directory, used only
while it is a directory of this user's own that no one else can write.

The cache cannot take the process down. Mapping a truncated library (a full
disk, a killed copy) raises SIGBUS, which no ``try`` catches, so a library is
loaded only after its size and sha256 match the record beside it
(``<library>.json``; hashing costs a few milliseconds per process). A library
with no record, an unreadable one, or one that does not match is reported with
a one-line warning on the ``lstmcompat`` logger, removed, and rebuilt. A file
lock serialises concurrent builds; the library and its record are each written
under a temporary name, synced and renamed, the record first, so that a
library is never visible without its record. Files are replaced, never
rewritten in place: a process that has mapped the old library keeps it.

``LSTMCOMPAT_NO_EXT=1`` disables the extension (the pure-PyTorch loops run).
:func:`build` raises on any failure (no compiler, a compile error, a failed
rebuild of a damaged library); :mod:`._extension` remembers it with its reason.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import torch

CSRC = Path(__file__).with_name("csrc")
#: The ops' translation unit: it includes the headers below (one job each, see its
#: opening comment), so that the activations inline into the loops.
SOURCES = ("ops.cpp",)
#: The Python binding, compiled only where the Python headers are installed.
PY_SOURCES = ("stream.cpp",)
#: Every header (all are part of the cache key).
HEADERS = tuple(sorted(p.name for p in CSRC.glob("*.h")))

#: Part of the cache key; bumped when the cache's layout changes (2: a size/hash
#: record beside each library), so that an older layout's files are not read as damaged.
_CACHE_FORMAT = "2"

#: Seconds the last compilation in this process took (``None``: loaded from cache).
last_build_seconds: float | None = None


_log = logging.getLogger("lstmcompat")

def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _disabled() -> bool:
    return os.environ.get("LSTMCOMPAT_NO_EXT", "").strip() not in ("", "0", "false", "False")


def cache_dir() -> Path:
    env = os.environ.get("LSTMCOMPAT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lstmcompat"


def find_compiler() -> str | None:
    cxx = os.environ.get("CXX")
    if cxx:
        return shutil.which(cxx) or (cxx if os.path.exists(cxx) else None)
    for name in ("c++", "g++", "clang++"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _torch_lib_dir() -> str:
    from torch.utils import cpp_extension

    return cpp_extension.library_paths()[0]


def _exports(*symbols: str) -> bool:
    """Whether libtorch_cpu exports all of ``symbols``."""
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        path = os.path.join(_torch_lib_dir(), name)
        if os.path.exists(path):
            try:
                lib = ctypes.CDLL(path)
                return all(hasattr(lib, f) for f in symbols)
            except OSError:
                return False
    return False


def _has_blas_symbols() -> bool:
    """Whether libtorch_cpu exports the Fortran BLAS ``?gemm_``/``?gemv_`` (MKL builds do)."""
    return _exports("sgemm_", "dgemm_", "sgemv_", "dgemv_")


def _cpu_fingerprint() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.machine() + platform.processor()


def python_include() -> str | None:
    """The directory holding ``Python.h``, or ``None`` when the headers are not installed."""
    import sysconfig

    for key in ("include", "platinclude"):
        path = sysconfig.get_paths().get(key)
        if path and os.path.exists(os.path.join(path, "Python.h")):
            return path
    return None


def _has_packed_gemm_symbols() -> bool:
    """Whether libtorch_cpu exports MKL's packed ``cblas_sgemm_pack``/``_compute``."""
    return _exports("cblas_sgemm_pack_get_size", "cblas_sgemm_pack", "cblas_sgemm_compute")


def _has_bf16_gemm_symbols() -> bool:
    """Whether libtorch_cpu exports MKL's ``cblas_gemm_bf16bf16f32`` (the low-precision
    products under ``torch.autocast``: AMX / AVX-512 BF16 where the CPU has them)."""
    return _exports("cblas_gemm_bf16bf16f32")


def _flags(native: bool, blas: bool, openmp: bool = True, packed: bool = False,
           bf16: bool = False) -> list[str]:
    flags = ["-O3", "-std=c++17", "-fPIC", "-DNDEBUG", "-w", "-fvisibility=hidden",
             # keep a*b+c as two roundings, as PyTorch's eager ops do
             "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
             f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
    if native:
        # 512-bit vectors where the CPU has them: the pointwise pass is ~30% faster
        # (gcc prefers 256 bits by default); ignored on CPUs without AVX-512.
        flags += ["-march=native", "-mprefer-vector-width=512"]
    if blas:
        flags.append("-DLSTMCOMPAT_BLAS")
    if packed:
        flags.append("-DLSTMCOMPAT_PACKED_GEMM")
    if bf16:
        flags.append("-DLSTMCOMPAT_BF16_GEMM")
    if openmp:
        # resolves to the libgomp.so.1 torch has already loaded (same soname)
        flags.append("-fopenmp")
    return flags


def _compile_commands(cxx: str, flags: list[str], python: str | None, out: Path
                      ) -> tuple[list[list[str]], list[str]]:
    """One compile command per source (objects next to ``out``) and the link command."""
    from torch.utils import cpp_extension

    includes = [f"-I{p}" for p in cpp_extension.include_paths()]
    sources = list(SOURCES) + (list(PY_SOURCES) if python else [])
    if python:
        includes.append(f"-I{python}")
    compiles, objects = [], []
    for src in sources:
        obj = f"{out}.{Path(src).stem}.o"
        compiles.append([cxx, *flags, *includes, "-c", str(CSRC / src), "-o", obj])
        objects.append(obj)
    lib = _torch_lib_dir()
    libs = ["-lc10", "-ltorch_cpu"] + (["-ltorch_python"] if python else [])
    link = [cxx, *flags, "-shared", *objects, f"-L{lib}", *libs, f"-Wl,-rpath,{lib}",
            "-o", str(out)]
    return compiles, link


def _run_build(compiles: list[list[str]], link: list[str]) -> str | None:
    """Run the compiles in parallel, then the link; ``None`` on success, else the error."""
    outputs = []
    try:
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for cmd in compiles]
        failed = False
        for proc in procs:
            out, _ = proc.communicate(timeout=900)
            failed |= proc.returncode != 0
            outputs.append(out)
        if not failed:
            proc = subprocess.run(link, capture_output=True, text=True, timeout=300)
            if proc.returncode == 0:
                return None
            outputs.append(proc.stderr or proc.stdout)
    except (OSError, subprocess.SubprocessError) as e:
        outputs.append(f"{link[0]}: {e}")
    finally:
        for cmd in compiles:
            Path(cmd[-1]).unlink(missing_ok=True)
    return "\n".join(o for o in outputs if o)[-4000:] or "the compiler failed"


def _key(cxx: str, flags: list[str]) -> str:
    h = hashlib.sha256()
    for s in SOURCES + PY_SOURCES + HEADERS:
        h.update((CSRC / s).read_bytes())
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        version = cxx
    for part in (_CACHE_FORMAT, torch.__version__, version, " ".join(flags), _cpu_fingerprint()):
        h.update(part.encode())
    return h.hexdigest()[:20]


class _FileLock:
    """An exclusive advisory lock on ``path`` (a no-op where ``fcntl`` is missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> _FileLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


def build(force: bool = False) -> Path:
    """Compile the extension into the cache (unless cached) and return its path.

    The library returned always matches the size and sha256 recorded beside it; a
    cached one that does not (or has no readable record) is reported with a
    one-line warning on the ``lstmcompat`` logger, removed and rebuilt. Where the
    cache directory cannot be written, a directory private to this user under the
    system's temporary directory is used instead.

    Raises ``RuntimeError`` (with the compiler's output) when it cannot.
    """
    global last_build_seconds
    cxx = find_compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX or install g++/clang++)")
    blas = _has_blas_symbols()
    packed = _has_packed_gemm_symbols()
    bf16 = _has_bf16_gemm_symbols()
    primary, fallback = cache_dir(), _fallback_dir()
    directory: Path | None = None  # where to build; chosen on the first cache miss
    errors: list[str] = []
    damaged: list[str] = []
    python = python_include()
    attempts = [(True, True, python), (False, True, python), (False, False, python)]
    if python:  # a binding that does not compile must not cost the compiled loops
        attempts.append((True, True, None))
    for native, openmp, py_inc in attempts:
        flags = _flags(native, blas, openmp, packed, bf16) + (["-DLSTMCOMPAT_PYTHON"] if py_inc else [])
        name = f"fused_lstm-{_key(cxx, flags)}.so"
        hit, bad = _find_cached(name, primary, fallback, force)
        if hit is not None:
            return hit
        if directory is None:
            directory = _build_dir(primary, fallback)
        for lib, problem in bad:  # seen damaged where it cannot be replaced
            if lib.parent != directory:
                _log.warning("lstmcompat: the cached fused LSTM kernel %s is damaged (%s) and "
                             "cannot be replaced there; building it in %s", lib, problem,
                             directory)
                damaged.append(f"{lib} is damaged ({problem})")
        target = directory / name
        with _FileLock(directory / (name + ".lock")):
            if target.exists() and not force:  # again: another process may have built it
                problem = _damage(target)
                if problem is None:
                    return target
                _log.warning("lstmcompat: the cached fused LSTM kernel %s is damaged (%s); "
                             "removing it and rebuilding it", target, problem)
                damaged.append(f"{target} was damaged ({problem})")
                _discard(target)
            for stale in directory.glob(name + ".*.tmp*"):  # a killed build's; the lock is ours
                _discard(stale)
            tmp = directory / f"{name}.{os.getpid()}.tmp"
            _log.warning("lstmcompat: compiling the fused LSTM kernel for this machine "
                         "(once, about 20 s; cached in %s; LSTMCOMPAT_NO_EXT=1 skips it)",
                         directory)
            start = time.perf_counter()
            error = _run_build(*_compile_commands(cxx, flags, py_inc, tmp))
            if error is None and tmp.exists():
                try:
                    _publish(tmp, target)
                    problem = _damage(target)
                except OSError as e:  # a full disk, most likely
                    problem = f"it could not be stored: {e}"
                if problem is None:
                    last_build_seconds = time.perf_counter() - start
                    return target
                error = f"the library just built is unusable: {problem}"
                _discard(target)
            tmp.unlink(missing_ok=True)
            _record(tmp).unlink(missing_ok=True)
            errors.append(error or "no library was written")
    head = "compiling the fused LSTM extension failed"
    if damaged:
        head = f"{damaged[0]} and rebuilding it failed"
    raise RuntimeError(head + ":\n" + "\n".join(errors))


def _record(lib: Path) -> Path:
    """The size/hash record kept beside the library ``lib``."""
    return lib.with_name(lib.name + ".json")


def _digest(path: Path) -> tuple[int, str]:
    """``(size, sha256)`` of the bytes of ``path`` (about 3 ms for the 1.3 MB library)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _damage(lib: Path) -> str | None:
    """Why the cached ``lib`` must not be loaded, or ``None`` when its record vouches for it.

    Mapping a truncated or overwritten library (a full disk, a killed copy) can kill
    the process with SIGBUS, which no ``try`` catches; so a library is loaded only
    when its size and sha256 match the record written beside it when it was built.
    A missing or unreadable record counts as damage: a library is never visible
    without its record (see :func:`_publish`).
    """
    try:
        record = json.loads(_record(lib).read_text())
        size, sha = record["size"], record["sha256"]
        if type(size) is not int or size <= 0 or not isinstance(sha, str):
            raise ValueError(f"unexpected values {record!r:.60}")
    except FileNotFoundError:
        return "its size/hash record is missing"
    except (OSError, ValueError, KeyError, TypeError) as e:  # garbage, a directory, ...
        return f"its size/hash record is unreadable: {_first_line(e)}"
    try:
        st = os.stat(lib)
        if not stat.S_ISREG(st.st_mode):
            return "it is not a regular file"
        if st.st_size != size:
            return f"it is {st.st_size} bytes, its record says {size}"
        if _digest(lib) != (size, sha):
            return "its sha256 differs from its record"
    except OSError as e:
        return f"it cannot be read: {_first_line(e)}"
    return None


def _discard(lib: Path) -> None:
    """Remove ``lib`` and its record if they exist (a process that mapped it keeps it)."""
    for path in (lib, _record(lib)):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a directory's entries where that is supported) to disk."""
    directory = path.is_dir()
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:  # Windows cannot open a directory
            return
        raise
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory
        if not directory:
            raise
    finally:
        os.close(fd)


def _publish(tmp: Path, lib: Path) -> None:
    """Move the freshly linked ``tmp`` into place as ``lib``, its record first.

    Both are complete on disk before their names appear (each written under a
    temporary name in the same directory, fsynced, then renamed), so a crash or a
    full disk leaves at worst a record without its library (a cache miss) or a
    library whose record does not match (damage): either is rebuilt, never loaded.
    Only the holder of the library's file lock publishes; a reader that sees the
    pair half-renamed takes the lock and looks again. Files are replaced, never
    rewritten in place, so a process that has the old library mapped keeps it.
    """
    size, sha = _digest(tmp)
    _fsync(tmp)
    record_tmp = _record(tmp)
    with open(record_tmp, "w") as f:
        json.dump({"size": size, "sha256": sha}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(record_tmp, _record(lib))
    os.replace(tmp, lib)
    _fsync(lib.parent)


def _fallback_dir() -> Path:
    """Where to cache when :func:`cache_dir` cannot be written: a directory of this
    user's own under the system's temporary directory."""
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"lstmcompat-cache-{user}"


def _private(directory: Path) -> bool:
    """Whether ``directory`` is a directory (not a link) that only this user can write.

    The fallback lives in a shared temporary directory, where another user could
    otherwise plant a library together with a matching record.
    """
    try:
        st = os.lstat(directory)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    return not hasattr(os, "getuid") or (st.st_uid == os.getuid() and not st.st_mode & 0o022)


def _find_cached(name: str, primary: Path, fallback: Path, force: bool
                 ) -> tuple[Path | None, list[tuple[Path, str]]]:
    """A verified cached library ``name`` (without the lock) and the damaged ones seen."""
    damaged = []
    for directory in (primary, fallback):
        lib = directory / name
        if force or (directory == fallback and not _private(directory)) or not lib.exists():
            continue
        problem = _damage(lib)
        if problem is None:
            return lib, damaged
        damaged.append((lib, problem))
    return None, damaged


def _unwritable(directory: Path, private: bool) -> str | None:
    """``None`` when ``directory`` exists (created if needed) and can be written, else why."""
    try:
        directory.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
        if private and not _private(directory):
            return f"{directory} is not a directory of this user's own"
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"{directory}: {e.strerror or e}"
    return None


def _build_dir(primary: Path, fallback: Path) -> Path:
    """The cache directory when it can be written, else the private fallback."""
    why = _unwritable(primary, private=False)
    if why is None:
        return primary
    why_fallback = _unwritable(fallback, private=True)
    if why_fallback is not None:
        raise RuntimeError(f"no writable cache directory ({why}; {why_fallback})")
    _log.warning("lstmcompat: the cache directory is unusable (%s); using %s", why, fallback)
    return fallback
