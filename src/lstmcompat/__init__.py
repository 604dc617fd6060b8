"""lstmcompat: TensorFlow 1.x / Keras 2 LSTM semantics, exact, on PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lstmcompat")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

from ._tf1 import (
    AUTO_REUSE,
    Graph,
    LSTMCell,
    LSTMStateTuple,
    MultiRNNCell,
    bidirectional_dynamic_rnn,
    dynamic_rnn,
    static_rnn,
    variable_scope,
)

__all__ = [
    "__version__",
    # TF1 front-end (API.md §2-§3)
    "AUTO_REUSE",
    "Graph",
    "LSTMCell",
    "LSTMStateTuple",
    "MultiRNNCell",
    "bidirectional_dynamic_rnn",
    "dynamic_rnn",
    "static_rnn",
    "variable_scope",
]
