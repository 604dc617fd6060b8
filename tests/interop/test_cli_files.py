"""``lstmcompat inspect`` / ``convert`` and the TF1 <-> Keras weight moves behind ``convert``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmcompat
from lstmcompat.__main__ import main
from lstmcompat._interop._convert import keras_to_tf1, tf1_to_keras

GOLDENS = Path(__file__).parents[1] / "goldens" / "restore"
CASES = json.loads((GOLDENS / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_inspect_names_the_prefixes_and_a_working_restore_call(name, capsys):
    path = GOLDENS / name
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for var, shape in CASES[name]["variables"]:
        assert str(tuple(shape)) in lines[var]
    calls = [line.strip() for line in out.splitlines()
             if line.strip().startswith("lstmcompat.restore(")]
    assert len(calls) == len(CASES[name]["candidates"])
    for prefix in CASES[name]["candidates"]:
        assert f"prefix {prefix!r}" in out
    for call in calls:  # each printed call runs as printed
        module = eval(call, {"lstmcompat": lstmcompat})  # noqa: S307
        assert module.weights if hasattr(module, "weights") else module


def test_inspect_dtypes_and_errors(capsys, tmp_path):
    assert main(["inspect", str(GOLDENS / "tf1_cell")]) == 0
    out = capsys.readouterr().out
    assert "global_step" in out and "int64" in out and "float32" in out
    assert main(["inspect", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lstmcompat inspect: error: no checkpoint or weight file")
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint at all")
    assert main(["inspect", str(tmp_path / "junk.bin")]) == 1
    assert "not a file lstmcompat can read" in capsys.readouterr().err


def test_cli_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "lstmcompat", "inspect", str(GOLDENS / "tf1_basic")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "prefix 'rnn/basic_lstm_cell'" in r.stdout
    r = subprocess.run([sys.executable, "-m", "lstmcompat", "convert"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "usage" in r.stderr


def _x(seed=0, depth=3):
    return torch.tensor(np.random.default_rng(seed).standard_normal((2, 4, depth)), dtype=torch.float64)


def test_tf1_to_keras_same_outputs():
    cell = lstmcompat.LSTMCell(4, forget_bias=0.7, dtype="float64")
    cell.build((None, 3))
    with torch.no_grad():
        cell.bias.normal_()
    layer = tf1_to_keras(cell, return_sequences=True)
    want, _ = lstmcompat.dynamic_rnn(cell, _x(), dtype="float64")
    torch.testing.assert_close(layer(_x()), want, rtol=1e-12, atol=1e-12)
    for option in ({"use_peepholes": True}, {"num_proj": 2}, {"cell_clip": 1.0}):
        c = lstmcompat.LSTMCell(4, **option)
        c.build((None, 3))
        with pytest.raises(ValueError, match=f"`{next(iter(option))}`"):
            tf1_to_keras(c)
    with pytest.raises(ValueError, match="not built"):
        tf1_to_keras(lstmcompat.LSTMCell(4))


def test_keras_to_tf1_same_outputs():
    layer = lstmcompat.LSTM(3, recurrent_activation="sigmoid", return_sequences=True,
                            dtype="float64", bias_initializer="random_normal")
    layer.build((None, None, 3))
    cell = keras_to_tf1(layer)
    got, _ = lstmcompat.dynamic_rnn(cell, _x(1), dtype="float64")
    torch.testing.assert_close(got, layer(_x(1)), rtol=1e-12, atol=1e-12)
    hard = lstmcompat.LSTM(3)
    hard.build((None, None, 3))
    with pytest.raises(ValueError, match="`recurrent_activation`='hard_sigmoid'"):
        keras_to_tf1(hard)
    nobias = lstmcompat.LSTM(3, recurrent_activation="sigmoid", use_bias=False, dtype="float64",
                             return_sequences=True)
    nobias.build((None, None, 3))
    got, _ = lstmcompat.dynamic_rnn(keras_to_tf1(nobias), _x(2), dtype="float64")
    torch.testing.assert_close(got, nobias(_x(2)), rtol=1e-12, atol=1e-12)


def test_convert_then_load_reproduces_tensorflow(tmp_path, capsys):
    case = CASES["tf1_cell"]
    out = tmp_path / "cell.safetensors"
    assert main(["convert", str(GOLDENS / "tf1_cell"), str(out), "--cell-clip", "0.6"]) == 0
    assert "lstmcompat.load(" in capsys.readouterr().out
    cell = lstmcompat.load(out)
    x, lens = torch.tensor(case["inputs"]), torch.tensor(case["lengths"])
    got, st = lstmcompat.dynamic_rnn(cell, x, sequence_length=lens, dtype="float32")
    for g, want in zip([got, st.c, st.h], case["outputs"]):
        np.testing.assert_allclose(g.detach().numpy(), want, rtol=2e-6, atol=2e-6)
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Saved lstmcompat module: LSTMCell" in text and "float32" in text


def test_convert_tf1_to_keras(tmp_path):
    case = CASES["tf1_basic"]
    out = tmp_path / "k.safetensors"
    assert main(["convert", str(GOLDENS / "tf1_basic"), str(out), "--api", "keras"]) == 0
    layer = lstmcompat.load(out)
    assert isinstance(layer, lstmcompat.LSTM)
    layer.return_sequences = True
    y = layer(torch.tensor(case["inputs"]))
    # the first sequence has its full length in TF's run
    np.testing.assert_allclose(y[0].detach().numpy(), np.array(case["outputs"][0])[0],
                               rtol=1e-5, atol=1e-6)


def test_convert_keras_to_tf1_needs_the_recurrent_activation(tmp_path, capsys):
    src = GOLDENS / "keras_v1_saver"
    out = tmp_path / "c.safetensors"
    assert main(["convert", str(src), str(out), "--prefix", "lstm", "--api", "tf1"]) == 1
    assert "--recurrent-activation sigmoid" in capsys.readouterr().err
    assert main(["convert", str(src), str(out), "--prefix", "lstm", "--api", "tf1",
                 "--recurrent-activation", "sigmoid"]) == 0
    assert isinstance(lstmcompat.load(out), lstmcompat.LSTMCell)


def test_convert_errors(tmp_path, capsys):
    out = tmp_path / "x.safetensors"
    assert main(["convert", str(GOLDENS / "tf1_bidi"), str(out)]) == 1
    err = capsys.readouterr().err
    assert "choose one with --prefix" in err and "'bidirectional_rnn/fw/lstm_cell'" in err
    assert main(["convert", str(GOLDENS / "tf1_bidi"), str(out), "--prefix", "nope"]) == 1
    assert "no LSTM weight set at prefix 'nope'" in capsys.readouterr().err
    assert main(["convert", str(GOLDENS / "tf1_multi"), str(out), "--api", "keras"]) == 1
    assert "--api tf1 only" in capsys.readouterr().err
    assert not out.exists()
    assert main(["convert", str(GOLDENS / "tf1_multi"), str(out)]) == 0
    assert isinstance(lstmcompat.load(out), lstmcompat.MultiRNNCell)
