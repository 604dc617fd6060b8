"""The ``lstmcompat`` command line (``lstmcompat.__main__``): every subcommand listed, each
one's code imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

import lstmcompat
from lstmcompat.__main__ import ERRORS, SUBCOMMANDS, main, parser_for

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


@pytest.mark.parametrize("name", ["demo", "bench", "inspect", "extension"])
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


def test_the_subcommands_and_their_order():
    assert list(SUBCOMMANDS) == ["demo", "inspect", "convert", "export-onnx", "bench",
                                 "extension"]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"lstmcompat {lstmcompat.__version__}\n"


# --------------------------------------------------------------- errors and exit codes
# A stand-in subcommand (this module is importable by name: pytest puts its folder on
# sys.path) whose function raises what the test says.

_RAISE: list[BaseException] = []


def configure_raiser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=0)

    def run(args: argparse.Namespace) -> int:
        if _RAISE:
            raise _RAISE[0]
        return args.n
    p.set_defaults(func=run)


@pytest.fixture
def raiser(monkeypatch):
    monkeypatch.setitem(SUBCOMMANDS, "raiser", ("raises", f"{__name__}:configure_raiser"))
    _RAISE.clear()
    yield _RAISE
    _RAISE.clear()


def test_main_returns_the_commands_code(raiser):
    assert main(["raiser"]) == 0
    assert main(["raiser", "--n", "3"]) == 3


@pytest.mark.parametrize("error, message", [
    (ValueError("bad value"), "bad value"),
    (FileNotFoundError("no such file: x"), "no such file: x"),
    (OSError("disk full"), "disk full"),
    (KeyError("weights/kernel"), "weights/kernel"),  # not "'weights/kernel'"
    (RuntimeError("the library failed"), "the library failed"),
    (TypeError("wrong type"), "wrong type"),
    (ModuleNotFoundError("No module named 'h5py'"), "No module named 'h5py'"),
])
def test_expected_errors_are_code_1_on_stderr(raiser, capsys, error, message):
    assert isinstance(error, ERRORS)
    raiser.append(error)
    assert main(["raiser"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"lstmcompat raiser: error: {message}\n"
    assert captured.out == ""


def test_ctrl_c_is_code_130(raiser, capsys):
    raiser.append(KeyboardInterrupt())
    assert main(["raiser"]) == 130
    assert capsys.readouterr().err == "lstmcompat raiser: interrupted\n"


def test_a_bug_keeps_its_traceback(raiser):
    raiser.append(ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError):
        main(["raiser"])


def test_bad_usage_is_code_2_on_stderr(raiser, capsys):
    with pytest.raises(SystemExit) as e:
        main(["raiser", "--n", "x"])
    assert e.value.code == 2
    assert "usage: lstmcompat raiser" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--no-such-option"])
    assert e.value.code == 2


# ------------------------------------------------------------ each subcommand's main()


@pytest.fixture
def lstm_file(tmp_path):
    layer = lstmcompat.LSTM(3, input_shape=(None, 2))
    path = tmp_path / "lstm.safetensors"
    lstmcompat.save(layer, path)
    return path


def test_inspect_main(lstm_file, tmp_path, capsys):
    assert main(["inspect", str(lstm_file)]) == 0
    assert "Saved lstmcompat module: LSTM" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "missing")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("lstmcompat inspect: error: ") and captured.out == ""


@pytest.mark.parametrize("spelling", [[], ["-o"], ["--out"]])
def test_convert_main_writes_out_or_dash_o(lstm_file, tmp_path, capsys, spelling):
    out = tmp_path / "converted.safetensors"
    assert main(["convert", str(lstm_file), *spelling, str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert lstmcompat.load(out).units == 3


def test_convert_main_errors(lstm_file, tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing"), str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.startswith("lstmcompat convert: error: ")
    for argv in ([str(lstm_file)],  # nothing to write to
                 [str(lstm_file), str(tmp_path / "a"), "-o", str(tmp_path / "b")]):
        with pytest.raises(SystemExit) as e:
            main(["convert", *argv])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "usage: lstmcompat convert" in err and "OUT" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_export_onnx_main(lstm_file, tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(lstm_file), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and out.stat().st_size > 0
    assert main(["export-onnx", str(tmp_path / "missing"), "-o", str(out)]) == 1
    assert capsys.readouterr().err.startswith("lstmcompat export-onnx: error: ")


def test_bench_main(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    tiny = ["--shapes", "2,3,4,8", "--rounds", "1", "--stream-steps", "3", "--no-deploy",
            "--no-long"]
    assert main(["bench", *tiny, "-o", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "RESULTS.md").exists()
    capsys.readouterr()
    assert main(["bench", "--shapes", "2,x", "-o", str(tmp_path / "r2")]) == 1
    assert capsys.readouterr().err.startswith("lstmcompat bench: error: invalid literal")


@pytest.mark.parametrize("ok", [True, False])
def test_extension_main(monkeypatch, capsys, ok):
    from lstmcompat._engine.fused import _extension

    monkeypatch.setattr(_extension, "status", lambda: (ok, "the reason"))
    assert main(["extension"]) == (0 if ok else 1)
    assert "the reason" in capsys.readouterr().out


def test_demo_main(tmp_path, capsys):
    # (the demo's own behaviours: tests/demo/test_demo_cli.py)
    assert main(["demo", "--steps", "1", "--hidden", "4", "--embedding", "2", "--seq-len",
                 "5", "--batch", "2", "--sample-length", "3", "-o", str(tmp_path)]) == 0
    assert "reloaded it: it generates the same text" in capsys.readouterr().out
    assert main(["demo", "--text", str(tmp_path / "missing.txt"), "-o", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("lstmcompat demo: error: `--text` file ")
