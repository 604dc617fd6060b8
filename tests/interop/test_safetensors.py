"""The hand-written safetensors reader and writer: the package's files read here, ours
read by the package, and hostile files refused quickly with ValueError/OSError."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmcompat
from lstmcompat._interop import _safetensors
from lstmcompat._interop._safetensors import SafetensorsFile, write_file

ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
              torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool]


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for i, dt in enumerate(ALL_DTYPES):
        v = torch.randn(3, 2 + i, generator=g) * 100
        out[f"t/{dt}".replace("torch.", "")] = v.to(dt) if dt != torch.bool else v > 0
    out["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    out["empty"] = torch.zeros(0, 4)
    return out


def _raises_quickly(fn, exc=(ValueError, OSError), match=None):
    t0 = time.perf_counter()
    with pytest.raises(exc, match=match):
        fn()
    assert time.perf_counter() - t0 < 5


def _file(header: dict | bytes, data: bytes = b"", n: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if n is None else n) + raw + data


# ------------------------------------------------------------------------- round trips


def test_round_trip_every_dtype(tmp_path):
    tensors = _tensors()
    path = tmp_path / "t.safetensors"
    write_file(path, tensors.items(), {"k": "v"})
    f = SafetensorsFile(path)
    assert f.metadata == {"k": "v"}
    assert f.variables() == [(n, tuple(t.shape)) for n, t in tensors.items()]
    for name, t in tensors.items():
        got = f.tensor(name)
        assert got.dtype == t.dtype and got.shape == t.shape
        if t.dtype == torch.bfloat16:
            assert torch.equal(got.view(torch.int16), t.view(torch.int16))
        else:
            assert torch.equal(got, t)
    # the data starts 8-byte aligned, as the package writes it
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert n % 8 == 0


def test_read_gives_numpy_as_load_variables(tmp_path):
    tensors = _tensors()
    path = tmp_path / "t.safetensors"
    write_file(path, tensors.items(), None)
    assert lstmcompat.list_variables(path) == [(n, tuple(t.shape)) for n, t in tensors.items()]
    got = lstmcompat.load_variables(path)
    assert list(got) == list(tensors)
    import ml_dtypes
    for name, t in tensors.items():
        a = got[name]
        assert isinstance(a, np.ndarray) and a.shape == tuple(t.shape)
        if t.dtype == torch.bfloat16:
            assert a.dtype == ml_dtypes.bfloat16
            np.testing.assert_array_equal(a.astype(np.float32), t.float().numpy())
        else:
            np.testing.assert_array_equal(a, t.numpy())
            assert a.dtype == t.numpy().dtype
        a.flags.writeable or pytest.fail("arrays must be writable copies")


def test_bfloat16_without_ml_dtypes(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "ml_dtypes":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    t = torch.tensor([1.5, -3.0, 1e30], dtype=torch.bfloat16)
    path = tmp_path / "b.safetensors"
    write_file(path, [("b", t)], None)
    monkeypatch.setattr(builtins, "__import__", fake)
    got = lstmcompat.load_variables(path)["b"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, t.float().numpy())


def test_sniffed_among_the_formats(tmp_path):
    from lstmcompat._interop._source import open_source
    path = tmp_path / "weights.bin"  # any name: the bytes decide
    write_file(path, [("a", torch.ones(2))], None)
    assert open_source(path).kind == "lstmcompat"
    assert open_source(path).module_config() is None
    assert open_source(path).aliases() == {} and open_source(path).keras_layers() is None


def test_empty_file_of_no_tensors(tmp_path):
    path = tmp_path / "e.safetensors"
    path.write_bytes(_file(b"{}"))
    assert lstmcompat.list_variables(path) == []


# ----------------------------------------------------------- the safetensors package


needs_package = pytest.mark.skipif(importlib.util.find_spec("safetensors") is None,
                                   reason="the safetensors package is not installed")


@needs_package
def test_package_reads_ours(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file
    tensors = _tensors()
    path = tmp_path / "ours.safetensors"
    write_file(path, tensors.items(), {"format": "x", "k": "v"})
    loaded = load_file(path)
    assert set(loaded) == set(tensors)
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype
        assert torch.equal(loaded[name].view(torch.uint8) if t.dtype == torch.bfloat16 else
                           loaded[name], t.view(torch.uint8) if t.dtype == torch.bfloat16 else t)
    with safe_open(path, "np") as f:
        assert f.metadata() == {"format": "x", "k": "v"}
        np.testing.assert_array_equal(f.get_tensor("t/float64"), tensors["t/float64"].numpy())


@needs_package
def test_ours_reads_the_packages(tmp_path):
    from safetensors.numpy import save_file as save_np
    from safetensors.torch import save_file
    tensors = _tensors()
    path = tmp_path / "pkg.safetensors"
    save_file(tensors, path, metadata={"a": "b"})
    f = SafetensorsFile(path)
    assert f.metadata == {"a": "b"}
    assert sorted(n for n, _ in f.variables()) == sorted(tensors)
    for name, t in tensors.items():
        got = f.tensor(name)
        assert got.dtype == t.dtype
        assert torch.equal(got.view(torch.int16) if t.dtype == torch.bfloat16 else got,
                           t.view(torch.int16) if t.dtype == torch.bfloat16 else t)
    # file order is the data order the package chose
    offsets = [t.begin for t in f.tensors]
    assert offsets == sorted(offsets)
    save_np({"x": np.arange(6, dtype=np.uint16).reshape(2, 3)}, tmp_path / "n.safetensors")
    got = lstmcompat.load_variables(tmp_path / "n.safetensors")["x"]
    assert got.dtype == np.uint16 and got.tolist() == [[0, 1, 2], [3, 4, 5]]


# ------------------------------------------------------------------------ hostile files


GOOD_HEADER = {"__metadata__": {"k": "v"},
               "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
               "b": {"dtype": "I8", "shape": [3], "data_offsets": [8, 11]}}
GOOD_DATA = struct.pack("<2f", 1.0, 2.0) + b"\x01\x02\x03"


def test_good_hand_built_file(tmp_path):
    path = tmp_path / "g.safetensors"
    path.write_bytes(_file(GOOD_HEADER, GOOD_DATA))
    assert lstmcompat.load_variables(path)["a"].tolist() == [1.0, 2.0]


def _with(**entries):
    h = json.loads(json.dumps(GOOD_HEADER))
    for k, v in entries.items():
        if v is None:
            h.pop(k)
        else:
            h[k] = v
    return h


@pytest.mark.parametrize("blob, match", [
    (b"", "fewer than the 8"),
    (b"\x05\x00\x00", "fewer than the 8"),
    (_file(b"{}", n=10**18), "header length"),
    (_file(b"{}", n=1), "not valid JSON"),
    (_file(b"\xff\xfe{}"), "not UTF-8"),
    (_file(b"[1, 2]"), "expected an object"),
    (_file(b'{"a": 1, "a": 2}'), "twice"),
    (_file(b"[" * 100000 + b"]" * 100000), "nested too deeply|not valid JSON"),
    (_file(_with(__metadata__={"k": 1}), GOOD_DATA), "__metadata__"),
    (_file(_with(__metadata__=[1]), GOOD_DATA), "__metadata__"),
    (_file(_with(a={"dtype": "F32", "shape": [2]}), GOOD_DATA), "exactly"),
    (_file(_with(a={"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1}),
           GOOD_DATA), "exactly"),
    (_file(_with(a={"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 8]}), GOOD_DATA),
     "dtype"),
    (_file(_with(a={"dtype": 7, "shape": [2], "data_offsets": [0, 8]}), GOOD_DATA), "dtype"),
    (_file(_with(a={"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}), GOOD_DATA),
     "shape"),
    (_file(_with(a={"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}), GOOD_DATA),
     "shape"),
    (_file(_with(a={"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}), GOOD_DATA),
     "shape"),
    (_file(_with(a={"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 8]}), GOOD_DATA),
     "shape"),
    (_file(_with(a={"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}), GOOD_DATA),
     "shape"),
    (_file(_with(a={"dtype": "F32", "shape": [2], "data_offsets": [0]}), GOOD_DATA),
     "data_offsets"),
    (_file(_with(a={"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}), GOOD_DATA),
     "outside"),
    (_file(_with(a={"dtype": "F32", "shape": [2], "data_offsets": [0, 2**70]}), GOOD_DATA),
     "outside"),
    (_file(_with(a={"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}),
           GOOD_DATA), "needs"),
    (_file(_with(a={"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}), GOOD_DATA),
     "needs"),
    (_file(_with(b={"dtype": "I8", "shape": [3], "data_offsets": [7, 10]}), GOOD_DATA),
     "overlaps"),
    (_file(_with(b={"dtype": "I8", "shape": [2], "data_offsets": [9, 11]}), GOOD_DATA),
     "gap"),
    (_file(GOOD_HEADER, GOOD_DATA + b"\x00"), "longer than its header"),
    (_file(GOOD_HEADER, GOOD_DATA[:-1]), "outside"),
])
def test_hostile_files(tmp_path, blob, match):
    path = tmp_path / "h.safetensors"
    path.write_bytes(blob)
    _raises_quickly(lambda: SafetensorsFile(path), ValueError, match)
    with pytest.raises(ValueError, match=str(path.name)):
        SafetensorsFile(path)


def test_huge_declared_header_never_allocated(tmp_path, monkeypatch):
    path = tmp_path / "h.safetensors"
    monkeypatch.setattr(_safetensors, "MAX_HEADER_BYTES", 16)
    path.write_bytes(_file(b'{"__metadata__": {"a": "bbbbbbbbbbbb"}}'))
    _raises_quickly(lambda: SafetensorsFile(path), ValueError, "over the limit")


def test_file_truncated_after_open(tmp_path):
    path = tmp_path / "t.safetensors"
    path.write_bytes(_file(GOOD_HEADER, GOOD_DATA))
    f = SafetensorsFile(path)
    path.write_bytes(path.read_bytes()[:-2])
    _raises_quickly(lambda: f.read("b"), ValueError, "changed size")


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        SafetensorsFile(tmp_path / "nothing")
    with pytest.raises(OSError):
        SafetensorsFile(tmp_path)


def test_not_sniffed_when_not_safetensors(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(struct.pack("<Q", 2) + b"[]")  # not an object
    with pytest.raises(ValueError, match="not a file lstmcompat can read"):
        lstmcompat.list_variables(path)
    path.write_bytes(struct.pack("<Q", 100) + b"{}")  # declares more than the file has
    with pytest.raises(ValueError, match="not a file lstmcompat can read"):
        lstmcompat.list_variables(path)


def _good_bytes(tmp_path) -> bytes:
    path = tmp_path / "good.safetensors"
    write_file(path, [("kernel", torch.randn(3, 8)), ("bias", torch.randn(8).double()),
                      ("bf", torch.randn(4).bfloat16())], {"format": "other"})
    return path.read_bytes()


def _try_all(path: Path) -> None:
    t0 = time.perf_counter()
    try:
        f = SafetensorsFile(path)
        for name, _ in f.variables():
            f.read(name)
            f.tensor(name)
    except (ValueError, OSError):
        pass
    assert time.perf_counter() - t0 < 5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_truncation_and_bit_flips(tmp_path, data):
    good = _good_bytes(tmp_path)
    bad = bytearray(good)
    cut = data.draw(st.integers(0, len(good)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 7)),
                               max_size=4))
    for pos, bit in flips:
        bad[pos] ^= 1 << bit
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(bytes(bad[:cut] if data.draw(st.booleans()) else bad))
    _try_all(path)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=4),
    max_leaves=20)
_entry = st.fixed_dictionaries({
    "dtype": st.sampled_from(list(_safetensors.DTYPES) + ["F8_E5M2", "X", ""]) | _json,
    "shape": st.lists(st.integers(-3, 2**62) | st.sampled_from([0, 1, 2, 3]), max_size=6)
    | _json,
    "data_offsets": st.lists(st.integers(-5, 2**64) | st.sampled_from([0, 4, 8, 16]),
                             min_size=2, max_size=2) | _json,
})


@settings(max_examples=200, deadline=None)
@given(header=st.dictionaries(st.text(max_size=6) | st.just("__metadata__"),
                              _entry | _json, max_size=5),
       data=st.binary(max_size=64))
def test_fuzz_random_headers(header, data, tmp_path_factory):
    path = tmp_path_factory.mktemp("fz") / "h.safetensors"
    try:
        raw = json.dumps(header).encode()
    except ValueError:
        return
    path.write_bytes(_file(raw, data))
    _try_all(path)


def test_writer_refuses_reserved_and_duplicate_names(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        write_file(tmp_path / "x", [("__metadata__", torch.ones(1))], None)
    with pytest.raises(ValueError, match="twice"):
        write_file(tmp_path / "x", [("a", torch.ones(1)), ("a", torch.ones(1))], None)
    assert not any(tmp_path.iterdir())


def test_writer_refuses_complex(tmp_path):
    with pytest.raises(ValueError, match="cannot be saved"):
        write_file(tmp_path / "x", [("a", torch.ones(1, dtype=torch.complex64))], None)


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    write_file(path, [("a", torch.ones(3))], None)
    before = path.read_bytes()

    def boom(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="simulated"):
        write_file(path, [("a", torch.zeros(1000))], None)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_atomic_write_permissions_follow_umask(tmp_path):
    path = tmp_path / "p.safetensors"
    write_file(path, [("a", torch.ones(1))], None)
    mode = path.stat().st_mode & 0o777
    assert mode == 0o666 & ~_safetensors._umask()


def test_write_to_a_missing_folder_or_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_file(tmp_path / "no" / "x", [], None)
    with pytest.raises(IsADirectoryError):
        write_file(tmp_path, [], None)
