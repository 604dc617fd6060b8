"""Keras weight files, read without TensorFlow or Keras: tf_keras HDF5, Keras 3
``.weights.h5`` (plain or sharded) and Keras 3 ``.keras`` archives.

Three :class:`~lstmcompat._interop._source.Opener` s are registered:

* ``keras_h5``: any HDF5 file (magic ``\\x89HDF\\r\\n\\x1a\\n`` at offset 0, 512,
  1024 or 2048). Its :class:`Source` has kind ``"keras_h5"`` when the file has
  tf_keras's layout (a ``layer_names`` attribute at the root or in
  ``/model_weights``: ``save_weights('x.h5')``, ``model.save('x.h5')``, also as
  written by Keras 3's legacy ``model.save('x.h5')``), ``"keras3_weights"`` when
  it has Keras 3's object-tree layout (``layers/.../vars/<i>``).
* ``keras3_weights``: a Keras 3 sharded-weights index (a ``.json`` file with a
  ``weight_map``, as ``save_weights('x.weights.json', max_shard_size=...)``
  writes) and the shard files next to it.
* ``keras_archive``: a zip file named ``*.keras`` or holding ``config.json``
  and ``model.weights.h5`` (or the sharded ``model.weights.json`` and its shards).

h5py is imported only when an HDF5 file is opened (``pip install 'lstmcompat[h5]'``).

**Variable names** are HDF5 dataset paths without the leading slash, usable as
``h5py.File(p)[name]`` (for a ``.keras`` archive: in its inner weights file; for
a sharded index: in the shard that holds it).

* tf_keras layout: ``<group>/<weight name>`` for every weight name in each
  layer group's ``weight_names`` attribute, the groups in the ``layer_names``
  order, then ``top_level_model_weights``, then the optimizer's weights
  (``optimizer_weights/<weight name>``); under ``model_weights/`` for a full
  model: ``model_weights/lstm/lstm/lstm_cell/kernel:0``. Datasets no
  ``weight_names`` lists are not variables (Keras never reads them).
* Keras 3 layout: every dataset of every ``vars`` group, depth first in the
  order Keras saved (and loads) the objects, an object's own ``vars`` before its
  children, the datasets of one ``vars`` group by number (``vars/10`` after
  ``vars/9``): ``layers/lstm/cell/vars/0``. Sharded: the groups in the index's
  ``weight_map`` order. The optimizer's state (``optimizer/vars/<i>``) is listed
  like any other object's.

**Aliases** (:meth:`Source.aliases`, for name matching):

* tf_keras layout: each layer weight's name with any ``:<digits>`` suffix
  removed (``model_weights/lstm/lstm/lstm_cell/kernel:0`` ->
  ``lstm/lstm_cell/kernel``, the TF variable name). When that name does not
  start with ``<group>/`` but contains ``/<group>/`` (Keras 3's legacy files
  prefix the model name: ``sequential/lstm/lstm_cell/kernel``), the aliases are
  the part starting there, then the whole name (``lstm/lstm_cell/kernel``,
  ``sequential/lstm/lstm_cell/kernel``). Optimizer weights have no alias.
* Keras 3 layout: only the weights of LSTM cells have aliases. A ``vars`` group
  is an LSTM cell's when its object's path ends in ``cell``, its ``name``
  attribute (if any) ends in ``lstm_cell``, and it holds 2 or 3 datasets shaped
  ``kernel (d, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (4u,)``; position
  ``0, 1, 2`` is ``kernel, recurrent_kernel, bias``. Aliases, in this order:
  1. ``<name>/.../<name>/<variable>``: the ``name`` attributes of the ``vars``
     groups of the objects on the path, leaving out models (objects that have a
     ``layers`` group, so the root model and any nested model): for
     ``layers/lstm/cell/vars/0``, ``lstm/lstm_cell/kernel``; for
     ``layers/bidirectional/forward_layer/cell/vars/1``,
     ``bidirectional/forward_lstm/lstm_cell/recurrent_kernel``; the same names
     tf_keras gives. Only when every object on the path has a name.
  2. ``<object path>/<variable>``: ``layers/lstm/cell/kernel``.

**Model configs** (:meth:`Source.keras_layers`): tf_keras full-model HDF5 files
(root attribute ``model_config``) and ``.keras`` archives (``config.json``) give
one :class:`~lstmcompat._interop._source.KerasLayer` per layer with weights, in
the config's order: top-level layers, a ``Bidirectional`` as one layer (its
weights forward then backward, the layer's ``weights`` order), and the layers
of nested ``Sequential`` / ``Functional`` models (flattened, by their own
names). ``keras_version`` is 3 for files Keras 3 wrote, 2 otherwise. Files
without a config give ``None``.

**Hostile files**: every failure is a ``ValueError`` (``FileNotFoundError`` for
a missing shard) naming the file. Only hard links are followed; external,
virtual and non-numeric datasets are refused. Variable-length string
attributes (``layer_names``, ``weight_names``, ``name``) are checked in the
file's own bytes before libhdf5 reads them: each string must be an object of
its declared length in a well-formed global heap collection (libhdf5 allocates
the declared lengths, loops forever on some corrupt collections and overreads
on others). A dataset's declared size must fit
in its HDF5 file when unfiltered; a filtered (compressed) one may declare at
most ``_MAX_EXPANSION`` times its stored bytes and never more than
``_MAX_FILTERED_BYTES``. Archive members are never extracted: member names that
are absolute or contain ``..`` are refused, JSON members may not exceed
``_MAX_JSON_BYTES``, a compressed member may not expand more than
``_MAX_EXPANSION`` times nor exceed ``_MAX_FILTERED_BYTES`` (it is read into
memory with that limit), a stored one is read in place.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _source
from ._source import KerasLayer

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_INSTALL_HINT = "pip install 'lstmcompat[h5]'"

#: A filtered (compressed) dataset or a compressed archive member may declare at
#: most this many times the bytes it stores (DEFLATE's own limit is about 1032).
_MAX_EXPANSION = 1100
#: Below this size the expansion ratio is not checked.
_EXPANSION_FLOOR = 1 << 20
#: Absolute cap on a filtered dataset or a compressed archive member (4 GiB).
_MAX_FILTERED_BYTES = 1 << 32
#: Cap on a JSON document: config, metadata, sharded-weights index (64 MiB).
_MAX_JSON_BYTES = 64 << 20
#: Cap on object nesting in an HDF5 file.
_MAX_DEPTH = 64

_NUMERIC_KINDS = "biufc"
_WEIGHT_SUFFIX = re.compile(r":\d+$")


class KerasFileError(ValueError):
    """A Keras weight file that cannot be read (corrupt, hostile or not Keras's)."""


def _fail(path, what: str) -> KerasFileError:
    return KerasFileError(f"{str(path)!r}: {what}")


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise ModuleNotFoundError(
            f"reading Keras HDF5 weight files needs h5py: {_INSTALL_HINT}", name="h5py") from e
    return h5py


class _Guard:
    """Turns any error of h5py, zipfile or json into a :class:`KerasFileError`."""

    def __init__(self, path, what: str):
        self.path, self.what = path, what

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is None or isinstance(exc, (KerasFileError, FileNotFoundError,
                                           ModuleNotFoundError)):
            return False
        if isinstance(exc, Exception):  # MemoryError and RecursionError included
            raise _fail(self.path, f"{self.what}: {type(exc).__name__}: {exc}") from exc
        return False


# ---------------------------------------------------------------------------- sniffing


def _hdf5_magic_at(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            head = f.read(_HDF5_OFFSETS[-1] + len(_HDF5_MAGIC))
    except OSError:
        return None
    for off in _HDF5_OFFSETS:
        if head[off:off + len(_HDF5_MAGIC)] == _HDF5_MAGIC:
            return off
    return None


def _sniff_h5(path: Path, head: bytes) -> bool:
    return path.is_file() and _hdf5_magic_at(path) is not None


def _sniff_index(path: Path, head: bytes) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".json"):
        return False
    try:
        with open(path, "rb") as f:
            start = f.read(1 << 16)
    except OSError:
        return False
    return start.lstrip()[:1] == b"{" and b'"weight_map"' in start


def _sniff_zip(path: Path, head: bytes) -> bool:
    if not (path.is_file() and head[:4] in _ZIP_MAGICS):
        return False
    if path.suffix.lower() == ".keras":
        return True
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except Exception:  # noqa: BLE001 - not ours to judge
        return False
    return "config.json" in names and bool(
        names & {"model.weights.h5", "model.weights.json", "model.weights.npz"})


# ---------------------------------------------------------------------------- HDF5 access


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes at ``start`` of an open file."""

    def __init__(self, f, start: int, size: int, lock: threading.Lock):
        super().__init__()
        self._f, self._start, self._size, self._pos, self._lock = f, start, size, 0, lock

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise OSError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, b):
        n = max(0, min(len(b), self._size - self._pos))
        if n == 0:
            return 0
        with self._lock:
            self._f.seek(self._start + self._pos)
            data = self._f.read(n)
        b[:len(data)] = data
        self._pos += len(data)
        return len(data)


class _RawHDF5:
    """Just enough of the HDF5 file format to find an attribute's stored bytes.

    libhdf5 allocates a variable-length string attribute's elements with the
    lengths the file declares before it reads them (a flipped bit can make it
    ask for gigabytes), and offers no way to see those lengths first. This reads
    them from the attribute message in the object header (version 1 or 2
    headers, compact attribute storage: what h5py and Keras write).
    """

    def __init__(self, read: Any, size: int, where: str):
        self._read, self.size, self.where = read, size, where
        start = None
        for off in _HDF5_OFFSETS:
            if off + 16 <= size and read(off, 8) == _HDF5_MAGIC:
                start = off
                break
        if start is None:
            raise _fail(where, "no HDF5 superblock")
        sb = read(start, 64)
        version = sb[8]
        if version in (0, 1):
            self.o, self.l = sb[13], sb[14]
            base_at = 24 + (4 if version == 1 else 0)
        elif version in (2, 3):
            self.o, self.l = sb[9], sb[10]
            base_at = 12
        else:
            raise _fail(where, f"unknown HDF5 superblock version {version}")
        if self.o not in (2, 4, 8) or self.l not in (2, 4, 8):
            raise _fail(where, "corrupt HDF5 superblock (address sizes)")
        self.base = int.from_bytes(sb[base_at:base_at + self.o], "little")

    def _messages(self, addr: int):
        """``(type, data)`` of every message of the object header at ``addr``."""
        read, pos = self._read, self.base + addr
        head = read(pos, 16)
        blocks, out, v2 = [], [], head[:4] == b"OHDR"
        if v2:
            flags = head[5]
            at = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
            width = 1 << (flags & 3)
            size = int.from_bytes(read(pos + at, width), "little")
            blocks.append((pos + at + width, size))  # the checksum follows
        elif head[0] == 1:
            flags = 0
            blocks.append((pos + 16, int.from_bytes(head[8:12], "little")))
        else:
            raise _fail(self.where, f"unknown object header at {addr}")
        seen = 0
        while blocks:
            start, length = blocks.pop(0)
            seen += 1
            if seen > 1000 or length < 0 or length > self.size:
                raise _fail(self.where, f"corrupt object header at {addr}")
            data = read(start, length)
            i = 0
            hsize = (4 + (2 if flags & 0x04 else 0)) if v2 else 8
            while i + hsize <= len(data):
                if v2:
                    mtype, msize = data[i], int.from_bytes(data[i + 1:i + 3], "little")
                else:
                    mtype, msize = (int.from_bytes(data[i:i + 2], "little"),
                                    int.from_bytes(data[i + 2:i + 4], "little"))
                body = data[i + hsize:i + hsize + msize]
                i += hsize + msize
                if mtype == 0x10 and len(body) >= self.o + self.l:
                    caddr = int.from_bytes(body[:self.o], "little")
                    clen = int.from_bytes(body[self.o:self.o + self.l], "little")
                    if v2:  # "OCHK" signature ... checksum
                        blocks.append((self.base + caddr + 4, clen - 8))
                    else:
                        blocks.append((self.base + caddr, clen))
                else:
                    out.append((mtype, body))
        return out

    def vlen_strings(self, addr: int, name: str) -> list[tuple[int, int, int]] | None:
        """A variable-length string attribute's elements ``(length, heap address,
        index)``, or ``None`` when it is not variable-length. Raises when the
        attribute cannot be found."""
        want = name.encode()
        for mtype, d in self._messages(addr):
            if mtype == 0x0C:
                found, lengths = self._attribute(d, want)
                if found:
                    return lengths
        # Dense attribute storage (newer file formats, many attributes): the messages
        # lie in a fractal heap; check every stored message of that name instead.
        hits, chunk, key = [], 1 << 24, want + b"\0"
        for at in range(0, self.size, chunk - 64):
            block = self._read(at, chunk)
            i = block.find(key)
            while i >= 0:
                for back in (9, 8):
                    q = at + i - back
                    if q >= 0:
                        d = self._read(q, 1 << 16)
                        try:
                            found, lengths = self._attribute(d, want)
                        except KerasFileError:
                            continue
                        if found and d[0] == (3 if back == 9 else d[0]):
                            hits.append(lengths or [])
                i = block.find(key, i + 1)
        if not hits:
            raise _fail(self.where, f"attribute {name!r}: its stored value was not found")
        for elements in hits:
            self.check_strings(elements, name)
        return hits[0]

    def _attribute(self, d: bytes, want: bytes) -> tuple[bool, list[int] | None]:
        """``(is it attribute `want`, its vlen element lengths or None)``."""
        if len(d) < 8 or d[0] not in (1, 2, 3):
            return False, None
        version, aflags = d[0], d[1]
        nsize, tsize, ssize = (int.from_bytes(d[k:k + 2], "little") for k in (2, 4, 6))
        at = 9 if version == 3 else 8
        pad = (lambda n: (n + 7) // 8 * 8) if version == 1 else (lambda n: n)
        if nsize != len(want) + 1 or d[at:at + nsize] != want + b"\0":
            return False, None
        if aflags & 0x3:
            raise _fail(self.where, f"attribute {want.decode()!r} uses a shared type or space")
        t = d[at + pad(nsize):at + pad(nsize) + tsize]
        sp = d[at + pad(nsize) + pad(tsize):at + pad(nsize) + pad(tsize) + ssize]
        raw = d[at + pad(nsize) + pad(tsize) + pad(ssize):]
        if len(t) < 8 or len(sp) < 4:
            raise _fail(self.where, f"corrupt attribute message {want.decode()!r}")
        if t[0] & 0x0F != 9:
            return True, None
        if t[1] & 0x0F != 1:
            raise _fail(self.where, f"attribute {want.decode()!r} is a variable-length "
                                    f"sequence, not a string")
        esize = int.from_bytes(t[4:8], "little")
        rank, sversion = sp[1], sp[0]
        dims_at = 8 if sversion == 1 else 4
        if sversion == 2 and sp[3] == 2:
            count = 0
        else:
            dims = [int.from_bytes(sp[dims_at + k * self.l:dims_at + (k + 1) * self.l],
                                   "little") for k in range(rank)]
            count = math.prod(dims)
        if esize != 8 + self.o or count * esize > len(raw):
            raise _fail(self.where, f"attribute {want.decode()!r} stores fewer bytes than "
                                    f"it declares")
        o = self.o
        return True, [(int.from_bytes(raw[k * esize:k * esize + 4], "little"),
                       int.from_bytes(raw[k * esize + 4:k * esize + 4 + o], "little"),
                       int.from_bytes(raw[k * esize + 4 + o:k * esize + 8 + o], "little"))
                      for k in range(count)]

    def check_strings(self, elements: list[tuple[int, int, int]], name: str) -> None:
        """Check variable-length string elements ``(length, heap address, index)``
        against their global heap collections before libhdf5 reads them (it
        allocates what they declare, and loops forever on some corrupt heaps)."""
        if sum(length for length, _, _ in elements) > self.size:
            raise _fail(self.where, f"attribute {name!r} declares strings of "
                                    f"{sum(e[0] for e in elements)} bytes, more than the "
                                    f"file holds")
        for length, addr, index in elements:
            if length == 0 and addr == 0:
                continue
            objects = self._collection(addr)
            if objects.get(index) != length or index == 0:
                raise _fail(self.where, f"attribute {name!r}: a string of {length} bytes "
                                        f"points at a missing or different heap object")

    def _collection(self, addr: int) -> dict[int, int]:
        """``{index: size}`` of the objects of the global heap collection at ``addr``,
        walked as libhdf5 walks it, refusing what would make it loop or overread."""
        cache = self.__dict__.setdefault("_collections", {})
        if addr in cache:
            return cache[addr]
        pos, L = self.base + addr, self.l
        head = self._read(pos, 8 + L)
        size = int.from_bytes(head[8:8 + L], "little")
        if head[:4] != b"GCOL" or head[4] != 1 or size < 8 + L or pos + size > self.size:
            raise _fail(self.where, f"corrupt global heap collection at {addr}")
        data, objects, p, hdr = self._read(pos, size), {}, 8 + L, 8 + L
        while p < size:
            if p + hdr > size:
                break
            index = int.from_bytes(data[p:p + 2], "little")
            osize = int.from_bytes(data[p + 8:p + 8 + L], "little")
            need = hdr + (osize + 7) // 8 * 8 if index else osize
            if need <= 0 or p + need > size or index in objects:
                raise _fail(self.where, f"corrupt global heap collection at {addr}")
            objects[index] = osize
            p += need
        cache[addr] = objects
        return objects


@dataclass
class _H5:
    """One open HDF5 file and the checks every access goes through."""

    file: Any  # h5py.File
    where: str  # for messages: the path, or "archive.keras!member"
    size: int  # bytes of the HDF5 file
    raw: _RawHDF5 | None = None
    handle: Any = None  # the file the raw reader reads, when it opened one

    def close(self) -> None:
        self.file.close()
        if self.handle is not None:
            self.handle.close()

    def fail(self, what: str) -> KerasFileError:
        return _fail(self.where, what)

    def child(self, group, name: str):
        """``group[name]`` (one path component), following hard links only."""
        h5py = _h5py()
        link = group.get(name, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise self.fail(f"{_join(group.name, name)!r} is a {type(link).__name__} "
                            f"(only hard links are read)")
        return group[name]

    def resolve(self, group, relpath: str):
        """``group[relpath]`` for a ``/``-separated relative path, hard links only."""
        parts = relpath.split("/")
        if relpath.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise self.fail(f"invalid HDF5 path {relpath!r} under {group.name!r}")
        h5py = _h5py()
        obj = group
        for p in parts:
            if not isinstance(obj, h5py.Group):
                return None
            obj = self.child(obj, p)
            if obj is None:
                return None
        return obj

    def attr(self, obj, name: str):
        """An attribute's value, refusing one that declares more bytes than the file has."""
        h5py = _h5py()
        if name not in obj.attrs:
            return None
        aid = h5py.h5a.open(obj.id, name.encode())
        count = math.prod(aid.shape or ())
        if count * max(1, aid.dtype.itemsize) > self.size:
            raise self.fail(f"attribute {name!r} of {obj.name!r} declares {count} items "
                            f"of {aid.dtype.itemsize} bytes, more than the file holds")
        if aid.get_type().get_class() == h5py.h5t.VLEN or isinstance(
                aid.get_type(), h5py.h5t.TypeStringID) and aid.get_type().is_variable_str():
            elements = self.raw.vlen_strings(h5py.h5o.get_info(obj.id).addr, name) or []
            self.raw.check_strings(elements, name)
        return obj.attrs[name]

    def names_attr(self, obj, name: str) -> list[str]:
        """A tf_keras list-of-names attribute (also chunked as ``name0``, ``name1``...)."""
        values = []
        if name in obj.attrs:
            chunks = [self.attr(obj, name)]
        else:
            chunks, k = [], 0
            while f"{name}{k}" in obj.attrs:
                chunks.append(self.attr(obj, f"{name}{k}"))
                k += 1
        for chunk in chunks:
            arr = np.asarray(chunk)
            if arr.size == 0:
                continue
            for item in arr.reshape(-1):
                if isinstance(item, (bytes, np.bytes_)):
                    try:
                        item = bytes(item).decode("utf8")
                    except UnicodeDecodeError as e:
                        raise self.fail(f"attribute {name!r} of {obj.name!r} is not UTF-8") from e
                if not isinstance(item, str):
                    raise self.fail(f"attribute {name!r} of {obj.name!r} holds "
                                    f"{type(item).__name__}, expected names")
                values.append(item)
        return values

    def text_attr(self, obj, name: str) -> str | None:
        value = self.attr(obj, name)
        if value is None:
            return None
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        if isinstance(value, (bytes, np.bytes_)):
            try:
                return bytes(value).decode("utf8")
            except UnicodeDecodeError as e:
                raise self.fail(f"attribute {name!r} is not UTF-8") from e
        if isinstance(value, str):
            return value
        raise self.fail(f"attribute {name!r} is {type(value).__name__}, expected a string")

    def check_dataset(self, ds, name: str) -> tuple[int, ...]:
        """Validate a dataset before any read; returns its shape."""
        h5py = _h5py()
        if not isinstance(ds, h5py.Dataset):
            raise self.fail(f"{name!r} is a {type(ds).__name__}, expected a dataset")
        plist = ds.id.get_create_plist()
        if plist.get_layout() == h5py.h5d.VIRTUAL:
            raise self.fail(f"dataset {name!r} is virtual (it would read other files)")
        if plist.get_external_count() > 0:
            raise self.fail(f"dataset {name!r} has external storage (other files)")
        dtype = ds.dtype
        if dtype.kind not in _NUMERIC_KINDS and not self._is_bfloat16(ds):
            raise self.fail(f"dataset {name!r} has dtype {dtype}, not a numeric weight")
        shape = tuple(int(n) for n in ds.shape)
        declared = math.prod(shape) * dtype.itemsize
        if plist.get_layout() == h5py.h5d.CHUNKED:
            chunk = math.prod(plist.get_chunk()) * dtype.itemsize
            if chunk > _MAX_FILTERED_BYTES or chunk > max(declared, _EXPANSION_FLOOR):
                raise self.fail(f"dataset {name!r} declares chunks of {chunk} bytes for "
                                f"{declared} bytes of data")
        if plist.get_nfilters() == 0:
            if declared > self.size:
                raise self.fail(f"dataset {name!r} declares shape {shape} of {dtype} "
                                f"({declared} bytes), more than the file's {self.size} bytes")
        else:
            stored = ds.id.get_storage_size()
            if declared > _MAX_FILTERED_BYTES or (
                    declared > _EXPANSION_FLOOR and declared > _MAX_EXPANSION * stored):
                raise self.fail(f"compressed dataset {name!r} declares {declared} bytes for "
                                f"{stored} stored bytes (refusing more than {_MAX_EXPANSION}x "
                                f"or {_MAX_FILTERED_BYTES} bytes)")
        return shape

    def _is_bfloat16(self, ds) -> bool:
        if ds.dtype.itemsize != 2 or ds.dtype.kind not in "Vu":
            return False
        try:
            tag = self.text_attr(ds, "dtype")
        except KerasFileError:
            return False
        return tag == "bfloat16"

    def read(self, ds, name: str) -> np.ndarray:
        self.check_dataset(ds, name)
        with _Guard(self.where, f"reading dataset {name!r}"):
            value = np.asarray(ds[()])
            if value.dtype.kind not in _NUMERIC_KINDS or self._is_bfloat16(ds):
                bits = np.frombuffer(value.tobytes(), dtype="<u2")
                return _bfloat16(bits).reshape(value.shape)
            return value


