"""``lstmcompat.bench.suite``: the benchmark suite runs from the package (tiny shapes),
writes its report where ``--out`` says, and draws no chart without matplotlib."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstmcompat.bench import suite

TINY = ["--shapes", "2,3,4,8", "--rounds", "1", "--stream-steps", "3", "--no-deploy",
        "--no-long", "--no-precision"]


def test_run_writes_the_report_to_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    out = tmp_path / "results"
    assert suite.main([*TINY, "--out", str(out), "--json", str(tmp_path / "raw.json")]) == 0
    md = (out / "RESULTS.md").read_text()
    assert md.startswith("# Benchmark results")
    assert "| (2, 3, 4, 8) | keras_hard |" in md
    assert "| LSTMCell |" in md  # the streaming table
    assert not (out / "results.png").exists()
    assert "matplotlib not installed" in capsys.readouterr().err
    assert (tmp_path / "raw.json").read_text().startswith("{")


def test_default_out_is_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert suite.parse_args([]).out == "."
    assert suite.parse_args([], out="bench").out == "bench"


def test_chart_needs_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    tg = [dict(what="x", shape=[1, 1, 1, 1], ratio=1.0, limit=1.0, better="lower", met=True)]
    assert suite.chart(tg, tmp_path / "c.png") is False
    assert not (tmp_path / "c.png").exists()
    monkeypatch.undo()  # matplotlib importable again (the test extra installs it)
    pytest.importorskip("matplotlib", reason="matplotlib draws the chart when installed")
    assert suite.chart(tg, tmp_path / "c.png") is True
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tf_worker_is_not_imported_and_imports_nothing_heavy(python_json):
    # the suite runs it as a script in TensorFlow's interpreter; importing it (a
    # package walk, a docs build) loads no TensorFlow and changes no setting
    out = python_json("""
import json, os, sys, warnings
import lstmcompat.bench.suite
before = (list(warnings.filters), dict(os.environ))
assert "lstmcompat.bench.tf_worker" not in sys.modules
import lstmcompat.bench.tf_worker
print(json.dumps(dict(tf="tensorflow" in sys.modules,
                      same=(list(warnings.filters), dict(os.environ)) == before)))
""")
    assert out == {"tf": False, "same": True}


def test_checkout_shims_run_the_package_suite():
    # `python -m bench` / `python -m bench.ab` in a source checkout: the package's code,
    # the suite writing into the repository's bench/ (whose RESULTS.md the README quotes)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    for module, expect in (("bench", f"(default: {root / 'bench'})"),
                           ("bench.ab", "usage: python -m lstmcompat.bench.ab")):
        proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert expect in " ".join(proc.stdout.split()), proc.stdout


def test_deployment_rows_time_every_runner_against_eager():
    pytest.importorskip("onnxruntime")
    from lstmcompat.bench.deploy import bench_deploy, markdown

    rows = bench_deploy((2, 3, 4, 8), 1, lambda s: None)
    got = {(r["variant"], r["runner"], r["form"]) for r in rows}
    for v in ("keras_hard", "tf1_peephole", "tf1_proj_clip"):
        assert {(v, "eager", "-"), (v, "torch.compile", "-"), (v, "onnxruntime", "loop")} <= got
    assert ("keras_hard", "onnxruntime", "node") in got
    assert ("tf1_proj_clip", "onnxruntime", "node") not in got  # no exact node: left out
    assert all(r["ratio"] == 1.0 for r in rows if r["runner"] == "eager")
    assert markdown(rows)[1].startswith("## Deployment (inference at (2, 3, 4, 8)")


def test_long_sequence_rows_measure_memory_per_step():
    from lstmcompat.bench.long import bench_long, markdown

    rows = bench_long(1, lambda s: None, shape=(2, 50, 3, 4))
    assert [r["variant"] for r in rows] == ["keras_hard", "keras_hard, checkpoint_steps=12",
                                            "nn"]
    assert rows[1]["saved_bytes"] < rows[0]["saved_bytes"]
    keras = rows[0]
    assert keras["finite"] and keras["bytes_per_step"] == keras["saved_bytes"] / 50
    assert markdown(rows)[1] == "## Long sequences (training step at (2, 50, 3, 4))"


def test_precision_rows_time_both_types():
    from lstmcompat.bench.precision import bench_precision, markdown

    rows = bench_precision(1, lambda s: None, shapes=[(2, 5, 3, 8)])
    (r,) = rows
    assert r["float32"] > 0 and r["bfloat16"] > 0
    assert r["speedup"] == r["float32"] / r["bfloat16"] and r["max_diff"] < 5e-2
    md = markdown(rows)
    assert md[1].startswith("## Mixed precision") and "| (2, 5, 3, 8) |" in md[-1]
    # the section says which bfloat16 units the CPU has and what computed the products
    assert md[3].startswith("CPU bfloat16 units: ") and "Products in bfloat16 by " in md[3]
