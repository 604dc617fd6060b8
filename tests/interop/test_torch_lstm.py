"""``to_torch_lstm`` / ``from_torch_lstm``: same outputs and final states both ways."""

from __future__ import annotations

import itertools

import pytest
import torch

import lstmcompat
from lstmcompat import LSTM, LSTMCell, MultiRNNCell

TOL = {torch.float64: 1e-12, torch.float32: 1e-6}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _torch_lstm(dtype=torch.float64, seed=0, **kwargs) -> torch.nn.LSTM:
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(**kwargs).to(dtype)
    with torch.no_grad():  # larger than the default init, so that every gate matters
        for p in lstm.parameters():
            p.copy_(torch.randn(p.shape, generator=_gen(seed + p.numel())) * 0.5)
    return lstm


def _input(lstm_batch_first: bool, input_size: int, dtype, seed=3):
    x = torch.randn(3, 6, input_size, generator=_gen(seed), dtype=torch.float64).to(dtype)
    return x if lstm_batch_first else x.transpose(0, 1).contiguous()


def _run_ours(converted, x, batch_first: bool, dtype):
    """``(outputs, h_n, c_n)`` in torch's layout from what from_torch_lstm returned."""
    time_axis = 1 if batch_first else 0
    hs, cs = [], []
    layers = converted
    if isinstance(converted, MultiRNNCell):
        out, states = lstmcompat.dynamic_rnn(converted, x, dtype=dtype, time_major=not batch_first)
        states = _flat_states(states)
        return out, torch.stack([s.h for s in states]), torch.stack([s.c for s in states])
    if isinstance(converted, LSTMCell):
        out, s = lstmcompat.dynamic_rnn(converted, x, dtype=dtype, time_major=not batch_first)
        return out, s.h[None], s.c[None]
    if isinstance(converted, LSTM):
        layers = [converted]
    inp = x
    for layer in layers:
        if isinstance(layer, tuple):
            fw, bw = layer
            if isinstance(fw, LSTMCell):
                (of, ob), (sf, sb) = lstmcompat.bidirectional_dynamic_rnn(
                    fw, bw, inp, dtype=dtype, time_major=not batch_first)
                hs += [sf.h, sb.h]
                cs += [sf.c, sb.c]
            else:
                fw.return_state = bw.return_state = True
                of, hf, cf = fw(inp)
                ob, hb, cb = bw(inp)
                ob = ob.flip(time_axis)  # Keras's backward sequence is in processing order
                hs += [hf, hb]
                cs += [cf, cb]
            inp = torch.cat([of, ob], dim=-1)
        else:
            layer.return_state = True
            inp, h, c = layer(inp)
            hs.append(h)
            cs.append(c)
    return inp, torch.stack(hs), torch.stack(cs)


def _flat_states(states):
    if isinstance(states, lstmcompat.LSTMStateTuple):
        return [states]
    return [s for st in states for s in _flat_states(st)]


def _close(a, b, dtype):
    tol = TOL[dtype]
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=tol, rtol=tol), (a - b).abs().max()


def _compare(lstm, converted, dtype):
    x = _input(lstm.batch_first, lstm.input_size, dtype)
    with torch.no_grad():
        out, (h, c) = lstm(x)
        got = _run_ours(converted, x, lstm.batch_first, dtype)
    for a, b in zip((out, h, c), got):
        _close(a, b.detach(), dtype)


CASES = [dict(num_layers=n, bias=b, batch_first=bf, bidirectional=bd, proj_size=p)
         for n, b, bf, bd, p in itertools.product((1, 2), (True, False), (True, False),
                                                  (False, True), (0, 2))]


