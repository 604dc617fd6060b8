"""Fixtures shared by the test folders."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def force_kernel(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | None], None]:
    """``force_kernel(name)`` runs the rest of the test with ``LSTMCOMPAT_KERNEL=name``
    (``None``: with automatic dispatch, whatever the environment says)."""
    def force(kernel: str | None) -> None:
        if kernel is None:
            monkeypatch.delenv("LSTMCOMPAT_KERNEL", raising=False)
        else:
            monkeypatch.setenv("LSTMCOMPAT_KERNEL", kernel)
    return force
