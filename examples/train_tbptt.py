"""Truncated backpropagation through time with a stateful LSTM (Keras's pattern).

Task: one long signal per batch row (a sum of two sines with drifting phase, 20,000
steps), predict the next value at every step. The sequence is cut into windows of
``--window`` steps; a ``stateful=True`` layer carries its state from one window to the
next (``reset_states()`` starts a new pass), and each window is differentiated alone:
the stored state is detached between calls, so gradients stop at the window's start
while the state keeps everything seen before -- TF's and Keras's truncated BPTT.

Options: ``--autocast`` trains under bfloat16 ``torch.autocast`` (CPU); the state stays
float32 between windows. ``--checkpoint-steps N`` makes each window recompute its
forward in backward in segments of N steps (less memory for long windows).

Run: ``python examples/train_tbptt.py`` (prints the falling loss per pass).
"""

from __future__ import annotations

import argparse
import contextlib
import math

import torch

import lstmcompat


def signal(batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(steps + 1, dtype=torch.float32).unsqueeze(0)
    f1, f2 = 0.02 + 0.02 * torch.rand(batch, 1, generator=g), 0.1 * torch.rand(batch, 1, generator=g)
    drift = 0.3 * torch.sin(t * 0.001 + 6 * torch.rand(batch, 1, generator=g))
    return (torch.sin(f1 * t + drift) + 0.5 * torch.sin(f2 * t)).unsqueeze(-1)  # (B, T+1, 1)


def main(argv: list[str] | None = None) -> list[float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20_000, help="length of each row's signal")
    p.add_argument("--window", type=int, default=100, help="truncation length (steps)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--autocast", action="store_true", help="bfloat16 autocast on CPU")
    p.add_argument("--checkpoint-steps", type=int, default=None)
    args = p.parse_args(argv)

    torch.manual_seed(0)
    data = signal(args.batch, args.steps)
    x, y = data[:, :-1], data[:, 1:]
    lstm = lstmcompat.LSTM(args.units, return_sequences=True, stateful=True,
                           batch_input_shape=(args.batch, None, 1))
    lstm.checkpoint_steps = args.checkpoint_steps
    head = torch.nn.Linear(args.units, 1)
    params = [*lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=5e-3)
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.autocast \
        else contextlib.nullcontext
    losses = []
    for epoch in range(1, args.passes + 1):
        lstm.reset_states()  # a new pass over the signal starts from zero state
        total, n = 0.0, 0
        for start in range(0, args.steps, args.window):
            xs, ys = x[:, start:start + args.window], y[:, start:start + args.window]
            with amp():
                pred = head(lstm(xs))
            loss = torch.nn.functional.mse_loss(pred.float(), ys)
            opt.zero_grad()
            loss.backward()  # through this window only: the carried state is detached
            opt.step()
            total, n = total + loss.item() * xs.shape[1], n + xs.shape[1]
        losses.append(total / n)
        print(f"pass {epoch}: mean loss {losses[-1]:.5f}  (kernel {lstm.last_kernel[0]}, "
              f"state {tuple(lstm.states_h.shape)} {lstm.states_h.dtype})")
    assert math.isfinite(losses[-1])
    return losses


if __name__ == "__main__":
    main()