def _id(c):
    return "-".join(f"{k}={v}" for k, v in c.items())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("api", ["keras", "tf1"])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_from_torch_lstm_outputs_equal(case, api, dtype):
    if api == "keras" and case["proj_size"]:
        pytest.skip("Keras has no projection (refused, tested below)")
    lstm = _torch_lstm(dtype, input_size=4, hidden_size=5, **case)
    converted = lstmcompat.from_torch_lstm(lstm, api=api)
    _compare(lstm, converted, dtype)
    # and back: the round trip is torch's LSTM again (biases folded into bias_ih)
    back = lstmcompat.to_torch_lstm(converted, batch_first=lstm.batch_first)
    assert (back.num_layers, back.bidirectional, back.proj_size, back.batch_first) == (
        lstm.num_layers, lstm.bidirectional, lstm.proj_size, lstm.batch_first)
    x = _input(lstm.batch_first, 4, dtype)
    with torch.no_grad():
        for a, b in zip(_flat(lstm(x)), _flat(back(x))):
            _close(a, b, dtype)


def _flat(result):
    out, (h, c) = result
    return out, h, c


def test_from_torch_returned_types():
    lstm = _torch_lstm(input_size=3, hidden_size=4)
    assert type(lstmcompat.from_torch_lstm(lstm)) is LSTM
    assert type(lstmcompat.from_torch_lstm(lstm, api="tf1")) is LSTMCell
    two = _torch_lstm(input_size=3, hidden_size=4, num_layers=2)
    got = lstmcompat.from_torch_lstm(two, "keras")
    assert isinstance(got, list) and [type(g) for g in got] == [LSTM, LSTM]
    got = lstmcompat.from_torch_lstm(two, "tf1")
    assert type(got) is MultiRNNCell and [type(c) for c in got.cells] == [LSTMCell, LSTMCell]
    bi = _torch_lstm(input_size=3, hidden_size=4, bidirectional=True)
    for api, cls in (("keras", LSTM), ("tf1", LSTMCell)):
        got = lstmcompat.from_torch_lstm(bi, api)
        assert isinstance(got, list) and len(got) == 1 and isinstance(got[0], tuple)
        assert [type(m) for m in got[0]] == [cls, cls]
    fw, bw = lstmcompat.from_torch_lstm(bi, "keras")[0]
    assert not fw.go_backwards and bw.go_backwards


def test_from_torch_settings():
    lstm = _torch_lstm(torch.float32, input_size=3, hidden_size=4, batch_first=False,
                       proj_size=2)
    cell = lstmcompat.from_torch_lstm(lstm, "tf1")
    cfg = cell.get_config()
    assert cfg["forget_bias"] == 0.0 and cfg["num_proj"] == 2 and cell.dtype == torch.float32
    lstm = _torch_lstm(torch.float64, input_size=3, hidden_size=4, batch_first=False)
    layer = lstmcompat.from_torch_lstm(lstm)
    cfg = layer.get_config()
    assert cfg["activation"] == "tanh" and cfg["recurrent_activation"] == "sigmoid"
    assert cfg["return_sequences"] and cfg["time_major"] and layer.dtype == torch.float64
    assert layer.kernel.shape == (3, 16)


def test_from_torch_refusals():
    with pytest.raises(TypeError, match="`lstm` must be a torch.nn.LSTM, got GRU"):
        lstmcompat.from_torch_lstm(torch.nn.GRU(2, 3))
    with pytest.raises(TypeError, match="`lstm`"):
        lstmcompat.from_torch_lstm(LSTM(3))
    lstm = torch.nn.LSTM(2, 3)
    with pytest.raises(ValueError, match="`api` must be one of 'keras', 'tf1', got 'tf2'"):
        lstmcompat.from_torch_lstm(lstm, api="tf2")
    with pytest.raises(ValueError, match="`proj_size`=2.*tf1"):
        lstmcompat.from_torch_lstm(torch.nn.LSTM(2, 3, proj_size=2), api="keras")
    with pytest.raises(ValueError, match="`dropout`=0.5"):
        lstmcompat.from_torch_lstm(torch.nn.LSTM(2, 3, num_layers=2, dropout=0.5), api="tf1")
    with pytest.warns(UserWarning):  # torch: dropout with one layer does nothing
        one = torch.nn.LSTM(2, 3, dropout=0.5)
    assert type(lstmcompat.from_torch_lstm(one)) is LSTM


# -------------------------------------------------------------------- to_torch_lstm


