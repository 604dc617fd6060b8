"""Reading and writing weight files: TF checkpoints, Keras files, lstmcompat's own format
(no TensorFlow, protobuf or pickle)."""

from ._files import list_variables, load_variables
from ._keras_layers import layer_from_config, load_keras_layers
from ._restore import restore

__all__ = ["layer_from_config", "list_variables", "load_keras_layers", "load_variables",
           "restore"]
