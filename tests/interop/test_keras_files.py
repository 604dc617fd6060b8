"""Keras weight files (tf_keras HDF5, Keras 3 .weights.h5 / sharded / .keras) read without
TensorFlow, against the goldens of tools/goldens_keras_files.py, plus hostile files.

The fuzz tests run a few dozen mutations by default; ``LSTMCOMPAT_LONG_FUZZ=1`` adds
thousands more (a minute or so)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import struct
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lstmcompat  # noqa: E402
from lstmcompat._interop import _keras_files  # noqa: E402
from lstmcompat._interop._source import open_source  # noqa: E402

GOLDENS = Path(__file__).parents[1] / "goldens" / "keras_files"
CASES = sorted(p.name for p in GOLDENS.iterdir() if p.is_dir())


def _expected(case: str) -> dict:
    return json.loads((GOLDENS / case / "expected.json").read_text())


def _decode(entry: dict) -> np.ndarray:
    dtype = np.dtype(entry["dtype"]).newbyteorder("<")
    return np.frombuffer(base64.b64decode(entry["data"]), dtype=dtype).reshape(entry["shape"])


def _file(case: str) -> Path:
    return GOLDENS / case / _expected(case)["file"]


def test_the_goldens_cover_every_kind():
    kinds = {_expected(c)["kind"] for c in CASES}
    assert kinds == {"keras_h5", "keras3_weights", "keras_archive"}
    assert len(_expected("keras3_sharded")["shards"]) >= 2


# ---------------------------------------------------------------------------- goldens


@pytest.mark.parametrize("case", CASES)
def test_list_variables_is_keras_load_order(case):
    exp = _expected(case)
    got = lstmcompat.list_variables(_file(case))
    assert [[n, list(s)] for n, s in got] == exp["list"]
    assert all(isinstance(s, tuple) and all(type(d) is int for d in s) for _, s in got)


@pytest.mark.parametrize("case", CASES)
def test_load_variables_matches_h5py(case):
    exp = _expected(case)
    got = lstmcompat.load_variables(_file(case))
    assert list(got) == [n for n, _ in exp["list"]]
    for name, entry in exp["values"].items():
        assert isinstance(got[name], np.ndarray)
        assert str(got[name].dtype) == entry["dtype"], name
        np.testing.assert_array_equal(got[name], _decode(entry))


@pytest.mark.parametrize("case", CASES)
def test_source_kind_and_module_config(case):
    src = open_source(_file(case))
    assert src.kind == _expected(case)["kind"]
    assert src.module_config() is None
    with pytest.raises(KeyError):
        src.read("no/such/variable")


@pytest.mark.parametrize("case", CASES)
def test_names_open_their_dataset_with_h5py(case):
    exp = _expected(case)
    folder = GOLDENS / case
    if exp["kind"] == "keras_archive":
        with zipfile.ZipFile(folder / exp["file"]) as z:
            files = [h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")]
    else:
        files = [h5py.File(p, "r") for p in sorted(folder.glob("*.h5"))]
    try:
        for name, _ in exp["list"]:
            hits = [f[name][()] for f in files if name in f]
            assert len(hits) == 1, name
            np.testing.assert_array_equal(hits[0], _decode(exp["values"][name]))
    finally:
        for f in files:
            f.close()


@pytest.mark.parametrize("case", CASES)
def test_keras_layers(case):
    exp = _expected(case)
    layers = open_source(_file(case)).keras_layers()
    if exp["kind"] == "keras3_weights" or case == "tf_keras_weights":
        assert layers is None  # no model config in the file
        return
    want = exp["model"]["layers"]
    assert [la.name for la in layers] == list(want)
    for la in layers:
        w = want[la.name]
        assert la.class_name == w["class_name"]
        assert list(la.weights) == w["weights"]
        assert la.keras_version == exp["keras_version"]
        for key in ("units", "recurrent_activation", "use_bias", "return_sequences"):
            if key in w["config"]:
                assert la.config[key] == w["config"][key], (la.name, key)


def test_keras_layers_bidirectional_and_nested():
    (bidi, dense) = open_source(_file("keras3_bidi")).keras_layers()
    assert bidi.class_name == "Bidirectional"
    assert bidi.weights[0] == "layers/bidirectional/forward_layer/cell/vars/0"
    assert bidi.weights[3] == "layers/bidirectional/backward_layer/cell/vars/0"
    assert bidi.config["layer"]["config"]["recurrent_activation"] == "hard_sigmoid"
    inner, outer = open_source(_file("tf_keras_nested")).keras_layers()
    assert (inner.name, inner.class_name) == ("lstm", "LSTM")
    assert inner.weights[0] == "model_weights/inner/lstm/lstm_cell/kernel:0"
    assert outer.weights[0] == "model_weights/lstm_1/lstm_1/lstm_cell/kernel:0"


def test_hard_sigmoid_fixtures_for_both_keras_versions():
    for case, version in (("tf_keras_model", 2), ("keras3_archive", 3)):
        layers = open_source(_file(case)).keras_layers()
        assert layers[0].config["recurrent_activation"] == "hard_sigmoid"
        assert layers[0].keras_version == version
        assert "output" in _expected(case)["model"]["layers"][layers[0].name]


# ---------------------------------------------------------------------------- aliases


def test_aliases_tf_keras():
    aliases = open_source(_file("tf_keras_model")).aliases()
    assert aliases["model_weights/lstm/lstm/lstm_cell/kernel:0"] == ("lstm/lstm_cell/kernel",)
    assert aliases["model_weights/lstm_1/lstm_1/lstm_cell/recurrent_kernel:0"] == (
        "lstm_1/lstm_cell/recurrent_kernel",)
    assert aliases["model_weights/dense/dense/bias:0"] == ("dense/bias",)
    assert not [n for n in aliases if n.startswith("optimizer_weights/")]
    bidi = open_source(_file("tf_keras_bidi")).aliases()
    assert bidi["model_weights/bidirectional/bidirectional/backward_lstm/lstm_cell/bias:0"] == (
        "bidirectional/backward_lstm/lstm_cell/bias",)


def test_aliases_keras3_legacy_h5_strip_the_model_name():
    aliases = open_source(_file("keras3_legacy_h5")).aliases()
    assert aliases["model_weights/lstm/sequential/lstm/lstm_cell/kernel"] == (
        "lstm/lstm_cell/kernel", "sequential/lstm/lstm_cell/kernel")


@pytest.mark.parametrize("case", ["keras3_weights", "keras3_sharded", "keras3_archive"])
def test_aliases_keras3(case):
    aliases = open_source(_file(case)).aliases()
    assert aliases == {
        "layers/lstm/cell/vars/0": ("lstm/lstm_cell/kernel", "layers/lstm/cell/kernel"),
        "layers/lstm/cell/vars/1": ("lstm/lstm_cell/recurrent_kernel",
                                    "layers/lstm/cell/recurrent_kernel"),
        "layers/lstm/cell/vars/2": ("lstm/lstm_cell/bias", "layers/lstm/cell/bias"),
        "layers/lstm_1/cell/vars/0": ("lstm_1/lstm_cell/kernel", "layers/lstm_1/cell/kernel"),
        "layers/lstm_1/cell/vars/1": ("lstm_1/lstm_cell/recurrent_kernel",
                                      "layers/lstm_1/cell/recurrent_kernel"),
    }


def test_aliases_keras3_bidirectional_and_nested_match_tf_keras_names():
    bidi = open_source(_file("keras3_bidi")).aliases()
    assert bidi["layers/bidirectional/forward_layer/cell/vars/1"][0] == (
        "bidirectional/forward_lstm/lstm_cell/recurrent_kernel")
    nested = open_source(_file("keras3_nested")).aliases()
    assert nested["layers/sequential/layers/lstm/cell/vars/0"] == (
        "lstm/lstm_cell/kernel", "layers/sequential/layers/lstm/cell/kernel")


def _keras3_file(path: Path, groups: dict[str, list[np.ndarray]], names=None) -> Path:
    with h5py.File(path, "w") as f:
        for group, arrays in groups.items():
            g = f.create_group(group)
            if names and group in names:
                g.attrs["name"] = names[group]
            for i, a in enumerate(arrays):
                g[str(i)] = a
    return path


def test_keras3_vars_in_numeric_order(tmp_path):
    arrays = [np.full((2,), i, np.float32) for i in range(12)]
    p = _keras3_file(tmp_path / "m.weights.h5", {"layers/thing/vars": arrays})
    names = [n for n, _ in lstmcompat.list_variables(p)]
    assert names == [f"layers/thing/vars/{i}" for i in range(12)]
    assert lstmcompat.load_variables(p)["layers/thing/vars/10"][0] == 10
    assert open_source(p).aliases() == {}  # not an LSTM cell


def test_keras3_lstm_cell_without_names_gets_path_aliases(tmp_path):
    cell = [np.zeros((3, 8), np.float32), np.zeros((2, 8), np.float32), np.zeros(8, np.float32)]
    p = _keras3_file(tmp_path / "m.weights.h5", {"layers/lstm/cell/vars": cell})
    assert open_source(p).aliases()["layers/lstm/cell/vars/2"] == ("layers/lstm/cell/bias",)
    # shapes that are not an LSTM cell's: no alias
    p = _keras3_file(tmp_path / "g.weights.h5", {"layers/gru/cell/vars": [
        np.zeros((3, 6), np.float32), np.zeros((2, 6), np.float32)]})
    assert open_source(p).aliases() == {}


def test_bfloat16_weights(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    p = tmp_path / "bf.weights.h5"
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("layers/dense/vars/0", data=np.array([1.5, -2], ml_dtypes.bfloat16))
        ds.attrs["dtype"] = "bfloat16"
    value = lstmcompat.load_variables(p)["layers/dense/vars/0"]
    assert value.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(value.astype(np.float32), [1.5, -2])


# ---------------------------------------------------------------------------- sniffing


def test_sniffing_does_not_need_h5py(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    sniff = _keras_files._sniff_h5
    assert sniff(_file("tf_keras_weights"), b"")
    assert not sniff(_file("keras3_archive"), b"")
    assert _keras_files._sniff_zip(_file("keras3_archive"),
                                   _file("keras3_archive").read_bytes()[:16])
    assert _keras_files._sniff_index(_file("keras3_sharded"), b"")
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    assert not _keras_files._sniff_index(other, b"")
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("a.txt", "x")
    assert not _keras_files._sniff_zip(plain, plain.read_bytes()[:16])


def test_hdf5_with_a_user_block(tmp_path):
    p = tmp_path / "ub.h5"
    with h5py.File(p, "w", userblock_size=1024) as f:
        f.attrs["layer_names"] = [b"d"]
        g = f.create_group("d")
        g.attrs["weight_names"] = [b"d/kernel:0"]
        g["d/kernel:0"] = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert p.read_bytes()[:8] != b"\x89HDF\r\n\x1a\n"
    assert lstmcompat.list_variables(p) == [("d/d/kernel:0", (2, 3))]
    assert open_source(p).aliases() == {"d/d/kernel:0": ("d/kernel",)}


@pytest.mark.parametrize("libver", ["earliest", "v108", "latest"])
@pytest.mark.parametrize("extra_attrs", [0, 40])  # 40: dense attribute storage when not earliest
def test_hdf5_format_versions(tmp_path, libver, extra_attrs):
    p = tmp_path / "w.h5"
    with h5py.File(p, "w", libver=libver) as f:
        f.attrs["layer_names"] = [b"lstm", b"d"]
        for name in ("lstm", "d"):
            g = f.create_group(name)
            g.attrs["weight_names"] = [f"{name}/kernel:0".encode()]
            g[f"{name}/kernel:0"] = np.ones((2, 3), np.float32)
            for obj in (f, g):
                for i in range(extra_attrs):
                    obj.attrs[f"extra{i}"] = "x" * 10
    assert lstmcompat.list_variables(p) == [("lstm/lstm/kernel:0", (2, 3)),
                                            ("d/d/kernel:0", (2, 3))]


def test_h5py_missing_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    for case in ("tf_keras_weights", "keras3_sharded", "keras3_archive"):
        with pytest.raises(ModuleNotFoundError, match=r"pip install 'lstmcompat\[h5\]'"):
            lstmcompat.list_variables(_file(case))


# ---------------------------------------------------------------------------- errors


def _tf_keras_file(path: Path, weights: dict[str, np.ndarray], layer="d") -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.encode()]
        g = f.create_group(layer)
        g.attrs["weight_names"] = [w.encode() for w in weights]
        for w, a in weights.items():
            g[w] = a
    return path


def test_missing_dataset_named_in_weight_names(tmp_path):
    p = _tf_keras_file(tmp_path / "w.h5", {"d/kernel:0": np.zeros(2)})
    with h5py.File(p, "a") as f:
        f["d"].attrs["weight_names"] = [b"d/kernel:0", b"d/bias:0"]
    with pytest.raises(ValueError, match=r"'d/bias:0'.*`weight_names`") as e:
        lstmcompat.list_variables(p)
    assert str(p) in str(e.value)


def test_missing_layer_group(tmp_path):
    p = _tf_keras_file(tmp_path / "w.h5", {"d/kernel:0": np.zeros(2)})
    with h5py.File(p, "a") as f:
        f.attrs["layer_names"] = [b"d", b"gone"]
    with pytest.raises(ValueError, match="'gone'"):
        lstmcompat.list_variables(p)


def test_datasets_not_in_weight_names_are_not_variables(tmp_path):
    p = _tf_keras_file(tmp_path / "w.h5", {"d/kernel:0": np.zeros(2)})
    with h5py.File(p, "a") as f:
        f["d/extra"] = np.zeros(3)
    assert lstmcompat.list_variables(p) == [("d/d/kernel:0", (2,))]


@pytest.mark.parametrize("link", ["soft", "external"])
def test_links_are_refused(tmp_path, link):
    other = _tf_keras_file(tmp_path / "other.h5", {"d/kernel:0": np.zeros(2)})
    p = tmp_path / "w.h5"
    with h5py.File(p, "w") as f:
        f.attrs["layer_names"] = [b"d"]
        g = f.create_group("d")
        g.attrs["weight_names"] = [b"k"]
        g["k"] = (h5py.SoftLink("/elsewhere") if link == "soft"
                  else h5py.ExternalLink(str(other), "/d/d/kernel:0"))
        f["elsewhere"] = np.zeros(2)
    with pytest.raises(ValueError, match="Link"):
        lstmcompat.list_variables(p)


def test_huge_declared_shape_is_refused_before_reading(tmp_path):
    p = tmp_path / "w.h5"
    with h5py.File(p, "w") as f:
        f.attrs["layer_names"] = [b"d"]
        g = f.create_group("d")
        g.attrs["weight_names"] = [b"k"]
        g.create_dataset("k", shape=(1 << 40,), dtype=np.float32)  # never written
    with pytest.raises(ValueError, match=r"declares shape \(1099511627776,\)"):
        lstmcompat.list_variables(p)


@pytest.mark.parametrize("shape, chunks", [((1 << 31,), (1 << 20,)), ((1 << 23,), (1 << 20,))])
def test_compressed_bombs_are_refused(tmp_path, shape, chunks):
    p = tmp_path / "w.h5"
    with h5py.File(p, "w") as f:
        f.attrs["layer_names"] = [b"d"]
        g = f.create_group("d")
        g.attrs["weight_names"] = [b"k"]
        g.create_dataset("k", shape=shape, dtype=np.float32, chunks=chunks, compression="gzip")
    with pytest.raises(ValueError, match="compressed dataset 'd/k'"):
        lstmcompat.list_variables(p)


def test_huge_chunks_are_refused(tmp_path):
    p = tmp_path / "w.h5"
    with h5py.File(p, "w") as f:
        f.attrs["layer_names"] = [b"d"]
        g = f.create_group("d")
        g.attrs["weight_names"] = [b"k"]
        g.create_dataset("k", shape=(4,), maxshape=(None,), chunks=(1 << 24,),
                         dtype=np.float32, compression="gzip")
    with pytest.raises(ValueError, match="chunks"):
        lstmcompat.list_variables(p)


def test_non_numeric_dataset_is_refused(tmp_path):
    p = _tf_keras_file(tmp_path / "w.h5", {"s": np.array([b"abc"])})
    with pytest.raises(ValueError, match="not a numeric weight"):
        lstmcompat.list_variables(p)


def test_huge_declared_string_attribute_is_refused(tmp_path):
    layer = "z" * 90  # its length, 90, is the 4-byte element length to corrupt
    p = _tf_keras_file(tmp_path / "w.h5", {"kernel:0": np.zeros(2)}, layer=layer)
    data = bytes(p.read_bytes())
    with h5py.File(p) as f:
        assert h5py.check_string_dtype(f.attrs.get_id("layer_names").dtype).length is None
        root = h5py.h5o.get_info(f.id).addr

    def lengths(blob):
        raw = _keras_files._RawHDF5(lambda o, n: blob[o:o + n], len(blob), "x")
        return [length for length, _, _ in raw.vlen_strings(root, "layer_names")]

    assert lengths(data) == [90]
    huge = struct.pack("<I", 0x7FFFFFF0)
    candidates = [i for i in range(len(data)) if data[i:i + 4] == struct.pack("<I", 90)]
    bad = next(d for d in (data[:i] + huge + data[i + 4:] for i in candidates)
               if lengths(d) == [0x7FFFFFF0])
    p.write_bytes(bad)
    t = time.perf_counter()
    with pytest.raises(ValueError, match="declares strings of 2147483632 bytes"):
        lstmcompat.list_variables(p)
    assert time.perf_counter() - t < 1


def _heap_objects(data: bytes):
    """``[(offset of the object header, index, size)]`` of the first global heap collection."""
    at = data.index(b"GCOL")
    size = struct.unpack_from("<Q", data, at + 8)[0]
    p, out = 16, []
    while p + 16 <= size:
        index = struct.unpack_from("<H", data, at + p)[0]
        osize = struct.unpack_from("<Q", data, at + p + 8)[0]
        out.append((at + p, index, osize))
        if index == 0:
            break
        p += 16 + (osize + 7) // 8 * 8
    return out


@pytest.mark.parametrize("corruption", ["free_space_size_0", "object_size", "collection_size"])
def test_corrupt_string_heaps_are_refused(tmp_path, corruption):
    """libhdf5 loops forever on a free-space object of size 0, and reads strings with the
    lengths their references declare: both are checked first."""
    data = bytearray(_file("tf_keras_weights").read_bytes())
    objects = _heap_objects(bytes(data))
    if corruption == "free_space_size_0":
        at = next(a for a, index, _ in objects if index == 0)
        struct.pack_into("<Q", data, at + 8, 0)
    elif corruption == "object_size":
        at = objects[0][0]
        struct.pack_into("<Q", data, at + 8, objects[0][2] + 3)
    else:
        struct.pack_into("<Q", data, data.index(b"GCOL") + 8, 1 << 40)
    p = tmp_path / "w.h5"
    p.write_bytes(bytes(data))
    t = time.perf_counter()
    with pytest.raises(ValueError, match="heap"):
        lstmcompat.load_variables(p)
    assert time.perf_counter() - t < 1


def test_not_keras_hdf5(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f["a"] = np.zeros(2)
    with pytest.raises(ValueError, match="without Keras weights"):
        lstmcompat.list_variables(p)


@pytest.mark.parametrize("case", ["tf_keras_model", "keras3_weights", "keras3_archive"])
def test_truncated_files(tmp_path, case):
    data = _file(case).read_bytes()
    p = tmp_path / _file(case).name
    p.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=str(p).replace("\\", "\\\\")):
        lstmcompat.load_variables(p)


# ---------------------------------------------------------------------------- .keras zips


def _archive(path: Path, members: dict[str, bytes], compress=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _members(case="keras3_archive") -> dict[str, bytes]:
    with zipfile.ZipFile(_file(case)) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_deflated_archive_reads_the_same(tmp_path):
    p = _archive(tmp_path / "m.keras", _members(), zipfile.ZIP_DEFLATED)
    want = lstmcompat.load_variables(_file("keras3_archive"))
    got = lstmcompat.load_variables(p)
    assert list(got) == list(want)
    for n in want:
        np.testing.assert_array_equal(got[n], want[n])


def test_sharded_weights_inside_an_archive(tmp_path):
    folder = GOLDENS / "keras3_sharded"
    members = {"config.json": _members()["config.json"],
               "model.weights.json": (folder / "model.weights.json").read_bytes()}
    for shard in folder.glob("*.weights.h5"):
        members[shard.name] = shard.read_bytes()
    p = _archive(tmp_path / "m.keras", members)
    src = open_source(p)
    assert src.kind == "keras_archive"
    assert src.variables() == lstmcompat.list_variables(folder / "model.weights.json")
    assert [la.name for la in src.keras_layers()] == ["lstm", "lstm_1", "dense"]


@pytest.mark.parametrize("bad", ["../evil", "/abs/path", "a/../../b", "C:/x"])
def test_archive_member_names_are_checked(tmp_path, bad):
    p = _archive(tmp_path / "m.keras", {**_members(), bad: b"x"})
    with pytest.raises(ValueError, match="absolute or '..' path"):
        lstmcompat.list_variables(p)


def test_archive_without_config_or_weights(tmp_path):
    members = _members()
    p = _archive(tmp_path / "a.keras", {k: v for k, v in members.items() if k != "config.json"})
    with pytest.raises(ValueError, match="config.json"):
        lstmcompat.list_variables(p)
    p = _archive(tmp_path / "b.keras", {"config.json": members["config.json"]})
    with pytest.raises(ValueError, match="without `model.weights.h5`"):
        lstmcompat.list_variables(p)
    p = _archive(tmp_path / "c.keras", {"config.json": members["config.json"],
                                         "model.weights.npz": b"PK"})
    with pytest.raises(ValueError, match="npz"):
        lstmcompat.list_variables(p)


def _set_sizes(data: bytearray, member: str, file_size: int | None = None,
               compress_size: int | None = None) -> None:
    """Overwrite a member's sizes in its local and central headers."""
    name = member.encode()
    for sig, at in ((b"PK\x03\x04", 18), (b"PK\x01\x02", 20)):
        pos = 0
        while (pos := data.find(sig, pos)) >= 0:
            nlen_at = 26 if sig == b"PK\x03\x04" else 28
            nlen = struct.unpack_from("<H", data, pos + nlen_at)[0]
            start = pos + (30 if sig == b"PK\x03\x04" else 46)
            if bytes(data[start:start + nlen]) == name:
                if compress_size is not None:
                    struct.pack_into("<I", data, pos + at, compress_size)
                if file_size is not None:
                    struct.pack_into("<I", data, pos + at + 4, file_size)
            pos += 4


