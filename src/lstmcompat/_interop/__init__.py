"""Reading and writing weight files: TF checkpoints, Keras files, lstmcompat's own format
(no TensorFlow, protobuf or pickle)."""

from ._files import list_variables, load_variables
from ._restore import restore

__all__ = ["list_variables", "load_variables", "restore"]
