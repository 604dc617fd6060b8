"""The package stands on its own: it names no file outside itself, and a plain
(non-editable) install runs the command line, the benchmark suite included."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy
import pytest
import torch
import tqdm

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lstmcompat"

# A file outside the package: the design notes' folder, a parent-folder path (not
# ``.../`` in a TF variable name), a path climbing out of the package from its own
# location, sys.path edits to reach a checkout, an absolute path of some machine.
_OUTSIDE = re.compile(r"shared/|DESIGN\.md|API\.md|(?<!\.)\.\./|parents\[\d+\]"
                      r"|sys\.path\.(?:insert|append)|/work/|/home/|/root/")


def test_package_refers_to_no_file_outside_it():
    found = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix not in (".py", ".cpp", ".h", ".typed") or "__pycache__" in path.parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if _OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []


def test_outside_pattern_catches_what_it_should():
    for bad in ("see shared/API.md", "Path(__file__).parents[2] / 'bench'",
                "open('../bench/RESULTS.md')", "sys.path.insert(0, root)"):
        assert _OUTSIDE.search(bad), bad
    for fine in ("``.../kernel/.ATTRIBUTES/VARIABLE_VALUE``", "docs/api.md §1",
                 "shared by both front-ends"):
        assert not _OUTSIDE.search(fine), fine


def lstmcompat_version() -> str:
    """The version in pyproject.toml (what the installed package reports)."""
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(),
                     re.M).group(1)


def _wheel(tmp: Path) -> Path:
    """A wheel built from a copy of the sources (the checkout is left as it is)."""
    copy = tmp / "tree"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "src", copy / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp / "dist"), str(copy)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp / "dist").glob("lstmcompat-*.whl")
    return wheel


@pytest.mark.slow
def test_plain_install_runs_the_command_line(tmp_path):
    wheel = _wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "lstmcompat/bench/suite.py" in names and "lstmcompat/bench/tf_worker.py" in names
    assert any(n.startswith("lstmcompat/_engine/fused/csrc/") and n.endswith(".cpp")
               for n in names)
    assert "lstmcompat/_demo/corpus.txt" in names  # the demo's text is package data
    assert not [n for n in names if n.endswith((".md", ".png")) or n.startswith("bench/")]

    # A fresh venv; torch, numpy and tqdm (the dependencies) are this interpreter's (a .pth names their folder:
    # Python reads the .pth files of a venv's own site-packages only, so the checkout's
    # editable install there is not seen).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = {str(Path(m.__file__).resolve().parents[1]) for m in (torch, numpy, tqdm)}
    Path(site, "_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   timeout=600)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    home = tmp_path / "elsewhere"
    home.mkdir()

    def run(*args: str, rc: int = 0) -> str:
        proc = subprocess.run([str(bin_dir / "lstmcompat"), *args], cwd=home, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == rc, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.stdout

    where = subprocess.run([python, "-c", "import lstmcompat; print(lstmcompat.__file__)"],
                           cwd=home, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).resolve().is_relative_to(Path(site).resolve())
    from lstmcompat.__main__ import SUBCOMMANDS

    listed = run("--help")
    for name in SUBCOMMANDS:
        assert name in listed
        assert run(name, "--help").startswith(f"usage: lstmcompat {name}")
    assert "--rounds" in run("bench", "--help")
    assert run("--version") == f"lstmcompat {lstmcompat_version()}\n"
    # the main job, cheaply: the bundled text is found in the installed package
    out = run("demo", "--steps", "2", "--sample-length", "20", "--out", str(tmp_path / "demo"))
    assert "reloaded it: it generates the same text" in out
    assert (tmp_path / "demo" / "model" / "lstm_1.safetensors").exists()
    run("inspect", str(tmp_path / "demo" / "model" / "lstm_1.safetensors"))
    # the installed sources build and load as the checkout's do (same cache key: a
    # missing source file would fail here)
    from lstmcompat._engine.fused import extension_status

    ok, why = extension_status()
    out = run("extension", rc=0 if ok else 1)
    assert out.startswith("compiled extension loaded from") == ok, (out, why)
