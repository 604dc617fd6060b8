"""``lstmcompat.restore``: every writer's names, against TensorFlow's own outputs.

The goldens (``tests/goldens/restore/``, made by ``tools/goldens_restore.py``)
hold one checkpoint per writer with the inputs TensorFlow ran and the outputs
it computed; a restored module must reproduce them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_writer import _write_bundle as write_bundle  # noqa: E402

import lstmcompat
from lstmcompat._interop._names import NameView, find_weight_sets
from lstmcompat._interop._source import open_source

GOLDENS = Path(__file__).parents[1] / "goldens" / "restore"
CASES = json.loads((GOLDENS / "expected.json").read_text())


def _module(desc):
    if desc["class"] == "MultiRNNCell":
        return lstmcompat.MultiRNNCell([lstmcompat.LSTMCell(**kw) for kw in desc["cells"]])
    return getattr(lstmcompat, desc["class"])(**desc["kwargs"])


def _run(case, modules):
    x = torch.tensor(case["inputs"])
    lens = torch.tensor(case["lengths"]) if "lengths" in case else None
    if case["run"] == "dynamic_rnn":
        out, st = lstmcompat.dynamic_rnn(modules[0], x, sequence_length=lens, dtype="float32")
        states = st if isinstance(st, tuple) and not hasattr(st, "c") else (st,)
        return [out] + [t for s in states for t in (s.c, s.h)]
    if case["run"] == "bidirectional_dynamic_rnn":
        (of, ob), (sf, sb) = lstmcompat.bidirectional_dynamic_rnn(
            modules[0], modules[1], x, sequence_length=lens, dtype="float32")
        return [of, ob, sf.c, sf.h, sb.c, sb.h]
    assert case["run"] == "keras_chain"
    ya = modules[0](x)
    yb = modules[1](ya)
    return [ya] + (list(yb) if isinstance(yb, (list, tuple)) else [yb])


def _check(case, got):
    assert len(got) == len(case["outputs"])
    for g, want in zip(got, case["outputs"]):
        np.testing.assert_allclose(g.detach().numpy(), np.array(want, np.float32),
                                   rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_restore_reproduces_tensorflow(name):
    """Each module restored with its prefix computes what TensorFlow computed."""
    case = CASES[name]
    modules = [_module(d) for d in case["modules"]]
    for m, d in zip(modules, case["modules"]):
        assert lstmcompat.restore(m, GOLDENS / case["prefix"], prefix=d["prefix"]) is m
    _check(case, _run(case, modules))


@pytest.mark.parametrize("name", sorted(CASES))
def test_candidate_prefixes(name):
    case = CASES[name]
    sets = find_weight_sets(NameView(open_source(GOLDENS / case["prefix"])))
    assert sorted(s.prefix for s in sets) == case["candidates"]


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if len(CASES[n]["modules"]) == 1])
def test_prefix_found_when_one_set_fits(name):
    case = CASES[name]
    module = _module(case["modules"][0])
    lstmcompat.restore(module, GOLDENS / case["prefix"])
    _check(case, _run(case, [module]))


def test_bits_equal_the_file():
    case = CASES["tf1_cell"]
    cell = _module(case["modules"][0])
    lstmcompat.restore(cell, GOLDENS / case["prefix"])
    values = lstmcompat.load_variables(GOLDENS / case["prefix"])
    for attr, name in [("kernel", "kernel"), ("bias", "bias"), ("w_f_diag", "w_f_diag"),
                       ("w_i_diag", "w_i_diag"), ("w_o_diag", "w_o_diag"),
                       ("proj_kernel", "projection/kernel")]:
        got = getattr(cell, attr).detach().numpy()
        want = values[f"rnn/lstm_cell/{name}"]
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def _bundle(tmp_path, tensors, name="ckpt"):
    prefix = tmp_path / name
    write_bundle(prefix, {k: np.asarray(v, np.float32) for k, v in tensors.items()})
    return prefix


def _cell_vars(scope, d=3, u=2, seed=0):
    rng = np.random.default_rng(seed)
    return {f"{scope}/kernel": rng.standard_normal((d + u, 4 * u)),
            f"{scope}/bias": rng.standard_normal(4 * u)}


def test_several_fit_lists_every_prefix(tmp_path):
    p = _bundle(tmp_path, {**_cell_vars("enc/lstm_cell"), **_cell_vars("dec/lstm_cell")})
    with pytest.raises(ValueError, match=r"2 weight sets .* fit the LSTMCell; pass `prefix=`.*"
                                         r"'dec/lstm_cell', 'enc/lstm_cell'"):
        lstmcompat.restore(lstmcompat.LSTMCell(2), p)
    cell = lstmcompat.restore(lstmcompat.LSTMCell(2), p, prefix="enc/lstm_cell")
    np.testing.assert_array_equal(cell.bias.detach().numpy(),
                                  lstmcompat.load_variables(p)["enc/lstm_cell/bias"])


def test_nothing_changes_on_error(tmp_path):
    p = _bundle(tmp_path, _cell_vars("rnn/lstm_cell"))
    cell = lstmcompat.LSTMCell(3)
    with pytest.raises(ValueError, match=r"`num_units`.*2 units, the module 3"):
        lstmcompat.restore(cell, p)
    assert not cell.built


def test_shape_mismatch_names_both_shapes(tmp_path):
    p = _bundle(tmp_path, _cell_vars("rnn/lstm_cell", d=3))
    cell = lstmcompat.LSTMCell(2)
    cell.build((None, 5))
    before = cell.kernel.detach().clone()
    with pytest.raises(ValueError, match=r"kernel \(5, 8\).*3 input features.*\(7, 8\) for 5"):
        lstmcompat.restore(cell, p, prefix="rnn/lstm_cell")
    assert torch.equal(cell.kernel.detach(), before)


def test_missing_variables_named(tmp_path):
    p = _bundle(tmp_path, _cell_vars("rnn/lstm_cell"))
    with pytest.raises(ValueError, match=r"`use_peepholes`.*rnn/lstm_cell/w_f_diag"):
        lstmcompat.restore(lstmcompat.LSTMCell(2, use_peepholes=True), p)
    with pytest.raises(ValueError, match=r"variable 'other/kernel' not found"):
        lstmcompat.restore(lstmcompat.LSTMCell(2), p, prefix="other")
    with pytest.raises(ValueError, match=r"no LSTM weights.*prefix='rnn/lstm_cell': LSTMCell"):
        lstmcompat.restore(lstmcompat.LSTM(2), p)


def test_peepholes_in_file_but_not_in_module(tmp_path):
    u = 2
    p = _bundle(tmp_path, {**_cell_vars("rnn/lstm_cell", u=u),
                           **{f"rnn/lstm_cell/w_{g}_diag": np.ones(u) for g in "fio"}})
    with pytest.raises(ValueError, match="`use_peepholes`: the file has peepholes"):
        lstmcompat.restore(lstmcompat.LSTMCell(u), p)


def test_optimizer_slots_ignored(tmp_path):
    v = _cell_vars("rnn/lstm_cell")
    slots = {f"{k}/Adam": np.zeros_like(a) for k, a in v.items()}
    slots |= {f"{k}/Adam_1": np.zeros_like(a) for k, a in v.items()}
    p = _bundle(tmp_path, {**v, **slots, "beta1_power": np.float32(0.9), "global_step": 3})
    cell = lstmcompat.restore(lstmcompat.LSTMCell(2), p)
    np.testing.assert_array_equal(cell.kernel.detach().numpy(), v["rnn/lstm_cell/kernel"]
                                  .astype(np.float32))


def test_graph_by_full_names():
    case = CASES["tf1_bidi"]
    with lstmcompat.Graph() as g:
        fw, bw = lstmcompat.LSTMCell(3), lstmcompat.LSTMCell(3, num_proj=2)
        x = torch.tensor(case["inputs"])
        lstmcompat.bidirectional_dynamic_rnn(fw, bw, x, dtype="float32")
    assert lstmcompat.restore(g, GOLDENS / case["prefix"]) is g
    _check(case, _run(case, [fw, bw]))


def test_graph_pre12_names_and_prefix(tmp_path):
    case = CASES["tf1_pre12"]
    with lstmcompat.Graph() as g:
        kw = case["modules"][0]["cells"]
        # TF 1.0's BasicLSTMCell scope, modernised: basic_lstm_cell
        cell = lstmcompat.MultiRNNCell([lstmcompat.LSTMCell(**kw[0]),
                                        lstmcompat.LSTMCell(**kw[1], name="basic_lstm_cell")])
        lstmcompat.dynamic_rnn(cell, torch.tensor(case["inputs"]), dtype="float32")
    lstmcompat.restore(g, GOLDENS / case["prefix"])
    _check(case, _run(case, [cell]))
    # a scope in front of every name
    src = lstmcompat.load_variables(GOLDENS / CASES["tf1_cell"]["prefix"])
    p = _bundle(tmp_path, {f"model/{k}": v for k, v in src.items()
                           if v.dtype == np.float32 and v.ndim})
    with lstmcompat.Graph() as g2:
        c2 = lstmcompat.LSTMCell(5, use_peepholes=True, cell_clip=0.6, num_proj=2)
        lstmcompat.dynamic_rnn(c2, torch.zeros(1, 2, 3), dtype="float32")
    lstmcompat.restore(g2, p)
    np.testing.assert_array_equal(c2.kernel.detach().numpy(), src["rnn/lstm_cell/kernel"])
    lstmcompat.restore(g2, p, prefix="model")
    with pytest.raises(ValueError, match="variable 'nope/rnn/lstm_cell/kernel' not found"):
        lstmcompat.restore(g2, p, prefix="nope")


def test_graph_cell_prefers_its_own_scope(tmp_path):
    p = _bundle(tmp_path, {**_cell_vars("enc/lstm_cell"), **_cell_vars("dec/lstm_cell", seed=1)})
    with lstmcompat.Graph():
        with lstmcompat.variable_scope("dec"):
            cell = lstmcompat.LSTMCell(2)
            cell.build((None, 3))
    lstmcompat.restore(cell, p)
    np.testing.assert_array_equal(cell.kernel.detach().numpy(),
                                  lstmcompat.load_variables(p)["dec/lstm_cell/kernel"])


def test_bad_arguments(tmp_path):
    p = _bundle(tmp_path, _cell_vars("rnn/lstm_cell"))
    with pytest.raises(TypeError, match="`module`"):
        lstmcompat.restore(torch.nn.LSTM(3, 2), p)
    with pytest.raises(TypeError, match="`prefix`"):
        lstmcompat.restore(lstmcompat.LSTMCell(2), p, prefix=3)
    with pytest.raises(FileNotFoundError):
        lstmcompat.restore(lstmcompat.LSTMCell(2), tmp_path / "missing")


def test_dtype_of_an_unbuilt_cell_follows_the_file(tmp_path):
    prefix = tmp_path / "d"
    v = {k: a.astype(np.float64) for k, a in _cell_vars("rnn/lstm_cell").items()}
    write_bundle(prefix, v)
    cell = lstmcompat.restore(lstmcompat.LSTMCell(2), prefix)
    assert cell.kernel.dtype == torch.float64
    assert cell.kernel.detach().numpy().tobytes() == v["rnn/lstm_cell/kernel"].tobytes()
    layer32 = lstmcompat.LSTMCell(2, dtype="float32")
    lstmcompat.restore(layer32, prefix)
    assert layer32.kernel.dtype == torch.float32


def test_directory_and_copy(tmp_path):
    case = CASES["tf1_basic"]
    folder = tmp_path / "run"
    shutil.copytree(GOLDENS / "tf1_basic", folder)
    cell = lstmcompat.restore(_module(case["modules"][0]), folder)
    _check(case, _run(case, [cell]))


def test_prefix_one_level_up():
    case = CASES["keras_v1_saver"]
    path = GOLDENS / case["prefix"]
    layer = lstmcompat.restore(lstmcompat.LSTM(3, use_bias=False, return_state=True), path,
                               prefix="lstm_1")
    want = lstmcompat.load_variables(path)["lstm_1/lstm_cell/recurrent_kernel"]
    np.testing.assert_array_equal(layer.recurrent_kernel.detach().numpy(), want)
    cell = lstmcompat.restore(lstmcompat.LSTMCell(5, use_peepholes=True, num_proj=2),
                              GOLDENS / CASES["tf1_cell"]["prefix"], prefix="rnn")
    assert cell.built
    with pytest.raises(ValueError, match=r"prefix 'bidirectional_rnn/fw' names|no LSTMCell"):
        lstmcompat.restore(lstmcompat.LSTMCell(3), GOLDENS / CASES["tf1_bidi"]["prefix"],
                           prefix="bidirectional_rnn")


def test_restore_from_save_files(tmp_path):
    """Files written by save are restore sources too (TF-style names, prefix '')."""
    torch.manual_seed(0)
    multi = lstmcompat.MultiRNNCell([lstmcompat.LSTMCell(4, use_peepholes=True),
                                     lstmcompat.LSTMCell(3, num_proj=2)])
    layer = lstmcompat.LSTM(3, use_bias=False)
    lstmcompat.dynamic_rnn(multi, torch.zeros(1, 2, 5), dtype="float32")
    layer.build((None, None, 2))
    for module, fresh in ((multi, lambda: lstmcompat.MultiRNNCell(
            [lstmcompat.LSTMCell(4, use_peepholes=True), lstmcompat.LSTMCell(3, num_proj=2)])),
            (layer, lambda: lstmcompat.LSTM(3, use_bias=False)),
            (multi.cells[1], lambda: lstmcompat.LSTMCell(3, num_proj=2))):
        path = tmp_path / f"{type(module).__name__}.safetensors"
        lstmcompat.save(module, path)
        got = lstmcompat.restore(fresh(), path)
        assert len(got.weights) == len(module.weights)
        for a, b in zip(got.weights, module.weights):
            assert torch.equal(a, b)


def test_an_unbuilt_cell_takes_a_bfloat16_files_dtype(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    values = {k: np.asarray(v, np.float32).astype(ml_dtypes.bfloat16)
              for k, v in _cell_vars("rnn/lstm_cell").items()}
    prefix = tmp_path / "bf16"
    write_bundle(prefix, values)
    cell = lstmcompat.restore(lstmcompat.LSTMCell(2), prefix)
    assert cell.kernel.dtype == torch.bfloat16 and cell.dtype == torch.bfloat16
    want = values["rnn/lstm_cell/kernel"].astype(np.float32)
    assert np.array_equal(cell.kernel.detach().float().numpy(), want)
    typed = lstmcompat.restore(lstmcompat.LSTMCell(2, dtype="float32"), prefix)
    assert typed.kernel.dtype == torch.float32  # a cell's own dtype wins
    assert np.array_equal(typed.kernel.detach().numpy(), want)