def _bfloat16(bits: np.ndarray) -> np.ndarray:
    try:
        import ml_dtypes
    except ImportError:  # float32 holds every bfloat16 value exactly
        return (bits.astype(np.uint32) << 16).view(np.float32)
    return bits.view(ml_dtypes.bfloat16)


def _join(a: str, b: str) -> str:
    a = a.strip("/")
    return f"{a}/{b}" if a else b


def _open_h5(source, where: str, size: int) -> _H5:
    """``source``: a path or a seekable binary file object."""
    h5py = _h5py()
    if isinstance(source, str):
        handle = open(source, "rb")
    else:
        handle = source
    lock = threading.Lock()

    def read(offset: int, n: int) -> bytes:
        with lock:
            pos = handle.tell()
            handle.seek(offset)
            data = handle.read(max(0, min(n, size - offset)))
            handle.seek(pos)
        return data

    try:
        with _Guard(where, "not a readable HDF5 file"):
            raw = _RawHDF5(read, size, where)
            f = h5py.File(source, "r")
    except BaseException:
        if isinstance(source, str):
            handle.close()
        raise
    return _H5(f, where, size, raw, handle if isinstance(source, str) else None)


# ---------------------------------------------------------------------------- entries


@dataclass
class _Entry:
    h5: _H5
    path: str  # dataset path in h5.file
    shape: tuple[int, ...]
    aliases: tuple[str, ...] = ()
    owner: str = ""  # Keras 3: the object path of its vars group; tf_keras: the layer group