@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("member", ["model.weights.h5", "config.json"])
def test_zip_bombs_are_refused(tmp_path, compress, member):
    p = _archive(tmp_path / "m.keras", _members(), compress)
    data = bytearray(p.read_bytes())
    _set_sizes(data, member, file_size=0xFFFFFFF0)
    p.write_bytes(bytes(data))
    t = time.perf_counter()
    with pytest.raises(ValueError, match=f"'{member}'"):
        lstmcompat.list_variables(p)
    assert time.perf_counter() - t < 2


# ---------------------------------------------------------------------------- sharded


def _copy_sharded(tmp_path: Path) -> Path:
    folder = tmp_path / "sharded"
    shutil.copytree(GOLDENS / "keras3_sharded", folder)
    return folder / "model.weights.json"


def test_missing_shard(tmp_path):
    index = _copy_sharded(tmp_path)
    (index.parent / "model_00001.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match="model_00001.weights.h5"):
        lstmcompat.list_variables(index)


@pytest.mark.parametrize("shard", ["../model_00000.weights.h5", "/etc/passwd", "", "a\\b"])
def test_shard_names_are_checked(tmp_path, shard):
    index = _copy_sharded(tmp_path)
    data = json.loads(index.read_text())
    data["weight_map"]["/layers/dense/vars"] = [shard]
    index.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="shard"):
        lstmcompat.list_variables(index)


