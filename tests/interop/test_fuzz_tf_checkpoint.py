"""Hypothesis fuzzing of the TF checkpoint reader and what sits on it (restore, inspect).

Two kinds of damage: bytes changed anywhere in real TensorFlow files (mostly
caught by the block and tensor checksums), and hostile content written with
*valid* checksums by ``bundle_writer`` (random protobuf bytes as index entries,
the bundle header and the TF2 object graph; random shapes, offsets and sizes),
which reaches the decoders behind the checksums. Either way only ``ValueError``
or ``OSError`` may come out, quickly, and nothing may allocate what the file
merely declares. ``LSTMCOMPAT_HYPOTHESIS_EXAMPLES`` scales the example counts.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from bundle_writer import _entry_proto, _field, _write_bundle  # noqa: E402
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmcompat
from lstmcompat._interop import _tf_checkpoint as tfc
from lstmcompat._interop._cli import inspect_text
from lstmcompat._interop._names import NameView, find_weight_sets
from lstmcompat._interop._source import open_source

GOLDENS = Path(__file__).parents[1] / "goldens"
EXAMPLES = int(os.environ.get("LSTMCOMPAT_HYPOTHESIS_EXAMPLES", 60))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
# (folder, prefix name) of real TensorFlow files: TF1 with peepholes + projection,
# a TF2 object checkpoint (object graph), every dtype incl. strings, two shards.
REAL = [("checkpoints/tf1_lstm", "model.ckpt-7"), ("checkpoints/tf2_keras", "ckpt-1"),
        ("checkpoints/dtypes", "ckpt"), ("checkpoints/sharded", "model.ckpt-3"),
        ("restore/tf1_cell", "model.ckpt-20000")]


def _everything(prefix) -> None:
    """Every reader entry point on one file; only ValueError/OSError may escape."""
    t0 = time.perf_counter()
    try:
        try:
            lstmcompat.list_variables(prefix)
            source = open_source(prefix)
            source.aliases()
            find_weight_sets(NameView(source))
            inspect_text(prefix)
        finally:
            lstmcompat.load_variables(prefix)
    except (ValueError, OSError):
        pass
    try:
        lstmcompat.restore(lstmcompat.LSTMCell(3, use_peepholes=True, num_proj=2), prefix)
    except (ValueError, OSError):
        pass
    assert time.perf_counter() - t0 < 10


def _copy(tmp: Path, which: int) -> Path:
    folder, name = REAL[which]
    dst = tmp / f"case{time.perf_counter_ns()}"
    shutil.copytree(GOLDENS / folder, dst)
    return dst / name


def _damage(path: Path, kind: str, pos: int, value: int) -> None:
    data = bytearray(path.read_bytes())
    if not data:
        return
    pos %= len(data)
    if kind == "truncate":
        data = data[:pos]
    elif kind == "flip":
        data[pos] ^= 1 << (value % 8)
    elif kind == "overwrite":
        data[pos] = value % 256
    elif kind == "insert":
        data[pos:pos] = bytes([value % 256]) * (1 + value % 17)
    else:  # "zero" a run
        data[pos:pos + 1 + value % 64] = bytes(len(data[pos:pos + 1 + value % 64]))
    path.write_bytes(bytes(data))


DAMAGE = st.tuples(st.sampled_from(["truncate", "flip", "overwrite", "insert", "zero"]),
                   st.integers(0, 1 << 20), st.integers(0, 1 << 16))


@SETTINGS
@given(which=st.integers(0, len(REAL) - 1), target=st.sampled_from(["index", "data"]),
       damages=st.lists(DAMAGE, min_size=1, max_size=4))
def test_damaged_real_files(tmp_path, which, target, damages):
    prefix = _copy(tmp_path, which)
    files = sorted(prefix.parent.glob(prefix.name + (".index" if target == "index" else ".data-*")))
    for kind, pos, value in damages:
        _damage(files[pos % len(files)], kind, pos, value)
    _everything(prefix)


@SETTINGS
@given(entries=st.lists(st.tuples(st.binary(min_size=1, max_size=12), st.binary(max_size=80)),
                        max_size=6),
       header=st.one_of(st.none(), st.binary(max_size=30)))
def test_random_entry_protos_behind_valid_checksums(tmp_path, entries, header):
    prefix = tmp_path / f"p{time.perf_counter_ns()}"
    raw = [(k, v) for k, v in entries if k]
    raw.append((b"", header if header is not None else _field(1, 0, 1)))
    raw = sorted(dict(raw).items())
    _write_bundle(prefix, {"x": np.zeros(3, np.float32)}, raw_entries=raw)
    _everything(prefix)


@SETTINGS
@given(dtype=st.sampled_from([1, 2, 3, 7, 9, 10, 14, 19, 20, 21, 99]),
       shape=st.lists(st.integers(0, 1 << 62), max_size=4),
       shard=st.integers(0, 3), offset=st.integers(0, 1 << 62), size=st.integers(0, 1 << 62),
       slices=st.lists(st.lists(st.tuples(st.integers(-2, 1 << 40), st.integers(-2, 1 << 40)),
                                max_size=3), max_size=3),
       crc=st.one_of(st.none(), st.integers(0, (1 << 32) - 1)))
def test_hostile_declared_sizes(tmp_path, dtype, shape, shard, offset, size, slices, crc):
    prefix = tmp_path / f"p{time.perf_counter_ns()}"
    try:
        proto = _entry_proto(dtype, shape, shard, offset, size, crc, slices)
    except (ValueError, OverflowError):  # the test writer cannot encode negative extents
        return
    _write_bundle(prefix, {"x": np.zeros(3, np.float32)}, extra=[(b"evil", proto)])
    _everything(prefix)


def _string_tensor(value: bytes) -> bytes:
    """A scalar DT_STRING tensor's bytes: varint length, masked crc32c of the length, data."""
    from bundle_writer import _varint
    length = _varint(len(value))
    lcrc = tfc._mask(tfc.crc32c(len(value).to_bytes(4, "little")))
    return length + lcrc.to_bytes(4, "little") + value