class _KerasSource:
    """A Keras weight file as a :class:`~lstmcompat._interop._source.Source`."""

    def __init__(self, path: Path, kind: str, entries: dict[str, _Entry],
                 layers: list[KerasLayer] | None, handles: list):
        self.path = path
        self.kind = kind
        self._entries = entries
        self._layers = layers
        self._handles = handles

    def variables(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(name, e.shape) for name, e in self._entries.items()]

    def read(self, name: str) -> np.ndarray:
        e = self._entries[name]
        with _Guard(e.h5.where, f"reading {name!r}"):
            ds = e.h5.file[e.path]
        return e.h5.read(ds, name)

    def aliases(self) -> dict[str, tuple[str, ...]]:
        return {n: e.aliases for n, e in self._entries.items() if e.aliases}

    def keras_layers(self) -> list[KerasLayer] | None:
        return None if self._layers is None else list(self._layers)

    def module_config(self):
        return None

    def close(self) -> None:
        for h in self._handles:
            try:
                h.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass


def _major(version: str | None) -> int:
    m = re.match(r"\s*(\d+)", version or "")
    return 3 if m and int(m.group(1)) >= 3 else 2


# ---------------------------------------------------------------------------- tf_keras layout


def _tf_keras_root(h5: _H5):
    """``(root group, name prefix)`` when the file has tf_keras's layout, else ``None``."""
    h5py = _h5py()
    f = h5.file
    if "model_weights" in f:
        g = h5.child(f, "model_weights")
        if isinstance(g, h5py.Group) and _has_names(g, "layer_names"):
            return g, "model_weights/"
    if _has_names(f, "layer_names"):
        return f, ""
    return None


