"""Values derived from parameters, cached while autograd records nothing.

Streaming inference calls a cell once per step; re-deriving its weights every
step (a gate permutation, a contiguous copy) can cost more than the step. A
:class:`DerivedCache` rebuilds its value only when one of the parameters it was
made from has been replaced or modified in place (``data_ptr``/``_version``),
and never caches while a gradient could flow (the value would then carry an
autograd graph that a later backward frees).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


def needs_grad(tensors: Sequence[torch.Tensor | None]) -> bool:
    """Whether autograd would record an op on any of ``tensors`` right now."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


class DerivedCache(Generic[T]):
    """One cached value derived from ``params`` (see the module docstring)."""

    __slots__ = ("_key", "_value")

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: T | None = None

    def get(self, params: Sequence[torch.Tensor | None], make: Callable[[], T]) -> T:
        if needs_grad(params):
            return make()
        key = tuple(None if p is None else (p.data_ptr(), p._version, p.dtype, p.device)
                    for p in params)
        if key != self._key:
            self._value = make()
            self._key = key
        return self._value  # type: ignore[return-value]
