"""lstmcompat.Bidirectional against tf.compat.v1.keras.layers.Bidirectional(LSTM) goldens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from keras_family_helpers import cases, close, load, loss_of, manifest

import lstmcompat
from lstmcompat import LSTM, Bidirectional, CuDNNLSTM

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _build(entry: dict) -> Bidirectional:
    dt = DTYPES[entry["dtype"]]
    kwargs = {"merge_mode": entry["merge_mode"]}
    if entry["backward"] is not None:
        kwargs["backward_layer"] = LSTM(**{**entry["inner"], **entry["backward"]}, dtype=dt)
    return Bidirectional(LSTM(**entry["inner"], dtype=dt), **kwargs,
                         dtype=entry["wrapper_dtype"])


def _run(bi: Bidirectional, entry: dict, a: dict, requires_grad: bool = False):
    x = torch.tensor(a["x"], requires_grad=requires_grad)
    states = [torch.tensor(a[f"state_{i}"], requires_grad=requires_grad)
              for i in range(entry["n_states"])]
    mask = torch.from_numpy(a["mask"]) if "mask" in a else None
    if entry["initial_state"] == "kw":
        out = bi(x, mask=mask, initial_state=states)
    elif entry["initial_state"] == "list":
        out = bi([x, *states], mask=mask)
    else:
        out = bi(x, mask=mask)
    return x, states, (out if isinstance(out, list) else [out])


@pytest.mark.parametrize("entry", cases("bidirectional"), ids=lambda e: e["name"])
def test_outputs_states_and_gradients(entry):
    a = load(entry)
    bi = _build(entry)
    x, states, outs = _run(bi, entry, a, requires_grad=True)
    bi.set_weights([a[f"weight_{i}"] for i in range(len(bi.weights))])
    x, states, outs = _run(bi, entry, a, requires_grad=True)
    assert len(outs) == entry["n_outputs"]
    for i, o in enumerate(outs):
        close(o, a[f"out_{i}"], entry["dtype"], f"output {i}")
    srcs = [x, *states, *bi.trainable_weights]
    grads = torch.autograd.grad(loss_of(outs, a), srcs, allow_unused=True)
    for i, (s, g) in enumerate(zip(srcs, grads)):
        g = torch.zeros_like(s) if g is None else g
        close(g, a[f"grad_{i}"], entry["dtype"], f"gradient {i}")
    # TF's names carry its own layer counter (forward_lstm_7): compare the rule
    want = [n.split("_")[0] for n in entry["names"]]
    assert [n.split("_")[0] for n in (bi.forward_layer.name, bi.backward_layer.name)] == want


@pytest.mark.parametrize("kernel, name", [
    (k, n) for k in ("reference", "fused")
    for n in ("bi_concat_seq_mask_holes", "bi_sum_last_mask_right", "bi_initial_state_list",
              "bi_time_major", "bi_sigmoid")
])
def test_forced_kernels_agree(monkeypatch, kernel, name):
    entry = next(e for e in cases("bidirectional") if e["name"] == name)
    a = load(entry)
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", kernel)
    bi = _build(entry)
    _run(bi, entry, a)
    bi.set_weights([a[f"weight_{i}"] for i in range(len(bi.weights))])
    _, _, outs = _run(bi, entry, a)
    for i, o in enumerate(outs):
        close(o, a[f"out_{i}"], entry["dtype"], f"output {i} ({kernel})")
    assert bi.forward_layer.last_kernel[0] == kernel


@pytest.mark.parametrize("entry", cases("bidirectional", stateful=True), ids=lambda e: e["name"])
def test_stateful(entry):
    a = load(entry)
    inner = LSTM(entry["units"], stateful=True, return_sequences=True,
                 return_state=entry["return_state"], batch_input_shape=entry["batch_input_shape"])
    bi = Bidirectional(inner, merge_mode=entry["merge_mode"])
    assert bi.stateful and bi.built
    bi.set_weights([a[f"weight_{i}"] for i in range(6)])
    for k in ("1", "2"):
        out = bi(torch.from_numpy(a[f"x{k}"]))
        out = out if isinstance(out, list) else [out]
        for i, o in enumerate(out):
            close(o, a[f"out{k}_{i}"], "float32", f"call {k} output {i}")
    bi.reset_states()
    out = bi(torch.from_numpy(a["x3"]))
    out = out if isinstance(out, list) else [out]
    for i, o in enumerate(out):
        close(o, a[f"out3_{i}"], "float32", f"after reset output {i}")


def test_reset_states_with_values_and_errors():
    bi = Bidirectional(LSTM(2, stateful=True, batch_input_shape=(1, 3, 2)))
    states = [np.full((1, 2), v, np.float32) for v in (1, 2, 3, 4)]
    bi.reset_states(states)
    assert [float(s[0, 0]) for s in bi.forward_layer.states + bi.backward_layer.states] == \
        [1, 2, 3, 4]
    with pytest.raises(ValueError, match="Expected `states` to be list or tuple"):
        bi.reset_states(np.zeros((1, 2)))
    e = manifest()["errors"]["reset_not_stateful"]
    with pytest.raises(AttributeError, match=e["message"]):
        Bidirectional(LSTM(2)).reset_states()


@pytest.mark.parametrize("key", ["not_a_layer", "backward_not_a_layer", "merge_mode",
                                 "same_go_backwards", "differ_return_sequences",
                                 "differ_return_state", "differ_stateful"])
def test_construction_errors_as_tensorflow(key):
    e = manifest()["errors"][key]
    make = {
        "not_a_layer": lambda: Bidirectional("lstm"),
        "backward_not_a_layer": lambda: Bidirectional(LSTM(2), backward_layer=3),
        "merge_mode": lambda: Bidirectional(LSTM(2), merge_mode="max"),
        "same_go_backwards": lambda: Bidirectional(LSTM(2), backward_layer=LSTM(2)),
        "differ_return_sequences": lambda: Bidirectional(
            LSTM(2), backward_layer=LSTM(2, go_backwards=True, return_sequences=True)),
        "differ_return_state": lambda: Bidirectional(
            LSTM(2), backward_layer=LSTM(2, go_backwards=True, return_state=True)),
        "differ_stateful": lambda: Bidirectional(
            LSTM(2), backward_layer=LSTM(2, go_backwards=True, stateful=True)),
    }[key]
    with pytest.raises(ValueError) as info:
        make()
    assert type(info.value).__name__ == e["type"]
    msg = e["message"]
    if key in ("not_a_layer", "backward_not_a_layer"):  # the rest names the instance
        msg = msg.split(" instance")[0]
    assert str(info.value).startswith(msg)


def test_odd_initial_state_and_weights_count_errors():
    bi = Bidirectional(LSTM(2))
    x = torch.zeros(2, 3, 3)
    want = manifest()["errors"]["odd_initial_state"]["message"].split(" Received")[0]
    with pytest.raises(ValueError, match=want.replace("`", ".")):
        bi(x, initial_state=[torch.zeros(2, 2)] * 3)
    bi(x)
    want = manifest()["errors"]["set_weights_count"]["message"].split(" Provided")[0]
    with pytest.raises(ValueError) as info:
        bi.set_weights([np.zeros((3, 8))])
    assert str(info.value).split(" Provided")[0] == want.replace('"bidirectional_5"',
                                                                 f'"{bi.name}"')


def test_names_and_zero_output_for_mask():
    facts = manifest()["facts"]
    bi = Bidirectional(LSTM(3, name="q", return_sequences=True), name="bn")
    assert [bi.forward_layer.name, bi.backward_layer.name] == facts["names"]
    assert [bi.forward_layer.zero_output_for_mask,
            bi.backward_layer.zero_output_for_mask] == facts["zero_output_for_mask"]
    assert bi.forward_layer.get_config() == facts["forward_config"]
    assert not Bidirectional(LSTM(3)).forward_layer.zero_output_for_mask


def _tf_config(key: str) -> dict:
    return manifest()["configs"][key]


def _normalise(config):
    """JSON's lists for tuples."""
    import json
    return json.loads(json.dumps(config))


