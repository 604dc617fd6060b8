"""Reading and writing weight files: TF checkpoints, Keras files, lstmcompat's own format
(no TensorFlow, protobuf or pickle)."""

from ._files import list_variables, load_variables
from ._save import load, save

__all__ = ["list_variables", "load", "load_variables", "save"]