def _random_weights(module, seed=0):
    with torch.no_grad():
        for i, p in enumerate(module.weights):
            p.copy_(torch.randn(p.shape, generator=_gen(seed + i), dtype=torch.float64) * 0.5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_keras_to_torch(dtype, time_major, use_bias):
    layer = LSTM(5, recurrent_activation="sigmoid", return_sequences=True, return_state=True,
                 time_major=time_major, use_bias=use_bias, input_shape=(None, 3), dtype=dtype,
                 kernel_regularizer="l2", kernel_constraint="max_norm", unroll=True)
    _random_weights(layer)
    lstm = lstmcompat.to_torch_lstm(layer)
    assert lstm.batch_first is (not time_major) and lstm.bias is use_bias
    assert lstm.weight_ih_l0.dtype == dtype
    x = _input(not time_major, 3, dtype)
    with torch.no_grad():
        out, h, c = layer(x)
        tout, (th, tc) = lstm(x)
    for a, b in ((out, tout), (h, th[0]), (c, tc[0])):
        _close(a, b, dtype)


def test_keras_list_to_torch():
    layers = [LSTM(4, recurrent_activation="sigmoid", return_sequences=True,
                   input_shape=(None, 3), dtype="float64"),
              LSTM(4, recurrent_activation="sigmoid", return_sequences=True,
                   input_shape=(None, 4), dtype="float64")]
    for i, layer in enumerate(layers):
        _random_weights(layer, seed=10 * i)
    lstm = lstmcompat.to_torch_lstm(layers)
    assert lstm.num_layers == 2
    _compare(lstm, layers, torch.float64)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("num_proj", [None, 3])
@pytest.mark.parametrize("batch_first", [True, False])
def test_cell_to_torch(dtype, num_proj, batch_first):
    cell = LSTMCell(5, num_proj=num_proj, forget_bias=0.7, proj_clip=9.0 if num_proj is None
                    else None, dtype=dtype)
    cell.build((None, 4))
    _random_weights(cell)
    lstm = lstmcompat.to_torch_lstm(cell, batch_first=batch_first)
    assert lstm.batch_first is batch_first and lstm.proj_size == (num_proj or 0)
    _compare(lstm, cell, dtype)
    # the forget bias sits in bias_hh's forget block (torch order i, f, g, o)
    expected = torch.zeros(20, dtype=dtype)
    expected[5:10] = 0.7
    assert torch.equal(lstm.bias_hh_l0.detach(), expected)


def test_multi_to_torch():
    cells = [LSTMCell(5, num_proj=2, forget_bias=0.3, dtype="float64"),
             LSTMCell(5, num_proj=2, dtype="float64")]
    inner = MultiRNNCell([cells[1]])
    multi = MultiRNNCell([cells[0], inner])  # nested: flattened
    x = torch.randn(3, 6, 4, dtype=torch.float64)
    lstmcompat.dynamic_rnn(multi, x, dtype=torch.float64)
    for i, c in enumerate(cells):
        _random_weights(c, seed=5 * i)
    lstm = lstmcompat.to_torch_lstm(multi)
    assert lstm.num_layers == 2 and lstm.proj_size == 2 and lstm.batch_first
    _compare(lstm, multi, torch.float64)


def test_bidirectional_to_torch():
    pairs = []
    for k in range(2):
        fw, bw = LSTMCell(4, dtype="float64"), LSTMCell(4, forget_bias=0.0, dtype="float64")
        for j, c in enumerate((fw, bw)):
            c.build((None, 3 if k == 0 else 8))
            _random_weights(c, seed=7 * k + j)
        pairs.append((fw, bw))
    lstm = lstmcompat.to_torch_lstm(pairs)
    assert lstm.bidirectional and lstm.num_layers == 2
    _compare(lstm, pairs, torch.float64)


def _built_lstm(**kwargs):
    return LSTM(3, input_shape=(None, 2), **kwargs)


def _built_cell(**kwargs):
    cell = LSTMCell(3, **kwargs)
    cell.build((None, 2))
    return cell


@pytest.mark.parametrize("make, option", [
    (lambda: _built_lstm(), "`recurrent_activation` is 'hard_sigmoid'"),
    (lambda: _built_lstm(recurrent_activation="sigmoid", activation="relu"), "`activation`"),
    (lambda: _built_lstm(recurrent_activation="sigmoid", activation=None), "`activation`"),
    (lambda: _built_lstm(recurrent_activation=lambda x: x), "`recurrent_activation`"),
    (lambda: _built_lstm(recurrent_activation="sigmoid", dropout=0.1), "`dropout`"),
    (lambda: _built_lstm(recurrent_activation="sigmoid", recurrent_dropout=0.1),
     "`recurrent_dropout`"),
    (lambda: _built_lstm(recurrent_activation="sigmoid", go_backwards=True), "`go_backwards`"),
    (lambda: LSTM(3, recurrent_activation="sigmoid", stateful=True,
                  batch_input_shape=(2, None, 2)), "`stateful`"),
    (lambda: LSTM(3, recurrent_activation="sigmoid"), "input size unknown: build it first"),
    (lambda: _built_cell(use_peepholes=True), "`use_peepholes`"),
    (lambda: _built_cell(cell_clip=3.0), "`cell_clip`"),
    (lambda: _built_cell(num_proj=2, proj_clip=1.0), "`proj_clip`"),
    (lambda: _built_cell(num_proj=3), "`num_proj` is 3.*proj_size < hidden_size"),
    (lambda: _built_cell(num_proj=5), "`num_proj`"),
    (lambda: _built_cell(activation="relu"), "`activation` is 'relu'"),
    (lambda: LSTMCell(3), "input size unknown: build it first"),
    (lambda: [], "empty"),
    (lambda: [(_built_cell(),)], "pair"),
    (lambda: [(_built_cell(), _built_cell()), _built_cell()], "mixes"),
    (lambda: [_built_cell(), _built_lstm(recurrent_activation="sigmoid")], "mixes"),
    (lambda: MultiRNNCell([_built_cell(), _built_cell()]), "reads 2 input features"),
    (lambda: MultiRNNCell([_built_cell(), LSTMCell(4)]), "input size unknown"),
    (lambda: [_built_lstm(recurrent_activation="sigmoid"),
              _built_lstm(recurrent_activation="sigmoid", time_major=True)], "time_major"),
    (lambda: [(_built_lstm(recurrent_activation="sigmoid"),
               _built_lstm(recurrent_activation="sigmoid"))], "go_backwards=True"),
])
def test_to_torch_refusals_name_the_option(make, option):
    with pytest.raises(ValueError, match=option):
        lstmcompat.to_torch_lstm(make())


def test_to_torch_size_mismatch():
    a = LSTMCell(3)
    a.build((None, 2))
    b = LSTMCell(4)
    b.build((None, 3))
    with pytest.raises(ValueError, match="4 units.*one size"):
        lstmcompat.to_torch_lstm(MultiRNNCell([a, b]))
    layer = LSTM(3, recurrent_activation="sigmoid", input_shape=(None, 2))
    with pytest.raises(ValueError, match="`batch_first`"):
        lstmcompat.to_torch_lstm(layer, batch_first=False)
    with pytest.raises(ValueError, match="dtypes"):
        lstmcompat.to_torch_lstm([layer, LSTM(3, recurrent_activation="sigmoid",
                                              input_shape=(None, 3), dtype="float64")])


def test_to_torch_type_errors():
    with pytest.raises(TypeError, match="`module` must be"):
        lstmcompat.to_torch_lstm(torch.nn.LSTM(2, 3))

    class Sub(LSTMCell):
        pass

    cell = Sub(3)
    cell.build((None, 2))
    with pytest.raises(TypeError, match="got Sub"):
        lstmcompat.to_torch_lstm(cell)


def test_dtype_follows():
    layer = LSTM(3, recurrent_activation="sigmoid", input_shape=(None, 2), dtype="bfloat16")
    assert lstmcompat.to_torch_lstm(layer).weight_hh_l0.dtype == torch.bfloat16
    lstm = torch.nn.LSTM(2, 3).half()
    assert lstmcompat.from_torch_lstm(lstm, "tf1").kernel.dtype == torch.float16


def test_exported():
    for name in ("to_torch_lstm", "from_torch_lstm"):
        assert name in lstmcompat.__all__ and "Examples:" in getattr(lstmcompat, name).__doc__
