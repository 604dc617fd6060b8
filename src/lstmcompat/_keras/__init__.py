"""Keras 2 (tf_keras) utility objects on torch: initializers, regularizers, constraints.

The three submodules mirror ``tf_keras.initializers``, ``tf_keras.regularizers`` and
``tf_keras.constraints`` as ``tf.compat.v1.keras.layers.LSTM`` uses them under
``TF_USE_LEGACY_KERAS=1`` (TF 2.21 with eager/TF2 behaviour, so the *v2* classes).
This file holds the small serialization helpers they share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def keras_dict(obj: Any, module: str, *, use_legacy_format: bool = False) -> dict[str, Any]:
    """The dict ``tf_keras``'s ``serialize_keras_object`` writes for a built-in object.

    Args:
        obj: An object with a ``get_config()`` method; its class name is the Keras
            class name.
        module: The Keras module name, e.g. ``"keras.initializers"``.
        use_legacy_format: If true, only ``class_name`` and ``config`` (the format of
            ``serialize(..., use_legacy_format=True)`` and of TF < 2.13 configs).

    Returns:
        ``{"module": module, "class_name": ..., "config": ..., "registered_name": None}``.
    """
    if use_legacy_format:
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    return {
        "module": module,
        "class_name": type(obj).__name__,
        "config": obj.get_config(),
        "registered_name": None,
    }


def function_dict(fn: Callable[..., Any]) -> dict[str, Any]:
    """What ``serialize_keras_object`` writes for a plain (unregistered) function."""
    return {
        "module": "builtins",
        "class_name": "function",
        "config": getattr(fn, "__name__", type(fn).__name__),
        "registered_name": "function",
    }


def from_dict(
    config: Mapping[str, Any],
    objects: Mapping[str, Any],
    kind: str,
    custom_objects: Mapping[str, Any] | None = None,
) -> Any:
    """Deserialize a ``{"class_name": ..., "config": ...}`` dict like ``tf_keras``.

    Both the new format (with ``"module"`` and ``"registered_name"`` keys, what
    TF >= 2.13 writes) and the legacy format (only ``class_name`` and ``config``)
    are accepted.

    Args:
        config: The dict.
        objects: Keras names (class names, snake_case aliases) to classes or
            factory functions.
        kind: ``"initializer"``, ``"regularizer"`` or ``"constraint"`` (for messages).
        custom_objects: Extra names to classes, looked up first.

    Returns:
        ``cls.from_config(config["config"])`` for a class, ``fn(**config)`` for a
        factory function.

    Raises:
        ValueError: Missing keys, or an unknown ``class_name`` (tf_keras raises
            ``ValueError("Unknown <kind>: '<name>'...")``).
        TypeError: The inner config has arguments the class does not take.
    """
    has_module = "module" in config
    if "class_name" not in config or ("config" not in config and not has_module):
        raise ValueError(
            f"Improper config format for {dict(config)}. Expecting python dict "
            "contains `class_name` and `config` as keys"
        )
    name = config["class_name"]
    inner = config.get("config") or {}
    table = {**objects, **(custom_objects or {})}
    if name == "function" and isinstance(inner, str):
        raise ValueError(
            f"Unknown {kind}: {inner!r}. A plain function serialized as "
            f"{dict(config)} cannot be deserialized by name; pass the callable itself."
        )
    if not isinstance(name, str) or name not in table:
        raise ValueError(
            f"Unknown {kind}: {name!r}. Expected one of {sorted(objects)}, or a "
            "class given in `custom_objects`."
        )
    target = table[name]
    if not isinstance(inner, Mapping):
        raise TypeError(f"The `config` of a {kind} must be a dict; got {inner!r}.")
    if hasattr(target, "from_config"):
        return target.from_config(dict(inner))
    return target(**inner)
