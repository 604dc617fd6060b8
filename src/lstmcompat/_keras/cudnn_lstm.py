"""``lstmcompat.CuDNNLSTM``: ``tf.compat.v1.keras.layers.CuDNNLSTM`` on any device.

The layer keeps cuDNN's weights as TensorFlow stores them and reads them as cuDNN
does (:func:`cudnn_to_keras`): each gate block ``K[:, g]`` of the input kernel
``(features, 4u)`` is cuDNN's row-major ``(u, features)`` matrix ``W_g`` and each
recurrent block is ``R_g`` transposed, both applied as ``W_g x`` and ``R_g h``;
the bias ``(8u,)`` holds the input biases ``i, f, c, o`` then the recurrent ones.
The call is one engine call of the Keras ``LSTM`` front-end (sigmoid gates, tanh)
on those weights in the canonical layout, the two bias halves added first, so it
runs on every device and kernel; the re-layout is differentiable, so gradients
reach the weights in cuDNN's layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .. import _args
from .._engine import Weights
from .lstm import LSTM, _unique_name

__all__ = ["CuDNNLSTM", "cudnn_to_keras", "keras_to_cudnn"]

#: The ``get_config`` keys of TensorFlow's CuDNNLSTM after the base layer's, in order.
_CONFIG_KEYS = ("return_sequences", "return_state", "go_backwards", "stateful", "time_major",
                "units", "kernel_initializer", "recurrent_initializer", "bias_initializer",
                "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer",
                "bias_regularizer", "activity_regularizer", "kernel_constraint",
                "recurrent_constraint", "bias_constraint")


def cudnn_to_keras(kernel: torch.Tensor, recurrent_kernel: torch.Tensor,
                   bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CuDNNLSTM weights as the Keras ``LSTM`` weights that compute the same function.

    Exactly tf_keras's conversion when it loads a CuDNNLSTM file into an ``LSTM``
    (``_convert_rnn_weights``): per gate ``K[:, g].T.reshape(K[:, g].shape,
    order="F")`` (= cuDNN's ``(u, features)`` matrix, transposed), ``R[:, g].T``,
    and the input and recurrent bias halves summed. Differentiable.

    Args:
        kernel: ``(features, 4u)``; recurrent_kernel: ``(u, 4u)``; bias: ``(8u,)``.

    Returns:
        ``(kernel (features, 4u), recurrent_kernel (u, 4u), bias (4u,))``, gates
        ``i, f, c, o``.
    """
    d, u = kernel.shape[0], recurrent_kernel.shape[0]
    # K[:, g] read row-major as (u, d): W_g; the Keras block is W_g.T.
    w = kernel.reshape(d, 4, u).permute(1, 0, 2).reshape(4, u, d).transpose(1, 2)
    w = w.permute(1, 0, 2).reshape(d, 4 * u)
    r = recurrent_kernel.reshape(u, 4, u).transpose(0, 2).reshape(u, 4 * u)
    b = bias[:4 * u] + bias[4 * u:]
    return w, r, b