def _has_names(obj, name: str) -> bool:
    return name in obj.attrs or f"{name}0" in obj.attrs


def _tf_keras_entries(h5: _H5, root, prefix: str) -> dict[str, _Entry]:
    h5py = _h5py()
    entries: dict[str, _Entry] = {}

    def add_group(gname: str, group, in_file: str, aliases: bool):
        for w in h5.names_attr(group, "weight_names"):
            ds = h5.resolve(group, w)
            full = f"{in_file}/{w}"
            if ds is None:
                raise h5.fail(f"weight {w!r} listed in the `weight_names` of {gname!r} has no "
                              f"dataset ({full!r} is missing)")
            shape = h5.check_dataset(ds, full)
            if full in entries:
                raise h5.fail(f"weight {full!r} is listed twice")
            names: tuple[str, ...] = ()
            if aliases:
                base = _WEIGHT_SUFFIX.sub("", w)
                names = (base,)
                marker = f"/{gname}/"
                if not base.startswith(f"{gname}/") and marker in base:
                    names = (base[base.index(marker) + 1:], base)
            entries[full] = _Entry(h5, full, shape, names, gname)

    layer_names = h5.names_attr(root, "layer_names")
    if len(set(layer_names)) != len(layer_names):
        raise h5.fail("a layer is listed twice in `layer_names`")
    for name in layer_names:
        group = h5.resolve(root, name) if name else None
        if not isinstance(group, h5py.Group):
            raise h5.fail(f"layer {name!r} listed in `layer_names` has no group "
                          f"{prefix + name!r}")
        add_group(name, group, prefix + name, True)
    if "top_level_model_weights" in root and "top_level_model_weights" not in layer_names:
        group = h5.child(root, "top_level_model_weights")
        if isinstance(group, h5py.Group):
            add_group("top_level_model_weights", group, prefix + "top_level_model_weights", True)
    if "optimizer_weights" in h5.file:
        group = h5.child(h5.file, "optimizer_weights")
        if isinstance(group, h5py.Group):
            add_group("optimizer_weights", group, "optimizer_weights", False)
    return entries


