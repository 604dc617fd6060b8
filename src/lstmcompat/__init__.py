"""lstmcompat: TensorFlow 1.x / Keras 2 LSTM semantics, exact, on PyTorch.

Public API (see ``shared/API.md``):

* :class:`LSTM` -- ``tf.compat.v1.keras.layers.LSTM``.
* :func:`apply_constraints`, :func:`attach_constraints` -- Keras constraints after optimizer steps.
* :func:`choose`, :class:`CellSpec` -- which engine kernel runs a spec, and why.
"""

from importlib.metadata import PackageNotFoundError, version

from ._engine import CellSpec, available_kernels, choose
from ._keras.constraints import apply_constraints, attach_constraints
from ._keras.lstm import LSTM

try:
    __version__ = version("lstmcompat")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

__all__ = [
    "LSTM",
    "CellSpec",
    "__version__",
    "apply_constraints",
    "attach_constraints",
    "available_kernels",
    "choose",
]
