"""get_config() against TensorFlow's dict for tf.compat.v1.keras.layers.LSTM.

configs.json holds, per case, the constructor kwargs and TF's get_config()
(keys, values, nested initializer / regularizer / constraint sub-configs, in
TF's key order). Floats are compared to 1e-6 relative: TF stores regularizer
factors as float32 (0.01 -> 0.009999999776482582).
"""

from __future__ import annotations

import math

import pytest
from keras_parity_helpers import configs

import lstmcompat

CASES = configs()
IDS = list(CASES)


def _norm(v):
    if isinstance(v, (tuple, list)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def _kwargs(kw):
    kw = dict(kw)
    for k in ("input_shape", "batch_input_shape"):
        if k in kw:
            kw[k] = tuple(kw[k])
    return kw


def _compare(got, exp, path="config"):
    if isinstance(exp, dict):
        assert isinstance(got, dict), f"{path}: {got!r} is not a dict (TF: {exp!r})"
        assert set(got) == set(exp), (f"{path}: keys differ; missing {sorted(set(exp) - set(got))}"
                                      f", extra {sorted(set(got) - set(exp))}")
        for k in exp:
            _compare(got[k], exp[k], f"{path}[{k!r}]")
    elif isinstance(exp, list):
        assert isinstance(got, list) and len(got) == len(exp), f"{path}: {got!r} != TF {exp!r}"
        for i, (g, e) in enumerate(zip(got, exp, strict=True)):
            _compare(g, e, f"{path}[{i}]")
    elif isinstance(exp, bool) or exp is None or isinstance(exp, str):
        assert got == exp and type(got) is type(exp), f"{path}: {got!r} != TF {exp!r}"
    elif isinstance(exp, float):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{path}: {got!r}"
        assert math.isclose(got, exp, rel_tol=1e-6, abs_tol=0.0), f"{path}: {got!r} != TF {exp!r}"
    else:  # int
        assert got == exp and not isinstance(got, bool), f"{path}: {got!r} != TF {exp!r}"


@pytest.mark.parametrize("key", IDS)
def test_get_config_matches_tf(key):
    case = CASES[key]
    layer = lstmcompat.LSTM(**_kwargs(case["kwargs"]))
    _compare(_norm(layer.get_config()), case["config"])


@pytest.mark.parametrize("key", IDS)
def test_get_config_key_order_matches_tf(key):
    case = CASES[key]
    layer = lstmcompat.LSTM(**_kwargs(case["kwargs"]))
    assert list(layer.get_config()) == case["key_order"]


@pytest.mark.parametrize("key", IDS)
def test_from_config_round_trip(key):
    case = CASES[key]
    layer = lstmcompat.LSTM(**_kwargs(case["kwargs"]))
    cfg = layer.get_config()
    again = lstmcompat.LSTM.from_config(cfg)
    assert isinstance(again, lstmcompat.LSTM)
    assert _norm(again.get_config()) == _norm(cfg)
    _compare(_norm(again.get_config()), case["config"], "from_config(...).get_config()")


def test_from_tf_config():
    """A config dict produced by TF itself is accepted (e.g. read from a Keras model file)."""
    for key, case in CASES.items():
        layer = lstmcompat.LSTM.from_config(dict(case["config"]))
        _compare(_norm(layer.get_config()), case["config"], f"{key}: from TF config")


@pytest.mark.parametrize("key", IDS)
def test_attributes(key):
    case = CASES[key]
    layer = lstmcompat.LSTM(**_kwargs(case["kwargs"]))
    for name, exp in case["attrs"].items():
        assert getattr(layer, name) == exp, f"layer.{name}"