def _parse_json(where, text: str | bytes, what: str):
    if len(text) > _MAX_JSON_BYTES:
        raise _fail(where, f"{what} is larger than {_MAX_JSON_BYTES} bytes")
    with _Guard(where, f"{what} is not valid JSON"):
        return json.loads(text)


def _config_layers(where, config) -> list[dict]:
    """The ``layers`` list of a model config (``{"class_name", "config": {"layers"}}``)."""
    if not isinstance(config, dict):
        raise _fail(where, "the model config is not a JSON object")
    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        return []
    return [layer for layer in inner["layers"] if isinstance(layer, dict)]


def _layer_name(layer: dict) -> str | None:
    cfg = layer.get("config")
    name = layer.get("name")
    if name is None and isinstance(cfg, dict):
        name = cfg.get("name")
    return name if isinstance(name, str) else None


_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def _tf_keras_layers(where, config, entries: dict[str, _Entry], version: int) -> list[KerasLayer]:
    by_group: dict[str, list[tuple[str, _Entry]]] = {}
    for n, e in entries.items():
        if not n.startswith("optimizer_weights/"):
            by_group.setdefault(e.owner, []).append((n, e))
    out: list[KerasLayer] = []

    def visit(layers: list[dict], group: str | None, depth: int):
        if depth > _MAX_DEPTH:
            raise _fail(where, "the model config nests too deeply")
        for layer in layers:
            name, cls, cfg = _layer_name(layer), layer.get("class_name"), layer.get("config")
            if name is None or not isinstance(cls, str) or not isinstance(cfg, dict):
                continue
            if cls in _MODEL_CLASSES and isinstance(cfg.get("layers"), list):
                visit(_config_layers(where, layer), name if group is None else group, depth + 1)
                continue
            if group is None:
                weights = [n for n, _ in by_group.get(name, [])]
            else:  # inside a nested model: its group holds every inner layer's weights
                weights = [n for n, e in by_group.get(group, [])
                           if e.aliases and (e.aliases[0].startswith(f"{name}/")
                                             or f"/{name}/" in e.aliases[0])]
            if weights:
                out.append(KerasLayer(name, cls, cfg, tuple(weights), version))

    visit(_config_layers(where, config), None, 0)
    return out


