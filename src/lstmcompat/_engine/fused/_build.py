"""Placeholder: the compiled extension is not built yet."""
from __future__ import annotations


def status() -> tuple[bool, str]:
    return False, "compiled extension not implemented"


def backend() -> None:
    return None
