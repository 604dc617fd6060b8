"""The documentation: the site builds with ``mkdocs build --strict`` (a warning fails
it), and every Python example in ``docs/*.md`` and ``README.md`` runs.

Which fenced blocks run:

* a block fenced ```` ```python ```` runs; a page's blocks run in order, in one
  namespace (a later block uses an earlier block's names), in a fresh temporary
  folder holding the example files of :data:`FIXTURES` under the names the pages use
  (``train_dir``, ``model.h5``, ...), with ``torch.manual_seed(0)``;
* a block whose info string has ``title="TensorFlow..."`` is a TensorFlow snippet
  (TensorFlow is not installed) and ``title="Signature"`` a signature listing: neither
  runs, and a block that runs may not use TensorFlow (a forgotten title fails here);
* a block right after a line ``<!-- no-run: why -->`` does not run (the reason is
  required; use it only for what the tests cannot provide, e.g. a GPU; no page needs
  it today);
* other languages (``console``, ``bash``, ``text``) never run.

A page holding ``<!-- docs-test: slow -->`` is marked ``slow`` (``torch.compile``).

Also: the docstring examples of the public names (shown by the API reference page)
run as doctests; the reference page documents every name of ``lstmcompat.__all__``;
the migration guide runs every public class and function; every page is in the
``mkdocs.yml`` nav.
"""

from __future__ import annotations

import doctest
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import lstmcompat

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GOLDENS = ROOT / "tests" / "goldens"

#: The files the examples open, by the name the pages use: small files written by
#: TensorFlow (``tools/goldens_*.py``), described where a page first opens them.
FIXTURES = {
    # TF1 Saver checkpoint (with Adam slots): LSTMCell(5, use_peepholes=True,
    # num_proj=2) on depth-3 inputs, prefix rnn/lstm_cell
    "train_dir": "restore/tf1_cell",
    # TF1 MultiRNNCell([LSTMCell(4), LSTMCell(3, use_peepholes=True)]) on depth 3
    "multi_dir": "restore/tf1_multi",
    # compat.v1 Keras LSTM(4) -> LSTM(3) under a TF1 Saver (lstm/lstm_cell/...)
    "keras_ckpt": "restore/keras_v1_saver",
    # TF1 Saver: BasicLSTMCell(4) on depth 3 (rnn/basic_lstm_cell/...)
    "basic_dir": "restore/tf1_basic",
    # TF1 Saver of a CudnnLSTM's canonical weights: two CudnnCompatibleLSTMCell(5) under
    # cudnn_lstm/rnn/multi_rnn_cell, depth 4 (a prefix: no `checkpoint` file)
    "cudnn_train": "tf1_family/ckpt_cudnn",
    # tf_keras model (LSTM(4) -> LSTM(3, use_bias=False) -> Dense) saved with
    # tf.train.Checkpoint(model=m)
    "tf2_ckpt": "restore/tf2_object",
    # the same model: save_weights("weights.h5"), model.save("model.h5"), Keras 3
    # model.save("model.keras") and save_weights("model.weights.h5")
    "weights.h5": "keras_files/tf_keras_weights/weights.h5",
    "model.h5": "keras_files/tf_keras_model/model.h5",
    "model.keras": "keras_files/keras3_archive/model.keras",
    "model.weights.h5": "keras_files/keras3_weights/model.weights.h5",  # Keras 3 save_weights
    # tf_keras Bidirectional(LSTM(2)) model, and a CuDNNLSTM(4) model, on depth 3
    "bidi.h5": "keras_files/tf_keras_bidi/model.h5",
    "cudnn.h5": "keras_family/cudnn_model.h5",
}

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ ]*$",
    re.M | re.S)
_NO_RUN = re.compile(r"<!--\s*no-run:\s*\S.*?-->\s*$")
_SKIP_TITLES = ("TensorFlow", "Signature")
_USES_TF = re.compile(r"\b(import|from) tensorflow\b|\btf\s*\.\s*\w")