# ---------------------------------------------------------------------------- Keras 3 layout


@dataclass
class _VarsGroup:
    owner: str  # object path ("" for the root)
    datasets: list[tuple[str, _H5, Any]]  # (key, h5, dataset)
    name: str | None = None


def _vars_key(key: str):
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _walk_keras3(h5: _H5, info: dict[str, dict]) -> list[_VarsGroup]:
    """Every ``vars`` group in save order; fills ``info[object path]`` with its
    ``name`` attribute and whether it has a ``layers`` group (a model)."""
    h5py = _h5py()
    found: list[_VarsGroup] = []
    seen: set[int] = set()

    def addr(obj) -> int:
        return h5py.h5o.get_info(obj.id).addr

    def visit(group, path: str, depth: int):
        if depth > _MAX_DEPTH:
            raise h5.fail(f"groups nest deeper than {_MAX_DEPTH} at {path!r}")
        a = addr(group)
        if a in seen:
            raise h5.fail(f"group {path or '/'!r} is reachable twice (a link cycle)")
        seen.add(a)
        slot = info.setdefault(path, {"name": None, "model": False, "vars": False})
        children = []
        for key in group:
            obj = h5.child(group, key)
            if isinstance(obj, h5py.Group):
                children.append((addr(obj), key, obj))
        children.sort(key=lambda c: c[0])
        slot["model"] = slot["model"] or any(key == "layers" for _, key, _ in children)
        for _, key, obj in children:
            if key == "vars":
                slot["vars"] = True
                name = h5.text_attr(obj, "name") if "name" in obj.attrs else None
                if name is not None:
                    slot["name"] = name
                datasets = []
                for k in obj:
                    ds = h5.child(obj, k)
                    if isinstance(ds, h5py.Dataset):
                        datasets.append((k, ds))
                datasets.sort(key=lambda d: _vars_key(d[0]))
                found.append(_VarsGroup(path, [(k, h5, ds) for k, ds in datasets], name))
        for _, key, obj in children:
            if key != "vars":
                visit(obj, _join(path, key), depth + 1)

    visit(h5.file, "", 0)
    return found


def _lstm_names(shapes: list[tuple[int, ...]]) -> list[str] | None:
    if len(shapes) not in (2, 3) or len(shapes[0]) != 2 or len(shapes[1]) != 2:
        return None
    (_, k4), (u, r4) = shapes[0], shapes[1]
    if u < 1 or k4 != 4 * u or r4 != 4 * u:
        return None
    if len(shapes) == 3 and shapes[2] != (4 * u,):
        return None
    return ["kernel", "recurrent_kernel", "bias"][:len(shapes)]


def _keras3_entries(groups: list[_VarsGroup], info: dict[str, dict]) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for g in groups:
        shapes = []
        for key, h5, ds in g.datasets:
            name = _join(_join(g.owner, "vars"), key)
            shapes.append(h5.check_dataset(ds, name))
        var_names = None
        own = info.get(g.owner, {}).get("name")
        if (g.owner.split("/")[-1] == "cell" and (own is None or own.endswith("lstm_cell"))
                and [k for k, _, _ in g.datasets] == [str(i) for i in range(len(shapes))]):
            var_names = _lstm_names(shapes)
        chain: list[str] | None = []
        parts = g.owner.split("/") if g.owner else []
        for i in range(len(parts)):
            slot = info.get("/".join(parts[:i + 1]))
            if slot is None or not slot["vars"] or slot["model"]:
                continue  # a container (no vars group of its own) or a model
            if slot["name"] is None:
                chain = None
                break
            chain.append(slot["name"])
        for j, ((key, h5, ds), shape) in enumerate(zip(g.datasets, shapes)):
            name = _join(_join(g.owner, "vars"), key)
            aliases: tuple[str, ...] = ()
            if var_names is not None:
                v = var_names[j]
                aliases = ((f"{'/'.join(chain)}/{v}",) if chain else ()) + (_join(g.owner, v),)
            if name in entries:
                raise h5.fail(f"dataset {name!r} is stored twice")
            entries[name] = _Entry(h5, ds.name.lstrip("/"), shape, aliases, g.owner)
    return entries


