"""stateful=True against TensorFlow: consecutive calls, reset_states, initial_state.

Each golden ("stateful" in manifest.json) is a sequence of operations on one
tf.compat.v1.keras.layers.LSTM(stateful=True, batch_input_shape=(B, None, F)):
calls (training=False, optionally with a mask and/or an initial_state) and
reset_states() / reset_states([h, c]) with NumPy arrays; layer.states is
recorded after each. TF uses a passed initial_state only while the stored
states are all zero (first call after a reset), otherwise the stored states.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from keras_parity_helpers import as_list, assert_close, load, make_layer, manifest, weight_names

CASES = manifest()["stateful"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_stateful_sequence(case):
    d = load(case)
    dt = case["dtype"]
    layer = make_layer(case["layer"], dt)
    layer.set_weights([d[n] for n in weight_names(d)])  # built at construction (API.md §1)
    for k, step in enumerate(case["steps"]):
        where = f"{case['name']} step {k} ({step})"
        if step["op"] == "call":
            kw = {"training": False}
            if step["mask"]:
                kw["mask"] = torch.tensor(d[f"s{k}_mask"])
            if step["init"]:
                kw["initial_state"] = [torch.tensor(d[f"s{k}_h0"]), torch.tensor(d[f"s{k}_c0"])]
            outs = as_list(layer(torch.tensor(d[f"s{k}_x"]), **kw))
            assert len(outs) == step["n_outputs"], where
            for i, o in enumerate(outs):
                assert_close(o, d[f"s{k}_out_{i}"], dt, f"{where} out_{i}")
        elif step["values"]:
            layer.reset_states([d[f"s{k}_reset_h"], d[f"s{k}_reset_c"]])
        else:
            layer.reset_states()
        states = list(layer.states)
        assert len(states) == 2, where
        assert_close(states[0], d[f"s{k}_states_h"], dt, f"{where} states[0] (h)")
        assert_close(states[1], d[f"s{k}_states_c"], dt, f"{where} states[1] (c)")


def test_stateful_initial_state_used_only_while_states_zero():
    case = next(c for c in CASES if c["name"] == "stateful_seq")
    d = load(case)
    steps = case["steps"]
    init_steps = [k for k, s in enumerate(steps) if s["op"] == "call" and s["init"]]
    assert [steps[k]["states_zero_before"] for k in init_steps] == [True, False]
    # the second call with an initial_state continued from the stored states:
    # a fresh non-stateful layer from that initial_state gives something else
    k = init_steps[1]
    layer = make_layer({"units": case["layer"]["units"], "return_sequences": True}, "float32")
    layer.build(d[f"s{k}_x"].shape)
    layer.set_weights([d[n] for n in weight_names(d)])
    other = layer(d[f"s{k}_x"], initial_state=[d[f"s{k}_h0"], d[f"s{k}_c0"]], training=False)
    assert not np.allclose(other.detach().numpy(), d[f"s{k}_out_0"], atol=1e-3)


def test_stateful_states_do_not_keep_graph():
    """Stored states are values: a second call + backward must not fail on a freed graph."""
    case = next(c for c in CASES if c["name"] == "stateful_seq")
    d = load(case)
    layer = make_layer(case["layer"], "float32")
    layer.set_weights([d[n] for n in weight_names(d)])
    for k in (0, 1):
        out = layer(torch.tensor(d[f"s{k}_x"]), training=False)
        out.sum().backward()
    assert_close(layer.states[0], d["s1_states_h"], "float32", "h after two calls")


ERR = None


def _errors():
    from keras_parity_helpers import facts

    return facts()["errors"]


def test_reset_states_not_stateful_raises_attribute_error():
    assert _errors()["reset_states_not_stateful"]["type"] == "AttributeError"
    layer = make_layer({"units": 4, "input_shape": [None, 3]})
    with pytest.raises(AttributeError):
        layer.reset_states()


def test_reset_states_unknown_batch_size_raises_value_error():
    assert _errors()["reset_states_unknown_batch"]["type"] == "ValueError"
    layer = make_layer({"units": 4, "stateful": True})
    with pytest.raises(ValueError):
        layer.reset_states()


def test_stateful_without_batch_size_raises_value_error():
    """TF cannot build a stateful RNN without a batch size (build calls reset_states).

    lstmcompat builds at construction when the feature size is known, so the
    ValueError may come from the constructor or from reset_states().
    """
    with pytest.raises(ValueError):
        layer = make_layer({"units": 4, "stateful": True, "input_shape": [None, 3]})
        layer.reset_states()


@pytest.mark.parametrize("key,states", [
    ("reset_states_wrong_shape", [np.zeros((3, 4)), np.zeros((2, 4))]),
    ("reset_states_wrong_units", [np.zeros((2, 4)), np.zeros((2, 5))]),
    ("reset_states_wrong_count", [np.zeros((2, 4))]),
])
def test_reset_states_incompatible_arrays_raise_value_error(key, states):
    assert _errors()[key]["type"] == "ValueError"
    layer = make_layer({"units": 4, "stateful": True, "batch_input_shape": [2, 5, 3]})
    layer(np.ones((2, 5, 3), "float32"), training=False)
    with pytest.raises(ValueError):
        layer.reset_states(states)
