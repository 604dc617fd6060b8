"""Keras weight constraints (``tf_keras.constraints``) with the same math, on torch.

A constraint maps a weight tensor to its projection (``w -> w'``). Keras applies
each variable's constraint right after the optimizer updates it; here
:func:`apply_constraints` does that for a module tree, and
:func:`attach_constraints` hooks it after every ``optimizer.step()``.

The module protocol
-------------------
A module that has constrained parameters keeps a dict attribute ``_constraints``
mapping the *attribute name* of each parameter on that module to a constraint
callable, e.g. the LSTM layer built with ``kernel_constraint="max_norm"`` has
``layer._constraints == {"kernel": MaxNorm()}``. Entries whose constraint is
``None``, or whose parameter is not there yet (layer not built) or is ``None``, are
skipped.

Examples:
    >>> import torch
    >>> from lstmcompat._keras import constraints
    >>> lin = torch.nn.Linear(3, 2)
    >>> lin._constraints = {"weight": constraints.get("non_neg")}
    >>> opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    >>> handle = constraints.attach_constraints(opt, lin)
    >>> lin(torch.randn(4, 3)).sum().backward(); opt.step()
    >>> bool((lin.weight >= 0).all())
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from lstmcompat._keras import from_dict, function_dict, keras_dict

__all__ = [
    "Constraint",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "RadialConstraint",
    "UnitNorm",
    "apply_constraints",
    "attach_constraints",
    "deserialize",
    "get",
    "serialize",
]

#: ``tf.keras.backend.epsilon()``.
EPSILON = 1e-7

Axis = int | Sequence[int]
ConstraintLike = Callable[[torch.Tensor], torch.Tensor]


def _dims(axis: Axis) -> int | tuple[int, ...]:
    return axis if isinstance(axis, int) else tuple(int(a) for a in axis)


def _norms(w: torch.Tensor, axis: Axis) -> torch.Tensor:
    """``backend.sqrt(reduce_sum(square(w), axis, keepdims=True))`` (sqrt of max(x, 0))."""
    return torch.sqrt(torch.clamp_min(torch.sum(torch.square(w), dim=_dims(axis), keepdim=True), 0.0))


def _clip(x: torch.Tensor, min_value: float | None, max_value: float | None) -> torch.Tensor:
    """``backend.clip``: ``max_value < min_value`` means ``max_value = min_value``."""
    if min_value is not None and max_value is not None and max_value < min_value:
        max_value = min_value
    return torch.clamp(x, min=min_value, max=max_value)


class Constraint:
    """Base class: ``tf.keras.constraints.Constraint``; the identity projection."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Constraint:
        """``cls(**config)``."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MaxNorm(Constraint):
    """``tf.keras.constraints.MaxNorm`` (``"max_norm"``, ``"maxnorm"``, ``"MaxNorm"``).

    ``norms = sqrt(sum(w**2, axis, keepdims=True))``;
    ``w * (clip(norms, 0, max_value) / (epsilon + norms))`` with ``epsilon = 1e-7``.
    For a kernel ``(input_dim, units)``, ``axis=0`` bounds each unit's incoming
    weight vector.

    Args:
        max_value: The maximum norm.
        axis: Axis or axes along which the norms are taken.
    """

    def __init__(self, max_value: float = 2, axis: Axis = 0) -> None:
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        desired = _clip(norms, 0, self.max_value)
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """``tf.keras.constraints.NonNeg`` (``"non_neg"``, ``"nonneg"``, ``"NonNeg"``).

    ``w * (w >= 0)``: negative entries become 0 (``-0.0`` stays ``-0.0``).
    (TF casts the mask to float32 and so fails on float64 weights; this works.)
    """

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w * (w >= 0.0).to(w.dtype)


class UnitNorm(Constraint):
    """``tf.keras.constraints.UnitNorm`` (``"unit_norm"``, ``"unitnorm"``, ``"UnitNorm"``).

    ``w / (epsilon + sqrt(sum(w**2, axis, keepdims=True)))``, ``epsilon = 1e-7``.

    Args:
        axis: Axis or axes along which the norms are taken.
    """

    def __init__(self, axis: Axis = 0) -> None:
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w / (EPSILON + _norms(w, self.axis))

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """``tf.keras.constraints.MinMaxNorm`` (``"min_max_norm"``, ``"MinMaxNorm"``).

    ``desired = rate * clip(norms, min_value, max_value) + (1 - rate) * norms``;
    ``w * (desired / (epsilon + norms))``, ``epsilon = 1e-7``.

    Args:
        min_value: The minimum norm.
        max_value: The maximum norm.
        rate: 1.0 enforces the bounds strictly; below 1 moves towards them.
        axis: Axis or axes along which the norms are taken.
    """

    def __init__(
        self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: Axis = 0
    ) -> None:
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        desired = self.rate * _clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


class RadialConstraint(Constraint):
    """``tf.keras.constraints.RadialConstraint`` (``"radial_constraint"``).

    For a conv kernel ``(k, k, channels, filters)``, every 2D ``k x k`` slice gets
    one value per square ring around its centre, copied from the slice's diagonal
    exactly as tf_keras's implementation does: with ``s = k // 2``, the centre
    (1x1 for odd ``k``, 2x2 for even ``k``) takes ``w[s-1, s-1]`` and ring ``j >= 1``
    takes ``w[s+j-1, s+j-1]`` (odd ``k``) or ``w[s+j, s+j]`` (even ``k``). (Its
    docstring describes a different layout; this follows the code.)

    Raises:
        ValueError: (on call) a weight that is not 4D, or whose first two
            dimensions are not equal and at least 2 (where TF fails in a reshape).
    """

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        if w.dim() != 4:
            raise ValueError(
                "The weight tensor must have rank 4. "
                f"Received weight tensor with shape: {tuple(w.shape)}"
            )
        height, width = w.shape[0], w.shape[1]
        if height != width or height < 2:
            raise ValueError(
                "RadialConstraint needs square kernels of size >= 2, as tf_keras "
                f"(which fails in a reshape otherwise). Received weight tensor with "
                f"shape: {tuple(w.shape)}"
            )
        s = height // 2
        pos = torch.arange(height, device=w.device)
        dist = torch.where(pos < s, s - 1 - pos, pos - s) if height % 2 == 0 else (pos - s).abs()
        ring = torch.maximum(dist[:, None], dist[None, :])
        offset = 0 if height % 2 == 0 else -1
        src = torch.where(ring == 0, s - 1, s + ring + offset)
        return w[src, src]


max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm
radial_constraint = RadialConstraint
maxnorm = MaxNorm
nonneg = NonNeg
unitnorm = UnitNorm

ALL_OBJECTS: dict[str, type[Constraint]] = {
    "Constraint": Constraint,
    "MaxNorm": MaxNorm,
    "NonNeg": NonNeg,
    "UnitNorm": UnitNorm,
    "MinMaxNorm": MinMaxNorm,
    "RadialConstraint": RadialConstraint,
    "max_norm": MaxNorm,
    "non_neg": NonNeg,
    "unit_norm": UnitNorm,
    "min_max_norm": MinMaxNorm,
    "radial_constraint": RadialConstraint,
    "maxnorm": MaxNorm,
    "nonneg": NonNeg,
    "unitnorm": UnitNorm,
}


def serialize(
    constraint: ConstraintLike | None, use_legacy_format: bool = False
) -> dict[str, Any] | None:
    """``tf.keras.constraints.serialize``: the dict a v1 LSTM's ``get_config`` holds.

    Returns:
        ``None`` for ``None``; e.g. ``{"module": "keras.constraints", "class_name":
        "MaxNorm", "config": {"max_value": 2, "axis": 0}, "registered_name": None}``;
        for a plain function, ``{"module": "builtins", "class_name": "function",
        "config": fn.__name__, "registered_name": "function"}``.
    """
    if constraint is None:
        return None
    if isinstance(constraint, Constraint):
        return keras_dict(constraint, "keras.constraints", use_legacy_format=use_legacy_format)
    if callable(constraint):
        return function_dict(constraint)
    raise ValueError(f"Could not interpret constraint function identifier: {constraint}")


def deserialize(
    config: Mapping[str, Any] | str, custom_objects: Mapping[str, Any] | None = None
) -> Constraint:
    """``tf.keras.constraints.deserialize``: a constraint from a name or config dict."""
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    return from_dict(config, ALL_OBJECTS, "constraint", custom_objects)


def get(identifier: Any) -> ConstraintLike | None:
    """``tf.keras.constraints.get``: resolve a constraint identifier.

    Args:
        identifier: ``None``; a name (``"max_norm"``, ``"non_neg"``,
            ``"unit_norm"``, ``"min_max_norm"``, ``"radial_constraint"``, the
            CamelCase class names, ``"maxnorm"``, ``"nonneg"``, ``"unitnorm"``); a
            ``{"class_name": ..., "config": ...}`` dict (with or without
            ``"module"``); a constraint instance or any callable ``w -> w'``
            (returned as is); a constraint class (instantiated with no arguments).

    Returns:
        The constraint, or ``None`` for ``None``.

    Raises:
        ValueError: An unknown name or malformed dict (``"Unknown constraint:
            'foo'"``), or an identifier of another type (``"Could not interpret
            constraint function identifier: 3"``), as tf_keras.
        TypeError: A config with arguments the class does not take.
    """
    if identifier is None:
        return None
    if isinstance(identifier, (str, Mapping)):
        return deserialize(identifier)
    if callable(identifier):
        if isinstance(identifier, type) and issubclass(identifier, Constraint):
            return identifier()
        return identifier
    raise ValueError(f"Could not interpret constraint function identifier: {identifier}")


def apply_constraints(module: torch.nn.Module) -> None:
    """Project every constrained parameter of a module tree in place (Keras semantics).

    Walks ``module.modules()``; for each submodule with a dict attribute
    ``_constraints`` (parameter attribute name -> constraint callable), replaces each
    named parameter's data by ``constraint(param.data)`` under ``torch.no_grad()``
    (``param.data.copy_(...)``, so optimizer state and references stay valid). A
    parameter shared by several modules is projected once per call. The TF
    equivalent is the ``var.assign(var.constraint(var))`` Keras optimizers run after
    each update.

    Args:
        module: The root module.

    Raises:
        TypeError: ``_constraints`` names an attribute that is not a tensor, or maps
            to something that is not callable.
        ValueError: A constraint returned a tensor of another shape.

    Examples:
        >>> import torch, lstmcompat
        >>> layer = lstmcompat.LSTM(4, kernel_constraint="non_neg", input_shape=(None, 3))
        >>> with torch.no_grad():
        ...     _ = layer.kernel.fill_(-1.0)
        >>> lstmcompat.apply_constraints(layer)
        >>> bool((layer.kernel == 0).all())
        True
    """
    done: set[int] = set()
    with torch.no_grad():
        for sub in module.modules():
            table = getattr(sub, "_constraints", None)
            if not isinstance(table, dict):
                continue
            for name, constraint in table.items():
                if constraint is None:
                    continue
                param = getattr(sub, name, None)
                if param is None or id(param) in done:
                    continue
                if not isinstance(param, torch.Tensor):
                    raise TypeError(
                        f"`_constraints` of {type(sub).__name__} names {name!r}, which is "
                        f"a {type(param).__name__}, not a parameter tensor."
                    )
                if not callable(constraint):
                    raise TypeError(
                        f"The constraint for {name!r} of {type(sub).__name__} is not "
                        f"callable: {constraint!r}."
                    )
                new = constraint(param.data)
                if tuple(new.shape) != tuple(param.shape):
                    raise ValueError(
                        f"The constraint {constraint!r} for {name!r} returned shape "
                        f"{tuple(new.shape)}; expected the parameter's shape "
                        f"{tuple(param.shape)}."
                    )
                param.data.copy_(new)
                done.add(id(param))


def attach_constraints(optimizer: torch.optim.Optimizer, module: torch.nn.Module) -> RemovableHandle:
    """Apply ``module``'s constraints after every ``optimizer.step()``.

    Registers ``lambda *a, **k: apply_constraints(module)`` with
    ``optimizer.register_step_post_hook``: the Keras order (update, then project).

    Args:
        optimizer: A ``torch.optim.Optimizer``.
        module: The module tree whose ``_constraints`` are applied.

    Returns:
        The hook handle; ``handle.remove()`` detaches it.

    Examples:
        >>> import torch, lstmcompat
        >>> layer = lstmcompat.LSTM(4, kernel_constraint="non_neg", input_shape=(None, 3))
        >>> opt = torch.optim.SGD(layer.parameters(), lr=10.0)
        >>> handle = lstmcompat.attach_constraints(opt, layer)
        >>> layer(torch.randn(2, 5, 3)).sum().backward()
        >>> opt.step()
        >>> bool((layer.kernel >= 0).all())
        True
        >>> handle.remove()
    """
    return optimizer.register_step_post_hook(lambda *a, **k: apply_constraints(module))