@pytest.mark.parametrize("text", ['{"weight_map": []}', '{"weight_map": {"/x": 3}}',
                                  '{"weight_map": {"/a/b": "s.h5"}}',
                                  '{"weight_map": ' + "[" * 100000 + "]" * 100000 + "}",
                                  '{"weight_map": {'])
def test_bad_index(tmp_path, text):
    index = _copy_sharded(tmp_path)
    index.write_text(text)
    with pytest.raises(ValueError, match=str(index)):
        lstmcompat.list_variables(index)


# ---------------------------------------------------------------------------- fuzzing

FUZZ_FILES = ["tf_keras_model", "keras3_weights", "keras3_archive", "keras3_bidi",
              "tf_keras_weights"]


def _exercise(path: Path) -> None:
    t = time.perf_counter()
    try:
        src = open_source(path)
        for name, _ in src.variables():
            src.read(name)
        src.aliases()
        src.keras_layers()
    except (ValueError, OSError):
        pass
    assert time.perf_counter() - t < 2, "a mutated file took too long"


def _mutations():
    case = st.sampled_from(FUZZ_FILES)
    data = case.map(lambda c: _file(c).read_bytes())
    trunc = st.tuples(data, st.floats(0, 1)).map(lambda t: t[0][:int(len(t[0]) * t[1])])

    def flip(args):
        blob, flips = args
        b = bytearray(blob)
        for pos, bit in flips:
            b[int(pos * (len(b) - 1))] ^= 1 << bit
        return bytes(b)

    flips = st.tuples(data, st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)),
                                     min_size=1, max_size=8)).map(flip)

    def over(args):
        blob, writes = args
        b = bytearray(blob)
        for pos, chunk in writes:
            at = int(pos * (len(b) - 1))
            b[at:at + len(chunk)] = chunk
        return bytes(b[:len(blob)])

    overwrites = st.tuples(data, st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=8)),
                                          min_size=1, max_size=4)).map(over)
    return st.one_of(trunc, flips, overwrites)


