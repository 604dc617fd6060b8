"""Moving one LSTM's weights between the two front-ends (TF1 ``LSTMCell`` <-> Keras ``LSTM``).

Both compute the same recurrence; they differ in layout. A TF1 cell keeps one
kernel over ``[x, h]`` in gate order ``i, j, f, o`` and adds ``forget_bias`` at
run time; a Keras layer keeps ``kernel`` and ``recurrent_kernel`` in ``i, f, c, o``
and has no forget bias. So ``keras.bias[f] = cell.bias[f] + forget_bias`` one way,
``forget_bias = 0`` the other. Only the gate-order constants of
``lstmcompat._engine.gates`` permute.
"""

from __future__ import annotations

from typing import Any

import torch

from .._engine.gates import permute

__all__ = ["keras_to_tf1", "tf1_to_keras"]


def tf1_to_keras(cell: Any, **layer_kwargs: Any) -> Any:
    """A Keras :class:`~lstmcompat.LSTM` computing what the built TF1 ``cell`` computes.

    ``layer_kwargs`` go to the layer (``return_sequences``, ...); its
    activations are the cell's (``recurrent_activation="sigmoid"``).

    Raises:
        ValueError: the cell has peepholes, a projection or a cell clip (a Keras
            LSTM has none), naming the option; it is not built.
    """
    from .._keras.lstm import LSTM

    if not cell.built:
        raise ValueError("the LSTMCell is not built: its input size is unknown (build or "
                         "restore it first)")
    for option, value in (("use_peepholes", cell._use_peepholes), ("num_proj", cell._num_proj),
                          ("cell_clip", cell._cell_clip)):
        if value not in (None, False):
            raise ValueError(f"a Keras LSTM has no `{option}`: this LSTMCell (with "
                             f"{option}={value!r}) has no Keras equivalent")
    u, depth = cell._num_units, cell._input_depth
    with torch.no_grad():
        kernel = cell.kernel.detach()
        bias = permute(cell.bias.detach(), "tf1", "keras").clone()
        bias[u:2 * u] += cell._forget_bias
        layer = LSTM(u, activation=cell._activation, recurrent_activation="sigmoid",
                     dtype=kernel.dtype, **layer_kwargs)
        layer.build((None, None, depth))
        layer.set_weights([permute(kernel[:depth], "tf1", "keras").numpy(),
                           permute(kernel[depth:], "tf1", "keras").numpy(), bias.numpy()])
    return layer


def keras_to_tf1(layer: Any, **cell_kwargs: Any) -> Any:
    """A TF1 :class:`~lstmcompat.LSTMCell` computing what the built Keras ``layer`` computes
    (``forget_bias=0``: the bias is the layer's, moved).

    Raises:
        ValueError: the layer's recurrent activation is not sigmoid (a TF1 cell's
            gates are), or it is not built.
    """
    from .._activations import serialize
    from .._tf1.cell import LSTMCell

    if not layer.built:
        raise ValueError("the LSTM is not built: its input size is unknown (build or restore "
                         "it first)")
    rec = serialize(layer.recurrent_activation)
    if rec != "sigmoid":
        raise ValueError(f"a TF1 LSTMCell's gates are sigmoid; this LSTM has "
                         f"`recurrent_activation`={rec!r}")
    u = layer.units
    with torch.no_grad():
        k, r = layer.kernel.detach(), layer.recurrent_kernel.detach()
        b = layer.bias.detach() if layer.bias is not None else torch.zeros(4 * u, dtype=k.dtype)
        cell = LSTMCell(u, forget_bias=0.0, activation=serialize(layer.activation),
                        dtype=k.dtype, **cell_kwargs)
        cell.build((None, k.shape[0]))
        cell.set_weights([permute(torch.cat([k, r]), "keras", "tf1").numpy(),
                          permute(b, "keras", "tf1").numpy()])
    return cell
