"""``lstmcompat.Bidirectional``: ``tf.compat.v1.keras.layers.Bidirectional`` around a
Keras-style LSTM layer (:class:`~lstmcompat.LSTM` or :class:`~lstmcompat.CuDNNLSTM`).

As the reference, the wrapper runs two copies made from the wrapped layer's
config (the backward one with ``go_backwards`` flipped, or a given
``backward_layer``), named ``forward_<name>`` and ``backward_<name>``; the backward
copy's returned sequence is reversed back into input order before the merge.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from .. import _args, _weights_io
from .._dtypes import dtype_name, resolve_dtype
from .cudnn_lstm import CuDNNLSTM
from .lstm import LSTM, SHAPE_MESSAGE, _batch_input_shape, _unique_name

__all__ = ["Bidirectional"]

MergeMode = Literal["concat", "sum", "mul", "ave"] | None
_MERGE_MODES = ("sum", "mul", "ave", "concat", None)
#: Layer classes a Bidirectional wraps, by their Keras class name.
_LAYER_CLASSES: dict[str, type] = {"LSTM": LSTM, "CuDNNLSTM": CuDNNLSTM}


def _serialize(layer: LSTM) -> dict[str, Any]:
    """tf_keras's ``serialize_keras_object`` of a layer."""
    return {"module": "keras.layers", "class_name": type(layer).__name__,
            "config": layer.get_config(), "registered_name": None}


def _deserialize(config: Any, custom_objects: dict[str, Any] | None, arg: str) -> LSTM:
    if isinstance(config, LSTM):
        return config
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ValueError(f"`{arg}` must be a layer config dict with `class_name` and "
                         f"`config`, got {config!r}")
    table = {**_LAYER_CLASSES, **(custom_objects or {})}
    cls = table.get(config["class_name"])
    if cls is None:
        raise ValueError(f"Unknown layer: {config['class_name']!r} in `{arg}`; Bidirectional "
                         f"wraps one of {sorted(_LAYER_CLASSES)}.")
    return cls.from_config(copy.deepcopy(config["config"]))


def _recreate(layer: LSTM, go_backwards: bool = False) -> LSTM:
    config = layer.get_config()
    if go_backwards:
        config["go_backwards"] = not config["go_backwards"]
    return type(layer).from_config(config)


