"""Data-parallel training (``torch.distributed``) of lstmcompat modules equals
single-process training on the same global batch.

Two processes (``torch.multiprocessing.spawn``), the gloo backend on loopback
(``127.0.0.1``, a free port), one thread each. The model holds every front-end a
user trains at scale: a Keras ``LSTM`` (default configuration, sequences out), a
``Bidirectional(LSTM)``, a TF1 ``MultiRNNCell`` of ``LSTMCell`` s under
``dynamic_rnn`` with ``sequence_length``, and a stateful ``LSTM`` whose
``max_norm`` kernel constraint ``attach_constraints`` applies after every step.
Each rank trains on its half of the global batch (loss averaged over its rows,
so DDP's gradient average is the full-batch gradient); the single-process
reference trains on the whole batch, its stateful layer holding the states of
rank 0's rows, then rank 1's. The same for ``FullyShardedDataParallel`` and
``fully_shard``; and each pitfall docs/training.md warns about is shown going wrong
(DDP's buffer sync, TF1 cells built inside DDP, constraints on FSDP shards). Last,
``examples/train_ddp.py`` runs under torchrun.
"""

from __future__ import annotations

import inspect
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lstmcompat as L

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
ROWS = 3                     # rows per rank; the global batch is WORLD * ROWS
STEPS, FEATURES = 4, 3       # time steps, input features
TRAIN_STEPS = 3
LR = 0.5
MAX_NORM = 0.6               # small enough that the constraint bites (checked below)
DTYPE = torch.float64
LENGTHS = [4, 2, 3, 1, 4, 0]  # dynamic_rnn's sequence_length, one per global row


class Model(torch.nn.Module):
    """Every front-end in one stack: (batch, time, features) -> (batch, 1)."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.keras = L.LSTM(5, return_sequences=True, input_shape=(None, FEATURES), dtype=DTYPE)
        self.bi = L.Bidirectional(L.LSTM(4, return_sequences=True, dtype=DTYPE),
                                  input_shape=(None, 5), dtype=DTYPE)
        self.stack = L.MultiRNNCell([L.LSTMCell(4, dtype=DTYPE), L.LSTMCell(3, dtype=DTYPE)])
        self.stateful = L.LSTM(3, stateful=True, batch_input_shape=(batch, None, 3),
                               kernel_constraint={"class_name": "MaxNorm",
                                                  "config": {"max_value": MAX_NORM}},
                               dtype=DTYPE)
        self.head = torch.nn.Linear(3, 1, dtype=DTYPE)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        y = self.bi(self.keras(x))
        y, _ = L.dynamic_rnn(self.stack, y, sequence_length=lengths, dtype=DTYPE)
        return self.head(self.stateful(y))


def _data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(WORLD * ROWS, STEPS, FEATURES, generator=g, dtype=DTYPE)
    y = torch.randn(WORLD * ROWS, 1, generator=g, dtype=DTYPE)
    return x, y


def _lengths() -> torch.Tensor:
    return torch.tensor(LENGTHS)


def _make(batch: int, params: dict[str, torch.Tensor] | None = None) -> Model:
    """A built model (the TF1 cells build on their first call: one call on zeros),
    its states reset, with ``params`` copied in when given."""
    torch.manual_seed(0)
    model = Model(batch)
    with torch.no_grad():
        model(torch.zeros(batch, STEPS, FEATURES, dtype=DTYPE), torch.full((batch,), STEPS))
        model.stateful.reset_states()
        for name, p in model.named_parameters() if params is not None else ():
            p.copy_(params[name])
    return model


Snapshot = Callable[[torch.nn.Module, bool], dict[str, torch.Tensor]]


def _local(model: torch.nn.Module, grads: bool) -> dict[str, torch.Tensor]:
    """Names -> full weights (or gradients) of a plain or DDP-wrapped model."""
    inner = getattr(model, "module", model)
    return {n: (p.grad if grads else p).detach().clone() for n, p in inner.named_parameters()}


def _train(model: torch.nn.Module, stateful: L.LSTM, rows: slice, snapshot: Snapshot = _local,
           constrain: Callable[[torch.optim.Optimizer], object] | None = None
           ) -> dict[str, object]:
    """``TRAIN_STEPS`` SGD steps on the rows ``rows`` of each global batch; the full
    gradients after each backward, the weights and the stateful layer's states at
    the end. ``constrain(optimizer)`` hooks the constraints (default:
    ``attach_constraints(optimizer, stateful)``)."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    if constrain is None:
        L.attach_constraints(opt, stateful)
    else:
        constrain(opt)
    grads = []
    for step in range(TRAIN_STEPS):
        x, y = _data(step)
        out = model(x[rows], _lengths()[rows])
        loss = torch.nn.functional.mse_loss(out, y[rows])
        opt.zero_grad()
        loss.backward()
        grads.append(snapshot(model, True))
        opt.step()
    return {"grads": grads, "weights": snapshot(model, False),
            "states": [s.clone() for s in stateful.states]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)


def _rows(rank: int) -> slice:
    return slice(rank * ROWS, (rank + 1) * ROWS)


