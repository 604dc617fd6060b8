"""A small builder of ONNX graphs (nodes, initializers, unique names) and the ONNX form of
each engine activation.

Everything here takes and gives value *names*; :class:`Builder` collects the nodes
and initializers of one graph (the main graph, or a ``Scan`` body).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .. import _activations


def onnx_modules() -> tuple[Any, Any, Any]:
    """``(onnx, helper, TensorProto)``, or ``ImportError`` with the install hint."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as e:
        raise ImportError("ONNX export needs the `onnx` package: pip install 'lstmcompat[onnx]' "
                          "(or pip install onnx onnxruntime)") from e
    return onnx, helper, TensorProto


class Builder:
    """Nodes and initializers of one ONNX graph, with fresh names."""

    _ids = itertools.count()

    def __init__(self, dtype: np.dtype) -> None:
        self.onnx, self.helper, self.TensorProto = onnx_modules()
        self.dtype = np.dtype(dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self._ids)}"

    def const(self, value: Any, hint: str = "c", dtype: Any = None) -> str:
        """An initializer holding ``value`` (in the graph's float dtype unless ``dtype``)."""
        arr = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, hint: str | None = None,
           **attrs: Any) -> Any:
        """Add a node; its output name (or names, for ``n_out > 1``)."""
        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    @property
    def elem_type(self) -> int:
        return self.helper.np_dtype_to_tensor_dtype(self.dtype)


# ------------------------------------------------------------------ activations
#: Engine activations that the ONNX ``LSTM`` operator has (its ``activations``
#: attribute), with their ``activation_alpha`` / ``activation_beta``.
LSTM_NODE_ACTIVATIONS: dict[str, tuple[str, float | None, float | None]] = {
    "sigmoid": ("Sigmoid", None, None),
    "tanh": ("Tanh", None, None),
    "hard_sigmoid": ("HardSigmoid", 0.2, 0.5),  # tf_keras: clip(0.2 x + 0.5, 0, 1)
    "keras3_hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),  # relu6(x + 3) / 6
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
}


def apply_activation(b: Builder, name: Any, x: str) -> str:
    """The engine activation ``name`` applied to value ``x`` with ONNX operators."""
    if name == "tanh":
        return b.op("Tanh", [x])
    if name == "sigmoid":
        return b.op("Sigmoid", [x])
    if name == "hard_sigmoid":
        return b.op("HardSigmoid", [x], alpha=0.2, beta=0.5)
    if name == "keras3_hard_sigmoid":  # relu6(x + 3) / 6, as written
        r = b.op("Clip", [b.op("Add", [x, b.const(3.0)]), b.const(0.0), b.const(6.0)])
        return b.op("Div", [r, b.const(6.0)])
    if name == "relu":
        return b.op("Relu", [x])
    if name == "relu6":
        return b.op("Clip", [x, b.const(0.0), b.const(6.0)])
    if name == "linear":
        return b.op("Identity", [x])
    if name == "softsign":
        return b.op("Softsign", [x])
    if name == "softplus":
        return b.op("Softplus", [x])
    if name == "elu":
        return b.op("Elu", [x], alpha=1.0)
    if name == "selu":
        return b.op("Selu", [x], alpha=_activations.SELU_ALPHA, gamma=_activations.SELU_SCALE)
    if name == "exponential":
        return b.op("Exp", [x])
    if name == "swish":
        return b.op("Mul", [x, b.op("Sigmoid", [x])])
    if name == "leaky_relu":
        return b.op("LeakyRelu", [x], alpha=0.2)
    if name == "mish":
        return b.op("Mul", [x, b.op("Tanh", [b.op("Softplus", [x])])])
    raise ValueError(f"activation {name!r} has no ONNX export (a Python callable, or one "
                     "without an ONNX equivalent); export a module with a named activation")


def clip_by_value(b: Builder, x: str, bound: float) -> str:
    """TF's ``clip_by_value(x, -bound, bound)``: ``maximum(minimum(x, bound), -bound)``."""
    return b.op("Max", [b.op("Min", [x, b.const(bound)]), b.const(-bound)])
