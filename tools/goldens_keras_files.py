"""Regenerate the Keras weight-file goldens: ``tests/goldens/keras_files/``.

Run with the reference TensorFlow (never a dependency of the library or its tests)::

    TF_USE_LEGACY_KERAS=1 /work/tfvenv/bin/python tools/goldens_keras_files.py

The script runs itself twice in subprocesses: once with ``TF_USE_LEGACY_KERAS=1``
(tf_keras 2.x: ``save_weights('x.h5')``, ``model.save('x.h5')``) and once without
(Keras 3: ``.weights.h5``, sharded ``.weights.json``, ``.keras``, and Keras 3's
legacy ``model.save('x.h5')``). Every case is a folder holding the file(s) Keras
wrote and ``expected.json``:

* ``file``, ``kind``, ``keras_version`` (the writer's major version);
* ``list``: ``[[name, shape], ...]``: every weight dataset's HDF5 path, in the
  order Keras reads them when loading (tf_keras: its own ``layer_names`` /
  ``weight_names`` helpers; Keras 3: the reads recorded while ``load_weights`` /
  ``load_model`` run), optimizer weights included;
* ``values``: ``{name: {dtype, shape, data}}`` (raw little-endian bytes, base64);
* ``model``: the fixed input (batch 2) and, for each layer that has weights, its
  class name, config (``layer.get_config()``), ``weights``: the file names of its
  weights in ``layer.weights`` order (found by value: every weight is distinct),
  and its input and output on the model's input, computed by Keras.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "keras_files"
STEPS, FEATURES = 4, 3


def _encode(value) -> dict:
    import numpy as np

    value = np.asarray(value)
    return {"dtype": str(value.dtype), "shape": list(value.shape),
            "data": base64.b64encode(
                value.astype(value.dtype.newbyteorder("<")).tobytes()).decode()}


def _fill(model, rng) -> None:
    import numpy as np

    model.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(np.float32)
                       for w in model.get_weights()])


def _model_facts(model, x, values: dict) -> dict:
    """Per layer with weights: config, file names of its weights, input and output."""
    import numpy as np

    def find(w):
        w = np.asarray(w)
        hits = [n for n, v in values.items() if v.shape == w.shape and np.array_equal(v, w)
                and "optimizer" not in n]
        assert len(hits) == 1, (w.shape, hits)
        return hits[0]

    layers = {}

    def run(model, h):
        for layer in model.layers:
            if hasattr(layer, "layers"):  # a nested model: its layers, flattened
                out = run(layer, h)
            else:
                out = layer(h)
                if layer.weights:
                    layers[layer.name] = {
                        "class_name": type(layer).__name__,
                        "config": json.loads(json.dumps(layer.get_config(), default=str)),
                        "weights": [find(w) for w in layer.weights],
                        "input": _encode(np.asarray(h)),
                        "output": _encode(np.asarray(out)),
                    }
            h = out
        return h

    run(model, x)
    return {"input": _encode(x), "layers": layers,
            "output": _encode(np.asarray(model(x)))}


def _write(case: str, file: str, kind: str, version: int, listing, model, x, extra=None):
    folder = OUT / case
    data = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as f:
                for name, _ in listing:
                    if name in f:
                        data[name] = f[name][()]
    missing = [n for n, _ in listing if n not in data]
    assert not missing, missing
    expected = {
        "file": file, "kind": kind, "keras_version": version,
        "list": [[n, list(s)] for n, s in listing],
        "values": {n: _encode(data[n]) for n, _ in listing},
        "model": _model_facts(model, x, data),
    }
    if extra:
        expected.update(extra)
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(case, [n for n, _ in listing])


# ----------------------------------------------------------------------------- tf_keras


def tf_keras_main() -> None:
    import h5py
    import numpy as np
    import tf_keras
    from tf_keras.src.saving.legacy import hdf5_format

    L = tf_keras.layers
    rng = np.random.default_rng(20240610)
    x = rng.standard_normal((2, STEPS, FEATURES)).astype(np.float32)

    def stacked():
        tf_keras.backend.clear_session()
        return tf_keras.Sequential([
            tf_keras.Input((STEPS, FEATURES)),
            L.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid"),
            L.LSTM(3, use_bias=False),
            L.Dense(2),
        ])

    def tf_listing(path: Path):
        out = []
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            prefix = "model_weights/" if "model_weights" in f else ""
            groups = hdf5_format.load_attributes_from_hdf5_group(root, "layer_names")
            if "top_level_model_weights" in root:
                groups = [*groups, "top_level_model_weights"]
            for g in groups:
                for w in hdf5_format.load_attributes_from_hdf5_group(root[g], "weight_names"):
                    out.append((f"{prefix}{g}/{w}", root[g][w].shape))
            if "optimizer_weights" in f:
                g = f["optimizer_weights"]
                for w in hdf5_format.load_attributes_from_hdf5_group(g, "weight_names"):
                    out.append((f"optimizer_weights/{w}", g[w].shape))
        return out

    version = tf_keras.__version__
    # save_weights
    model = stacked()
    _fill(model, rng)
    (OUT / "tf_keras_weights").mkdir()
    path = OUT / "tf_keras_weights" / "weights.h5"
    model.save_weights(str(path))
    _write("tf_keras_weights", path.name, "keras_h5", 2, tf_listing(path), model, x,
           {"writer": f"tf_keras {version}"})

    # full model, with optimizer state
    model = stacked()
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(x, np.zeros((2, 2), np.float32))
    _fill(model, rng)
    (OUT / "tf_keras_model").mkdir()
    path = OUT / "tf_keras_model" / "model.h5"
    model.save(str(path))
    _write("tf_keras_model", path.name, "keras_h5", 2, tf_listing(path), model, x,
           {"writer": f"tf_keras {version}"})

    # Bidirectional, full model without optimizer
    tf_keras.backend.clear_session()
    model = tf_keras.Sequential([
        tf_keras.Input((STEPS, FEATURES)),
        L.Bidirectional(L.LSTM(2, return_sequences=True, recurrent_activation="hard_sigmoid")),
        L.Dense(1),
    ])
    _fill(model, rng)
    (OUT / "tf_keras_bidi").mkdir()
    path = OUT / "tf_keras_bidi" / "model.h5"
    model.save(str(path))
    _write("tf_keras_bidi", path.name, "keras_h5", 2, tf_listing(path), model, x,
           {"writer": f"tf_keras {version}"})

    # a nested Sequential inside a Sequential
    tf_keras.backend.clear_session()
    model = tf_keras.Sequential([
        tf_keras.Input((STEPS, FEATURES)),
        tf_keras.Sequential([L.LSTM(3, return_sequences=True)], name="inner"),
        L.LSTM(2, recurrent_activation="hard_sigmoid"),
    ])
    _fill(model, rng)
    (OUT / "tf_keras_nested").mkdir()
    path = OUT / "tf_keras_nested" / "model.h5"
    model.save(str(path))
    _write("tf_keras_nested", path.name, "keras_h5", 2, tf_listing(path), model, x,
           {"writer": f"tf_keras {version}"})


# ----------------------------------------------------------------------------- Keras 3


def keras3_main() -> None:
    import numpy as np
    from keras.src.saving import saving_lib

    import keras

    assert keras.__version__.startswith("3."), keras.__version__
    L = keras.layers
    rng = np.random.default_rng(20240611)
    x = rng.standard_normal((2, STEPS, FEATURES)).astype(np.float32)
    reads: list[tuple[str, str]] = []
    original = saving_lib.H5IOStore.__getitem__

    def recording(self, key):
        value = original(self, key)
        group = self._h5_entry_group
        reads.append((f"{group.name.lstrip('/')}/{key}", tuple(np.shape(value))))
        return value

    saving_lib.H5IOStore.__getitem__ = recording

    def stacked():
        keras.backend.clear_session()
        return keras.Sequential([
            keras.Input((STEPS, FEATURES)),
            L.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid"),
            L.LSTM(3, use_bias=False),
            L.Dense(2),
        ])

    def bidi():
        keras.backend.clear_session()
        return keras.Sequential([
            keras.Input((STEPS, FEATURES)),
            L.Bidirectional(L.LSTM(2, return_sequences=True,
                                   recurrent_activation="hard_sigmoid")),
            L.Dense(1),
        ])

    def loaded(load):
        reads.clear()
        load()
        return list(reads)

    version = keras.__version__
    extra = {"writer": f"keras {version}"}

    model = stacked()
    _fill(model, rng)
    (OUT / "keras3_weights").mkdir()
    path = OUT / "keras3_weights" / "model.weights.h5"
    model.save_weights(str(path))
    listing = loaded(lambda: stacked().load_weights(str(path)))
    _write("keras3_weights", path.name, "keras3_weights", 3, listing, model, x, extra)

    # sharded: the largest weight is 4 * 16 float32 = 256 bytes
    model = stacked()
    _fill(model, rng)
    (OUT / "keras3_sharded").mkdir()
    path = OUT / "keras3_sharded" / "model.weights.json"
    model.save_weights(str(path), max_shard_size=300 / 1024**3)
    listing = loaded(lambda: stacked().load_weights(str(path)))
    shards = sorted(p.name for p in path.parent.glob("*.weights.h5"))
    assert len(shards) >= 2, shards
    _write("keras3_sharded", path.name, "keras3_weights", 3, listing, model, x,
           {**extra, "shards": shards})

    # .keras archive with optimizer state
    model = stacked()
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(x, np.zeros((2, 2), np.float32))
    _fill(model, rng)
    (OUT / "keras3_archive").mkdir()
    path = OUT / "keras3_archive" / "model.keras"
    model.save(str(path))
    listing = loaded(lambda: keras.models.load_model(str(path)))
    # the names are those of the inner model.weights.h5: extract it for _write
    import zipfile

    with zipfile.ZipFile(path) as z:
        (path.parent / "inner.h5").write_bytes(z.read("model.weights.h5"))
        members = z.namelist()
    _write("keras3_archive", path.name, "keras_archive", 3, listing, model, x,
           {**extra, "members": members})
    (path.parent / "inner.h5").unlink()

    # .keras archive of a Bidirectional model
    model = bidi()
    _fill(model, rng)
    (OUT / "keras3_bidi").mkdir()
    path = OUT / "keras3_bidi" / "model.keras"
    model.save(str(path))
    listing = loaded(lambda: keras.models.load_model(str(path)))
    with zipfile.ZipFile(path) as z:
        (path.parent / "inner.h5").write_bytes(z.read("model.weights.h5"))
    _write("keras3_bidi", path.name, "keras_archive", 3, listing, model, x, extra)
    (path.parent / "inner.h5").unlink()

    # a nested Sequential inside a Sequential
    keras.backend.clear_session()
    model = keras.Sequential([
        keras.Input((STEPS, FEATURES)),
        keras.Sequential([L.LSTM(3, return_sequences=True)], name="inner"),
        L.LSTM(2, recurrent_activation="hard_sigmoid"),
    ])
    _fill(model, rng)
    (OUT / "keras3_nested").mkdir()
    path = OUT / "keras3_nested" / "model.keras"
    model.save(str(path))
    listing = loaded(lambda: keras.models.load_model(str(path)))
    with zipfile.ZipFile(path) as z:
        (path.parent / "inner.h5").write_bytes(z.read("model.weights.h5"))
    _write("keras3_nested", path.name, "keras_archive", 3, listing, model, x, extra)
    (path.parent / "inner.h5").unlink()

    # Keras 3's legacy HDF5 full model (tf_keras's layout, Keras 3 names and activations)
    import h5py
    from keras.src.legacy.saving import legacy_h5_format as hdf5_format

    model = stacked()
    _fill(model, rng)
    (OUT / "keras3_legacy_h5").mkdir()
    path = OUT / "keras3_legacy_h5" / "model.h5"
    model.save(str(path))
    listing = []
    with h5py.File(path, "r") as f:
        root = f["model_weights"]
        for g in hdf5_format.load_attributes_from_hdf5_group(root, "layer_names"):
            for w in hdf5_format.load_attributes_from_hdf5_group(root[g], "weight_names"):
                listing.append((f"model_weights/{g}/{w}", root[g][w].shape))
    _write("keras3_legacy_h5", path.name, "keras_h5", 3, listing, model, x, extra)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--tf-keras":
        tf_keras_main()
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--keras3":
        keras3_main()
        return
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    env = dict(os.environ)
    env["TF_USE_LEGACY_KERAS"] = "1"
    subprocess.run([sys.executable, __file__, "--tf-keras"], env=env, check=True)
    env.pop("TF_USE_LEGACY_KERAS")
    subprocess.run([sys.executable, __file__, "--keras3"], env=env, check=True)


if __name__ == "__main__":
    main()
