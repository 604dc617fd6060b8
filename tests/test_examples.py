"""The examples/ scripts run and learn (small settings)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import lstmcompat as L

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("extra", [[], ["--autocast"], ["--checkpoint-steps", "20"]])
def test_truncated_bptt_example_learns(extra, capsys):
    losses = _load("train_tbptt").main(["--steps", "1200", "--window", "60", "--batch", "4",
                                        "--units", "16", "--passes", "2", *extra])
    assert losses[-1] < 0.5 * losses[0]
    assert "state (4, 16) torch.float32" in capsys.readouterr().out


def test_a_stateful_window_is_differentiated_alone():
    # The stored state is detached between calls: a window's loss has no gradient
    # w.r.t. the inputs of the window before it, yet its value depends on them.
    torch.manual_seed(0)
    lstm = L.LSTM(8, return_sequences=True, stateful=True, batch_input_shape=(2, None, 3))
    a = torch.randn(2, 5, 3, requires_grad=True)
    b = torch.randn(2, 5, 3, requires_grad=True)
    lstm(a)
    out = lstm(b).sum()
    ga, gb = torch.autograd.grad(out, [a, b], allow_unused=True)
    assert ga is None and gb is not None
    lstm.reset_states()
    assert not torch.equal(lstm(b).sum(), out)  # without the carried state: other values
