"""The ``lstmcompat`` command line (``lstmcompat.__main__``): every subcommand listed, each
one's code imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

from lstmcompat.__main__ import SUBCOMMANDS, main, parser_for

_SUBCOMMAND_MODULES = sorted({t.partition(":")[0] for _, t in SUBCOMMANDS.values()}
                             - {"lstmcompat.__main__"})

_IMPORTED = """
import json, sys
from lstmcompat.__main__ import main
try:
    main({argv!r})
except SystemExit as e:
    assert e.code == 0, e.code
print(json.dumps(sorted(m for m in sys.modules
                        if m.startswith(("lstmcompat.", "matplotlib", "tensorflow")))))
"""


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, (help_text, _) in SUBCOMMANDS.items():
        assert name in out
        assert help_text.split()[0] in out


def test_help_imports_no_subcommand(python_json):
    imported = python_json(_IMPORTED.format(argv=["--help"]))
    assert _SUBCOMMAND_MODULES  # the table names modules of its own
    assert not set(imported) & set(_SUBCOMMAND_MODULES)
    assert "lstmcompat._engine.fused._build" not in imported
    assert not [m for m in imported if m.startswith(("matplotlib", "tensorflow"))]


@pytest.mark.parametrize("name", ["bench", "inspect", "extension"])
def test_subcommand_imports_its_own_code_only(python_json, name):
    imported = set(python_json(_IMPORTED.format(argv=[name, "--help"])))
    own = SUBCOMMANDS[name][1].partition(":")[0]
    others = set(_SUBCOMMAND_MODULES) - {own}
    if own != "lstmcompat.__main__":
        assert own in imported
    assert not imported & others
    assert "lstmcompat._engine.fused._build" not in imported  # only `extension` runs it
    assert not [m for m in imported if m.startswith(("matplotlib", "tensorflow"))]


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_every_subcommand_configures_a_command(name, capsys):
    parser = parser_for([name])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert callable(sub.choices[name].get_default("func"))
    other = next(n for n in SUBCOMMANDS if n != name)
    assert sub.choices[other].get_default("func") is None  # not configured: not imported
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert f"usage: lstmcompat {name}" in capsys.readouterr().out


def test_table_targets_exist():
    for name, (_, target) in SUBCOMMANDS.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["nope"])
    assert e.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_a_subcommand_is_required(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    assert "required: COMMAND" in capsys.readouterr().err


def test_api_reference_lists_every_subcommand():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    section = doc.split("## 8. Command line", 1)[1]
    listed = re.findall(r"^\* `(?:lstmcompat )?(\w[\w-]*)", section, re.M)
    assert listed == list(SUBCOMMANDS)
