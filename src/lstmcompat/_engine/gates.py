"""Gate orders of every framework, and the one place that permutes between them.

The engine's canonical order is ``i, f, g, o`` (input gate, forget gate, cell
candidate, output gate). It is the order of Keras (``i, f, c, o``) and of
PyTorch (``i, f, g, o``), so the Keras front-end and the ``native`` kernel need
no permutation at all. TensorFlow 1's ``LSTMCell`` stores ``i, j, f, o``
(``j`` is the candidate) and ONNX stores ``i, o, f, c``.

Every fused weight of the four gates is laid out as four contiguous column
blocks of width ``units`` along its gate axis. Nothing outside this module
permutes gates.
"""

from __future__ import annotations

import torch

#: The engine's order (also Keras's ``i, f, c, o`` and PyTorch's ``i, f, g, o``).
CANONICAL: tuple[str, ...] = ("i", "f", "g", "o")
KERAS: tuple[str, ...] = ("i", "f", "g", "o")
TORCH: tuple[str, ...] = ("i", "f", "g", "o")
#: TensorFlow 1 ``LSTMCell`` (``i, j, f, o``; ``j`` is the cell candidate).
TF1: tuple[str, ...] = ("i", "g", "f", "o")
#: ONNX ``LSTM`` operator (``i, o, f, c``).
ONNX: tuple[str, ...] = ("i", "o", "f", "g")

ORDERS: dict[str, tuple[str, ...]] = {
    "canonical": CANONICAL,
    "keras": KERAS,
    "torch": TORCH,
    "tf1": TF1,
    "onnx": ONNX,
}


def _order(order: str | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(order, str):
        try:
            return ORDERS[order]
        except KeyError:
            raise ValueError(
                f"Unknown gate order {order!r}; expected one of {sorted(ORDERS)}."
            ) from None
    return tuple(order)


def permutation(src: str | tuple[str, ...], dst: str | tuple[str, ...]) -> tuple[int, ...]:
    """Block indices ``p`` such that block ``k`` of the result is block ``p[k]`` of the source."""
    s, d = _order(src), _order(dst)
    if sorted(s) != sorted(d):
        raise ValueError(f"Gate orders {s} and {d} do not name the same gates.")
    return tuple(s.index(g) for g in d)


def permute(t: torch.Tensor, src: str | tuple[str, ...], dst: str | tuple[str, ...],
            dim: int = -1) -> torch.Tensor:
    """Reorder the four gate blocks of ``t`` along ``dim`` from order ``src`` to ``dst``.

    Differentiable; returns ``t`` itself when the orders agree.
    """
    perm = permutation(src, dst)
    if perm == (0, 1, 2, 3):
        return t
    blocks = t.chunk(4, dim=dim)
    return torch.cat([blocks[p] for p in perm], dim=dim)
