"""The test tree's own rules: test files mirror modules and import no other test file
(shared helpers live in a ``conftest.py`` or a helper module), and, as pytest imports
them without packages (no ``__init__.py``, each folder put on ``sys.path``), no two
files share a module name."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent

_IMPORTS_A_TEST = re.compile(r"^\s*(?:from\s+test_\w*\s+import|import\s+test_\w*)", re.M)


def _files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "goldens" not in p.parts)


def test_no_test_file_imports_another():
    found = {str(p.relative_to(TESTS)) for p in _files()
             if _IMPORTS_A_TEST.search(p.read_text())}
    assert found == set()


def test_module_names_are_unique():
    names = Counter(p.name for p in _files() if p.name != "conftest.py")
    assert [n for n, k in names.items() if k > 1] == []


def test_no_packages():
    assert list(TESTS.rglob("__init__.py")) == []


def test_pattern_catches_a_test_import():
    assert _IMPORTS_A_TEST.search("import os\nfrom test_fused import make_case\n")
    assert _IMPORTS_A_TEST.search("    import test_fused\n")
    assert not _IMPORTS_A_TEST.search("from bundle_writer import _write_bundle\n")
