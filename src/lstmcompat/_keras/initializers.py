"""Keras initializers (``tf_keras.initializers``) with the same math, on torch.

These are the classes ``tf.compat.v1.keras.layers.LSTM`` gets from
``tf_keras.initializers.get`` in TF 2.21 with ``TF_USE_LEGACY_KERAS=1``. With TF2
behaviour enabled (the default) that is the *v2* family
(``tf_keras.src.initializers.initializers``), not ``tf.compat.v1.*_initializer``;
the math of both families is the same, only their configs differ (the v1 ones carry
a ``dtype``, which ``from_config`` drops, so old configs load too).

Differences from TensorFlow, by design:

* Random draws come from torch's global RNG (``torch.manual_seed`` makes them
  reproducible), so the *values* differ from TF's; the distributions are the same.
  An unseeded TF initializer instance returns identical values on every call; ours
  draws fresh values on each call. A seeded one (``seed=3``) returns the same values
  on every call, in both.
* ``TruncatedNormal`` samples by the inverse CDF instead of TF's rejection; both give
  the normal distribution restricted to ``[mean - 2 stddev, mean + 2 stddev]``.

Examples:
    >>> import torch
    >>> from lstmcompat._keras import initializers
    >>> _ = torch.manual_seed(0)
    >>> w = initializers.get("orthogonal")((4, 16))
    >>> torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)
    True
    >>> initializers.serialize(initializers.get("glorot_uniform"))["class_name"]
    'GlorotUniform'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lstmcompat._keras import from_dict, function_dict, keras_dict

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "compute_fans",
    "deserialize",
    "get",
    "serialize",
]

Shape = Sequence[int]
DTypeLike = torch.dtype | str | np.dtype | None
InitializerLike = Callable[..., torch.Tensor]

# Truncating N(0, 1) to [-2, 2] leaves a standard deviation of 0.8796...; Keras divides
# the wanted stddev by it so that the *truncated* distribution has that stddev.
TRUNCATED_NORMAL_STDDEV_CORRECTION = 0.87962566103423978


def _as_dtype(dtype: DTypeLike) -> torch.dtype:
    """``None`` -> float32 (Keras ``floatx()``); torch dtypes, names and NumPy dtypes."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    result = getattr(torch, name, None)
    if not isinstance(result, torch.dtype):
        raise TypeError(
            f"Invalid `dtype` {dtype!r}: expected a torch.dtype or its name, e.g. "
            "torch.float32 or 'float32'."
        )
    return result


def _float_dtype(dtype: DTypeLike) -> torch.dtype:
    dt = _as_dtype(dtype)
    if not dt.is_floating_point:
        raise ValueError(f"Expected floating point type, got {dt}.")
    return dt


def _shape(shape: Shape) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"`shape` must be a sequence of ints; got {shape!r}.") from None


def _check_kwargs(cls_name: str, kwargs: Mapping[str, Any]) -> None:
    if kwargs:
        raise TypeError(
            f"Unknown keyword arguments: {list(kwargs)} for {cls_name}. Allowed "
            "keyword arguments: ['device']."
        )


def _generator(seed: int | None, device: torch.device | str | None) -> torch.Generator | None:
    """``None`` (torch's global RNG) when unseeded, else a fresh seeded generator.

    A fresh generator per call makes a seeded initializer return the same values on
    every call, as a seeded tf_keras initializer does.
    """
    if seed is None:
        return None
    gen = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    gen.manual_seed(int(seed))
    return gen


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 are sampled in float32 and cast (torch lacks some half ops)."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _uniform(shape, minval, maxval, dtype, device, gen) -> torch.Tensor:
    out = torch.empty(shape, dtype=_work_dtype(dtype), device=device)
    return out.uniform_(minval, maxval, generator=gen).to(dtype)


def _normal(shape, mean, stddev, dtype, device, gen) -> torch.Tensor:
    out = torch.empty(shape, dtype=_work_dtype(dtype), device=device)
    return out.normal_(mean, stddev, generator=gen).to(dtype)


def _truncated_normal(shape, mean, stddev, dtype, device, gen) -> torch.Tensor:
    """N(mean, stddev) restricted to [mean - 2 stddev, mean + 2 stddev] (as TF's op).

    TF redraws values outside the interval; we invert the normal CDF on a uniform
    draw over the interval's CDF range, which has the same distribution. Sampled in
    float64 and rounded once to ``dtype``.
    """
    lo = 0.5 * (1.0 + math.erf(-2.0 / math.sqrt(2.0)))
    u = torch.empty(shape, dtype=torch.float64, device=device).uniform_(lo, 1.0 - lo, generator=gen)
    z = (torch.special.erfinv(2.0 * u - 1.0) * math.sqrt(2.0)).clamp_(-2.0, 2.0)
    return (z * stddev + mean).to(dtype)