def keras_to_cudnn(kernel: torch.Tensor, recurrent_kernel: torch.Tensor,
                   bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keras ``LSTM`` weights as CuDNNLSTM weights: tf_keras's conversion the other way
    (the inverse re-layout; the bias split as ``tile(0.5 * b, 2)``, as tf_keras, so
    the halves sum back to ``b`` up to rounding; no bias gives zeros)."""
    d, u = kernel.shape[0], recurrent_kernel.shape[0]
    k = kernel.reshape(d, 4, u).permute(1, 2, 0).reshape(4, d, u).permute(1, 0, 2)
    k = k.reshape(d, 4 * u)
    r = recurrent_kernel.reshape(u, 4, u).transpose(0, 2).reshape(u, 4 * u)
    if bias is None:
        b = kernel.new_zeros(8 * u)
    else:
        half = 0.5 * bias
        b = torch.cat([half, half])
    return k, r, b


class CuDNNLSTM(LSTM):
    """The cuDNN LSTM layer, ``tf.compat.v1.keras.layers.CuDNNLSTM``, on any device.

    TensorFlow equivalent: ``tf.compat.v1.keras.layers.CuDNNLSTM`` (tf_keras
    ``cudnn_lstm.CuDNNLSTM``), which TensorFlow runs on a GPU only. For input
    ``x_t`` and state ``(h, c)``, with ``W_g = kernel[:, g].reshape(u, features)``
    (cuDNN's row-major reading of each gate block) and ``R_g =
    recurrent_kernel[:, g].T``::

        i = sigmoid(W_i x + bx_i + R_i h + bh_i)
        f = sigmoid(W_f x + bx_f + R_f h + bh_f)
        c = f * c + i * tanh(W_c x + bx_c + R_c h + bh_c)
        o = sigmoid(W_o x + bx_o + R_o h + bh_o)
        h = o * tanh(c)

    where ``bias = [bx_i, bx_f, bx_c, bx_o, bh_i, bh_f, bh_c, bh_o]``. The two
    biases are added together before the step (cuDNN adds them inside its
    kernels): float32 results equal cuDNN's math up to the order of the sums.

    Unlike ``LSTM`` it takes no activations, dropout, ``use_bias``, ``unroll`` or
    ``implementation``, and masks are refused (``ValueError``, as TensorFlow).
    ``go_backwards`` returns the sequence in processing order (as TensorFlow).

    Args:
        units: positive integer, the size of ``h`` and ``c``.
        kernel_initializer: Keras initializer (name, config dict or callable).
        recurrent_initializer: as ``kernel_initializer``.
        bias_initializer: as ``kernel_initializer``.
        unit_forget_bias: the built bias has ones at ``[5u:6u]`` (the recurrent
            forget bias) and ``bias_initializer``'s values elsewhere (TensorFlow's
            rule).
        kernel_regularizer: as :class:`lstmcompat.LSTM`.
        recurrent_regularizer: as :class:`lstmcompat.LSTM`.
        bias_regularizer: as :class:`lstmcompat.LSTM`.
        activity_regularizer: as :class:`lstmcompat.LSTM`.
        kernel_constraint: as :class:`lstmcompat.LSTM`.
        recurrent_constraint: as :class:`lstmcompat.LSTM`.
        bias_constraint: as :class:`lstmcompat.LSTM`.
        return_sequences: as :class:`lstmcompat.LSTM`.
        return_state: as :class:`lstmcompat.LSTM`.
        go_backwards: as :class:`lstmcompat.LSTM`.
        stateful: as :class:`lstmcompat.LSTM`.
        time_major: as :class:`lstmcompat.LSTM`.
        input_shape: as Keras; the weights are built at construction when it
            (or ``batch_input_shape``) gives the feature size.
        batch_input_shape: as Keras.
        batch_size: as Keras.
        input_dim: as TensorFlow's base layer (``batch_input_shape`` becomes
            ``(batch_size, input_dim)``: no time axis, nothing is built).
        name: layer name (default ``cu_dnnlstm``, ``cu_dnnlstm_1``, ...).
        dtype: ``torch.dtype`` or its name (default float32).
        trainable: whether the weights require gradients.
        engine_kernel: force an engine kernel (see :class:`lstmcompat.LSTM`).

    Shapes:
        ``kernel (features, 4*units)``, ``recurrent_kernel (units, 4*units)``,
        ``bias (8*units,)``.

    Raises:
        ValueError: a mask is passed (``"Masking is not supported for CuDNN
            RNNs."``); otherwise as :class:`lstmcompat.LSTM`.

    Examples:
        >>> import torch, lstmcompat
        >>> layer = lstmcompat.CuDNNLSTM(4, return_sequences=True, input_shape=(None, 3))
        >>> [tuple(w.shape) for w in layer.weights]
        [(3, 16), (4, 16), (32,)]
        >>> layer(torch.zeros(2, 5, 3)).shape
        torch.Size([2, 5, 4])
    """

    def __init__(
        self,
        units: int,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        time_major: bool = False,
        *,
        input_shape: Sequence[int | None] | None = None,
        input_dim: int | None = None,
        batch_input_shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        engine_kernel: str | None = None,
    ) -> None:
        flat_shape = None
        if input_dim is not None and input_shape is None and batch_input_shape is None:
            # TF's base Layer: input_dim -> input_shape=(input_dim,) (no time axis).
            flat_shape = (_args.dimension(batch_size, "batch_size"),
                          _args.dimension(input_dim, "input_dim"))
        elif batch_input_shape is not None and input_shape is None:
            shape = _args.shape(batch_input_shape, "batch_input_shape")
            if len(shape) == 2:  # such a config (from `input_dim`) round-trips
                flat_shape, batch_input_shape = shape, None
        super().__init__(
            units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            time_major=time_major,
            input_shape=input_shape, batch_input_shape=batch_input_shape,
            batch_size=batch_size if flat_shape is None else None,
            name=name if name is not None else _unique_name("cu_dnnlstm"), dtype=dtype,
            trainable=trainable, engine_kernel=engine_kernel)
        if flat_shape is not None:
            self.batch_input_shape = flat_shape

    # The weights: cuDNN's layout, read by cudnn_to_keras on every call.
    def _bias_shape(self) -> tuple[int, ...]:
        return (8 * self.units,)

    def _initial_bias(self, initial: Callable) -> torch.Tensor:
        u = self.units
        if self.unit_forget_bias:  # TF: init(5u), ones(u), init(2u)
            return torch.cat([
                initial(self.bias_initializer, "bias_initializer", (5 * u,)),
                torch.ones(u, dtype=self.dtype),
                initial(self.bias_initializer, "bias_initializer", (2 * u,)),
            ])
        return initial(self.bias_initializer, "bias_initializer", (8 * u,))

    def _checked_weights(self) -> Weights:
        super()._checked_weights()
        return Weights(*cudnn_to_keras(self.kernel, self.recurrent_kernel, self.bias))

    def _stored_states_win(self, stored: tuple[torch.Tensor, torch.Tensor]) -> bool:
        # TF's _CuDNNRNN: a passed initial_state always wins over a stateful layer's
        # stored states (Keras's RNN uses it only while those are all zeros).
        return False

    def _start_streaming(self) -> Any:
        # The streaming steppers read the parameters in place, in the Keras layout.
        self.__dict__["_stream"] = False
        return False

    def forward(self, inputs: Any, mask: Any = None, training: bool | None = None,
                initial_state: Any = None) -> torch.Tensor | list[torch.Tensor]:
        """Run the layer (see :meth:`lstmcompat.LSTM.forward`; ``training`` changes
        nothing: there is no dropout).

        Raises:
            ValueError: ``mask`` is not ``None`` (TensorFlow: "Masking is not
                supported for CuDNN RNNs.").
        """
        if isinstance(mask, list):
            mask = mask[0]
        if mask is not None:
            raise ValueError("Masking is not supported for CuDNN RNNs.")
        return super().forward(inputs, None, training, initial_state)

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """The Keras config dict (TensorFlow's keys, in its order)."""
        full = super().get_config()
        config = {k: full[k] for k in ("name", "trainable", "dtype")}
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = self.batch_input_shape
        config.update({k: full[k] for k in _CONFIG_KEYS})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CuDNNLSTM:
        """Re-create a layer from :meth:`get_config` (or TensorFlow's config dict).

        Raises:
            TypeError: ``config`` is not a dict, or has an unknown key.
        """
        return cls(**_args.config_dict(config))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}, input_features={self._input_features}"