def _snake(name: str) -> str:
    """Keras 3's ``naming.to_snake_case``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_layers(where, config, entries: dict[str, _Entry]) -> list[KerasLayer]:
    out: list[KerasLayer] = []
    names = list(entries)

    def under(path: str) -> list[str]:
        return [n for n in names if entries[n].owner == path
                or entries[n].owner.startswith(path + "/")]

    def visit(layers: list[dict], prefix: str, depth: int):
        if depth > _MAX_DEPTH:
            raise _fail(where, "the model config nests too deeply")
        used: dict[str, int] = {}
        for layer in layers:
            cls, cfg = layer.get("class_name"), layer.get("config")
            if not isinstance(cls, str):
                continue
            base = _snake(cls)
            if base in used:
                used[base] += 1
                key = f"{base}_{used[base]}"
            else:
                used[base] = 0
                key = base
            path = _join(prefix, key)
            name = _layer_name(layer)
            if name is None or not isinstance(cfg, dict):
                continue
            if cls in _MODEL_CLASSES and isinstance(cfg.get("layers"), list):
                visit(_config_layers(where, layer), _join(path, "layers"), depth + 1)
                continue
            weights = under(path)
            if cls == "Bidirectional":
                fw, bw = under(_join(path, "forward_layer")), under(_join(path, "backward_layer"))
                weights = fw + bw + [n for n in weights if n not in fw and n not in bw]
            if weights:
                out.append(KerasLayer(name, cls, cfg, tuple(weights), 3))

    visit(_config_layers(where, config), "layers", 0)
    return out


# ---------------------------------------------------------------------------- openers


def _open_hdf5(path: Path) -> _KerasSource:
    size = path.stat().st_size
    h5 = _open_h5(str(path), str(path), size)
    try:
        return _from_h5(path, h5, [h5])
    except BaseException:
        h5.close()
        raise


def _from_h5(path: Path, h5: _H5, handles: list, config=None, version: int | None = None,
             kind: str | None = None) -> _KerasSource:
    with _Guard(h5.where, "corrupt HDF5 structure"):
        tf = _tf_keras_root(h5)
        if tf is not None:
            root, prefix = tf
            entries = _tf_keras_entries(h5, root, prefix)
            layers = None
            text = h5.text_attr(h5.file, "model_config")
            if text is not None:
                v = _major(h5.text_attr(root, "keras_version")
                           or h5.text_attr(h5.file, "keras_version"))
                layers = _tf_keras_layers(h5.where, _parse_json(h5.where, text, "model_config"),
                                          entries, v)
            return _KerasSource(path, kind or "keras_h5", entries, layers, handles)
        if "layers" in h5.file or "vars" in h5.file or config is not None:
            info: dict[str, dict] = {}
            entries = _keras3_entries(_walk_keras3(h5, info), info)
            layers = None if config is None else _keras3_layers(h5.where, config, entries)
            return _KerasSource(path, kind or "keras3_weights", entries, layers, handles)
    raise h5.fail("an HDF5 file without Keras weights (no `layer_names` attribute, no "
                  "`layers` or `vars` group)")


def _check_member_name(where, name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise _fail(where, f"archive member {name!r} has an absolute or '..' path")


def _index(where, data) -> list[tuple[str, list[str]]]:
    """The validated ``weight_map`` of a sharded-weights index: ``[(group, [shard])]``."""
    if not isinstance(data, dict) or not isinstance(data.get("weight_map"), dict):
        raise _fail(where, "not a Keras sharded-weights index (no `weight_map` object)")
    out = []
    for group, files in data["weight_map"].items():
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            raise _fail(where, f"`weight_map` entry {group!r} must name shard files, "
                               f"got {files!r:.100}")
        for f in files:
            if f in ("", ".", "..") or "/" in f or "\\" in f or "\0" in f:
                raise _fail(where, f"`weight_map` names shard {f!r}: expected a file name "
                                   f"in the index's folder")
        g = group.strip("/")
        parts = g.split("/")
        if not g or parts[-1] != "vars" or any(p in ("", ".", "..") for p in parts):
            raise _fail(where, f"`weight_map` key {group!r} is not a `.../vars` group path")
        out.append((g, files))
    return out


def _sharded(path: Path, where: str, weight_map, opener, config=None,
             kind: str = "keras3_weights") -> _KerasSource:
    """``opener(filename) -> _H5`` opens one shard."""
    shards: dict[str, _H5] = {}
    handles: list = []
    try:
        for _, files in weight_map:
            for f in files:
                if f not in shards:
                    shards[f] = opener(f)
                    handles.append(shards[f])
        h5py = _h5py()
        info: dict[str, dict] = {}
        for h5 in shards.values():
            with _Guard(h5.where, "corrupt HDF5 structure"):
                shard_info: dict[str, dict] = {}
                _walk_keras3(h5, shard_info)
            for p, slot in shard_info.items():
                merged = info.setdefault(p, {"name": None, "model": False, "vars": False})
                merged["name"] = merged["name"] or slot["name"]
                merged["model"] = merged["model"] or slot["model"]
                merged["vars"] = merged["vars"] or slot["vars"]
        groups = []
        seen = set()
        for g, files in weight_map:
            if g in seen:
                continue
            seen.add(g)
            owner = g[:-len("vars")].rstrip("/")
            datasets = []
            for f in dict.fromkeys(files):
                h5 = shards[f]
                with _Guard(h5.where, "corrupt HDF5 structure"):
                    grp = h5.resolve(h5.file, g)
                    if not isinstance(grp, h5py.Group):
                        continue
                    for k in grp:
                        ds = h5.child(grp, k)
                        if isinstance(ds, h5py.Dataset):
                            datasets.append((k, h5, ds))
            keys = [k for k, _, _ in datasets]
            if len(set(keys)) != len(keys):
                raise _fail(where, f"a dataset of {g!r} is stored in two shards")
            datasets.sort(key=lambda d: _vars_key(d[0]))
            groups.append(_VarsGroup(owner, datasets))
        entries = _keras3_entries(groups, info)
        layers = None if config is None else _keras3_layers(where, config, entries)
        return _KerasSource(path, kind, entries, layers, handles)
    except BaseException:
        for h in handles:
            h.close()
        raise


def _open_index(path: Path) -> _KerasSource:
    where = str(path)
    with _Guard(where, "unreadable sharded-weights index"):
        size = path.stat().st_size
        if size > _MAX_JSON_BYTES:
            raise _fail(where, f"a sharded-weights index larger than {_MAX_JSON_BYTES} bytes")
        text = path.read_bytes()
    weight_map = _index(where, _parse_json(where, text, "the sharded-weights index"))
    _h5py()

    def opener(name: str) -> _H5:
        shard = path.with_name(name)
        if not shard.is_file():
            raise FileNotFoundError(f"{where!r}: shard {name!r} is missing "
                                    f"(expected {str(shard)!r})")
        return _open_h5(str(shard), str(shard), shard.stat().st_size)

    return _sharded(path, where, weight_map, opener)


class _Archive:
    """A ``.keras`` zip, read member by member with size limits (never extracted)."""

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)
        self.size = path.stat().st_size
        self._f = open(path, "rb")
        self._raw = open(path, "rb")  # for stored members read in place (zipfile has _f)
        self._lock = threading.Lock()
        try:
            with _Guard(self.where, "not a readable zip archive"):
                self.zip = zipfile.ZipFile(self._f)
                infos = self.zip.infolist()
            self.members = {}
            for info in infos:
                _check_member_name(self.where, info.filename)
                self.members[info.filename] = info
        except BaseException:
            self._f.close()
            self._raw.close()
            raise

    def close(self):
        self.zip.close()
        self._f.close()
        self._raw.close()

    def _check(self, info, limit: int) -> None:
        name = info.filename
        if info.file_size > limit:
            raise _fail(self.where, f"archive member {name!r} declares {info.file_size} "
                                    f"bytes (refusing more than {limit})")
        if info.compress_size > self.size:
            raise _fail(self.where, f"archive member {name!r} declares {info.compress_size} "
                                    f"stored bytes, more than the archive's {self.size}")
        if (info.file_size > _EXPANSION_FLOOR
                and info.file_size > _MAX_EXPANSION * info.compress_size):
            raise _fail(self.where, f"archive member {name!r} declares {info.file_size} bytes "
                                    f"for {info.compress_size} compressed bytes (a zip bomb?)")

    def read(self, name: str, limit: int) -> bytes:
        info = self.members[name]
        self._check(info, limit)
        with _Guard(self.where, f"corrupt archive member {name!r}"):
            with self.zip.open(info) as f:
                data = f.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise _fail(self.where, f"archive member {name!r} holds {len(data)} bytes, "
                                    f"its header says {info.file_size}")
        return data

    def h5(self, name: str) -> _H5:
        info = self.members.get(name)
        where = f"{self.where}!{name}"
        if info is None:
            raise FileNotFoundError(f"{self.where!r}: archive member {name!r} is missing")
        if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
            if info.file_size != info.compress_size:
                raise _fail(self.where, f"stored archive member {name!r} declares "
                                        f"{info.file_size} bytes but stores {info.compress_size}")
            with _Guard(self.where, f"corrupt archive member {name!r}"), self._lock:
                self._raw.seek(info.header_offset)
                header = self._raw.read(30)
                if len(header) != 30 or header[:4] != b"PK\x03\x04":
                    raise _fail(self.where, f"archive member {name!r} has no local header")
                n, e = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + n + e
            if start + info.file_size > self.size:
                raise _fail(self.where, f"archive member {name!r} runs past the archive's end")
            source = io.BufferedReader(_Window(self._raw, start, info.file_size, self._lock))
        else:
            source = io.BytesIO(self.read(name, _MAX_FILTERED_BYTES))
        return _open_h5(source, where, info.file_size)


def _open_archive(path: Path) -> _KerasSource:
    archive = _Archive(path)
    try:
        return _from_archive(path, archive)
    except BaseException:
        archive.close()
        raise


def _from_archive(path: Path, archive: _Archive) -> _KerasSource:
    where = archive.where
    if "config.json" not in archive.members:
        raise _fail(where, "a zip archive without `config.json` (not a .keras file)")
    config = _parse_json(where, archive.read("config.json", _MAX_JSON_BYTES), "config.json")
    if not isinstance(config, dict):
        raise _fail(where, "config.json is not a JSON object")
    if "model.weights.h5" in archive.members:
        _h5py()
        h5 = archive.h5("model.weights.h5")
        try:
            return _from_h5(path, h5, [h5, archive], config=config, kind="keras_archive")
        except BaseException:
            h5.close()
            raise
    if "model.weights.json" in archive.members:
        index = _parse_json(where, archive.read("model.weights.json", _MAX_JSON_BYTES),
                            "model.weights.json")
        weight_map = _index(where, index)
        _h5py()
        source = _sharded(path, where, weight_map, archive.h5, config=config,
                          kind="keras_archive")
        source._handles.append(archive)
        return source
    if "model.weights.npz" in archive.members:
        raise _fail(where, "weights saved with `weights_format='npz'` are not supported "
                           "(save the model with the default h5 weights)")
    raise _fail(where, "a .keras archive without `model.weights.h5` or `model.weights.json`")


_source.register(_source.Opener("keras3_weights", _sniff_index, _open_index,
                                "Keras 3 sharded weights (.weights.json)"))
_source.register(_source.Opener("keras_archive", _sniff_zip, _open_archive,
                                "Keras 3 .keras archives"))
_source.register(_source.Opener("keras_h5", _sniff_h5, _open_hdf5,
                                "Keras HDF5 files (tf_keras .h5, Keras 3 .weights.h5)"))

__all__ = ["KerasFileError"]
