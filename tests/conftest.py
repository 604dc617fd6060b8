"""Fixtures shared by the test folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


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


@pytest.fixture
def python_json() -> Callable[..., object]:
    """``python_json(code, **env)`` runs ``code`` (dedented) in a fresh interpreter with
    this checkout's ``src`` first on its path and ``env`` added to its environment, and
    returns the JSON its last line of output prints (what an import does happens once
    per process: such checks need a process of their own)."""
    def run(code: str, **env_vars: str) -> object:
        env = {**os.environ, **env_vars,
               "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])
    return run
