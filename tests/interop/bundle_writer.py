"""A minimal TF tensor-bundle writer for tests (hand-built files, also corrupt ones)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from lstmcompat._interop import _tf_checkpoint as tfc


def _snappy_literal(data: bytes) -> bytes:
    n = len(data) - 1
    if n < 60:
        return bytes([n << 2]) + data
    return bytes([61 << 2]) + n.to_bytes(2, "little") + data


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, wire: int, payload) -> bytes:
    key = _varint(num << 3 | wire)
    if wire == 0:
        return key + _varint(payload & ((1 << 64) - 1))
    if wire == 5:
        return key + struct.pack("<I", payload)
    return key + _varint(len(payload)) + payload


def _shape_proto(shape) -> bytes:
    return b"".join(_field(2, 2, _field(1, 0, d) if d else b"") for d in shape)


def _entry_proto(dtype, shape, shard=0, offset=0, size=0, crc=None, slices=()) -> bytes:
    out = _field(1, 0, dtype) + _field(2, 2, _shape_proto(shape))
    if shard:
        out += _field(3, 0, shard)
    if offset:
        out += _field(4, 0, offset)
    if size:
        out += _field(5, 0, size)
    if crc is not None:
        out += _field(6, 5, crc)
    for extents in slices:
        out += _field(7, 2, b"".join(_field(1, 2, _field(1, 0, s) + _field(2, 0, n))
                                     for s, n in extents))
    out += _field(99, 2, b"an unknown field")      # skipped by readers
    return out


def _block(entries, restart_every=2) -> bytes:
    out = bytearray()
    restarts = []
    prev = b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_every == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        out += key[shared:] + value
        prev = key
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def _snappy_compress(data: bytes) -> bytes:
    out = bytearray(_varint(len(data)))
    for i in range(0, len(data), 60):
        out += _snappy_literal(data[i:i + 60])
    return bytes(out)


def _table(entries, compress=False, per_block=3) -> bytes:
    out = bytearray()

    def put(block):
        kind = 0
        if compress:
            block, kind = _snappy_compress(block), 1
        handle = _varint(len(out)) + _varint(len(block))
        crc = tfc._mask(tfc.crc32c(block + bytes([kind])))
        out.extend(block + bytes([kind]) + struct.pack("<I", crc))
        return handle

    index = []
    for i in range(0, len(entries), per_block):
        chunk = entries[i:i + per_block]
        index.append((chunk[-1][0], put(_block(chunk))))
    meta = put(_block([]))
    idx = put(_block(index, restart_every=1))
    footer = (meta + idx).ljust(40, b"\0") + struct.pack("<Q", tfc._MAGIC)
    return bytes(out) + footer


def _write_bundle(prefix: Path, tensors, big_endian=False, compress=False, num_shards=1,
                  extra=(), raw_entries=None):
    """Write a bundle of ``{name: ndarray}`` (numeric), one shard per tensor round-robin."""
    shards = [bytearray() for _ in range(num_shards)]
    entries = []
    codes = {np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3,
             np.dtype(np.int64): 9, np.dtype(np.float16): 19, np.dtype(np.bool_): 10,
             np.dtype(np.complex64): 8, np.dtype(np.uint64): 23}
    try:
        import ml_dtypes

        codes[np.dtype(ml_dtypes.bfloat16)] = 14
    except ImportError:
        pass
    for i, (name, value) in enumerate(tensors.items()):
        value = np.asarray(value)
        data = value.astype(value.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
        shard = i % num_shards
        offset = len(shards[shard])
        shards[shard] += data
        entries.append((name.encode(), _entry_proto(codes[value.dtype], value.shape, shard,
                                                    offset, len(data),
                                                    tfc._mask(tfc.crc32c(data)))))
    entries.extend(extra)
    header = _field(1, 0, num_shards) + (_field(2, 0, 1) if big_endian else b"")
    entries.append((b"", header))
    entries = raw_entries if raw_entries is not None else sorted(entries)
    Path(str(prefix) + ".index").write_bytes(_table(entries, compress))
    for s, data in enumerate(shards):
        Path(f"{prefix}.data-{s:05d}-of-{num_shards:05d}").write_bytes(bytes(data))


