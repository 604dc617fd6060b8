"""The safetensors format, read and written by hand (no dependency, no pickle).

A safetensors file is::

    u64 little-endian  n            the header's length in bytes
    n bytes            header       a JSON object, UTF-8 (may end in spaces)
    ...                data         every tensor's raw little-endian bytes

The header maps each tensor's name to ``{"dtype", "shape", "data_offsets":
[begin, end]}`` (offsets into the data, which the tensors cover exactly, in
order and without gaps), plus an optional ``"__metadata__"`` object of strings.
This module checks all of that against the file's real size before it reads
or allocates anything, so that a corrupt or hostile file raises ``ValueError``
naming the file and the fault, quickly, whatever it declares.

Files written by :func:`lstmcompat.save` are safetensors files whose metadata
says which module they hold (see ``_save``); any other safetensors file still
opens here (its variables listed and read, ``module_config()`` is ``None``).
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from . import _source

#: The safetensors package's own cap on the header (its ``MAX_HEADER_SIZE``).
MAX_HEADER_BYTES = 100_000_000
#: No tensor has more dimensions than this (torch's own limit is 64).
MAX_NDIM = 64

#: safetensors dtype code -> (NumPy little-endian dtype, torch dtype, item size).
#: ``BF16`` has no NumPy dtype: it is read as ``<u2`` bits.
DTYPES: dict[str, tuple[str, torch.dtype, int]] = {
    "F64": ("<f8", torch.float64, 8),
    "F32": ("<f4", torch.float32, 4),
    "F16": ("<f2", torch.float16, 2),
    "BF16": ("<u2", torch.bfloat16, 2),
    "I64": ("<i8", torch.int64, 8),
    "I32": ("<i4", torch.int32, 4),
    "I16": ("<i2", torch.int16, 2),
    "I8": ("i1", torch.int8, 1),
    "U64": ("<u8", torch.uint64, 8),
    "U32": ("<u4", torch.uint32, 4),
    "U16": ("<u2", torch.uint16, 2),
    "U8": ("u1", torch.uint8, 1),
    "BOOL": ("u1", torch.bool, 1),
}
_CODE_OF: dict[torch.dtype, str] = {t: code for code, (_, t, _) in DTYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors header (offsets absolute in the file)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"{str(path)!r} is not a valid safetensors file: {what}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the header names {k!r} twice")
        out[k] = v
    return out


def _parse_header(path: Path, raw: bytes, data_size: int, data_start: int
                  ) -> tuple[list[TensorInfo], dict[str, str] | None]:
    """Validate a header against the data size; tensors in data order."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _fail(path, f"the header is not UTF-8 ({e})") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise _fail(path, "the header JSON is nested too deeply") from None
    except ValueError as e:  # json.JSONDecodeError, or a duplicate key
        raise _fail(path, f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _fail(path, f"the header is a JSON {type(header).__name__}, expected an object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise _fail(path, "`__metadata__` must be an object mapping strings to strings")
    found: list[tuple[int, TensorInfo]] = []
    for index, (name, entry) in enumerate(header.items()):
        where = f"tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _fail(path, f"{where} must be an object with exactly `dtype`, `shape` and "
                              f"`data_offsets`, got {_short(entry)}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _fail(path, f"{where} has dtype {_short(dtype)}; lstmcompat reads "
                              f"{', '.join(DTYPES)}")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(
                _is_int(d) and d >= 0 for d in shape):
            raise _fail(path, f"{where} has shape {_short(shape)}, expected a list of at most "
                              f"{MAX_NDIM} non-negative integers")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(
                _is_int(o) for o in offsets):
            raise _fail(path, f"{where} has data_offsets {_short(offsets)}, expected "
                              f"[begin, end] integers")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise _fail(path, f"{where} has data_offsets [{begin}, {end}] outside the "
                              f"{data_size} data bytes the file holds")
        # Python integers: no overflow, and the product is compared, never allocated.
        nbytes = math.prod(shape) * DTYPES[dtype][2]
        if nbytes != end - begin:
            raise _fail(path, f"{where} of dtype {dtype} and shape {tuple(shape)} needs "
                              f"{nbytes} bytes but its data_offsets [{begin}, {end}] hold "
                              f"{end - begin}")
        found.append((index, TensorInfo(name, dtype, tuple(shape), data_start + begin,
                                        data_start + end)))
    # Data order (zero-size tensors share an offset: then header order).
    found.sort(key=lambda it: (it[1].begin, it[1].end, it[0]))
    tensors = [t for _, t in found]
    pos = data_start
    for t in tensors:
        if t.begin != pos:
            what = "overlaps the previous one" if t.begin < pos else "leaves a gap before it"
            raise _fail(path, f"tensor {t.name!r} at data_offsets "
                              f"[{t.begin - data_start}, {t.end - data_start}] {what}")
        pos = t.end
    if pos != data_start + data_size:
        raise _fail(path, f"the tensors cover {pos - data_start} of the "
                          f"{data_size} data bytes (the file is longer than its header says)")
    return tensors, metadata


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


class SafetensorsFile:
    """A safetensors file, its header validated (no tensor read yet).

    Implements :class:`~lstmcompat._interop._source.Source` (kind ``"lstmcompat"``).

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: from opening ``path``.
        ValueError: a file that is not valid safetensors, naming it and the fault.
    """

    kind = "lstmcompat"

    def __init__(self, path: Any) -> None:
        self.path = Path(os.fspath(path))
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise _fail(self.path, f"the file has {size} bytes, fewer than the 8 of the "
                                       f"header length")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise _fail(self.path, f"the header length {n} is more than the "
                                       f"{size - 8} bytes after it")
            if n > MAX_HEADER_BYTES:
                raise _fail(self.path, f"the header length {n} is over the limit of "
                                       f"{MAX_HEADER_BYTES} bytes")
            raw = f.read(n)
            if len(raw) != n:
                raise _fail(self.path, "the file was truncated while being read")
        self._size = size
        self.tensors, self.metadata = _parse_header(self.path, raw, size - 8 - n, 8 + n)
        self._by_name = {t.name: t for t in self.tensors}

    # -- Source -----------------------------------------------------------------------
    def variables(self) -> list[tuple[str, tuple[int, ...]]]:
        """``[(name, shape), ...]`` in the order of the tensors' bytes in the file."""
        return [(t.name, t.shape) for t in self.tensors]

    def read(self, name: str) -> np.ndarray:
        """One tensor as a NumPy array in the file's dtype (bfloat16 as
        ``ml_dtypes.bfloat16`` when installed, else float32, which holds every
        bfloat16 value exactly); ``KeyError`` for an unknown name."""
        info = self._by_name[name]
        bits = self._array(info)
        if info.dtype == "BF16":
            try:
                import ml_dtypes
            except ImportError:
                return (bits.astype(np.uint32) << 16).view(np.float32)
            return bits.view(ml_dtypes.bfloat16)
        if info.dtype == "BOOL":
            return bits != 0
        return bits

    def aliases(self) -> dict[str, tuple[str, ...]]:
        return {}

    def dtype_name(self, name: str) -> str:
        """The tensor's dtype name (``float32``, ``bfloat16``, ...), from the header."""
        return str(DTYPES[self._by_name[name].dtype][1]).replace("torch.", "")

    def keras_layers(self) -> None:
        return None

    def module_config(self) -> dict[str, Any] | None:
        """``{"class", "config", "input_depth", "metadata"}`` for a file written by
        :func:`lstmcompat.save`, else ``None`` (see :func:`saved_module`)."""
        from . import _save
        return _save.module_config(self)

    # -- reading -----------------------------------------------------------------------
    def tensor(self, name: str) -> torch.Tensor:
        """One tensor as a CPU ``torch.Tensor`` with the file's exact bits (bfloat16 too)."""
        info = self._by_name[name]
        bits = self._array(info)
        torch_dtype = DTYPES[info.dtype][1]
        if info.dtype == "BF16":
            return torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
        if info.dtype == "BOOL":
            return torch.from_numpy(bits != 0)
        return torch.from_numpy(bits).to(torch_dtype)

    def _array(self, info: TensorInfo) -> np.ndarray:
        """The tensor's bytes as a native-order NumPy array of its shape (a fresh, writable
        copy; the byte count was checked against the file's size at open)."""
        nbytes = info.end - info.begin
        buf = bytearray(nbytes)
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size != self._size:
                    raise _fail(self.path, "the file changed size since it was opened")
                f.seek(info.begin)
                got = f.readinto(buf)
        except OSError as e:
            raise OSError(f"cannot read tensor {info.name!r} from {str(self.path)!r}: {e}") from e
        if got != nbytes:
            raise _fail(self.path, f"tensor {info.name!r} is truncated")
        dt = np.dtype(DTYPES[info.dtype][0])
        arr = np.frombuffer(buf, dtype=dt).reshape(info.shape)
        if not dt.isnative:
            arr = arr.astype(dt.newbyteorder("="))
        return arr


# ------------------------------------------------------------------------------ writing


def tensor_bytes(t: torch.Tensor) -> tuple[str, memoryview]:
    """``(dtype code, little-endian bytes)`` of a tensor, bit for bit (bfloat16 too)."""
    t = t.detach()
    if t.is_meta:
        raise ValueError("a tensor on the meta device has no values to save")
    t = t.cpu().contiguous()
    if t.dtype not in _CODE_OF:
        raise ValueError(f"dtype {t.dtype} cannot be saved; safetensors dtypes: "
                         f"{', '.join(DTYPES)}")
    code = _CODE_OF[t.dtype]
    if t.dtype == torch.bfloat16:
        arr = t.view(torch.int16).numpy()
    elif t.dtype == torch.bool:
        arr = t.to(torch.uint8).numpy()
    elif t.dtype in (torch.uint16, torch.uint32, torch.uint64):
        arr = t.view({torch.uint16: torch.int16, torch.uint32: torch.int32,
                      torch.uint64: torch.int64}[t.dtype]).numpy()
    else:
        arr = t.numpy()
    if sys.byteorder != "little":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return code, memoryview(np.ascontiguousarray(arr).reshape(-1)).cast("B")


def encode(tensors: Iterable[tuple[str, torch.Tensor]],
           metadata: Mapping[str, str] | None) -> tuple[bytes, list[memoryview]]:
    """The header (length prefix included) and the data chunks of a safetensors file,
    tensors in the given order."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    chunks: list[memoryview] = []
    pos = 0
    for name, t in tensors:
        if name == "__metadata__" or name in header:
            raise ValueError(f"tensor name {name!r} is reserved or used twice")
        code, data = tensor_bytes(t)
        header[name] = {"dtype": code, "shape": list(t.shape),
                        "data_offsets": [pos, pos + data.nbytes]}
        chunks.append(data)
        pos += data.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the package writes
    return struct.pack("<Q", len(text)) + text, chunks


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` sets it: a race)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through ``write(f)`` into a temporary file in ``path``'s folder, flush
    and fsync it, then rename it over ``path``: readers see the old file or the new
    one, never a partial one; on any error the temporary file is removed and
    ``path`` is untouched.

    Raises:
        FileNotFoundError: the folder does not exist.
        IsADirectoryError: ``path`` is a directory.
        OSError: the write failed (disk full, permissions).
    """
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {str(path)!r}: it is a directory")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save to {str(path)!r}: the folder {str(folder)!r} "
                                f"does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX; best effort elsewhere)
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def write_file(path: Path, tensors: Iterable[tuple[str, torch.Tensor]],
               metadata: Mapping[str, str] | None) -> None:
    """Write a safetensors file atomically (see :func:`write_atomic`)."""
    head, chunks = encode(tensors, metadata)

    def write(f: BinaryIO) -> None:
        f.write(head)
        for chunk in chunks:
            f.write(chunk)

    write_atomic(path, write)


# ------------------------------------------------------------------------------- format


def _sniff(path: Path, head: bytes) -> bool:
    if len(head) < 9 or head[8:9] != b"{" or path.suffix == ".index":  # .index: TF's
        return False
    (n,) = struct.unpack("<Q", head[:8])
    try:
        size = path.stat().st_size
    except OSError:
        return False
    return 2 <= n <= size - 8


_source.register(_source.Opener("lstmcompat", _sniff, SafetensorsFile,
                                "safetensors files (lstmcompat.save's format)"))
