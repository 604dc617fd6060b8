"""The TF1 front-end: ``LSTMCell``, ``MultiRNNCell``, ``dynamic_rnn`` and friends, graph naming."""

from .base import RNNCell
from .basic import BasicLSTMCell
from .block import CudnnCompatibleLSTMCell, LSTMBlockCell, LSTMBlockFusedCell
from .cell import LSTMCell
from .graph import AUTO_REUSE, Graph, VariableScope, get_variable_scope, variable_scope
from .multi import MultiRNNCell
from .rnn import bidirectional_dynamic_rnn, dynamic_rnn, static_rnn
from .state import LSTMStateTuple
from .wrappers import DeviceWrapper, DropoutWrapper, ResidualWrapper

__all__ = [
    "AUTO_REUSE",
    "BasicLSTMCell",
    "CudnnCompatibleLSTMCell",
    "DeviceWrapper",
    "DropoutWrapper",
    "Graph",
    "LSTMBlockCell",
    "LSTMBlockFusedCell",
    "LSTMCell",
    "LSTMStateTuple",
    "MultiRNNCell",
    "RNNCell",
    "ResidualWrapper",
    "VariableScope",
    "bidirectional_dynamic_rnn",
    "dynamic_rnn",
    "get_variable_scope",
    "static_rnn",
    "variable_scope",
]
