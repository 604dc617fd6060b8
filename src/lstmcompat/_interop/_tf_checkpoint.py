"""TensorFlow checkpoint (tensor bundle, V2) reader in pure NumPy.

A V2 checkpoint is ``<prefix>.index``, an SSTable (LevelDB table format) whose
key ``""`` holds a ``BundleHeaderProto`` and every other key a
``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c, slices), plus
``<prefix>.data-NNNNN-of-MMMMM`` shards holding the raw tensor bytes. Every
offset and size read from a file is checked against the real file sizes before
anything is allocated, and every checksum is verified: a corrupt or hostile file
raises :class:`ValueError` (or :class:`OSError` for missing files), never a crash.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from . import _source

__all__ = ["TFCheckpoint", "crc32c", "snappy_decompress"]

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5
_HEADER_KEY = b""
_MAX_SHARDS = 1 << 20

# ----------------------------------------------------------------------------- crc32c

_POLY = 0x82F63B78


def _make_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _make_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def _raw_crc_small(data, crc: int) -> int:
    table = _TABLE_LIST
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _shift_tables(nbytes: int) -> list[list[int]]:
    """Tables of the linear map "append ``nbytes`` zero bytes" on a raw CRC register."""
    basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    for _ in range(nbytes):
        basis = _TABLE[basis & 0xFF] ^ (basis >> 8)
    cols = [int(v) for v in basis]
    tables = []
    for k in range(4):
        t = [0] * 256
        for b in range(1, 256):
            low = b & -b
            t[b] = t[b ^ low] ^ cols[8 * k + low.bit_length() - 1]
        tables.append(t)
    return tables


def crc32c(data) -> int:
    """CRC-32C (Castagnoli) of ``data`` (bytes-like), as LevelDB/TensorFlow compute it.

    Long inputs are split into equal lanes whose CRCs are computed together with
    NumPy, then combined (CRC is linear), so a few hundred MB take about a second.

    Examples:
        >>> hex(crc32c(b"123456789"))
        '0xe3069283'
    """
    view = memoryview(data).cast("B")
    n = len(view)
    if n < 4096:
        return _raw_crc_small(view, 0xFFFFFFFF) ^ 0xFFFFFFFF
    arr = np.frombuffer(view, dtype=np.uint8)
    lanes = max(16, int(np.sqrt(n)) // 4)
    length = -(-n // lanes)
    buf = np.zeros(lanes * length, dtype=np.uint8)
    # A zero-initialised raw CRC ignores leading zeros; the standard 0xFFFFFFFF
    # initial register is the same as complementing the first four message bytes.
    buf[lanes * length - n:] = arr
    buf[lanes * length - n:lanes * length - n + 4] ^= 0xFF
    cols = np.ascontiguousarray(buf.reshape(lanes, length).T)
    crc = np.zeros(lanes, dtype=np.uint32)
    table = _TABLE
    for j in range(length):
        crc = table[(crc ^ cols[j]) & 0xFF] ^ (crc >> 8)
    t0, t1, t2, t3 = _shift_tables(length)
    out = 0
    for c in crc.tolist():
        out = (t0[out & 0xFF] ^ t1[(out >> 8) & 0xFF] ^ t2[(out >> 16) & 0xFF]
               ^ t3[out >> 24]) ^ c
    return out ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- varints / protobuf


def _varint(buf, pos: int, end: int, what: str) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise ValueError(f"corrupt TF checkpoint: truncated varint in {what}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if result >> 64:
                raise ValueError(f"corrupt TF checkpoint: varint above 64 bits in {what}")
            return result, pos
        shift += 7
        if shift >= 64:
            raise ValueError(f"corrupt TF checkpoint: varint longer than 10 bytes in {what}")


def _proto_fields(buf: bytes, what: str):
    """Yield ``(field_number, wire_type, value)`` of a protobuf message (wire format)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, end, what)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end, what)
        elif wire == 1:
            if pos + 8 > end:
                raise ValueError(f"corrupt TF checkpoint: truncated fixed64 in {what}")
            value = int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wire == 5:
            if pos + 4 > end:
                raise ValueError(f"corrupt TF checkpoint: truncated fixed32 in {what}")
            value = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        elif wire == 2:
            size, pos = _varint(buf, pos, end, what)
            if pos + size > end:
                raise ValueError(f"corrupt TF checkpoint: length-delimited field past the end of {what}")
            value = bytes(buf[pos:pos + size])
            pos += size
        else:
            raise ValueError(f"corrupt TF checkpoint: unsupported protobuf wire type {wire} in {what}")
        if field == 0:
            raise ValueError(f"corrupt TF checkpoint: protobuf field number 0 in {what}")
        yield field, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# ----------------------------------------------------------------------------- snappy


