"""Rebuild the LSTM layers of a Keras model file: :func:`load_keras_layers`.

A tf_keras (Keras 2) full-model ``.h5`` and a Keras 3 ``.keras`` archive carry the
model's config; :func:`layer_from_config` maps one ``LSTM`` layer config of
either onto :class:`lstmcompat.LSTM`'s arguments, and :func:`load_keras_layers`
builds every LSTM layer of a file with its weights, bit for bit.

How each key of a stored ``LSTM`` config is read (Keras 2 = tf_keras, Keras 3):

============================  ==========================================================
key                           handling
============================  ==========================================================
``name``, ``trainable``,      the same argument
``units``, ``use_bias``,
``unit_forget_bias``,
``return_sequences``,
``return_state``,
``go_backwards``,
``stateful``, ``unroll``,
``dropout``,
``recurrent_dropout``
``activation``,               Keras 2: the name as is (lstmcompat's names are tf_keras's).
``recurrent_activation``      Keras 3: a name (or ``{"class_name": "function", "config":
                              name}``) among those whose math is tf_keras's, and
                              ``"hard_sigmoid"`` -> ``"keras3_hard_sigmoid"``
                              (``relu6(x + 3) / 6``), ``"silu"`` -> ``"swish"``; any other
                              (a custom or unknown function) -> ``ValueError``
``dtype``                     a name or a dtype policy dict (``Policy``, ``DTypePolicy``,
                              ``FloatDTypePolicy``) naming ``float16``, ``bfloat16``,
                              ``float32`` or ``float64``; a mixed (``mixed_float16``:
                              float16 math on float32 weights) or quantized policy ->
                              ``ValueError``
``*_initializer``             kept when lstmcompat knows it (Keras 3's ``input_axes`` /
                              ``output_axes`` dropped when ``null``), else dropped with a
                              warning: initializers do not matter once the weights are set
``*_regularizer``,            kept when lstmcompat knows them, else dropped with a
``*_constraint``              warning: they do not change the layer's outputs
``time_major``,               (Keras 2) the same argument (``implementation`` 0 is 1)
``implementation``,
``batch_input_shape``
``enable_caching_device``     (Keras 2) dropped: where TF cached variables
``seed``                      (Keras 3) dropped: the dropout RNG's seed (training only;
                              lstmcompat's dropout draws from torch's RNG)
``use_cudnn``                 (Keras 3) dropped: which backend kernel runs (same math)
``zero_output_for_mask``      the layer's ``zero_output_for_mask`` (``true``: masked
                              steps output zeros; tf_keras stores it only when true)
``batch_shape``               (Keras 3) as ``batch_input_shape``
anything else                 ``ValueError`` naming the key
============================  ==========================================================
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from .._keras import constraints as _constraints
from .._keras import initializers as _initializers
from .._keras import regularizers as _regularizers
from .._keras.bidirectional import Bidirectional
from .._keras.cudnn_lstm import CuDNNLSTM
from .._keras.lstm import LSTM
from ._source import KerasLayer, open_source

__all__ = ["bidirectional_from_config", "cudnn_from_config", "layer_from_config",
           "load_keras_layers"]

#: Keys passed to ``LSTM`` as they are, in both Keras versions.
_SAME = ("name", "trainable", "units", "use_bias", "unit_forget_bias", "return_sequences",
         "return_state", "go_backwards", "stateful", "unroll", "dropout", "recurrent_dropout")
_INITIALIZERS = ("kernel_initializer", "recurrent_initializer", "bias_initializer")
_REGULARIZERS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                 "activity_regularizer")
_CONSTRAINTS = ("kernel_constraint", "recurrent_constraint", "bias_constraint")
_KERAS2_ONLY = ("time_major", "implementation", "batch_input_shape")
#: Keys that do not change what the layer computes at inference (see the module docstring).
_DROPPED = {2: ("enable_caching_device",), 3: ("seed", "use_cudnn")}

#: Keras 3 activation names whose math is that of lstmcompat's name (checked against
#: Keras 3's values and gradients in the tests); ``hard_sigmoid`` is Keras 3's own.
_KERAS3_ACTIVATIONS = {
    "elu": "elu", "exponential": "exponential", "gelu": "gelu",
    "hard_sigmoid": "keras3_hard_sigmoid", "leaky_relu": "leaky_relu", "linear": "linear",
    "mish": "mish", "relu": "relu", "relu6": "relu6", "selu": "selu", "sigmoid": "sigmoid",
    "silu": "swish", "softplus": "softplus", "softsign": "softsign", "swish": "swish",
    "tanh": "tanh",
}
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_POLICY_CLASSES = ("Policy", "DTypePolicy", "FloatDTypePolicy")


def _activation(value: Any, key: str, version: int) -> Any:
    name = value
    if isinstance(value, Mapping):
        if value.get("class_name") == "function" and isinstance(value.get("config"), str):
            name = value["config"]
        else:
            raise ValueError(f"`{key}`: the activation {dict(value)!r} is not a Keras "
                             f"built-in (a custom activation cannot be rebuilt)")
    if version == 2 or name is None:
        return name
    if not isinstance(name, str) or name not in _KERAS3_ACTIVATIONS:
        raise ValueError(f"`{key}`: Keras 3's activation {name!r} has no lstmcompat "
                         f"equivalent (known: {sorted(_KERAS3_ACTIVATIONS)})")
    return _KERAS3_ACTIVATIONS[name]


def _dtype(value: Any) -> str | None:
    name = value
    if isinstance(value, Mapping):
        inner = value.get("config")
        if value.get("class_name") not in _POLICY_CLASSES or not isinstance(inner, Mapping):
            raise ValueError(f"`dtype`: the dtype policy {dict(value)!r} cannot be honoured "
                             f"(expected a float policy: {', '.join(_FLOAT_DTYPES)})")
        name = inner.get("name")
    if name is None:
        return None
    if name not in _FLOAT_DTYPES:
        raise ValueError(f"`dtype`: the dtype policy {name!r} cannot be honoured (lstmcompat "
                         f"computes in the weights' dtype; expected one of "
                         f"{', '.join(_FLOAT_DTYPES)})")
    return name


def _utility(value: Any, key: str, get: Any) -> Any:
    """A serialized initializer / regularizer / constraint, or ``None`` (with a warning)
    when lstmcompat does not know it."""
    if value is None:
        return None
    ident = value
    if isinstance(value, Mapping) and isinstance(value.get("config"), Mapping):
        config = {k: v for k, v in value["config"].items()
                  if not (k in ("input_axes", "output_axes") and v is None)}  # Keras 3 only
        ident = {"class_name": value.get("class_name"), "config": config}
    try:
        get(ident)
    except (ValueError, TypeError, KeyError) as e:
        warnings.warn(f"`{key}`: {value!r} is not known to lstmcompat and is dropped (it "
                      f"does not change the layer's outputs): {e}", stacklevel=4)
        return None
    return ident


def layer_from_config(class_name: str, config: Mapping[str, Any], keras_version: int) -> LSTM:
    """An :class:`lstmcompat.LSTM` built from a Keras ``LSTM`` layer config as files store it.

    Args:
        class_name: the layer's class name in the model config (``"LSTM"``).
        config: the layer's ``config`` dict (tf_keras's ``get_config()`` or Keras 3's
            serialized config; see the module docstring for how each key is read).
        keras_version: ``2`` (tf_keras) or ``3`` (Keras 3): the names differ (Keras
            3's ``"hard_sigmoid"`` is ``"keras3_hard_sigmoid"`` here).

    Returns:
        The layer, not built (its weights are created by ``build`` or the first call).

    Raises:
        ValueError: not an ``LSTM`` config, an unknown ``keras_version``, or a key whose
            value changes the math and cannot be honoured (the message names it).
        TypeError: ``config`` is not a dict.
    """
    if class_name != "LSTM":
        raise ValueError(f"`class_name` must be 'LSTM', got {class_name!r}")
    if keras_version not in (2, 3):
        raise ValueError(f"`keras_version` must be 2 (tf_keras) or 3 (Keras 3), "
                         f"got {keras_version!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a dict (a Keras layer config), "
                        f"got {type(config).__name__}")
    kwargs: dict[str, Any] = {}
    zero_output = False
    for key, value in config.items():
        if key in _SAME:
            kwargs[key] = value
        elif key in ("activation", "recurrent_activation"):
            kwargs[key] = _activation(value, key, keras_version)
        elif _shared_key(key, value, kwargs):
            continue
        elif key in _DROPPED[keras_version]:
            continue
        elif keras_version == 2 and key in _KERAS2_ONLY:
            kwargs[key] = 1 if key == "implementation" and value == 0 else value
        elif key == "zero_output_for_mask":
            zero_output = bool(value)
        elif keras_version == 3 and key == "batch_shape":
            kwargs["batch_input_shape"] = value
        else:
            raise ValueError(f"`{key}`: an LSTM config key lstmcompat does not know (Keras "
                             f"{keras_version}); it may change the layer's math")
    layer = LSTM(**_without_dropped_initializers(kwargs))
    layer.zero_output_for_mask = zero_output
    return layer


def _shared_key(key: str, value: Any, kwargs: dict[str, Any]) -> bool:
    """Read ``dtype`` and the initializers, regularizers and constraints (the keys
    every Keras LSTM-family config has) into ``kwargs``; ``False`` for other keys."""
    if key == "dtype":
        kwargs[key] = _dtype(value)
    elif key in _INITIALIZERS:
        kwargs[key] = _utility(value, key, _initializers.get)
    elif key in _REGULARIZERS:
        kwargs[key] = _utility(value, key, _regularizers.get)
    elif key in _CONSTRAINTS:
        kwargs[key] = _utility(value, key, _constraints.get)
    else:
        return False
    return True


def _without_dropped_initializers(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Initializers dropped (unknown) leave the layer's default."""
    return {k: v for k, v in kwargs.items() if not (k in _INITIALIZERS and v is None)}


#: CuDNNLSTM config keys passed as they are (tf_keras only: Keras 3 has no CuDNNLSTM).
_CUDNN_SAME = ("name", "trainable", "units", "unit_forget_bias", "return_sequences",
               "return_state", "go_backwards", "stateful", "time_major", "batch_input_shape")


def cudnn_from_config(config: Mapping[str, Any]) -> CuDNNLSTM:
    """An :class:`lstmcompat.CuDNNLSTM` from a tf_keras ``CuDNNLSTM`` layer config (keys
    read as :func:`layer_from_config` reads them; any other key -> ``ValueError``)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a dict (a Keras layer config), "
                        f"got {type(config).__name__}")
    kwargs: dict[str, Any] = {}
    for key, value in config.items():
        if key in _CUDNN_SAME:
            kwargs[key] = value
        elif not _shared_key(key, value, kwargs):
            raise ValueError(f"`{key}`: a CuDNNLSTM config key lstmcompat does not know; it "
                             "may change the layer's math")
    return CuDNNLSTM(**_without_dropped_initializers(kwargs))


#: Layer classes a Bidirectional of a file may wrap.
_WRAPPABLE = ("LSTM", "CuDNNLSTM")


def _wrapped(entry: Any, keras_version: int, key: str) -> LSTM:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("config"), Mapping):
        raise ValueError(f"`{key}`: expected a serialized layer {{class_name, config}}, "
                         f"got {entry!r}")
    config = dict(entry["config"])
    # Bidirectional sets it to return_sequences itself (Keras 3 stores it)
    config.pop("zero_output_for_mask", None)
    config.pop("build_config", None)
    if entry.get("class_name") == "CuDNNLSTM" and keras_version == 2:
        return cudnn_from_config(config)
    if entry.get("class_name") == "LSTM":
        return layer_from_config("LSTM", config, keras_version)
    raise ValueError(f"`{key}`: a Bidirectional around {entry.get('class_name')!r} is not "
                     f"rebuilt (lstmcompat's Bidirectional wraps {' or '.join(_WRAPPABLE)})")


def bidirectional_from_config(config: Mapping[str, Any], keras_version: int) -> Bidirectional:
    """An :class:`lstmcompat.Bidirectional` from a stored Keras ``Bidirectional``
    config: its ``layer`` (and ``backward_layer``) rebuilt by :func:`layer_from_config`
    or :func:`cudnn_from_config`, ``merge_mode``, ``name``, ``trainable``, ``dtype``.
    Keras 3 stores the copies' own configs (``forward_lstm``, ``backward_lstm``):
    their names are kept.

    Raises:
        ValueError: a wrapped layer that is not an ``LSTM`` or ``CuDNNLSTM``, or a key
            that cannot be honoured.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a dict (a Keras layer config), "
                        f"got {type(config).__name__}")
    kwargs: dict[str, Any] = {}
    names = []
    for key, value in config.items():
        if key in ("layer", "backward_layer"):
            kwargs[key] = _wrapped(value, keras_version, key)
            names.append(kwargs[key].name)
        elif key in ("name", "trainable", "merge_mode"):
            kwargs[key] = value
        elif key == "dtype":
            kwargs[key] = _dtype(value)
        elif key == "num_constants" and not value:
            continue
        elif key in ("batch_input_shape", "batch_shape"):
            kwargs["batch_input_shape"] = value
        else:
            raise ValueError(f"`{key}`: a Bidirectional config key lstmcompat does not know")
    if "layer" not in kwargs:
        raise ValueError("a Bidirectional config needs its `layer`")
    bi = Bidirectional(**kwargs)
    if keras_version == 3:
        bi.forward_layer.name = names[0]
        if len(names) > 1:
            bi.backward_layer.name = names[1]
    return bi