@pytest.mark.parametrize("key", ["bi_default", "bi_sum", "bi_mul", "bi_ave", "bi_None",
                                 "bi_backward_layer", "bi_cudnn"])
def test_config_matches_tensorflow_and_round_trips(key):
    tf_config = _tf_config(key)
    bi = Bidirectional.from_config(tf_config)
    assert _normalise(bi.get_config()) == tf_config
    again = Bidirectional.from_config(bi.get_config())
    assert _normalise(again.get_config()) == tf_config
    inner = CuDNNLSTM if key == "bi_cudnn" else LSTM
    assert type(bi.forward_layer) is inner and type(bi.backward_layer) is inner
    assert bi.backward_layer.go_backwards != bi.forward_layer.go_backwards


def test_config_built_from_scratch_matches_tensorflow():
    lstmcompat._keras.lstm._UIDS.pop("bidirectional", None)
    bi = Bidirectional(LSTM(3, name="l"), merge_mode="ave", name="b_ave")
    assert _normalise(bi.get_config()) == _tf_config("bi_ave")
    bi = Bidirectional(LSTM(3, return_sequences=True, name="fw"),
                       backward_layer=LSTM(3, return_sequences=True, go_backwards=True,
                                           name="bw"), name="bb")
    assert _normalise(bi.get_config()) == _tf_config("bi_backward_layer")
    assert bi.backward_layer.name == "backward_bw"
    # the wrapper's own dtype stays float32 for a float64 layer, as TensorFlow
    assert Bidirectional(LSTM(3, dtype="float64")).get_config()["dtype"] == \
        manifest()["facts"]["float64_inner_dtype"]