def snappy_decompress(data, max_size: int | None = None) -> bytes:
    """Decompress a raw snappy block (the format LevelDB tables use).

    Args:
        data: the compressed bytes.
        max_size: refuse a declared uncompressed size above this many bytes
            (default: the most that ``len(data)`` bytes can expand to).

    Raises:
        ValueError: corrupt input.

    Examples:
        >>> snappy_decompress(b"\\x05\\x10hello")
        b'hello'
    """
    buf = bytes(data)
    end = len(buf)
    size, pos = _varint(buf, 0, end, "a snappy block")
    limit = 64 * end if max_size is None else max_size
    if size > limit:
        raise ValueError(f"corrupt TF checkpoint: snappy block declares {size} bytes "
                         f"from {end} compressed bytes")
    out = bytearray()
    while pos < end:
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length = tag >> 2
            if length >= 60:
                nb = length - 59
                if pos + nb > end:
                    raise ValueError("corrupt TF checkpoint: truncated snappy literal length")
                length = int.from_bytes(buf[pos:pos + nb], "little")
                pos += nb
            length += 1
            if pos + length > end or len(out) + length > size:
                raise ValueError("corrupt TF checkpoint: snappy literal past the end")
            out += buf[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            if pos + 1 > end:
                raise ValueError("corrupt TF checkpoint: truncated snappy copy")
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        else:
            nb = 2 if kind == 2 else 4
            if pos + nb > end:
                raise ValueError("corrupt TF checkpoint: truncated snappy copy")
            length = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos:pos + nb], "little")
            pos += nb
        if offset == 0 or offset > len(out) or len(out) + length > size:
            raise ValueError("corrupt TF checkpoint: snappy copy out of range")
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:  # an overlapping copy repeats the last ``offset`` bytes
            pattern = out[start:]
            out += (pattern * (length // offset + 1))[:length]
    if len(out) != size:
        raise ValueError(f"corrupt TF checkpoint: snappy block decodes to {len(out)} bytes, "
                         f"declares {size}")
    return bytes(out)


# ----------------------------------------------------------------------------- SSTable


def _block(data: bytes, handle: tuple[int, int], where: str) -> bytes:
    offset, size = handle
    if offset + size + _TRAILER > len(data) - _FOOTER:
        raise ValueError(f"corrupt TF checkpoint {where}: block [{offset}, {offset + size}) "
                         f"past the end of the {len(data)}-byte index file")
    contents = data[offset:offset + size]
    kind = data[offset + size]
    stored = int.from_bytes(data[offset + size + 1:offset + size + 5], "little")
    if crc32c(data[offset:offset + size + 1]) != _unmask(stored):
        raise ValueError(f"corrupt TF checkpoint {where}: block checksum mismatch "
                         f"at offset {offset}")
    if kind == 0:
        return contents
    if kind == 1:
        return snappy_decompress(contents)
    raise ValueError(f"corrupt TF checkpoint {where}: unknown block compression type {kind}")


def _block_entries(block: bytes, where: str):
    if len(block) < 4:
        raise ValueError(f"corrupt TF checkpoint {where}: block shorter than 4 bytes")
    n = int.from_bytes(block[-4:], "little")
    if 4 * (n + 1) > len(block):
        raise ValueError(f"corrupt TF checkpoint {where}: bad restart count {n}")
    end = len(block) - 4 * (n + 1)
    pos = 0
    key = b""
    while pos < end:
        shared, pos = _varint(block, pos, end, where)
        non_shared, pos = _varint(block, pos, end, where)
        value_len, pos = _varint(block, pos, end, where)
        if shared > len(key) or pos + non_shared + value_len > end:
            raise ValueError(f"corrupt TF checkpoint {where}: bad block entry")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _handle(buf: bytes, pos: int, end: int, where: str) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, pos, end, where)
    size, pos = _varint(buf, pos, end, where)
    return (offset, size), pos


def _read_table(data: bytes, where: str) -> list[tuple[bytes, bytes]]:
    if len(data) < _FOOTER:
        raise ValueError(f"corrupt TF checkpoint {where}: {len(data)} bytes, shorter than "
                         f"the {_FOOTER}-byte table footer")
    footer = data[-_FOOTER:]
    if int.from_bytes(footer[-8:], "little") != _MAGIC:
        raise ValueError(f"corrupt TF checkpoint {where}: not an SSTable (bad magic number)")
    _, pos = _handle(footer, 0, 40, where)
    index_handle, _ = _handle(footer, pos, 40, where)
    entries = []
    for _, value in _block_entries(_block(data, index_handle, where), where):
        handle, _ = _handle(value, 0, len(value), where)
        entries.extend(_block_entries(_block(data, handle, where), where))
    return entries


# ----------------------------------------------------------------------------- bundle

# DataType -> (numpy dtype, name); ``None`` = bytes strings.
_DTYPES: dict[int, tuple[object, str]] = {
    1: (np.float32, "float32"), 2: (np.float64, "float64"), 3: (np.int32, "int32"),
    4: (np.uint8, "uint8"), 5: (np.int16, "int16"), 6: (np.int8, "int8"),
    7: (None, "string"), 9: (np.int64, "int64"), 10: (np.bool_, "bool"),
    14: ("bfloat16", "bfloat16"), 17: (np.uint16, "uint16"), 19: (np.float16, "float16"),
    22: (np.uint32, "uint32"), 23: (np.uint64, "uint64"), 8: (np.complex64, "complex64"),
    18: (np.complex128, "complex128"),
}
_DTYPE_NAMES = {11: "qint8", 12: "quint8", 13: "qint32", 15: "qint16", 16: "quint16",
                20: "resource", 21: "variant"}


def _shape(buf: bytes, where: str) -> tuple[int, ...]:
    dims = []
    for field, wire, value in _proto_fields(buf, where):
        if field == 2 and wire == 2:
            size = 0
            for f2, w2, v2 in _proto_fields(value, where):
                if f2 == 1 and w2 == 0:
                    size = _signed64(v2)
            if size < 0:
                raise ValueError(f"corrupt TF checkpoint {where}: negative dimension {size}")
            dims.append(size)
        elif field == 3 and wire == 0 and value:
            raise ValueError(f"corrupt TF checkpoint {where}: shape of unknown rank")
    return tuple(dims)


class _Entry:
    __slots__ = ("dtype", "shape", "shard", "offset", "size", "crc", "slices")

    def __init__(self, value: bytes, where: str):
        self.dtype = 0
        self.shape: tuple[int, ...] = ()
        self.shard = self.offset = self.size = 0
        self.crc = 0  # proto3 default; checked like any other (as TensorFlow does)
        self.slices: list[list[tuple[int, int]]] = []
        for field, wire, v in _proto_fields(value, where):
            if field == 1 and wire == 0:
                self.dtype = v
            elif field == 2 and wire == 2:
                self.shape = _shape(v, where)
            elif field == 3 and wire == 0:
                self.shard = _signed64(v)
            elif field == 4 and wire == 0:
                self.offset = _signed64(v)
            elif field == 5 and wire == 0:
                self.size = _signed64(v)
            elif field == 6 and wire == 5:
                self.crc = v
            elif field == 7 and wire == 2:
                self.slices.append(_slice(v, where))
        if self.shard < 0 or self.offset < 0 or self.size < 0:
            raise ValueError(f"corrupt TF checkpoint {where}: negative shard, offset or size")


def _slice(buf: bytes, where: str) -> list[tuple[int, int]]:
    """A TensorSliceProto as ``[(start, length)]`` per dimension (length -1 = full)."""
    extents = []
    for field, wire, value in _proto_fields(buf, where):
        if field == 1 and wire == 2:
            start, length = 0, -1
            for f2, w2, v2 in _proto_fields(value, where):
                if f2 == 1 and w2 == 0:
                    start = _signed64(v2)
                elif f2 == 2 and w2 == 0:
                    length = _signed64(v2)
            extents.append((start, length))
    return extents


_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f",
            "v": b"\v", "\\": b"\\", "'": b"'", '"': b'"', "?": b"?"}


