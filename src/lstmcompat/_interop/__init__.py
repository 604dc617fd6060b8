"""Readers for files written by other frameworks (no TensorFlow, protobuf or pickle)."""

from ._tf_checkpoint import list_variables, load_variables

__all__ = ["list_variables", "load_variables"]
