"""lstmcompat: TensorFlow 1.x / Keras 2 LSTM semantics, exact, on PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lstmcompat")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