def _text_unescape(text: str) -> str:
    """A text-format protobuf string (C escapes, octal bytes for non-ASCII) as a str."""

    def sub(m: re.Match) -> bytes:
        esc = m.group(1)
        if esc[0] in "01234567":
            return bytes([int(esc, 8) & 0xFF])
        if esc[0] == "x":
            return bytes([int(esc[1:], 16)])
        return _ESCAPES.get(esc, esc.encode("utf-8", "surrogateescape"))

    out = bytearray()
    pos = 0
    for m in re.finditer(r"\\([0-7]{1,3}|x[0-9a-fA-F]{1,2}|.)", text, re.S):
        out += text[pos:m.start()].encode("utf-8", "surrogateescape") + sub(m)
        pos = m.end()
    out += text[pos:].encode("utf-8", "surrogateescape")
    return out.decode("utf-8", errors="surrogateescape")


def _resolve(path) -> Path:
    """The checkpoint prefix ``path`` names, as ``tf.train.load_checkpoint`` finds it."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike naming a TF checkpoint, got "
                        f"{type(path).__name__}")
    p = Path(os.fspath(path))
    if p.is_dir():
        state = p / "checkpoint"
        if not state.is_file():
            raise FileNotFoundError(f"no `checkpoint` state file in the directory {str(p)!r}: "
                                    f"pass a checkpoint prefix such as 'model.ckpt-1000'")
        text = state.read_bytes()[:1 << 20].decode("utf-8", errors="surrogateescape")
        match = re.search(r"""^\s*model_checkpoint_path\s*:\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""",
                          text, re.M)
        if match is None:
            raise ValueError(f"the checkpoint state file {str(state)!r} has no "
                             f"`model_checkpoint_path`")
        quoted = match.group(1) if match.group(1) is not None else match.group(2)
        prefix = Path(_text_unescape(quoted))
        if not prefix.is_absolute():
            prefix = p / prefix
        if not Path(str(prefix) + ".index").is_file():
            raise FileNotFoundError(f"the checkpoint state file {str(state)!r} names "
                                    f"{str(prefix)!r}, but {str(prefix) + '.index'!r} does "
                                    f"not exist")
        return prefix
    if Path(str(p) + ".index").is_file():
        return p
    if p.suffix == ".index" and p.is_file():
        return p.with_suffix("")
    raise FileNotFoundError(f"no TF checkpoint at {str(p)!r}: neither {str(p) + '.index'!r} "
                            f"nor a directory with a `checkpoint` file exists")


_BUNDLE_VERSION = 1  # TensorFlow's kTensorBundleVersion


def _check_version(buf: bytes, where: str) -> None:
    """Refuse a bundle whose VersionDef excludes this reader, as TensorFlow does."""
    min_consumer, bad = 0, []
    for field, wire, v in _proto_fields(buf, where):
        if field == 2 and wire == 0:
            min_consumer = _signed64(v)
        elif field == 3 and wire == 0:
            bad.append(_signed64(v))
    if min_consumer > _BUNDLE_VERSION or _BUNDLE_VERSION in bad:
        raise ValueError(f"TF checkpoint {where} needs a tensor bundle reader of version "
                         f"{min_consumer} or newer (or excludes version {_BUNDLE_VERSION}); "
                         f"lstmcompat reads version {_BUNDLE_VERSION}")


class _Bundle:
    def __init__(self, path):
        self.prefix = _resolve(path)
        index = Path(str(self.prefix) + ".index")
        where = f"{str(index)!r}"
        self.where = where
        data = index.read_bytes()
        self.entries: dict[str, _Entry] = {}
        self.raw: dict[bytes, bytes] = {}
        header = None
        for key, value in _read_table(data, where):
            if key == _HEADER_KEY:
                header = value
            else:
                self.raw[key] = value
        if header is None:
            raise ValueError(f"corrupt TF checkpoint {where}: no bundle header entry")
        self.num_shards, self.big_endian = 1, False
        num_shards = 0
        for field, wire, v in _proto_fields(header, where):
            if field == 1 and wire == 0:
                num_shards = _signed64(v)
            elif field == 2 and wire == 0:
                if v not in (0, 1):
                    raise ValueError(f"corrupt TF checkpoint {where}: endianness {v}")
                self.big_endian = v == 1
            elif field == 3 and wire == 2:
                _check_version(v, where)
        if not 1 <= num_shards <= _MAX_SHARDS:
            raise ValueError(f"corrupt TF checkpoint {where}: {num_shards} shards")
        self.num_shards = num_shards
        parsed = {}
        for key, value in self.raw.items():
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                name = key.decode("latin-1")
            parsed[key] = (name, _Entry(value, f"{where} (variable {name!r})"))
        # As TensorFlow's CheckpointReader: the keys of a partitioned variable's slices
        # are not variables of their own.
        slice_keys = set()
        for key, (name, entry) in parsed.items():
            for extents in entry.slices:
                slice_key = _slice_key(key, extents)
                if slice_key in slice_keys:  # TensorFlow CHECK-fails here
                    raise ValueError(f"corrupt TF checkpoint {where} (variable {name!r}): "
                                     f"the slice {extents} is listed twice")
                slice_keys.add(slice_key)
        self.parsed = parsed
        self.entries = {name: e for key, (name, e) in parsed.items() if key not in slice_keys}
        self.keys = {name: key for key, (name, _) in parsed.items()}
        self._sizes: dict[int, int] = {}
        self._read_total: dict[int, int] = {}

    def shard_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def shard_size(self, shard: int, name: str) -> int:
        if shard not in self._sizes:
            path = self.shard_path(shard)
            try:
                self._sizes[shard] = path.stat().st_size
            except FileNotFoundError:
                raise FileNotFoundError(f"TF checkpoint data shard {str(path)!r} is missing "
                                        f"(needed by {name!r})") from None
        return self._sizes[shard]

    def read(self, entry: _Entry, name: str, check: bool = True) -> bytes:
        where = f"{self.where} (variable {name!r})"
        if entry.shard >= self.num_shards:
            raise ValueError(f"corrupt TF checkpoint {where}: shard {entry.shard} of "
                             f"{self.num_shards}")
        path = self.shard_path(entry.shard)
        fsize = self.shard_size(entry.shard, name)
        if entry.offset + entry.size > fsize:
            raise ValueError(f"corrupt TF checkpoint {where}: bytes [{entry.offset}, "
                             f"{entry.offset + entry.size}) past the end of the {fsize}-byte "
                             f"shard {str(path)!r}")
        # Entries sharing bytes would let a small file make load_variables allocate
        # without bound: all of one shard's reads together may not exceed its size.
        done = self._read_total.get(entry.shard, 0) + entry.size
        if done > fsize:
            raise ValueError(f"corrupt TF checkpoint {where}: its entries declare more "
                             f"bytes than the {fsize}-byte shard {str(path)!r} holds "
                             f"(overlapping entries)")
        self._read_total[entry.shard] = done
        with open(path, "rb") as f:
            f.seek(entry.offset)
            raw = f.read(entry.size)
        if len(raw) != entry.size:
            raise ValueError(f"corrupt TF checkpoint {where}: short read from {str(path)!r}")
        if check and crc32c(raw) != _unmask(entry.crc):
            raise ValueError(f"corrupt TF checkpoint {where}: data checksum mismatch")
        return raw

    def tensor(self, name: str) -> np.ndarray:
        entry = self.entries[name]
        if entry.slices:
            return self._partitioned(name, entry)
        return self._plain(entry, name)

    def _plain(self, entry: _Entry, name: str) -> np.ndarray:
        where = f"{self.where} (variable {name!r})"
        if entry.dtype not in _DTYPES:
            dt = _DTYPE_NAMES.get(entry.dtype, f"DataType {entry.dtype}")
            raise ValueError(f"TF checkpoint variable {name!r} has dtype {dt}, which "
                             f"lstmcompat cannot read (expected a numeric, bool or string "
                             f"tensor)")
        count = 1
        for d in entry.shape:
            count *= d
        np_dtype, _ = _DTYPES[entry.dtype]
        if np_dtype is None:
            return self._strings(entry, count, name, where)
        if np_dtype == "bfloat16":
            itemsize = 2
        else:
            itemsize = np.dtype(np_dtype).itemsize
        if count * itemsize != entry.size:
            raise ValueError(f"corrupt TF checkpoint {where}: shape {list(entry.shape)} needs "
                             f"{count * itemsize} bytes, the entry declares {entry.size}")
        raw = self.read(entry, name)
        if np_dtype == "bfloat16":
            return _bfloat16(raw, entry.shape, self.big_endian)
        dt = np.dtype(np_dtype).newbyteorder(">" if self.big_endian else "<")
        out = np.frombuffer(raw, dtype=dt).reshape(entry.shape)
        if np_dtype is np.bool_:
            if out.size and int(np.frombuffer(raw, np.uint8).max()) > 1:
                raise ValueError(f"corrupt TF checkpoint {where}: bool byte other than 0 or 1")
        return out.astype(np.dtype(np_dtype), copy=True)

    def _strings(self, entry, count, name, where) -> np.ndarray:
        # [varint64 len_i]*count, masked crc32c of the lengths, then the bytes.
        if count > entry.size:
            raise ValueError(f"corrupt TF checkpoint {where}: {count} strings in "
                             f"{entry.size} bytes")
        # The entry checksum covers the lengths as fixed-width integers (uint32, uint64
        # above 4 GiB; the writer's byte order), the length checksum and the bytes.
        order = "big" if self.big_endian else "little"
        raw = self.read(entry, name, check=False)
        pos, end = 0, len(raw)
        lengths = []
        fixed = bytearray()
        for _ in range(count):
            n, pos = _varint(raw, pos, end, where)
            lengths.append(n)
            fixed += n.to_bytes(4 if n <= 0xFFFFFFFF else 8, order)
        if pos + 4 + sum(lengths) != end:
            raise ValueError(f"corrupt TF checkpoint {where}: string lengths do not add up "
                             f"to the entry size")
        stored = int.from_bytes(raw[pos:pos + 4], order)
        if _unmask(stored) != crc32c(fixed):
            raise ValueError(f"corrupt TF checkpoint {where}: string lengths checksum mismatch")
        if crc32c(fixed + memoryview(raw)[pos:]) != _unmask(entry.crc):
            raise ValueError(f"corrupt TF checkpoint {where}: data checksum mismatch")
        pos += 4
        items = []
        for n in lengths:
            items.append(bytes(raw[pos:pos + n]))
            pos += n
        if not entry.shape:
            return np.array(items[0], dtype=object)
        out = np.empty(count, dtype=object)
        out[:] = items
        return out.reshape(entry.shape)

    def _partitioned(self, name, entry) -> np.ndarray:
        where = f"{self.where} (variable {name!r})"
        shape = entry.shape
        parts = []
        for extents in entry.slices:
            if len(extents) != len(shape):
                raise ValueError(f"corrupt TF checkpoint {where}: a slice of rank "
                                 f"{len(extents)} of a tensor of shape {list(shape)}")
            index = []
            for (start, length), dim in zip(extents, shape):
                if length == -1:
                    start, length = 0, dim
                if start < 0 or length < 0 or start + length > dim:
                    raise ValueError(f"corrupt TF checkpoint {where}: slice extent "
                                     f"({start}, {length}) outside a dimension of {dim}")
                index.append(slice(start, start + length))
            key = _slice_key(self.keys[name], extents)
            value = self.raw.get(key)
            if value is None:
                raise ValueError(f"corrupt TF checkpoint {where}: the slice "
                                 f"{[(s.start, s.stop - s.start) for s in index]} is missing")
            part_entry = _Entry(value, where)
            if part_entry.slices or part_entry.dtype != entry.dtype:
                raise ValueError(f"corrupt TF checkpoint {where}: a slice entry of another "
                                 f"dtype, or itself partitioned")
            want = tuple(s.stop - s.start for s in index)
            if part_entry.shape != want:
                raise ValueError(f"corrupt TF checkpoint {where}: a slice of shape "
                                 f"{list(part_entry.shape)}, its extents say {list(want)}")
            parts.append((tuple(index), self._plain(part_entry, name)))
        total = 1
        for d in shape:
            total *= d
        if sum(p.size for _, p in parts) < total:  # also bounds the allocation below
            raise ValueError(f"TF checkpoint variable {name!r} (shape {list(shape)}) is "
                             f"partitioned into slices that do not cover the whole tensor; "
                             f"lstmcompat reads only complete partitioned variables")
        dtype = parts[0][1].dtype if parts else np.float32
        out = np.empty(shape, dtype=dtype)
        covered = np.zeros(shape, dtype=bool)
        for index, part in parts:
            out[index] = part
            covered[index] = True
        if not covered.all():
            raise ValueError(f"TF checkpoint variable {name!r} (shape {list(shape)}) is "
                             f"partitioned into slices that do not cover the whole tensor; "
                             f"lstmcompat reads only complete partitioned variables")
        return out


def _ordered_unsigned(v: int) -> bytes:
    n = (v.bit_length() + 7) // 8
    return bytes([n]) + v.to_bytes(n, "big")


def _ordered_signed(v: int) -> bytes:
    n = (~v if v < 0 else v).bit_length() // 7 + 1
    raw = bytearray((v & ((1 << (8 * n)) - 1)).to_bytes(n, "big"))
    header = ((1 << n) - 1) << (16 - n)
    raw[0] ^= header >> 8
    if n > 1:
        raw[1] ^= header & 0xFF
    return bytes(raw)


def _slice_key(name: bytes, extents) -> bytes:
    """TensorFlow's ``EncodeTensorNameSlice`` (OrderedCode) of a variable's slice."""
    escaped = bytearray()
    for b in name:
        escaped += b"\x00\xff" if b == 0 else b"\xff\x00" if b == 0xFF else bytes([b])
    key = _ordered_unsigned(0) + bytes(escaped) + b"\x00\x01" + _ordered_unsigned(len(extents))
    for start, length in extents:
        key += _ordered_signed(start) + _ordered_signed(length)
    return key


def _bfloat16(raw: bytes, shape, big_endian: bool) -> np.ndarray:
    bits = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint16)
    try:
        import ml_dtypes
    except ImportError:  # float32 holds every bfloat16 value exactly
        return (bits.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return bits.view(ml_dtypes.bfloat16).reshape(shape)


#: The key of a TF2 object checkpoint's serialized ``TrackableObjectGraph``.
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_ATTRIBUTE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def object_graph_names(buf: bytes, where: str) -> dict[str, str]:
    """``{checkpoint_key: full_name}`` of every variable a ``TrackableObjectGraph`` lists.

    The message (tensorflow/core/protobuf/trackable_object_graph.proto) is
    ``nodes=1 {children=1, attributes=2 {name=1, full_name=2, checkpoint_key=3},
    slot_variables=3}``; only the attributes are needed here.
    """
    what = f"the object graph of TF checkpoint {where}"
    out: dict[str, str] = {}
    for field, wire, node in _proto_fields(buf, what):
        if field != 1 or wire != 2:
            continue
        for f2, w2, attr in _proto_fields(node, what):
            if f2 != 2 or w2 != 2:
                continue
            full_name = key = ""
            for f3, w3, v in _proto_fields(attr, what):
                if w3 != 2:
                    continue
                if f3 == 2:
                    full_name = v.decode("utf-8", errors="replace")
                elif f3 == 3:
                    key = v.decode("utf-8", errors="replace")
            if key:
                out[key] = full_name
    return out


class TFCheckpoint:
    """A TF checkpoint as a :class:`~lstmcompat._interop._source.Source`."""

    kind = "tf_checkpoint"

    def __init__(self, path):
        self._bundle = _Bundle(path)
        self.path = self._bundle.prefix

    def variables(self) -> list[tuple[str, tuple[int, ...]]]:
        return sorted((name, e.shape) for name, e in self._bundle.entries.items())

    def read(self, name: str):
        value = self._bundle.tensor(name)
        if value.dtype == object and value.ndim == 0:
            return value.item()
        return value

    def aliases(self) -> dict[str, tuple[str, ...]]:
        """TF2 object checkpoints: each ``.../.ATTRIBUTES/VARIABLE_VALUE`` key's Keras
        ``full_name`` (``lstm/lstm_cell/kernel``) and its object path
        (``model/layer_with_weights-0/cell/kernel``); nothing for TF1 checkpoints."""
        if OBJECT_GRAPH_KEY not in self._bundle.entries:
            return {}
        graph = self.read(OBJECT_GRAPH_KEY)
        if not isinstance(graph, bytes):
            raise ValueError(f"corrupt TF checkpoint {self._bundle.where}: "
                             f"{OBJECT_GRAPH_KEY} is not a scalar string")
        out: dict[str, tuple[str, ...]] = {}
        for key, full_name in object_graph_names(graph, self._bundle.where).items():
            if key not in self._bundle.entries:
                continue
            names = []
            if full_name:
                names.append(full_name)
            if key.endswith(_ATTRIBUTE_SUFFIX):
                names.append(key[:-len(_ATTRIBUTE_SUFFIX)])
            out[key] = tuple(dict.fromkeys(n for n in names if n != key))
        return out

    def keras_layers(self):
        return None

    def module_config(self):
        return None

    def dtype_name(self, name: str) -> str:
        """The variable's dtype name (``float32``, ``string``, ...), from the index only."""
        code = self._bundle.entries[name].dtype
        if code in _DTYPES:
            return _DTYPES[code][1]
        return _DTYPE_NAMES.get(code, f"DataType {code}")


def _sniff(path: Path, head: bytes) -> bool:
    if path.is_dir():  # TF's state-file rules (and errors) for every directory
        return True
    return Path(str(path) + ".index").is_file() or (path.suffix == ".index" and path.is_file())


_source.register(_source.Opener("tf_checkpoint", _sniff, TFCheckpoint,
                                "TF checkpoints (prefix or directory)"))