def compute_fans(shape: Shape) -> tuple[int, int]:
    """Keras ``_compute_fans``: ``(fan_in, fan_out)`` of a weight shape.

    Rank 0: ``(1, 1)``; rank 1: ``(n, n)``; rank 2: ``(shape[0], shape[1])``;
    rank > 2 (convolutions): the receptive field ``prod(shape[:-2])`` times
    ``shape[-2]`` and ``shape[-1]``. The LSTM kernel ``(features, 4*units)`` thus
    has ``fan_in = features`` and ``fan_out = 4*units`` (the whole fused matrix).
    """
    shape = _shape(shape)
    if len(shape) < 1:
        fan_in = fan_out = 1
    elif len(shape) == 1:
        fan_in = fan_out = shape[0]
    elif len(shape) == 2:
        fan_in, fan_out = shape
    else:
        receptive_field_size = math.prod(shape[:-2])
        fan_in = shape[-2] * receptive_field_size
        fan_out = shape[-1] * receptive_field_size
    return int(fan_in), int(fan_out)


class Initializer:
    """Base class: ``tf.keras.initializers.Initializer``.

    Subclasses implement ``__call__(shape, dtype=torch.float32, *, device=None)``
    returning a new tensor, and ``get_config()`` returning the constructor arguments.
    """

    def __call__(
        self,
        shape: Shape,
        dtype: DTypeLike = torch.float32,
        *,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        raise NotImplementedError("Initializer subclasses must implement the `__call__()` method.")

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serializable (``Initializer.get_config``)."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Initializer:
        """``cls(**config)``, ignoring a ``dtype`` key (written by TF1-era configs)."""
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()  # type: ignore[attr-defined]

    __hash__ = object.__hash__


class Zeros(Initializer):
    """All zeros: ``tf.keras.initializers.Zeros`` (``"zeros"``, ``"zero"``)."""

    def __call__(self, shape, dtype=torch.float32, *, device=None, **kwargs):
        _check_kwargs(type(self).__name__, kwargs)
        return torch.zeros(_shape(shape), dtype=_as_dtype(dtype), device=device)


class Ones(Initializer):
    """All ones: ``tf.keras.initializers.Ones`` (``"ones"``, ``"one"``)."""

    def __call__(self, shape, dtype=torch.float32, *, device=None, **kwargs):
        _check_kwargs(type(self).__name__, kwargs)
        return torch.ones(_shape(shape), dtype=_as_dtype(dtype), device=device)


class Constant(Initializer):
    """A constant: ``tf.keras.initializers.Constant(value=0)`` (``"constant"``).

    Like ``tf.constant(value, dtype, shape)``: a scalar fills the shape; an array
    with exactly ``prod(shape)`` elements is reshaped to it.

    Args:
        value: A Python scalar (or an array-like of the full size).
    """

    def __init__(self, value: Any = 0) -> None:
        self.value = value

    def __call__(self, shape, dtype=torch.float32, *, device=None, **kwargs):
        _check_kwargs(type(self).__name__, kwargs)
        shape = _shape(shape)
        dt = _as_dtype(dtype)
        value = torch.as_tensor(np.asarray(self.value), dtype=dt, device=device)
        if value.numel() == 1:
            return value.reshape(()).expand(shape).clone()
        if value.numel() != math.prod(shape):
            raise TypeError(
                f"Eager execution of tf.constant with unsupported shape. Tensor "
                f"{self.value!r} has {value.numel()} elements, but got `shape` {shape} "
                f"with {math.prod(shape)} elements."
            )
        return value.reshape(shape).clone()

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    """Uniform on ``[minval, maxval)``: ``tf.keras.initializers.RandomUniform``.

    Names ``"random_uniform"``, ``"uniform"``. Integer dtypes draw integers in
    ``[minval, maxval)`` as TF does.

    Args:
        minval: Lower bound (inclusive).
        maxval: Upper bound (exclusive).
        seed: If set, every call returns the same values.
    """

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        self.minval = minval
        self.maxval = maxval
        self.seed = seed

    def __call__(self, shape, dtype=torch.float32, *, device=None, **kwargs):
        _check_kwargs(type(self).__name__, kwargs)
        dt = _as_dtype(dtype)
        shape = _shape(shape)
        gen = _generator(self.seed, device)
        if dt.is_floating_point:
            return _uniform(shape, self.minval, self.maxval, dt, device, gen)
        if dt == torch.bool or dt.is_complex:
            raise ValueError(f"Expected float or integer dtype, got {dt}.")
        return torch.randint(
            int(self.minval), int(self.maxval), shape, dtype=dt, device=device, generator=gen
        )

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    """Normal ``N(mean, stddev)``: ``tf.keras.initializers.RandomNormal``.

    Names ``"random_normal"``, ``"normal"``.

    Args:
        mean: Mean.
        stddev: Standard deviation.
        seed: If set, every call returns the same values.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = mean
        self.stddev = stddev
        self.seed = seed

    def __call__(self, shape, dtype=torch.float32, *, device=None, **kwargs):
        _check_kwargs(type(self).__name__, kwargs)
        dt = _float_dtype(dtype)
        return _normal(_shape(shape), self.mean, self.stddev, dt, device, _generator(self.seed, device))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(Initializer):
    """Truncated normal: ``tf.keras.initializers.TruncatedNormal`` (``"truncated_normal"``).

    ``N(mean, stddev)`` restricted to ``[mean - 2*stddev, mean + 2*stddev]``;
    ``stddev`` is the deviation *before* truncation (the result's is
    ``0.8796 * stddev``), as TF.

    Args:
        mean: Mean.
        stddev: Standard deviation before truncation.
        seed: If set, every call returns the same values.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = mean
        self.stddev = stddev
        self.seed = seed

    def __call__(self, shape, dtype=torch.float32, *, device=None, **kwargs):
        _check_kwargs(type(self).__name__, kwargs)
        dt = _float_dtype(dtype)
        gen = _generator(self.seed, device)
        return _truncated_normal(_shape(shape), self.mean, self.stddev, dt, device, gen)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    """``tf.keras.initializers.VarianceScaling`` (``"variance_scaling"``).

    With ``n`` = ``fan_in``, ``fan_out`` or ``(fan_in + fan_out) / 2`` (by ``mode``,
    from :func:`compute_fans` on the full shape) and ``s = scale / max(1, n)``:

    * ``"truncated_normal"``: truncated normal with pre-truncation stddev
      ``sqrt(s) / 0.87962566103423978`` (so the result's stddev is ``sqrt(s)``);
    * ``"untruncated_normal"``: ``N(0, sqrt(s))``;
    * ``"uniform"``: uniform on ``[-sqrt(3 s), sqrt(3 s))``.

    Args:
        scale: Positive scaling factor.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"truncated_normal"`` (``"normal"`` is an alias),
            ``"untruncated_normal"`` or ``"uniform"``; case-insensitive.
        seed: If set, every call returns the same values.

    Raises:
        ValueError: ``scale <= 0``, or an unknown ``mode``/``distribution``.
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ) -> None:
        if scale <= 0.0:
            raise ValueError(f"`scale` must be positive float. Received: scale={scale}.")
        allowed_modes = {"fan_in", "fan_out", "fan_avg"}
        if mode not in allowed_modes:
            raise ValueError(
                f"Invalid `mode` argument: {mode}. Please use one of the {allowed_modes}."
            )
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        allowed_distributions = {"uniform", "truncated_normal", "untruncated_normal"}
        if distribution not in allowed_distributions:
            raise ValueError(
                f"Invalid `distribution` argument: {distribution}. "
                f"Allowed distributions: {allowed_distributions}."
            )
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.seed = seed

    def __call__(self, shape, dtype=torch.float32, *, device=None, **kwargs):
        _check_kwargs(type(self).__name__, kwargs)
        dt = _float_dtype(dtype)
        shape = _shape(shape)
        gen = _generator(self.seed, device)
        scale = self.scale
        fan_in, fan_out = compute_fans(shape)
        if self.mode == "fan_in":
            scale /= max(1.0, fan_in)
        elif self.mode == "fan_out":
            scale /= max(1.0, fan_out)
        else:
            scale /= max(1.0, (fan_in + fan_out) / 2.0)
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(scale) / TRUNCATED_NORMAL_STDDEV_CORRECTION
            return _truncated_normal(shape, 0.0, stddev, dt, device, gen)
        if self.distribution == "untruncated_normal":
            return _normal(shape, 0.0, math.sqrt(scale), dt, device, gen)
        limit = math.sqrt(3.0 * scale)
        return _uniform(shape, -limit, limit, dt, device, gen)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


class _SeedOnly(VarianceScaling):
    """A fixed VarianceScaling whose config is only ``{"seed": ...}``."""

    _ARGS: tuple[float, str, str] = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed: int | None = None) -> None:
        scale, mode, distribution = self._ARGS
        super().__init__(scale=scale, mode=mode, distribution=distribution, seed=seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_SeedOnly):
    """Glorot/Xavier uniform: ``tf.keras.initializers.GlorotUniform`` (``"glorot_uniform"``).

    Uniform on ``[-limit, limit)``, ``limit = sqrt(6 / (fan_in + fan_out))``, i.e.
    ``VarianceScaling(1.0, "fan_avg", "uniform")``. For the LSTM kernel
    ``(features, 4*units)``: ``limit = sqrt(6 / (features + 4*units))``.
    """

    _ARGS = (1.0, "fan_avg", "uniform")


class GlorotNormal(_SeedOnly):
    """Glorot normal: ``tf.keras.initializers.GlorotNormal`` (``"glorot_normal"``).

    Truncated normal with stddev ``sqrt(2 / (fan_in + fan_out))`` after truncation:
    ``VarianceScaling(1.0, "fan_avg", "truncated_normal")``.
    """

    _ARGS = (1.0, "fan_avg", "truncated_normal")


class LecunNormal(_SeedOnly):
    """``tf.keras.initializers.LecunNormal`` (``"lecun_normal"``):
    ``VarianceScaling(1.0, "fan_in", "truncated_normal")``."""

    _ARGS = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_SeedOnly):
    """``tf.keras.initializers.LecunUniform`` (``"lecun_uniform"``):
    ``VarianceScaling(1.0, "fan_in", "uniform")``."""

    _ARGS = (1.0, "fan_in", "uniform")


class HeNormal(_SeedOnly):
    """``tf.keras.initializers.HeNormal`` (``"he_normal"``):
    ``VarianceScaling(2.0, "fan_in", "truncated_normal")``."""

    _ARGS = (2.0, "fan_in", "truncated_normal")


class HeUniform(_SeedOnly):
    """``tf.keras.initializers.HeUniform`` (``"he_uniform"``):
    ``VarianceScaling(2.0, "fan_in", "uniform")``."""

    _ARGS = (2.0, "fan_in", "uniform")


class Orthogonal(Initializer):
    """Orthogonal matrix: ``tf.keras.initializers.Orthogonal`` (``"orthogonal"``).

    As Keras: ``rows = prod(shape[:-1])``, ``cols = shape[-1]``; draw
    ``a ~ N(0, 1)`` of shape ``(max(rows, cols), min(rows, cols))``; ``q, r = qr(a)``
    (reduced); ``q *= sign(diag(r))`` (so ``q`` is Haar-distributed); transpose ``q``
    when ``rows < cols``; return ``gain * q.reshape(shape)``. The LSTM recurrent
    kernel ``(units, 4*units)`` is one such matrix with orthonormal *rows*
    (``W @ W.T == gain**2 * I``), not four orthogonal blocks.

    Args:
        gain: Multiplicative factor.
        seed: If set, every call returns the same values.

    Raises:
        ValueError: (on call) a shape of rank < 2, or a non-float dtype.
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        self.gain = gain
        self.seed = seed

    def __call__(self, shape, dtype=torch.float32, *, device=None, **kwargs):
        _check_kwargs(type(self).__name__, kwargs)
        dt = _float_dtype(dtype)
        shape = _shape(shape)
        if len(shape) < 2:
            raise ValueError(
                "The tensor to initialize must be at least two-dimensional. Received: "
                f"shape={shape} of rank {len(shape)}."
            )
        num_rows = math.prod(shape[:-1])
        num_cols = shape[-1]
        flat_shape = (max(num_cols, num_rows), min(num_cols, num_rows))
        a = _normal(flat_shape, 0.0, 1.0, _work_dtype(dt), device, _generator(self.seed, device))
        q, r = torch.linalg.qr(a, mode="reduced")
        q = q * torch.sign(torch.diagonal(r))
        if num_rows < num_cols:
            q = q.T
        return (self.gain * q.reshape(shape)).to(dt)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain * eye(rows, cols)``: ``tf.keras.initializers.Identity`` (``"identity"``).

    Args:
        gain: Multiplicative factor.

    Raises:
        ValueError: (on call) a shape that is not 2D, or a non-float dtype.
    """

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def __call__(self, shape, dtype=torch.float32, *, device=None, **kwargs):
        _check_kwargs(type(self).__name__, kwargs)
        dt = _float_dtype(dtype)
        shape = _shape(shape)
        if len(shape) != 2:
            raise ValueError(
                "Identity matrix initializer can only be used for 2D matrices. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        return self.gain * torch.eye(*shape, dtype=dt, device=device)

    def get_config(self):
        return {"gain": self.gain}


_CLASSES: tuple[type[Initializer], ...] = (
    Constant,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    Identity,
    Initializer,
    LecunNormal,
    LecunUniform,
    Ones,
    Orthogonal,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    Zeros,
)

_SNAKE = {
    "Constant": "constant",
    "GlorotNormal": "glorot_normal",
    "GlorotUniform": "glorot_uniform",
    "HeNormal": "he_normal",
    "HeUniform": "he_uniform",
    "Identity": "identity",
    "Initializer": "initializer",
    "LecunNormal": "lecun_normal",
    "LecunUniform": "lecun_uniform",
    "Ones": "ones",
    "Orthogonal": "orthogonal",
    "RandomNormal": "random_normal",
    "RandomUniform": "random_uniform",
    "TruncatedNormal": "truncated_normal",
    "VarianceScaling": "variance_scaling",
    "Zeros": "zeros",
}


def _objects() -> dict[str, type[Initializer]]:
    """The name table of tf_keras's ``populate_deserializable_objects`` (TF2 mode)."""
    objects: dict[str, type[Initializer]] = {}
    for cls in _CLASSES:
        objects[cls.__name__] = cls
        objects[_SNAKE[cls.__name__]] = cls
        if cls is not Initializer:
            objects[cls.__name__ + "V2"] = cls  # compatibility aliases
    for snake in ("glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
                  "lecun_normal", "lecun_uniform"):
        objects[snake + "V2"] = objects[snake]
    objects["normal"] = RandomNormal
    objects["uniform"] = RandomUniform
    objects["one"] = Ones
    objects["zero"] = Zeros
    return objects


ALL_OBJECTS: dict[str, type[Initializer]] = _objects()


def serialize(
    initializer: InitializerLike | None, use_legacy_format: bool = False
) -> dict[str, Any] | None:
    """``tf.keras.initializers.serialize``: the dict a v1 LSTM's ``get_config`` holds.

    Args:
        initializer: An initializer, a plain callable, or ``None``.
        use_legacy_format: Write only ``class_name`` and ``config``.

    Returns:
        ``None`` for ``None``; for a built-in initializer, e.g.
        ``{"module": "keras.initializers", "class_name": "Orthogonal",
        "config": {"gain": 1.0, "seed": None}, "registered_name": None}``; for a
        plain function, ``{"module": "builtins", "class_name": "function",
        "config": fn.__name__, "registered_name": "function"}`` (as TF; it cannot
        be deserialized by name).
    """
    if initializer is None:
        return None
    if isinstance(initializer, Initializer):
        return keras_dict(initializer, "keras.initializers", use_legacy_format=use_legacy_format)
    if callable(initializer):
        return function_dict(initializer)
    raise ValueError(f"Could not interpret initializer identifier: {initializer}")


def deserialize(
    config: Mapping[str, Any] | str, custom_objects: Mapping[str, Any] | None = None
) -> Initializer:
    """``tf.keras.initializers.deserialize``: an initializer from a name or config dict."""
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    return from_dict(config, ALL_OBJECTS, "initializer", custom_objects)


def get(identifier: Any) -> InitializerLike | None:
    """``tf.keras.initializers.get``: resolve an initializer identifier.

    Args:
        identifier: ``None``; a Keras name, case-sensitive (``"glorot_uniform"``,
            ``"GlorotUniform"``, ``"orthogonal"``, ``"zeros"``, the aliases
            ``"normal"``, ``"uniform"``, ``"one"``, ``"zero"``, ``"...V2"``); a dict
            ``{"class_name": ..., "config": {...}}`` with or without ``"module"`` /
            ``"registered_name"``; an initializer instance (returned as is); an
            initializer class (instantiated with no arguments); or any callable
            ``(shape, dtype) -> tensor`` (returned as is).

    Returns:
        The initializer, or ``None`` for ``None`` (as tf_keras).

    Raises:
        ValueError: An unknown name or a malformed dict (``"Unknown initializer:
            'foo'"``), or an identifier of another type (``"Could not interpret
            initializer identifier: 3"``), as tf_keras.
        TypeError: A config with arguments the class does not take.

    Examples:
        >>> get("orthogonal")((8, 32), dtype=torch.float64).shape
        torch.Size([8, 32])
    """
    if identifier is None:
        return None
    if isinstance(identifier, (str, Mapping)):
        return deserialize(identifier)
    if callable(identifier):
        if isinstance(identifier, type):
            return identifier()
        return identifier
    raise ValueError(f"Could not interpret initializer identifier: {identifier}")
