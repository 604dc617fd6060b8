"""TF checkpoint (tensor bundle V2) reader: goldens written by TensorFlow, path forms,
hand-built bundles (big endian, snappy, partitioned) and corrupt files."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from bundle_writer import (  # noqa: E402  (tests/interop/ is on sys.path under pytest)
    _entry_proto,
    _field,
    _snappy_literal,
    _table,
    _varint,
    _write_bundle,
)

import lstmcompat
from lstmcompat._interop import _tf_checkpoint as tfc

GOLDENS = Path(__file__).parents[1] / "goldens" / "checkpoints"
EXPECTED = json.loads((GOLDENS / "expected.json").read_text())
CASES = EXPECTED["cases"]


def _expected_value(e):
    if e["dtype"] == "bytes":
        items = [base64.b64decode(s) for s in e["strings"]]
        if e["type"] == "bytes":
            return items[0]
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(e["shape"])
    if e["dtype"] == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dtype = np.dtype(ml_dtypes.bfloat16)
    else:
        dtype = np.dtype(e["dtype"])
    return np.frombuffer(base64.b64decode(e["data"]), dtype=dtype.newbyteorder("<")).astype(
        dtype).reshape(e["shape"])


def _assert_same(got, want, name):
    if isinstance(want, bytes):
        assert isinstance(got, bytes) and got == want, name
        return
    assert isinstance(got, np.ndarray), name
    assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape)
    if want.dtype == object:
        assert all(isinstance(x, bytes) for x in got.reshape(-1)), name
        assert list(got.reshape(-1)) == list(want.reshape(-1)), name
    else:
        assert got.tobytes() == want.tobytes(), name


# ----------------------------------------------------------------------------- goldens


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_list_variables(case):
    c = CASES[case]
    got = lstmcompat.list_variables(GOLDENS / c["prefix"])
    assert got == [(name, tuple(shape)) for name, shape in c["list"]]
    assert all(isinstance(s, tuple) and all(type(d) is int for d in s) for _, s in got)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_load_variables(case):
    c = CASES[case]
    got = lstmcompat.load_variables(str(GOLDENS / c["prefix"]))
    assert sorted(got) == sorted(c["values"])
    for name, e in c["values"].items():
        _assert_same(got[name], _expected_value(e), name)


def test_golden_names_of_the_writers():
    assert "rnn/lstm_cell/projection/kernel" in CASES["tf1_lstm"]["values"]
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in CASES["tf2_keras"]["values"]
    assert len([f for f in CASES["sharded"]["files"] if ".data-" in f]) == 2
    got = lstmcompat.load_variables(GOLDENS / "tf2_keras")
    assert isinstance(got["_CHECKPOINTABLE_OBJECT_GRAPH"], bytes)
    assert got["model/layer_with_weights-0/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE"].shape == (2, 12)


def test_bfloat16_without_ml_dtypes(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "ml_dtypes":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    got = lstmcompat.load_variables(GOLDENS / "dtypes")["bf16/.ATTRIBUTES/VARIABLE_VALUE"]
    assert got.dtype == np.float32
    e = CASES["dtypes"]["values"]["bf16/.ATTRIBUTES/VARIABLE_VALUE"]
    bits = np.frombuffer(base64.b64decode(e["data"]), "<u2").astype(np.uint32) << 16
    np.testing.assert_array_equal(got, bits.view(np.float32))
    assert got[0] == 1.5 and got[1] == -3.0


# ----------------------------------------------------------------------------- path forms


def test_tf_accepts_the_path_forms_we_accept():
    facts = EXPECTED["facts"]
    assert facts["prefix"] == facts["directory"] == facts["index_file"] == "ok"
    assert facts["data_file"].startswith("DataLossError")
    assert facts["missing"].startswith("NotFoundError")


def test_path_forms(tmp_path):
    c = CASES["tf1_lstm"]
    prefix = GOLDENS / c["prefix"]
    want = lstmcompat.list_variables(prefix)
    assert lstmcompat.list_variables(prefix.parent) == want            # relative state file
    assert lstmcompat.list_variables(str(prefix) + ".index") == want
    # an absolute path in the state file, from another directory
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "checkpoint").write_text(f'model_checkpoint_path: "{prefix}"\n')
    assert lstmcompat.list_variables(other) == want
    # a relative path in a subdirectory
    run = tmp_path / "run"
    shutil.copytree(prefix.parent, run / "sub")
    (run / "checkpoint").write_text(f'model_checkpoint_path: "sub/{prefix.name}"\n')
    assert lstmcompat.list_variables(run) == want
    np.testing.assert_array_equal(lstmcompat.load_variables(run)["rnn/lstm_cell/bias"],
                                  lstmcompat.load_variables(prefix)["rnn/lstm_cell/bias"])


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        lstmcompat.list_variables(tmp_path / "nope" / "model.ckpt")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        lstmcompat.list_variables(tmp_path)                           # no state file
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "gone.ckpt"\n')
    with pytest.raises(FileNotFoundError, match="gone.ckpt"):
        lstmcompat.load_variables(tmp_path)
    (tmp_path / "checkpoint").write_text("garbage\n")
    with pytest.raises(ValueError, match="model_checkpoint_path"):
        lstmcompat.load_variables(tmp_path)
    prefix = GOLDENS / CASES["tf1_lstm"]["prefix"]
    with pytest.raises(ValueError, match="data shard: pass the checkpoint prefix"):
        lstmcompat.list_variables(str(prefix) + ".data-00000-of-00001")


def test_missing_data_shard(tmp_path):
    src = GOLDENS / "sharded"
    shutil.copytree(src, tmp_path / "s")
    (tmp_path / "s" / "model.ckpt-3.data-00001-of-00002").unlink()
    assert len(lstmcompat.list_variables(tmp_path / "s")) == 4        # the index suffices
    with pytest.raises(FileNotFoundError, match="data-00001-of-00002"):
        lstmcompat.load_variables(tmp_path / "s")


# ----------------------------------------------------------------------------- crc32c, snappy


def test_crc32c_known_vectors():
    assert tfc.crc32c(b"") == 0
    assert tfc.crc32c(b"123456789") == 0xE3069283
    assert tfc.crc32c(bytes(32)) == 0x8A9136AA            # RFC 3720 B.4
    assert tfc.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert tfc.crc32c(bytes(range(32))) == 0x46DD794E
    assert tfc._unmask(tfc._mask(0x12345678)) == 0x12345678


@pytest.mark.parametrize("n", [4095, 4096, 4097, 100_003, 1 << 20])
def test_crc32c_lanes_match_the_bytewise_loop(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert tfc.crc32c(data) == tfc._raw_crc_small(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


def test_crc32c_is_fast():
    data = bytes(8 << 20)
    t0 = time.perf_counter()
    tfc.crc32c(data)
    assert time.perf_counter() - t0 < 5


def test_snappy_vectors():
    # Hand-written from the format description: literal "abcd", copy-1 (len 4, offset 4),
    # copy-2 overlapping (len 10, offset 2), copy-4 (len 3, offset 18).
    block = (bytes([22]) + bytes([3 << 2]) + b"abcd" + bytes([0b000_000_01, 4])
             + bytes([(9 << 2) | 2]) + (2).to_bytes(2, "little")
             + bytes([(2 << 2) | 3]) + (18).to_bytes(4, "little"))
    want = b"abcd" + b"abcd" + b"cdcdcdcdcd" + b"abc"
    assert len(want) == 21
    block = bytes([21]) + block[1:]
    assert tfc.snappy_decompress(block) == want
    long = bytes(range(256)) * 2
    assert tfc.snappy_decompress(b"\x80\x04" + _snappy_literal(long)) == long


@pytest.mark.parametrize("block", [
    b"\x05\x10hell",                # literal past the end
    b"\x05\x10hello!",              # trailing element beyond the declared size
    b"\x08\x0cabcd\x01\x05",        # copy offset beyond the output
    b"\x08\x0cabcd\x01\x00",        # copy offset 0
    b"\x06\x10hello",               # decodes to fewer bytes than declared
    b"\xff\xff\xff\xff\x0f\x00a",   # absurd declared size: refused before allocating
    b"\x80",                        # truncated preamble
])
def test_snappy_corrupt(block):
    with pytest.raises(ValueError):
        tfc.snappy_decompress(block)


TENSORS = {
    "a/kernel": np.arange(12, dtype=np.float32).reshape(3, 4) / 3,
    "a/bias": np.array([1.5, -2.25], np.float64),
    "b": np.array([[1, -2], [3, 1 << 40]], np.int64),
    "c": np.array(7, np.int32),
    "h": np.array([0.5, -65504], np.float16),
    "z": np.array([True, False]),
    "zc": np.array([1 + 2j, -0.5j], np.complex64),
    "zu": np.array([1 << 63, 5], np.uint64),
}


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("num_shards", [1, 3])
def test_hand_built_bundles(tmp_path, big_endian, compress, num_shards):
    prefix = tmp_path / "m.ckpt"
    _write_bundle(prefix, TENSORS, big_endian, compress, num_shards)
    assert lstmcompat.list_variables(prefix) == sorted((k, v.shape) for k, v in TENSORS.items())
    got = lstmcompat.load_variables(prefix)
    for name, value in TENSORS.items():
        assert got[name].dtype == value.dtype and got[name].dtype.isnative
        np.testing.assert_array_equal(got[name], value)


def _partitioned(full, pieces):
    """Extra entries of a partitioned variable ``w`` split along axis 0 at ``pieces``."""
    extra, data = [], bytearray()
    slices = []
    for start, stop in pieces:
        part = full[start:stop]
        raw = part.astype("<f4").tobytes()
        ext = [(start, stop - start), (0, full.shape[1])]
        slices.append(ext)
        extra.append((tfc._slice_key(b"w", ext),
                      _entry_proto(1, part.shape, 0, len(data), len(raw),
                                   tfc._mask(tfc.crc32c(raw)))))
        data += raw
    extra.append((b"w", _entry_proto(1, full.shape, slices=slices)))
    return extra, bytes(data)


def _write_partitioned(prefix, full, pieces):
    extra, data = _partitioned(full, pieces)
    header = _field(1, 0, 1)
    Path(str(prefix) + ".index").write_bytes(_table(sorted(extra + [(b"", header)])))
    Path(f"{prefix}.data-00000-of-00001").write_bytes(data)


def test_partitioned_reassembled(tmp_path):
    full = np.arange(200 * 2, dtype=np.float32).reshape(200, 2)
    _write_partitioned(tmp_path / "p", full, [(0, 70), (70, 150), (150, 200)])
    assert lstmcompat.list_variables(tmp_path / "p") == [("w", (200, 2))]
    np.testing.assert_array_equal(lstmcompat.load_variables(tmp_path / "p")["w"], full)


def test_partitioned_golden_slice_keys():
    # TF's own encoding of a slice starting past 63 (two-byte OrderedCode numbers)
    bundle = tfc._Bundle(GOLDENS / "partitioned")
    assert tfc._slice_key(b"part/big", [(65, 65), (0, 2)]) in bundle.raw


def test_partitioned_incomplete_refused(tmp_path):
    full = np.ones((10, 2), np.float32)
    _write_partitioned(tmp_path / "p", full, [(0, 4), (6, 10)])
    assert lstmcompat.list_variables(tmp_path / "p") == [("w", (10, 2))]
    with pytest.raises(ValueError, match="do not cover the whole tensor"):
        lstmcompat.load_variables(tmp_path / "p")
    _write_partitioned(tmp_path / "q", full, [(0, 4), (2, 6), (6, 9)])    # overlap, gap
    with pytest.raises(ValueError, match="do not cover"):
        lstmcompat.load_variables(tmp_path / "q")


def test_unsupported_dtype(tmp_path):
    extra = [(b"res", _entry_proto(20, ())), (b"q", _entry_proto(11, (2,), size=2))]
    _write_bundle(tmp_path / "u", {"x": np.zeros(2, np.float32)}, extra=extra)
    assert [n for n, _ in lstmcompat.list_variables(tmp_path / "u")] == ["q", "res", "x"]
    with pytest.raises(ValueError, match=r"'q'.*qint8"):
        lstmcompat.load_variables(tmp_path / "u")


# ----------------------------------------------------------------------------- corruption


def _copy_golden(tmp_path, case="tf1_lstm") -> Path:
    shutil.copytree(GOLDENS / case, tmp_path / case)
    return tmp_path / case / Path(CASES[case]["prefix"]).name


def _raises_quickly(fn, exc=(ValueError, OSError), match=None):
    t0 = time.perf_counter()
    with pytest.raises(exc, match=match):
        fn()
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("cut", [1, 10, 47, 48, 100])
def test_truncated_index(tmp_path, cut):
    prefix = _copy_golden(tmp_path)
    index = Path(str(prefix) + ".index")
    data = index.read_bytes()
    index.write_bytes(data[:-cut])
    _raises_quickly(lambda: lstmcompat.list_variables(prefix), ValueError)


def test_flipped_byte_in_a_block(tmp_path):
    prefix = _copy_golden(tmp_path)
    index = Path(str(prefix) + ".index")
    data = bytearray(index.read_bytes())
    for pos in (3, 40, len(data) - 60):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        index.write_bytes(bytes(bad))
        _raises_quickly(lambda: lstmcompat.list_variables(prefix), ValueError, "checksum")


def test_bad_magic(tmp_path):
    prefix = _copy_golden(tmp_path)
    index = Path(str(prefix) + ".index")
    data = bytearray(index.read_bytes())
    data[-1] ^= 0xFF
    index.write_bytes(bytes(data))
    _raises_quickly(lambda: lstmcompat.list_variables(prefix), ValueError, "magic")


def test_truncated_data_shard(tmp_path):
    prefix = _copy_golden(tmp_path)
    shard = Path(str(prefix) + ".data-00000-of-00001")
    shard.write_bytes(shard.read_bytes()[:-5])
    _raises_quickly(lambda: lstmcompat.load_variables(prefix), ValueError, "past the end")


def test_flipped_byte_in_data(tmp_path):
    for case in ("tf1_lstm", "dtypes"):
        prefix = _copy_golden(tmp_path, case)
        shard = Path(str(prefix) + ".data-00000-of-00001")
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0x01
        shard.write_bytes(bytes(data))
        _raises_quickly(lambda p=prefix: lstmcompat.load_variables(p), ValueError, "checksum")


def test_string_lengths_checksum(tmp_path):
    prefix = _copy_golden(tmp_path, "dtypes")
    bundle = tfc._Bundle(prefix)
    entry = bundle.entries["texts/.ATTRIBUTES/VARIABLE_VALUE"]
    shard = Path(str(prefix) + ".data-00000-of-00001")
    data = bytearray(shard.read_bytes())
    # the lengths 0, 1, 300, 4 as varints: 1 + 1 + 2 + 1 bytes, then the length checksum
    data[entry.offset + 5] ^= 0x01
    shard.write_bytes(bytes(data))
    _raises_quickly(lambda: lstmcompat.load_variables(prefix), ValueError,
                    "lengths checksum")


def _bad_entry(tmp_path, value_bytes, **entry):
    prefix = tmp_path / "bad"
    extra = [(b"evil", _entry_proto(**entry))]
    _write_bundle(prefix, {"x": np.zeros(3, np.float32)}, extra=extra)
    if value_bytes is not None:
        shard = Path(f"{prefix}.data-00000-of-00001")
        shard.write_bytes(shard.read_bytes() + value_bytes)
    return prefix


@pytest.mark.parametrize("entry, match", [
    (dict(dtype=1, shape=(3,), offset=4, size=12, crc=0), "checksum"),          # crc mismatch
    (dict(dtype=1, shape=(3,), offset=4, size=12), "checksum"),                 # crc absent
    (dict(dtype=1, shape=(4,), offset=100, size=16), "past the end"),
    (dict(dtype=1, shape=(1 << 40,), size=4 << 40), "past the end"),            # huge size
    (dict(dtype=1, shape=(1 << 40,), size=8), "needs"),                         # shape/size
    (dict(dtype=7, shape=(1 << 40,), size=8), "strings"),                       # huge strings
    (dict(dtype=1, shape=(1 << 31, 1 << 31, 1 << 31), size=8), "needs"),
    (dict(dtype=1, shape=(3,), shard=5, size=12), "shard"),
    (dict(dtype=1, shape=(3,), offset=-1 & ((1 << 64) - 1), size=12), "negative"),
])
def test_hostile_entries(tmp_path, entry, match):
    prefix = _bad_entry(tmp_path, bytes(16), **entry)
    _raises_quickly(lambda: lstmcompat.load_variables(prefix), ValueError, match)


def test_hostile_header(tmp_path):
    prefix = tmp_path / "h"
    for header in (_field(1, 0, 1 << 40), _field(1, 0, 0), _field(1, 0, 1) + _field(2, 0, 7)):
        entries = [(b"", header)]
        Path(str(prefix) + ".index").write_bytes(_table(entries))
        _raises_quickly(lambda: lstmcompat.list_variables(prefix), ValueError)
    Path(str(prefix) + ".index").write_bytes(_table([(b"x", b"")]))
    _raises_quickly(lambda: lstmcompat.list_variables(prefix), ValueError, "header")


def test_hostile_block_handles(tmp_path):
    prefix = tmp_path / "h"
    index = Path(str(prefix) + ".index")
    # an index handle past the end, a handle with a huge size, garbage varints
    for handles in (_varint(0) + _varint(0) + _varint(5000) + _varint(10),
                    _varint(0) + _varint(0) + _varint(0) + _varint(1 << 62),
                    b"\xff" * 40):
        index.write_bytes(b"\0" * 64 + handles[:40].ljust(40, b"\0")
                          + struct.pack("<Q", tfc._MAGIC))
        _raises_quickly(lambda: lstmcompat.list_variables(prefix), ValueError)


def test_hostile_block_contents(tmp_path):
    prefix = tmp_path / "h"
    index = Path(str(prefix) + ".index")

    def table_of(block, kind=0):
        crc = tfc._mask(tfc.crc32c(block + bytes([kind])))
        body = block + bytes([kind]) + struct.pack("<I", crc)
        handle = _varint(0) + _varint(len(block))
        return body + (handle + handle).ljust(40, b"\0") + struct.pack("<Q", tfc._MAGIC)

    for block, kind in ((b"\xff\xff\xff\x7f", 0),                  # restart count too big
                        (b"\x05" + struct.pack("<I", 0) * 2, 0),  # shared > previous key
                        (b"\x00\x05\x00ab" + struct.pack("<II", 0, 1), 0),   # key past end
                        (b"abc", 0),                               # shorter than 4 bytes
                        (b"\xff\xff\xff\xff\x0f\x00", 1),          # snappy bomb
                        (b"\x00" * 8, 7)):                         # unknown compression
        index.write_bytes(table_of(block, kind))
        _raises_quickly(lambda: lstmcompat.list_variables(prefix), ValueError)


def test_random_corruption_never_crashes(tmp_path):
    prefix = _copy_golden(tmp_path, "dtypes")
    index = Path(str(prefix) + ".index")
    good = index.read_bytes()
    rng = np.random.default_rng(0)
    for _ in range(60):
        bad = bytearray(good)
        for pos in rng.integers(0, len(bad), 3):
            bad[pos] = int(rng.integers(0, 256))
        index.write_bytes(bytes(bad))
        try:
            lstmcompat.load_variables(prefix)
        except (ValueError, OSError):
            pass


def test_exported():
    assert "list_variables" in lstmcompat.__all__ and "load_variables" in lstmcompat.__all__
    assert lstmcompat.list_variables.__doc__ and "Examples:" in lstmcompat.load_variables.__doc__
    assert os.fspath(GOLDENS)


def test_state_file_as_tf_writes_it(tmp_path):
    # TF's text: UTF-8 kept, `"` and `\` escaped (facts.state_file, written by TF)
    text = EXPECTED["facts"]["state_file"]
    prefix = tmp_path / "sub" / 'déjà "q" \\' / "m.ckpt-1"
    prefix.parent.mkdir(parents=True)
    src = GOLDENS / CASES["tf1_lstm"]["prefix"]
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(str(src) + suffix, str(prefix) + suffix)
    (tmp_path / "checkpoint").write_text(text, encoding="utf-8")
    assert lstmcompat.list_variables(tmp_path) == lstmcompat.list_variables(src)
    assert tfc._text_unescape(r"a\303\251\x41\n\'") == "aéA\n'"


def test_path_type_checked():
    with pytest.raises(TypeError, match="`path`"):
        lstmcompat.list_variables(3)


def test_overlapping_entries_refused(tmp_path):
    # many entries sharing one region would make a small file allocate without bound
    raw = np.zeros(1024, np.float32).tobytes()
    crc = tfc._mask(tfc.crc32c(raw))
    extra = [(f"v{i:04d}".encode(), _entry_proto(1, (1024,), 0, 0, len(raw), crc))
             for i in range(200)]
    prefix = tmp_path / "o"
    _write_bundle(prefix, {"x": np.zeros(1024, np.float32)}, extra=extra)
    assert len(lstmcompat.list_variables(prefix)) == 201
    _raises_quickly(lambda: lstmcompat.load_variables(prefix), ValueError, "overlapping")


def test_duplicate_slices_refused(tmp_path):
    full = np.ones((10, 2), np.float32)
    extra, data = _partitioned(full, [(0, 5), (5, 10)])
    name, proto = extra[-1]
    twice = [[(0, 5), (0, 2)], [(0, 5), (0, 2)], [(5, 5), (0, 2)]]
    extra[-1] = (name, _entry_proto(1, full.shape, slices=twice))
    Path(tmp_path / "d.index").write_bytes(_table(sorted(extra + [(b"", _field(1, 0, 1))])))
    Path(tmp_path / "d.data-00000-of-00001").write_bytes(data)
    _raises_quickly(lambda: lstmcompat.list_variables(tmp_path / "d"), ValueError, "twice")


def test_partitioned_slice_missing_or_wrong(tmp_path):
    full = np.ones((10, 2), np.float32)
    extra, data = _partitioned(full, [(0, 5), (5, 10)])
    header = (b"", _field(1, 0, 1))
    cases = [
        (extra[1:], "missing"),                                         # a slice key gone
        ([(extra[0][0], _entry_proto(1, (4, 2), 0, 0, 32))] + extra[1:], "extents say"),
        ([(extra[0][0], _entry_proto(2, (5, 2), 0, 0, 80))] + extra[1:], "dtype"),
    ]
    for entries, match in cases:
        Path(tmp_path / "m.index").write_bytes(_table(sorted(entries + [header])))
        Path(tmp_path / "m.data-00000-of-00001").write_bytes(data + bytes(100))
        _raises_quickly(lambda: lstmcompat.load_variables(tmp_path / "m"), ValueError, match)
    bad = [(b"w", _entry_proto(1, (10, 2), slices=[[(8, 5), (0, 2)]]))]
    Path(tmp_path / "m.index").write_bytes(_table(sorted(bad + [header])))
    _raises_quickly(lambda: lstmcompat.load_variables(tmp_path / "m"), ValueError, "outside")


def test_snappy_overlapping_copies_fast():
    n = 100_000                      # copy-2, length 64, offset 1: 6.4 MB from 300 KB
    block = _varint(1 + 64 * n) + bytes([0]) + b"a" + bytes([(63 << 2) | 2, 1, 0]) * n
    t0 = time.perf_counter()
    assert tfc.snappy_decompress(block) == b"a" * (1 + 64 * n)
    assert time.perf_counter() - t0 < 5
    pattern = _varint(10) + bytes([2 << 2]) + b"xyz" + bytes([(6 << 2) | 2, 3, 0])
    assert tfc.snappy_decompress(pattern) == b"xyzxyzxyzx"


def test_bundle_version(tmp_path):
    prefix = tmp_path / "v"
    ok = _field(1, 0, 1) + _field(3, 2, _field(1, 0, 1))          # TF writes producer 1
    for header, fine in ((ok, True), (_field(1, 0, 1) + _field(3, 2, _field(2, 0, 2)), False),
                         (_field(1, 0, 1) + _field(3, 2, _field(3, 0, 1)), False)):
        Path(str(prefix) + ".index").write_bytes(_table([(b"", header)]))
        if fine:
            assert lstmcompat.list_variables(prefix) == []
        else:
            _raises_quickly(lambda: lstmcompat.list_variables(prefix), ValueError, "version")
