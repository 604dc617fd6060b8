"""lstmcompat: TensorFlow 1.x / Keras 2 LSTM semantics, exact, on PyTorch.

Public API (reference: ``docs/api.md`` in the repository):

* :class:`LSTM` -- ``tf.compat.v1.keras.layers.LSTM``.
* :class:`CuDNNLSTM`, :class:`Bidirectional` -- ``tf.compat.v1.keras.layers`` (any device).
* :func:`apply_constraints`, :func:`attach_constraints` -- Keras constraints after optimizer steps.
* :class:`LSTMCell`, :class:`LSTMStateTuple`, :class:`MultiRNNCell` -- ``tf.compat.v1.nn.rnn_cell``.
* :class:`BasicLSTMCell`, :class:`LSTMBlockCell`, :class:`LSTMBlockFusedCell`,
  :class:`CudnnCompatibleLSTMCell` -- the TF1 family cells (``rnn_cell``, ``contrib``).
* :func:`dynamic_rnn`, :func:`static_rnn`, :func:`bidirectional_dynamic_rnn` -- ``tf.compat.v1.nn``.
* :class:`RNNCell` (the base of your own cells), :class:`DropoutWrapper`,
  :class:`ResidualWrapper`, :class:`DeviceWrapper` -- ``tf.compat.v1.nn.rnn_cell``.
* :class:`Graph`, :func:`variable_scope`, :data:`AUTO_REUSE` -- TF1 variable naming and reuse.
* :func:`choose`, :class:`CellSpec` -- which engine kernel runs a spec, and why.
* :func:`list_variables`, :func:`load_variables` -- read TF checkpoints and Keras files
  without TensorFlow; :func:`restore` -- fill a module's weights from one;
  :func:`load_keras_layers` -- rebuild the LSTM layers of a Keras model file.
* :func:`save`, :func:`load` -- lstmcompat's own files (safetensors, no pickle).
* :func:`to_torch_lstm`, :func:`from_torch_lstm` -- convert to and from ``torch.nn.LSTM``.
"""

from importlib.metadata import PackageNotFoundError, version

from ._engine import CellSpec, available_kernels, choose
from ._interop import (
    from_torch_lstm,
    list_variables,
    load,
    load_keras_layers,
    load_variables,
    restore,
    save,
    to_torch_lstm,
)
from ._keras.bidirectional import Bidirectional
from ._keras.constraints import apply_constraints, attach_constraints
from ._keras.cudnn_lstm import CuDNNLSTM
from ._keras.lstm import LSTM
from ._onnx import export_onnx
from ._tf1 import (
    AUTO_REUSE,
    BasicLSTMCell,
    CudnnCompatibleLSTMCell,
    DeviceWrapper,
    DropoutWrapper,
    Graph,
    LSTMBlockCell,
    LSTMBlockFusedCell,
    LSTMCell,
    LSTMStateTuple,
    MultiRNNCell,
    ResidualWrapper,
    RNNCell,
    bidirectional_dynamic_rnn,
    dynamic_rnn,
    static_rnn,
    variable_scope,
)

try:
    __version__ = version("lstmcompat")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

__all__ = [
    "__version__",
    # Keras front-end (docs/api.md §1)
    "LSTM",
    "apply_constraints",
    "attach_constraints",
    # Keras v1, the rest of the family (docs/api.md §6)
    "Bidirectional",
    "CuDNNLSTM",
    # TF1 front-end (docs/api.md §2-§3)
    "AUTO_REUSE",
    "Graph",
    "LSTMCell",
    "LSTMStateTuple",
    "MultiRNNCell",
    "bidirectional_dynamic_rnn",
    "dynamic_rnn",
    "static_rnn",
    "variable_scope",
    # the rest of the family (docs/api.md §6)
    "BasicLSTMCell",
    "CudnnCompatibleLSTMCell",
    "DeviceWrapper",
    "DropoutWrapper",
    "LSTMBlockCell",
    "LSTMBlockFusedCell",
    "RNNCell",
    "ResidualWrapper",
    # files (docs/api.md §5)
    "from_torch_lstm",
    "list_variables",
    "load",
    "load_keras_layers",
    "load_variables",
    "restore",
    "save",
    "to_torch_lstm",
    # deployment (docs/api.md §7)
    "export_onnx",
    # engine introspection
    "CellSpec",
    "available_kernels",
    "choose",
]