def _ddp(model: torch.nn.Module, sync_buffers: bool) -> torch.nn.Module:
    """DDP with its per-forward buffer broadcast on or off (``forward_sync_buffers``
    since PyTorch 2.13, which deprecates ``broadcast_buffers``)."""
    params = inspect.signature(torch.nn.parallel.DistributedDataParallel).parameters
    key = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return torch.nn.parallel.DistributedDataParallel(model, **{key: sync_buffers})


def _run_ddp(rank: int, params: dict[str, torch.Tensor], sync_buffers: bool) -> dict[str, object]:
    model = _make(ROWS, params)
    return _train(_ddp(model, sync_buffers), model.stateful, _rows(rank))


def _run_unbuilt(rank: int, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DDP around a model whose TF1 cells are not built yet: the gradients of one backward."""
    torch.manual_seed(0)
    model = Model(ROWS)
    ddp = _ddp(model, False)
    x, y = _data(0)
    rows = _rows(rank)
    torch.nn.functional.mse_loss(ddp(x[rows], _lengths()[rows]), y[rows]).backward()
    return _local(model, True)


def _fsdp1_snapshot(model: torch.nn.Module, grads: bool) -> dict[str, torch.Tensor]:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    with FSDP.summon_full_params(model, with_grads=grads):
        return {n.replace("_fsdp_wrapped_module.", ""): (p.grad if grads else p).detach().clone()
                for n, p in model.named_parameters()}


def _run_fsdp1(rank: int, params: dict[str, torch.Tensor],
               full_params_for_constraints: bool) -> dict[str, object]:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    refused = ""
    if not torch.accelerator.is_available():
        try:
            FSDP(_make(ROWS, params), use_orig_params=True)
        except RuntimeError as e:
            refused = str(e)
    model = _make(ROWS, params)
    # device_id: without it FSDP looks for an accelerator (``refused``)
    fsdp = FSDP(model, device_id=torch.device("cpu"), use_orig_params=True)

    def constrain(opt: torch.optim.Optimizer) -> None:
        def project(*args: object, **kwargs: object) -> None:
            with FSDP.summon_full_params(fsdp, writeback=True):
                L.apply_constraints(fsdp)
        opt.register_step_post_hook(project)

    result = _train(fsdp, model.stateful, _rows(rank), _fsdp1_snapshot,
                    constrain if full_params_for_constraints else None)
    result["refused"] = refused
    return result


def _fsdp2_snapshot(model: torch.nn.Module, grads: bool) -> dict[str, torch.Tensor]:
    return {n: (p.grad if grads else p).detach().full_tensor().clone()
            for n, p in model.named_parameters()}


def _run_fsdp2(rank: int, params: dict[str, torch.Tensor]) -> dict[str, object]:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    mesh = init_device_mesh("cpu", (WORLD,))  # CPU even where an accelerator is present
    try:
        fully_shard(_make(ROWS, params), mesh=mesh)
        refused = ""
    except NotImplementedError as e:
        refused = str(e)
    model = _make(ROWS, params)
    for p in model.parameters():
        p.data = p.data.contiguous()
    fully_shard(model, mesh=mesh)
    result = _train(model, model.stateful, _rows(rank), _fsdp2_snapshot)
    result["refused"] = refused
    return result


#: What each rank runs, in order, in one process group (one spawn: starting
#: processes costs more than the training).
RUNS: dict[str, Callable[[int, dict[str, torch.Tensor]], object]] = {
    "ddp": lambda rank, params: _run_ddp(rank, params, False),
    "ddp_sync_buffers": lambda rank, params: _run_ddp(rank, params, True),
    "ddp_unbuilt": _run_unbuilt,
    "fsdp": lambda rank, params: _run_fsdp1(rank, params, True),
    "fsdp_constraints_on_shards": lambda rank, params: _run_fsdp1(rank, params, False),
    "fully_shard": _run_fsdp2,
}


def _worker(rank: int, port: int, params: dict[str, torch.Tensor], out: str) -> None:
    _init(rank, port)
    try:
        torch.save({name: run(rank, params) for name, run in RUNS.items()},
                   Path(out) / f"rank{rank}.pt")
        dist.barrier()  # both ranks done before the group goes (gloo's teardown can abort)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[object]]:
    """``{run name: [rank 0's result, rank 1's]}`` from one spawn of two processes."""
    out = tmp_path_factory.mktemp("ranks")
    params = _local(_make(WORLD * ROWS), False)
    mp.spawn(_worker, args=(_free_port(), params, str(out)), nprocs=WORLD, join=True)
    ranks = [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]
    return {name: [r[name] for r in ranks] for name in RUNS}


def _max_differences(ranks: list[dict[str, object]], ref: dict[str, object]) -> dict[str, float]:
    """The largest |distributed - single process| over ranks, steps and tensors: of the
    gradients, the weights, and each rank's states against its rows of the reference's."""
    def worst(pairs):
        return max(float((a - b).abs().max()) for a, b in pairs)
    return {
        "grads": worst((got["grads"][s][n], g) for got in ranks
                       for s, step in enumerate(ref["grads"]) for n, g in step.items()),
        "weights": worst((got["weights"][n], w) for got in ranks
                         for n, w in ref["weights"].items()),
        "states": worst((s_got, s_ref[_rows(r)]) for r, got in enumerate(ranks)
                        for s_got, s_ref in zip(got["states"], ref["states"])),
    }


@pytest.fixture(scope="module")
def reference() -> dict[str, object]:
    ref = _make(WORLD * ROWS, None)
    return _train(ref, ref.stateful, slice(None))


def test_reference_trains_and_its_constraint_bites(reference):
    """The comparison below is not vacuous: every step moves the weights, and the
    max_norm constraint holds some kernel columns at exactly ``MAX_NORM``."""
    start = _local(_make(WORLD * ROWS), False)
    for name, w in reference["weights"].items():
        assert float((w - start[name]).abs().max()) > 1e-6, name
    norms = reference["weights"]["stateful.kernel"].norm(dim=0)
    assert float(norms.max()) <= MAX_NORM + 1e-12
    assert int((norms > MAX_NORM - 1e-6).sum()) >= 2  # MaxNorm divides by epsilon + norm
    assert float(start["stateful.kernel"].norm(dim=0).max()) > MAX_NORM


def test_ddp_equals_single_process(runs, reference):
    """Gradients after each step, weights after the last, and each rank's stateful
    states (its rows of the single-process states) equal to float64 rounding."""
    diff = _max_differences(runs["ddp"], reference)
    assert diff["grads"] < 1e-10 and diff["weights"] < 1e-10 and diff["states"] < 1e-10, diff


def test_ddp_buffer_sync_overwrites_per_rank_states(runs, reference):
    """DDP's default ``forward_sync_buffers`` (formerly ``broadcast_buffers``)
    copies rank 0's buffers to every rank before each forward: a stateful layer's
    ``states_h`` / ``states_c`` are buffers, so rank 1 would continue from rank 0's
    states and training diverges from the single-process run. docs/training.md
    says to pass ``forward_sync_buffers=False``."""
    diff = _max_differences(runs["ddp_sync_buffers"], reference)
    assert diff["states"] > 1e-4 and diff["grads"] > 1e-6, diff


def test_ddp_does_not_average_cells_built_after_wrapping(runs):
    """DDP registers the parameters that exist when it wraps the model; a TF1 cell
    creates its weights on its first call, so one first called inside DDP's forward
    keeps rank-local gradients (silently), while the Keras layers' are averaged.
    docs/training.md says to build the cells (one call) before wrapping."""
    ranks = runs["ddp_unbuilt"]
    assert "stack._cells.0.kernel" in ranks[0]
    for name in ranks[0]:
        same = torch.equal(ranks[0][name], ranks[1][name])
        assert same == (not name.startswith("stack.")), name


def test_fsdp_equals_single_process(runs, reference):
    """``FullyShardedDataParallel`` on CPU needs ``device_id=torch.device("cpu")``
    (without it, and without an accelerator, it refuses); with the constraints
    applied to the full parameters (``summon_full_params``) training is exact."""
    ranks = runs["fsdp"]
    if not torch.accelerator.is_available():
        assert ranks[0]["refused"] == (
            "FSDP needs a non-CPU accelerator device, but no accelerator device is detected.")
    diff = _max_differences(ranks, reference)
    assert diff["grads"] < 1e-10 and diff["weights"] < 1e-10 and diff["states"] < 1e-10, diff


def test_fsdp_constraints_on_shards_are_wrong(runs, reference):
    """Outside forward FSDP's parameters are this rank's flat shards, so
    ``attach_constraints`` alone projects slices, not the kernel's columns."""
    diff = _max_differences(runs["fsdp_constraints_on_shards"], reference)
    assert diff["weights"] > 1e-6, diff


def test_fully_shard_equals_single_process(runs, reference):
    """``fully_shard`` (FSDP2) refuses the Keras layers' gate-major kernels (stored
    transposed for ``torch.lstm``); made contiguous first, training is exact."""
    ranks = runs["fully_shard"]
    assert ranks[0]["refused"].startswith(
        "FSDP does not support non-contiguous parameters yet: param.shape=torch.Size([3, 20])")
    diff = _max_differences(ranks, reference)
    assert diff["grads"] < 1e-10 and diff["weights"] < 1e-10 and diff["states"] < 1e-10, diff


def test_torchrun_example_trains(tmp_path):
    """``examples/train_ddp.py`` under torchrun (its module, ``torch.distributed.run``)
    with two processes: exits 0, rank 0 alone prints one loss per step, and the loss
    falls (the mean of the last five steps below that of the first five)."""
    steps = 12
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD),
         "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
         str(ROOT / "examples" / "train_ddp.py"), "--steps", str(steps)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    found = re.findall(r"^step +(\d+) +loss ([0-9.]+)$", proc.stdout, re.M)
    assert [int(n) for n, _ in found] == list(range(1, steps + 1)), proc.stdout
    losses = [float(v) for _, v in found]
    assert sum(losses[-5:]) < sum(losses[:5]), losses