def test_weights_argument_and_order():
    src = Bidirectional(LSTM(2, input_shape=(None, 3)))
    w = [np.full(a.shape, i, np.float32) for i, a in enumerate(src.get_weights())]
    bi = Bidirectional(LSTM(2), weights=w)
    assert not bi.built and bi.weights == []
    bi(torch.zeros(1, 4, 3))
    assert [float(a.flat[0]) for a in bi.get_weights()] == [0, 1, 2, 3, 4, 5]
    assert bi.weights[0] is bi.forward_layer.kernel and bi.weights[3] is bi.backward_layer.kernel
    built = Bidirectional(LSTM(2, input_shape=(None, 3)), weights=w)
    assert [float(a.flat[0]) for a in built.get_weights()] == [0, 1, 2, 3, 4, 5]


def test_wrapped_layer_weights_are_not_used():
    layer = LSTM(2, input_shape=(None, 3))
    torch.nn.init.constant_(layer.kernel, 7.0)
    bi = Bidirectional(layer)
    assert not any(bool((p == 7).all()) for p in bi.parameters())
    assert len(list(bi.parameters())) == 6


def test_losses_and_trainable():
    bi = Bidirectional(LSTM(2, kernel_regularizer="l2", input_shape=(None, 3)))
    assert len(bi.losses) == 2
    frozen = Bidirectional(LSTM(2, input_shape=(None, 3)), trainable=False)
    assert frozen.trainable_weights == [] and not frozen.get_config()["trainable"]


def test_cudnn_inside_refuses_masks():
    bi = Bidirectional(CuDNNLSTM(2))
    with pytest.raises(ValueError, match="Masking is not supported for CuDNN RNNs."):
        bi(torch.zeros(1, 3, 2), mask=torch.ones(1, 3, dtype=torch.bool))


def test_cudnn_inside_matches_conversion_golden():
    f = manifest()["files"]["bidi_cudnn"]
    bi = Bidirectional.from_config(f["config"])
    bi(torch.zeros(1, 5, 3))
    bi.set_weights([np.asarray(w, np.float32) for w in f["weights"]])
    close(bi(torch.tensor(f["x"])), np.asarray(f["out"], np.float32), "float32", "output")


@pytest.mark.parametrize("merge_mode", ["concat", "ave", None])
def test_cudnn_inside_equals_converted_lstm_inside(merge_mode):
    """Bidirectional(CuDNNLSTM) is Bidirectional(LSTM(sigmoid)) on the converted weights
    (each half checked against TensorFlow in test_cudnn_lstm.py): states, initial
    states, return_state and gradients."""
    from lstmcompat._keras.cudnn_lstm import cudnn_to_keras

    torch.manual_seed(0)
    kw = dict(return_sequences=True, return_state=True, dtype="float64")
    cu = Bidirectional(CuDNNLSTM(3, **kw), merge_mode=merge_mode, input_shape=(None, 2),
                       dtype="float64")
    with torch.no_grad():
        for p in cu.weights:
            p.normal_(0, 0.5)
    ls = Bidirectional(LSTM(3, recurrent_activation="sigmoid", **kw), merge_mode=merge_mode,
                       input_shape=(None, 2), dtype="float64")
    w = cu.weights
    ls.set_weights([t.detach() for t in (*cudnn_to_keras(*w[:3]), *cudnn_to_keras(*w[3:]))])
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    states = [torch.randn(2, 3, dtype=torch.float64) for _ in range(4)]
    a, b = cu(x, initial_state=states), ls(x, initial_state=states)
    flat = [t for o in a for t in (o if isinstance(o, list) else [o])]
    flat_b = [t for o in b for t in (o if isinstance(o, list) else [o])]
    assert len(a) == (6 if merge_mode is None else 5)
    for p, q in zip(flat, flat_b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    ga = torch.autograd.grad(sum(t.sum() for t in flat), x)[0]
    gb = torch.autograd.grad(sum(t.sum() for t in flat_b), x)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)