class Bidirectional(torch.nn.Module):
    """Bidirectional wrapper with the semantics of ``tf.compat.v1.keras.layers.Bidirectional``.

    TensorFlow equivalent: ``tf.compat.v1.keras.layers.Bidirectional`` (tf_keras
    ``bidirectional.Bidirectional``). The forward copy of ``layer`` reads the
    sequence in order, the backward copy (``go_backwards`` flipped) from the end;
    with ``return_sequences`` the backward outputs are reversed back into input
    order, then merged::

        concat: [y_fw, y_bw] (last axis)   sum: y_fw + y_bw   ave: (y_fw + y_bw) / 2
        mul:    y_fw * y_bw                 None: the list [y_fw, y_bw]

    Masks go to both copies; when they return sequences their masked steps
    output zeros (Keras forces ``zero_output_for_mask``), the states are held.

    Args:
        layer: an :class:`lstmcompat.LSTM` or :class:`lstmcompat.CuDNNLSTM`. Only
            its config is used: the two copies are new layers made from it (its
            own weights, if built, are not used).
        merge_mode: ``"concat"``, ``"sum"``, ``"mul"``, ``"ave"`` or ``None``.
        weights: initial weights, forward ones then backward ones (as
            :meth:`get_weights`), set once the copies are built.
        backward_layer: the layer to run backwards instead of a copy of ``layer``
            (used as is, renamed ``backward_<name>``); it must have the other
            ``go_backwards`` and the same ``stateful``, ``return_sequences`` and
            ``return_state``.
        name: layer name (default ``bidirectional``, ``bidirectional_1``, ...).
        trainable: default ``layer.trainable``.
        dtype: the wrapper's own Keras ``dtype`` (default float32): floating inputs
            are cast to it first, as Keras's autocast does, then the copies compute
            in the dtype of ``layer`` (so a float64 ``layer`` sees float32-rounded
            inputs unless ``dtype`` is float64 too, as in TensorFlow).
        input_shape: as Keras (the copies are built when it, or
            ``batch_input_shape``, gives the feature size).
        batch_input_shape: as Keras.
        batch_size: as Keras.

    Raises:
        ValueError: ``layer`` or ``backward_layer`` is not such a layer, an unknown
            ``merge_mode``, or a ``backward_layer`` that does not match (TensorFlow's
            messages); at call time an odd number of initial states.

    Examples:
        >>> import torch, lstmcompat
        >>> bi = lstmcompat.Bidirectional(lstmcompat.LSTM(4, return_sequences=True))
        >>> bi(torch.zeros(2, 5, 3)).shape
        torch.Size([2, 5, 8])
        >>> [w.shape[-1] for w in bi.get_weights()]
        [16, 16, 16, 16, 16, 16]
    """

    def __init__(self, layer: LSTM, merge_mode: MergeMode = "concat",
                 weights: Sequence[Any] | None = None, backward_layer: LSTM | None = None,
                 *, name: str | None = None, trainable: bool | None = None, dtype: Any = None,
                 input_shape: Sequence[int | None] | None = None,
                 batch_input_shape: Sequence[int | None] | None = None,
                 batch_size: int | None = None) -> None:
        super().__init__()
        if not isinstance(layer, LSTM):
            raise ValueError(
                "Please initialize `Bidirectional` layer with a `tf.keras.layers.Layer` "
                f"instance (here an lstmcompat LSTM or CuDNNLSTM). Received: {layer}")
        if backward_layer is not None and not isinstance(backward_layer, LSTM):
            raise ValueError(
                "`backward_layer` need to be a `tf.keras.layers.Layer` instance (here an "
                f"lstmcompat LSTM or CuDNNLSTM). Received: {backward_layer}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Invalid merge mode. Received: {merge_mode}. Merge mode should be one of "
                '{"sum", "mul", "ave", "concat", None}')
        self.name = name if name is not None else _unique_name("bidirectional")
        self.dtype = resolve_dtype(dtype)
        self.batch_input_shape = _batch_input_shape(input_shape, None, None,
                                                    batch_input_shape, batch_size)
        self._layer_config = _serialize(layer)  # `layer` itself is not kept, as Keras
        self.forward_layer = _recreate(layer)
        if backward_layer is None:
            self.backward_layer = _recreate(layer, go_backwards=True)
        else:
            self.backward_layer = backward_layer
            self._backward_layer_config = _serialize(backward_layer)
        self.forward_layer.name = "forward_" + self.forward_layer.name
        self.backward_layer.name = "backward_" + self.backward_layer.name
        self._verify_layer_config()
        for sub in (self.forward_layer, self.backward_layer):
            if not isinstance(sub, CuDNNLSTM):  # Keras's RNN has the attribute, CuDNN not
                sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self._initial_weights = list(weights) if weights else None
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.trainable = bool(layer.trainable if trainable is None else trainable)
        if self.batch_input_shape is not None and self.batch_input_shape[-1] is not None:
            self.build(self.batch_input_shape)
        elif self.built:
            self._set_initial_weights()

    def _verify_layer_config(self) -> None:
        fw, bw = self.forward_layer, self.backward_layer
        if fw.go_backwards == bw.go_backwards:
            raise ValueError(
                "Forward layer and backward layer should have different `go_backwards` "
                f"value.forward_layer.go_backwards = {fw.go_backwards},"
                f"backward_layer.go_backwards = {bw.go_backwards}")
        for a in ("stateful", "return_sequences", "return_state"):
            f, b = getattr(fw, a), getattr(bw, a)
            if f != b:
                raise ValueError(
                    "Forward layer and backward layer are expected to have the same value "
                    f'for attribute "{a}", got "{f}" for forward layer and "{b}" for '
                    "backward layer")

    # ------------------------------------------------------------------ build
    @property
    def built(self) -> bool:
        return self.forward_layer.built and self.backward_layer.built

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Build both copies for inputs of ``input_shape`` (then set ``weights=``)."""
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        self._set_initial_weights()

    def _set_initial_weights(self) -> None:
        if self._initial_weights is not None and self.built:
            w, self._initial_weights = self._initial_weights, None
            n = len(w)
            self.forward_layer.set_weights(w[:n // 2])
            self.backward_layer.set_weights(w[n // 2:])

    # ---------------------------------------------------------------- weights
    @property
    def weights(self) -> list[torch.nn.Parameter]:
        """The forward copy's weights, then the backward copy's."""
        return self.forward_layer.weights + self.backward_layer.weights

    @property
    def trainable_weights(self) -> list[torch.nn.Parameter]:
        if not self.trainable:
            return []
        return self.forward_layer.trainable_weights + self.backward_layer.trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        """The weights as NumPy arrays, forward then backward (as :attr:`weights`)."""
        return _weights_io.get_weights(self.weights)

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set the weights, forward then backward (count- and shape-checked as Keras).

        Raises:
            ValueError: wrong number of arrays or a shape that does not match.
        """
        _weights_io.set_weights(self.name, self.weights, weights, SHAPE_MESSAGE)

    @property
    def losses(self) -> list[torch.Tensor]:
        """The forward copy's losses, then the backward copy's."""
        return self.forward_layer.losses + self.backward_layer.losses

    # ----------------------------------------------------------------- states
    def reset_states(self, states: Sequence[Any] | None = None) -> None:
        """Reset the copies' states (``states``: ``[h_fw, c_fw, h_bw, c_bw]``).

        Raises:
            AttributeError: the wrapped layer is not stateful.
            ValueError: ``states`` is not a list or tuple.
        """
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        if not isinstance(states, (list, tuple)):
            raise ValueError("Unrecognized value for `states`. Expected `states` to be list "
                             f"or tuple. Received: {states}")
        half = len(states) // 2
        self.forward_layer.reset_states(states[:half])
        self.backward_layer.reset_states(states[half:])

    # ------------------------------------------------------------------- call
    def forward(self, inputs: Any, mask: Any = None, training: bool | None = None,
                initial_state: Any = None) -> torch.Tensor | list[torch.Tensor]:
        """Run both copies and merge.

        Args:
            inputs: ``(batch, time, features)`` (``(time, batch, features)`` when the
                layer is ``time_major``), or ``[inputs, h_fw, c_fw, h_bw, c_bw]``.
            mask: bool or 0/1 ``(batch, time)``, given to both copies.
            training: passed to both copies (dropout).
            initial_state: ``[h_fw, c_fw, h_bw, c_bw]``: the first half for the
                forward copy, the second for the backward one.

        Returns:
            The merged output (a list ``[y_fw, y_bw]`` when ``merge_mode`` is
            ``None``); with ``return_state`` followed by ``h_fw, c_fw, h_bw, c_bw``.

        Raises:
            ValueError: an odd number of initial states (TensorFlow's message), or
                as the wrapped layer.
        """
        if isinstance(inputs, (list, tuple)):
            if len(inputs) > 1:
                initial_state = list(inputs[1:])
            inputs = inputs[0]
        fw_state = bw_state = None
        if initial_state is not None:
            if isinstance(initial_state, (np.ndarray, torch.Tensor)):
                initial_state = [initial_state]
            initial_state = list(initial_state)
            if len(initial_state) % 2:
                raise ValueError(
                    "When passing `initial_state` to a Bidirectional RNN, the state should "
                    "be a list containing the states of the underlying RNNs. Received: "
                    f"{initial_state}")
            half = len(initial_state) // 2
            fw_state, bw_state = initial_state[:half], initial_state[half:]
        inputs = self._autocast(inputs)
        if self._initial_weights is not None and not self.built:
            shape = tuple(torch.as_tensor(np.asarray(inputs) if not isinstance(
                inputs, torch.Tensor) else inputs).shape)
            self.build(shape)
        y = self.forward_layer(inputs, mask=mask, training=training, initial_state=fw_state)
        y_rev = self.backward_layer(inputs, mask=mask, training=training,
                                    initial_state=bw_state)
        states: list[torch.Tensor] = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(0 if self.forward_layer.time_major else 1)
        if self.merge_mode == "concat":
            output: Any = torch.cat([y, y_rev], dim=-1)
        elif self.merge_mode == "sum":
            output = y + y_rev
        elif self.merge_mode == "ave":
            output = (y + y_rev) / 2
        elif self.merge_mode == "mul":
            output = y * y_rev
        else:
            output = [y, y_rev]
        if self.return_state:
            if self.merge_mode is None:
                return output + states
            return [output] + states
        return output

    def _autocast(self, inputs: Any) -> Any:
        """Keras casts a layer's floating ``inputs`` to its own compute dtype first:
        the wrapper's (float32 unless ``dtype=`` is given), whatever the copies'
        dtype, so float64 inputs of a float64 layer are rounded to float32 unless the
        wrapper is float64 too (TensorFlow's numbers)."""
        if isinstance(inputs, np.ndarray) and np.issubdtype(inputs.dtype, np.floating):
            inputs = torch.from_numpy(inputs)
        if isinstance(inputs, torch.Tensor) and inputs.is_floating_point() \
                and inputs.dtype != self.dtype:
            return inputs.to(self.dtype)
        return inputs

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """The Keras config dict: the wrapped layer's serialized config under
        ``"layer"``, ``merge_mode``, and a given ``backward_layer``'s config."""
        config: dict[str, Any] = {"name": self.name, "trainable": self.trainable,
                                  "dtype": dtype_name(self.dtype)}
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = self.batch_input_shape
        config["layer"] = copy.deepcopy(self._layer_config)
        config["merge_mode"] = self.merge_mode
        if hasattr(self, "_backward_layer_config"):
            config["backward_layer"] = copy.deepcopy(self._backward_layer_config)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any],
                    custom_objects: dict[str, Any] | None = None) -> Bidirectional:
        """Re-create the wrapper from :meth:`get_config` (or TensorFlow's config dict):
        the nested ``layer`` (and ``backward_layer``) configs name ``LSTM`` or
        ``CuDNNLSTM`` (or a class in ``custom_objects``).

        Raises:
            TypeError: ``config`` is not a dict, or has an unknown key.
            ValueError: a nested layer config names an unknown class.
        """
        config = copy.deepcopy(_args.config_dict(config))
        config.pop("num_constants", None)
        config["layer"] = _deserialize(config.get("layer"), custom_objects, "layer")
        backward = config.pop("backward_layer", None)
        if backward is not None:
            config["backward_layer"] = _deserialize(backward, custom_objects, "backward_layer")
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, merge_mode={self.merge_mode!r}"