@dataclass
class Block:
    page: Path
    line: int
    info: str
    code: str
    runs: bool
    why_not: str


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with whether it runs and why not."""
    text = page.read_text()
    found = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        info = m.group("info").strip()
        lang = info.split()[0] if info else ""
        indent = len(m.group("indent"))
        code = "".join(ln[indent:] if ln[:indent].strip() == "" else ln
                       for ln in m.group("body").splitlines(keepends=True))
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        title = re.search(r'title="([^"]*)"', info)
        if lang != "python":
            runs, why = False, f"language {lang or 'none'!r}"
        elif title and title.group(1).startswith(_SKIP_TITLES):
            runs, why = False, f"title {title.group(1)!r}"
        elif _NO_RUN.search(before):
            runs, why = False, before.strip()
        else:
            runs, why = True, ""
        found.append(Block(page, line, info, code, runs, why))
    return found


def _code_only(code: str) -> str:
    """``code`` without its comments and strings (which may name TensorFlow calls)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return code
    return " ".join(t.string for t in tokens if t.type not in (tokenize.COMMENT, tokenize.STRING))


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]


def _page_param(page: Path):
    marks = [pytest.mark.slow] if "<!-- docs-test: slow -->" in page.read_text() else []
    return pytest.param(page, id=page.name, marks=marks)


def _prepare(folder: Path) -> None:
    for name, src in FIXTURES.items():
        src = GOLDENS / src
        if src.is_dir():
            shutil.copytree(src, folder / name)
        else:
            shutil.copy(src, folder / name)


@pytest.mark.parametrize("page", [_page_param(p) for p in pages()])
def test_examples_run(page, tmp_path, monkeypatch):
    """Every runnable block of the page runs, in order, in one namespace."""
    runnable = [b for b in blocks(page) if b.runs]
    _prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LSTMCOMPAT_KERNEL", raising=False)  # the pages show the defaults
    torch.manual_seed(0)
    namespace: dict = {"__name__": "__docs__"}
    try:
        for b in runnable:
            code = compile(b.code, f"{page.relative_to(ROOT)}:{b.line}", "exec")
            try:
                exec(code, namespace)
            except Exception as e:  # name the block: the traceback's file is the page
                raise AssertionError(
                    f"{page.relative_to(ROOT)}, the block at line {b.line} failed: "
                    f"{type(e).__name__}: {e}") from e
    finally:  # a page may start a (one-process) process group: training.md
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_no_runnable_block_uses_tensorflow(page):
    """TensorFlow snippets are marked (``title="TensorFlow"``), so the runner skips
    them: TensorFlow is never installed where the tests run."""
    bad = [b.line for b in blocks(page) if b.runs and _USES_TF.search(_code_only(b.code))]
    assert bad == [], f"{page.name}: unmarked TensorFlow blocks at lines {bad}"


def test_block_rules(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "```python\nx = 1\n```\n\n"
        '```python title="TensorFlow"\nimport tensorflow as tf\n```\n\n'
        '```python title="Signature"\nLSTM(units)\n```\n\n'
        "<!-- no-run: needs a GPU -->\n```python\ny = 2\n```\n\n"
        "<!-- no-run -->\n```python\nz = 3\n```\n\n"
        "```console\n$ lstmcompat --help\n```\n\n"
        "* item\n\n  ```python\n  w = 4\n  ```\n")
    got = [(b.runs, b.code) for b in blocks(page)]
    assert got == [(True, "x = 1\n"), (False, "import tensorflow as tf\n"),
                   (False, "LSTM(units)\n"), (False, "y = 2\n"),
                   (True, "z = 3\n"),  # a no-run mark without a reason is not one
                   (False, "$ lstmcompat --help\n"), (True, "w = 4\n")]


def test_tensorflow_check():
    def uses(code):
        return bool(_USES_TF.search(_code_only(code)))
    assert uses("import tensorflow as tf\n") and uses("y = tf.nn.dynamic_rnn(c, x)\n")
    assert not uses("layer = L.LSTM(4)  # tf.compat.v1.keras.layers.LSTM(4)\n")
    assert not uses('print("tf.nn.dynamic_rnn")\n')


