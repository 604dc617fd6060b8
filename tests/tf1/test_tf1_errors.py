"""Error paths, against what TensorFlow raises (``errors.json``).

TF's ``InvalidArgumentError`` (a TF-only type) becomes ``ValueError`` (API.md §4).
Messages that lstmcompat reproduces word for word are compared exactly; the
others (they quote TF graph tensors or TF-generated layer names) by type and a
key phrase.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import torch
from tf1_golden_util import GOLDENS

import lstmcompat as L

EXPECTED = json.loads((GOLDENS / "errors.json").read_text())
LSTM = L.LSTMCell
Multi = L.MultiRNNCell
f32 = torch.float32
TYPES = {"ValueError": ValueError, "TypeError": TypeError, "InvalidArgumentError": ValueError}


def x3() -> torch.Tensor:
    return torch.zeros(2, 3, 4)


def x2() -> torch.Tensor:
    return torch.zeros(2, 4)


def set_w(ws: list) -> None:
    c = LSTM(5)
    c.build((None, 4))
    c.set_weights(ws)


# name -> (scenario, exact message?, key phrase when not exact)
CASES: dict[str, tuple[Callable[[], object], bool, str]] = {
    "dynamic_no_dtype": (lambda: L.dynamic_rnn(LSTM(5), x3()), True, ""),
    "static_no_dtype": (lambda: L.static_rnn(LSTM(5), list(x3().unbind(1))), True, ""),
    "bidi_no_dtype": (lambda: L.bidirectional_dynamic_rnn(LSTM(5), LSTM(5), x3()), True, ""),
    "dynamic_seq_len_rank2": (lambda: L.dynamic_rnn(LSTM(5), x3(), sequence_length=[[1, 2]],
                                                    dtype=f32), False,
                              "must be a vector of length batch_size"),
    "dynamic_seq_len_wrong_size": (lambda: L.dynamic_rnn(LSTM(5), x3(),
                                                         sequence_length=[1, 2, 3], dtype=f32),
                                   False, "[2]"),
    "dynamic_rank2_inputs": (lambda: L.dynamic_rnn(LSTM(5), x2(), dtype=f32), False,
                             "must have rank at least 3"),
    "static_not_a_list": (lambda: L.static_rnn(LSTM(5), x3(), dtype=f32), False,
                          "Argument `inputs` must be a sequence"),
    "static_empty": (lambda: L.static_rnn(LSTM(5), [], dtype=f32), True, ""),
    "static_seq_len_rank2": (lambda: L.static_rnn(LSTM(5), list(x3().unbind(1)),
                                                  sequence_length=[[1, 2]], dtype=f32),
                             False, "Argument `sequence_length` must be a vector of length 2"),
    "bidi_seq_len_over_time": (lambda: L.bidirectional_dynamic_rnn(
        LSTM(5), LSTM(5), x3(), sequence_length=[4, 1], dtype=f32), False, "seq_lens(0) > "),
    "multi_empty": (lambda: Multi([]), True, ""),
    "multi_not_a_list": (lambda: Multi(LSTM(5)), False, "cells must be a list or tuple"),
    "multi_concat_with_tuple_cells": (lambda: Multi([LSTM(5)], state_is_tuple=False), True, ""),
    "multi_tuple_state_not_nested": (lambda: Multi([LSTM(5)])(x2(), torch.zeros(2, 10)), False,
                                     "Expected state to be a tuple of length 1"),
    "initial_state_batch_mismatch": (lambda: LSTM(5).get_initial_state(
        inputs=x2(), batch_size=3, dtype=f32), True, ""),
    "initial_state_dtype_mismatch": (lambda: LSTM(5).get_initial_state(
        inputs=x2(), batch_size=2, dtype=torch.float64), False,
        "dtype from input tensor is different from the input param"),
    "initial_state_nothing": (lambda: LSTM(5).get_initial_state(), True, ""),
    "cell_int_dtype": (lambda: LSTM(5, dtype="int32"), False,
                       "RNN cell only supports floating point inputs"),
    "cell_rank3_input": (lambda: LSTM(5)(x3(), LSTM(5).zero_state(2, f32)), False,
                         "is incompatible with the layer: expected ndim=2, found ndim=3. "
                         "Full shape received: (2, 3, 4)"),
    "cell_int_input": (lambda: LSTM(5)(torch.zeros(2, 4, dtype=torch.int32),
                                       LSTM(5).zero_state(2, f32)), False,
                       "RNN cell only supports floating point inputs"),
    "build_unknown_depth": (lambda: LSTM(5).build((None, None)), True, ""),
    "set_weights_count": (lambda: set_w([np.zeros((9, 20), np.float32)]), False,
                          "with a weight list of length 1, but the layer was expecting 2 weights"),
    "set_weights_shape": (lambda: set_w([np.zeros((9, 20), np.float32),
                                         np.zeros((21,), np.float32)]), True, ""),
    "scope_bad_reuse": (lambda: L.variable_scope("a", reuse="yes"), True, ""),
    "scope_no_name": (lambda: L.variable_scope(None), True, ""),
    "scope_default_name_reuse": (lambda: L.variable_scope(None, default_name="a", reuse=True),
                                 True, ""),
    "state_tuple_dtype": (lambda: L.LSTMStateTuple(torch.zeros(1), torch.zeros(1).double()).dtype,
                          False, "Inconsistent dtypes for internal state"),
}


def test_every_recorded_error_is_tested() -> None:
    assert sorted(CASES) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("in_graph", [False, True], ids=["eager", "graph"])
def test_error_matches_tensorflow(name: str, in_graph: bool) -> None:
    fn, exact, phrase = CASES[name]
    expected = EXPECTED[name]
    assert expected["type"] is not None, "TF raised nothing here"
    with L.Graph() if in_graph else _nothing():
        with pytest.raises(TYPES[expected["type"]]) as info:
            fn()
    if exact:
        assert str(info.value) == expected["message"]
    else:
        assert phrase in str(info.value)
        if expected["type"] != "InvalidArgumentError":
            assert phrase in expected["message"] or phrase == "[2]"


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_state_dtype_must_match_inputs() -> None:
    cell = LSTM(3)
    with pytest.raises(TypeError, match="dtype"):
        L.dynamic_rnn(cell, x3(), dtype=torch.float64)


def test_foreign_cells_are_refused() -> None:
    with pytest.raises(TypeError, match="not an RNNCell"):
        L.dynamic_rnn(torch.nn.LSTM(4, 3), x3(), dtype=f32)


def test_input_depth_must_not_change() -> None:
    cell = LSTM(3)
    L.dynamic_rnn(cell, x3(), dtype=f32)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        L.dynamic_rnn(cell, torch.zeros(2, 3, 5), dtype=f32)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="num_units"):
        LSTM(0)
    with pytest.raises(ValueError, match="num_proj"):
        LSTM(3, num_proj=0)
    with pytest.raises(TypeError, match="Keyword argument not understood"):
        LSTM(3, bogus=1)
    with pytest.raises(ValueError, match="Unknown initializer"):
        LSTM(3, initializer="nope")
