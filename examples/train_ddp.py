"""Data-parallel training of lstmcompat layers with ``DistributedDataParallel`` on CPU.

Task: read two noisy sensors (a sine wave and its cosine) and predict the sine's next
value (``quickstart.py``'s task with a second input feature), with a
Keras v1 ``LSTM`` feeding a TF1 ``MultiRNNCell`` under ``dynamic_rnn``. Every process
(rank) takes its share of each global batch; DDP averages the gradients, so each step
is the full-batch step. Rank 0 prints the global batch's loss per step.

Run (two processes, gloo backend, on this machine)::

    torchrun --nproc_per_node 2 examples/train_ddp.py            # or
    python -m torch.distributed.run --nproc_per_node 2 examples/train_ddp.py --steps 30

docs/training.md explains the two rules this example follows: build TF1 cells (one
call) before wrapping the model in DDP, and keep stateful layers' states per rank.
"""

import argparse
import math
import os

import torch
import torch.distributed as dist

import lstmcompat


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = lstmcompat.LSTM(16, return_sequences=True, input_shape=(None, 2))
        self.stack = lstmcompat.MultiRNNCell([lstmcompat.LSTMCell(16), lstmcompat.LSTMCell(8)])
        self.head = torch.nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = lstmcompat.dynamic_rnn(self.stack, self.lstm(x), dtype=torch.float32)
        return self.head(y[:, -1])


def global_batch(step: int, batch: int, steps: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """The same global batch on every rank (seeded by the step)."""
    g = torch.Generator().manual_seed(step)
    phase = torch.rand(batch, 1, generator=g) * 2 * math.pi
    freq = 0.5 + torch.rand(batch, 1, generator=g)
    t = torch.arange(steps + 1).float().unsqueeze(0)
    angle = freq * t * 0.5 + phase
    wave = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)  # (batch, time, 2)
    x = wave[:, :-1] + 0.05 * torch.randn(batch, steps, 2, generator=g)
    return x, wave[:, -1, :1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32, help="global batch size")
    args = parser.parse_args()

    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if args.batch % world:
        raise SystemExit(f"--batch {args.batch} must be a multiple of the {world} processes")
    rows = slice(rank * args.batch // world, (rank + 1) * args.batch // world)

    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model = Model()
    with torch.no_grad():  # TF1 cells create their weights on their first call: build them now
        model(torch.zeros(1, 2, 2))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=0.01)
    for step in range(1, args.steps + 1):
        x, y = global_batch(step, args.batch)
        loss = torch.nn.functional.mse_loss(ddp(x[rows]), y[rows])  # mean over this rank's rows
        opt.zero_grad()
        loss.backward()  # DDP averages the gradients over the ranks: the global batch's
        opt.step()
        total = loss.detach().clone()
        dist.all_reduce(total)
        if rank == 0:
            print(f"step {step:3d}  loss {total.item() / world:.5f}", flush=True)
    dist.barrier()  # every rank done before the group goes
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