def _inner_class(record: KerasLayer) -> Any:
    layer = record.config.get("layer") if isinstance(record.config, Mapping) else None
    return layer.get("class_name") if isinstance(layer, Mapping) else None


def _build(record: KerasLayer, source: Any) -> LSTM | Bidirectional:
    if record.class_name == "Bidirectional":
        layer: Any = bidirectional_from_config(record.config, record.keras_version)
    elif record.class_name == "CuDNNLSTM":
        layer = cudnn_from_config(record.config)
    else:
        layer = layer_from_config(record.class_name, record.config, record.keras_version)
    if not record.weights:
        raise ValueError(f"layer {record.name!r} has no weights in {str(source.path)!r}")
    arrays = [source.read(name) for name in record.weights]
    depth = arrays[0].shape[0]
    layer.build((None, None, depth))
    if len(arrays) != len(layer.weights):
        raise ValueError(f"layer {record.name!r}: the file has {len(arrays)} weights "
                         f"({', '.join(record.weights)}), the layer {len(layer.weights)}")
    layer.set_weights(arrays)
    return layer


#: Layers holding LSTMs that are not rebuilt yet (a warning names them).
_NOT_YET = {
    "RNN": "generic RNN layers are not rebuilt",
}
#: The layer classes rebuilt.
_REBUILT = ("LSTM", "CuDNNLSTM", "Bidirectional")