def _fuzz(tmp_path_factory, blob: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    kind = "model.keras" if blob[:2] == b"PK" else "model.h5"
    p = folder / kind
    p.write_bytes(blob)
    _exercise(p)


_FAST = settings(max_examples=40, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@_FAST
@given(blob=_mutations())
def test_fuzz_mutated_files(tmp_path_factory, blob):
    _fuzz(tmp_path_factory, blob)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LSTMCOMPAT_LONG_FUZZ"),
                    reason="long fuzzing: set LSTMCOMPAT_LONG_FUZZ=1")
@settings(max_examples=2000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(blob=_mutations())
def test_fuzz_mutated_files_long(tmp_path_factory, blob):
    _fuzz(tmp_path_factory, blob)


def _zip_sizes():
    members = st.sampled_from(["config.json", "metadata.json", "model.weights.h5"])
    size = st.one_of(st.integers(0, 0xFFFFFFFF), st.integers(0, 100_000))
    return st.lists(st.tuples(members, st.one_of(st.none(), size), st.one_of(st.none(), size)),
                    min_size=1, max_size=3)


@_FAST
@given(changes=_zip_sizes(), deflate=st.booleans())
def test_fuzz_zip_member_sizes(tmp_path_factory, changes, deflate):
    folder = tmp_path_factory.mktemp("zip")
    p = _archive(folder / "m.keras", _members(),
                 zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    data = bytearray(p.read_bytes())
    for member, file_size, compress_size in changes:
        _set_sizes(data, member, file_size, compress_size)
    p.write_bytes(bytes(data))
    _exercise(p)
