"""The engine's kernels, one :class:`~.dispatch.Kernel` record each, in order of preference.

``native`` (``torch.lstm``: oneDNN, cuDNN) first where it is exact; ``fused``
(hand-written backward, compiled CPU time loop; it claims one step, batch 1
and training on CPU, and streams single steps of a module) for what it is
not; ``triton`` for CUDA calls cuDNN cannot run (checked against the reference
on first use); ``reference`` (the oracle) for everything else.
"""

from __future__ import annotations

from .dispatch import Kernel, Streaming, register_kernel
from .fused import (
    fused_cannot,
    fused_describe,
    fused_preferred,
    prepare,
    run_fused,
    stream_cannot,
    streamer,
)
from .gpu import run_triton, self_check, triton_cannot
from .native import native_cannot, run_native
from .reference import reference_cannot, run_reference

KERNELS = (
    # torch.lstm's packed sequences skip the padded steps of a right-padded mask.
    Kernel("native", run_native, native_cannot, runs_padded_steps=False),
    Kernel("fused", run_fused, fused_cannot, preferred=fused_preferred,
           describe=fused_describe, first_use=prepare,
           streaming=Streaming(stream_cannot, streamer,
                               "the compiled Streamer reads the module's parameters in place")),
    Kernel("triton", run_triton, triton_cannot, first_use=self_check),
    Kernel("reference", run_reference, reference_cannot),
)

for _k in KERNELS:
    register_kernel(_k)