def test_every_page_has_examples_that_run():
    """Each page of the guide shows running code (the contract and the reference are
    listings; training's examples need process groups)."""
    listings = {"api.md", "reference.md"}
    empty = [p.name for p in sorted(DOCS.glob("*.md"))
             if p.name not in listings and not any(b.runs for b in blocks(p))]
    assert empty == []


def _runnable_code(page: str) -> str:
    return "".join(b.code for b in blocks(DOCS / page) if b.runs)


PUBLIC = [n for n in lstmcompat.__all__ if n != "__version__"]


@pytest.mark.parametrize("name", PUBLIC)
def test_reference_documents_every_public_name(name):
    assert f"::: lstmcompat.{name}\n" in (DOCS / "reference.md").read_text()


#: Public names whose docstrings have no example yet (a constant, and the engine's
#: introspection, whose docstrings live in ``_engine``).
_NO_EXAMPLE = {"AUTO_REUSE", "CellSpec", "available_kernels", "choose"}


def _doctests(name: str) -> list[doctest.DocTest]:
    obj = getattr(lstmcompat, name)
    if not callable(obj):
        return []
    found = doctest.DocTestFinder(recurse=True).find(obj, name, globs={})
    return [t for t in found if t.examples]


def test_public_names_have_docstring_examples():
    assert {n for n in PUBLIC if not _doctests(n)} <= _NO_EXAMPLE


#: Public names whose examples all open files of their own (``+SKIP``).
_ONLY_SKIPPED = {"load_keras_layers"}


@pytest.mark.parametrize("name", [n for n in PUBLIC if n not in _NO_EXAMPLE | _ONLY_SKIPPED])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    """The API reference shows the docstrings' examples: they run (``doctest``; the
    ones marked ``+SKIP`` need files of their own)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LSTMCOMPAT_KERNEL", raising=False)
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in _doctests(name):
        test.globs = {"lstmcompat": lstmcompat, "torch": torch}
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert runner.tries > 0


#: Public names without a TensorFlow counterpart (the engine's introspection).
_NO_TF = {"CellSpec", "choose", "available_kernels"}


@pytest.mark.parametrize("name", [n for n in PUBLIC if n not in _NO_TF])
def test_migration_guide_runs_every_public_name(name):
    """The migration guide has a TensorFlow snippet and a runnable lstmcompat snippet
    for every class and function."""
    code = _runnable_code("migration.md")
    assert re.search(rf"\b(lstmcompat|L)\.{name}\b", code), name


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if f" {p.name}" not in nav]
    assert missing == []


def _have(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except ModuleNotFoundError:  # the parent of a dotted name is missing
        return False


def test_have():
    assert _have("pytest") and not _have("no_such_module_here")
    assert not _have("no_such_package_here.python")


@pytest.mark.skipif(not _have("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python",
                              "material"),
                    reason="mkdocs, mkdocstrings-python and mkdocs-material are not "
                           "installed (pip install -e '.[docs]')")
def test_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING" not in run.stderr, run.stderr
    reference = (site / "reference" / "index.html").read_text()
    for name in ("lstmcompat.LSTM", "lstmcompat.dynamic_rnn", "lstmcompat.restore"):
        assert f'id="{name}"' in reference, name
    # Sphinx roles in the docstrings are dropped (tools/mkdocs_hooks.py)
    assert ":func:<code>" not in reference and "<code>~" not in reference
    assert "<code>lstmcompat.apply_constraints</code>" in reference
    assert "in every fused weight):</p>" in reference       # a reST "::" before a block
    # the benchmark page is built from bench/RESULTS.md, with its chart
    bench = (site / "benchmarks" / "index.html").read_text()
    assert "Keras hard_sigmoid / nn.LSTM, fwd+bwd" in bench
    assert (site / "results.png").read_bytes() == (ROOT / "bench" / "results.png").read_bytes()
