"""Quickstart: train a Keras-v1-style LSTM (hard_sigmoid gates, Keras init) with PyTorch.

Task: read a noisy sine wave and predict its next value. Prints the falling loss.
Run: ``python examples/quickstart.py``
"""

import math

import torch

import lstmcompat


def make_batch(batch: int = 32, steps: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    phase = torch.rand(batch, 1) * 2 * math.pi
    freq = 0.5 + torch.rand(batch, 1)
    t = torch.arange(steps + 1).float().unsqueeze(0)
    wave = torch.sin(freq * t * 0.5 + phase)
    x = (wave[:, :-1] + 0.05 * torch.randn(batch, steps)).unsqueeze(-1)  # (batch, time, 1)
    y = wave[:, -1:]                                                       # next value
    return x, y


def main() -> None:
    torch.manual_seed(0)
    lstm = lstmcompat.LSTM(32, input_shape=(None, 1))  # tf.compat.v1.keras.layers.LSTM(32)
    head = torch.nn.Linear(32, 1)
    model = torch.nn.ModuleDict({"lstm": lstm, "head": head})
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    print(f"lstmcompat {lstmcompat.__version__}: training {lstm!r}")
    for step in range(1, 201):
        x, y = make_batch()
        loss = torch.nn.functional.mse_loss(head(lstm(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % 25 == 0:
            print(f"step {step:4d}  loss {loss.item():.5f}")
    lstm.eval()
    x, y = make_batch(256)
    with torch.no_grad():
        final = torch.nn.functional.mse_loss(head(lstm(x)), y).item()
    print(f"held-out loss {final:.5f}")


if __name__ == "__main__":
    main()
