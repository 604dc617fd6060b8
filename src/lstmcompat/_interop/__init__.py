"""Reading and writing weight files: TF checkpoints, Keras files, lstmcompat's own format
(no TensorFlow, protobuf or pickle)."""

from ._files import list_variables, load_variables
from ._save import load, save
from ._torch_lstm import from_torch_lstm, to_torch_lstm

__all__ = ["from_torch_lstm", "list_variables", "load", "load_variables", "save",
           "to_torch_lstm"]