@SETTINGS
@given(graph=st.one_of(
    st.binary(max_size=200),
    # a structurally plausible TrackableObjectGraph with random attribute fields
    st.lists(st.tuples(st.integers(1, 5), st.binary(max_size=40)), max_size=6).map(
        lambda fs: _field(1, 2, _field(2, 2, b"".join(_field(n, 2, v) for n, v in fs))))))
def test_random_object_graphs(tmp_path, graph):
    prefix = tmp_path / f"p{time.perf_counter_ns()}"
    data = _string_tensor(graph)
    kernel = np.zeros((5, 8), np.float32)
    _write_bundle(prefix, {"layer/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE": kernel})
    shard = Path(f"{prefix}.data-00000-of-00001")
    offset = shard.stat().st_size
    shard.write_bytes(shard.read_bytes() + data)
    proto = _entry_proto(7, (), 0, offset, len(data), tfc._mask(tfc.crc32c(data)))
    _write_bundle(prefix, {"layer/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE": kernel},
                  extra=[(tfc.OBJECT_GRAPH_KEY.encode(), proto)])
    shard.write_bytes(shard.read_bytes() + data)
    _everything(prefix)


@SETTINGS
@given(data=st.binary(max_size=300), limit=st.one_of(st.none(), st.integers(0, 1 << 12)))
def test_snappy_random_input(data, limit):
    try:
        out = tfc.snappy_decompress(data, limit)
    except ValueError:
        return
    assert limit is None or len(out) <= limit


@pytest.mark.slow
@settings(max_examples=max(EXAMPLES * 10, 300), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which=st.integers(0, len(REAL) - 1), damages=st.lists(DAMAGE, min_size=1, max_size=8))
def test_damaged_real_files_long(tmp_path, which, damages):
    prefix = _copy(tmp_path, which)
    files = sorted(prefix.parent.glob(prefix.name + ".*"))
    for kind, pos, value in damages:
        _damage(files[(pos // 7) % len(files)], kind, pos, value)
    _everything(prefix)


def test_varint_above_64_bits_refused():
    """Found by the fuzzing above: a 10-byte varint above 2**64 as a string length
    made ``int.to_bytes`` raise OverflowError."""
    with pytest.raises(ValueError, match="above 64 bits"):
        tfc._varint(bytes([0xFF] * 9 + [0x7F]), 0, 10, "a test")
    assert tfc._varint(bytes([0xFF] * 9 + [0x01]), 0, 10, "a test") == ((1 << 64) - 1, 10)