def load_keras_layers(path: Any) -> dict[str, LSTM | Bidirectional]:
    """Every LSTM layer of a Keras model file, rebuilt with its config and weights.

    Reads files that carry a model config: a tf_keras full-model ``.h5``
    (``model.save("m.h5")``) and a Keras 3 ``.keras`` archive. Each ``LSTM`` layer
    becomes an :class:`lstmcompat.LSTM` built by :func:`layer_from_config` from its
    stored config, with the input depth of its stored kernel and its weights set bit
    for bit; each tf_keras ``CuDNNLSTM`` a :class:`lstmcompat.CuDNNLSTM`
    (:func:`cudnn_from_config`), each ``Bidirectional`` of an ``LSTM`` or
    ``CuDNNLSTM`` (tf_keras or Keras 3) a :class:`lstmcompat.Bidirectional`
    (:func:`bidirectional_from_config`) with its weights forward then backward.
    Other layers are skipped; ``RNN`` layers and a ``Bidirectional`` of another
    layer with a warning (not supported).

    Args:
        path: the file.

    Returns:
        ``{layer name: layer}`` in the model's layer order.

    Raises:
        ValueError: a file without a model config (a weights-only file or a
            checkpoint), a layer config that cannot be honoured (see
            :func:`layer_from_config`), or stored weights that do not fit the layer.
        FileNotFoundError, TypeError: as :func:`lstmcompat.load_variables`.

    Examples:
        >>> layers = lstmcompat.load_keras_layers("model.keras")  # doctest: +SKIP
        >>> layers["lstm"](torch.zeros(1, 5, 3))  # doctest: +SKIP
    """
    source = open_source(path)
    records = source.keras_layers()
    if records is None:
        raise ValueError(f"{str(source.path)!r} has no Keras model config ({source.kind}): "
                         f"a weights-only file: build the layers yourself and use "
                         f"lstmcompat.restore")
    layers: dict[str, LSTM | Bidirectional] = {}
    for record in records:
        if record.class_name in _NOT_YET:
            warnings.warn(f"layer {record.name!r} ({record.class_name}) skipped: "
                          f"{_NOT_YET[record.class_name]}", stacklevel=2)
            continue
        if record.class_name == "Bidirectional" and _inner_class(record) not in _WRAPPABLE:
            warnings.warn(f"layer {record.name!r} (Bidirectional) skipped: it wraps a "
                          f"{_inner_class(record)!r} layer; lstmcompat's Bidirectional wraps "
                          f"{' or '.join(_WRAPPABLE)}", stacklevel=2)
            continue
        if record.class_name not in _REBUILT:
            continue
        if record.name in layers:
            raise ValueError(f"{str(source.path)!r} has two LSTM layers named {record.name!r}")
        layers[record.name] = _build(record, source)
    return layers
