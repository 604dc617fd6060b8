"""The recurrence engine: one ``CellSpec``, canonical weights, kernels, and ``choose``.

Front-ends call :func:`run`; tests compare every kernel
with :func:`run_reference`.
"""

from .dispatch import Kernel, Streaming, available_kernels, choose, register_kernel
from .reference import run_reference
from .run import Stream, analyze_mask, run, run_explained, start_stream
from .spec import CellSpec, Dropout, Weights, check_weights

__all__ = [
    "CellSpec",
    "Dropout",
    "Kernel",
    "Stream",
    "Streaming",
    "Weights",
    "analyze_mask",
    "available_kernels",
    "check_weights",
    "choose",
    "register_kernel",
    "run",
    "run_explained",
    "run_reference",
    "start_stream",
]
