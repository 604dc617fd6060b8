"""Reading and writing weight files: TF checkpoints, Keras files, lstmcompat's own format
(no TensorFlow, protobuf or pickle)."""

from ._files import list_variables, load_variables
from ._keras_layers import layer_from_config, load_keras_layers
from ._restore import restore
from ._save import load, save
from ._torch_lstm import from_torch_lstm, to_torch_lstm

__all__ = ["from_torch_lstm", "layer_from_config", "list_variables", "load",
           "load_keras_layers", "load_variables", "restore", "save", "to_torch_lstm"]
