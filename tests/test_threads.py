"""Thread safety: the same module called from several threads never crashes or
corrupts memory; stateless calls give exactly the serial results; a stateful
layer's concurrent calls behave as some serial order.

Each scenario runs in its own process (a crash fails the test, it does not take
pytest down) with a time limit (a deadlock fails it too).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PRELUDE = textwrap.dedent("""
    import threading, torch, lstmcompat as L
    torch.manual_seed(0)
    def in_threads(n, fn):
        errors, barrier = [], threading.Barrier(n)
        def run(i):
            try:
                barrier.wait()
                fn(i)
            except BaseException as e:  # reported, not swallowed
                errors.append(repr(e))
        ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in ts: t.start()
        for t in ts: t.join()
        assert not errors, errors
""")

SCENARIOS = {
    # The probe's crash: a stateful streaming LSTM served from several threads.
    # Every call feeds the same step, so any serial order ends in the same state:
    # lost or torn updates would show as a different final state.
    "stateful streaming LSTM": """
        layer = L.LSTM(64, stateful=True, batch_input_shape=(1, 1, 16)).eval()
        serial = L.LSTM(64, stateful=True, batch_input_shape=(1, 1, 16)).eval()
        serial.load_state_dict({k: v for k, v in layer.state_dict().items()
                                if not k.startswith("states")}, strict=False)
        x = torch.randn(1, 1, 16)
        N, K = 8, 150
        with torch.no_grad():
            for _ in range(N * K):
                serial(x)
            def work(i):
                with torch.no_grad():
                    for _ in range(K):
                        layer(x)
            in_threads(N, work)
        torch.testing.assert_close(layer.states[0], serial.states[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(layer.states[1], serial.states[1], rtol=1e-5, atol=1e-6)
    """,
    "stateful LSTM sequences, training and streaming mixed": """
        layer = L.LSTM(32, stateful=True, batch_input_shape=(2, None, 8))
        x1, x5 = torch.randn(2, 1, 8), torch.randn(2, 5, 8)
        def work(i):
            for k in range(40):
                if k % 7 == 0:
                    layer.reset_states()
                y = layer(x1 if (i + k) % 2 else x5)
                if i % 2:
                    y.sum().backward()
        in_threads(6, work)
        assert torch.isfinite(layer.states[0]).all()
    """,
    # Stateless calls: every thread's results equal the serial ones exactly.
    "stateless LSTMCell steps and dynamic_rnn": """
        cell = L.LSTMCell(48, use_peepholes=True, num_proj=24, cell_clip=1.0)
        xs = [torch.randn(3, 12) for _ in range(8)]
        seqs = [torch.randn(3, 7, 12) for _ in range(8)]
        state = cell.zero_state(3, torch.float32)
        with torch.no_grad():
            cell(xs[0], state)
            want = [cell(x, state)[0] for x in xs]
            want_seq = [L.dynamic_rnn(cell, s, dtype=torch.float32)[0] for s in seqs]
        got, got_seq = {}, {}
        def work(i):
            with torch.no_grad():
                for _ in range(60):
                    got[i] = cell(xs[i], state)[0]
                    got_seq[i] = L.dynamic_rnn(cell, seqs[i], dtype=torch.float32)[0]
        in_threads(8, work)
        for i in range(8):
            assert torch.equal(got[i], want[i]), i
            assert torch.equal(got_seq[i], want_seq[i]), i
    """,
    "stateless Keras LSTM with autograd": """
        layer = L.LSTM(32, return_sequences=True, input_shape=(None, 8))
        xs = [torch.randn(4, 9, 8) for _ in range(6)]
        want = [torch.autograd.grad(layer(x).sum(), layer.kernel)[0] for x in xs]
        got = {}
        def work(i):
            for _ in range(20):
                got[i] = torch.autograd.grad(layer(xs[i]).sum(), layer.kernel)[0]
        in_threads(6, work)
        for i in range(6):
            assert torch.equal(got[i], want[i]), i
    """,
    # Weights replaced and edited while other threads stream: no crash, finite results.
    "weights changed while streaming": """
        cell = L.LSTMCell(40)
        layer = L.LSTM(40, stateful=True, batch_input_shape=(1, 1, 10)).eval()
        x = torch.randn(1, 10)
        cell(x, cell.zero_state(1, torch.float32))
        def work(i):
            s = cell.zero_state(1, torch.float32)
            with torch.no_grad():
                for k in range(200):
                    if i == 0 and k % 10 == 0:
                        cell.kernel = torch.nn.Parameter(torch.randn_like(cell.kernel) * 0.1)
                        layer.recurrent_kernel.data.mul_(0.99)
                    elif i == 1 and k % 10 == 5:
                        cell.bias.data = torch.zeros_like(cell.bias)
                    out, s = cell(x, s)
                    y = layer(x.unsqueeze(1))
                    assert torch.isfinite(out).all() and torch.isfinite(y).all()
        in_threads(4, work)
    """,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_threads(name: str) -> None:
    code = PRELUDE + textwrap.dedent(SCENARIOS[name]) + "\nprint('ok')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
