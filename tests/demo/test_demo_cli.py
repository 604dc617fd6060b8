"""``lstmcompat demo`` (``lstmcompat._demo._cli``), run through ``lstmcompat.__main__.main``
on a tiny model: it trains, samples, saves, reloads to the same text, plots; seeded runs
repeat exactly; Ctrl-C saves; errors are reported, not raised."""

from __future__ import annotations

import sys

import pytest

from lstmcompat import available_kernels
from lstmcompat.__main__ import main
from lstmcompat._demo import _cli
from lstmcompat._demo._model import HEAD_FILE, LAYER_FILES

TINY = ["--steps", "3", "--hidden", "8", "--embedding", "4", "--seq-len", "12", "--batch",
        "3", "--sample-length", "25"]


def _demo(tmp_path, *extra, name="out"):
    out = tmp_path / name
    return main(["demo", *TINY, "--out", str(out), *extra]), out


def test_demo_trains_saves_reloads_and_plots(tmp_path, capsys):
    rc, out = _demo(tmp_path)
    text = capsys.readouterr().out
    assert rc == 0
    assert "--- sample before training ---\nThe " in text
    assert "--- sample after training ---\nThe " in text
    assert "step 3/3: loss " in text and " chars/s, kernel " in text  # plain lines (no tty)
    assert "reloaded it: it generates the same text (seed 0)" in text
    assert f"loss curve: {out / 'loss.png'}" in text
    for name in (*LAYER_FILES, HEAD_FILE):
        assert (out / "model" / name).stat().st_size > 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "losses.csv").read_text().splitlines()[0] == "step,loss"
    assert len((out / "losses.csv").read_text().splitlines()) == 4
    assert "--- after training ---" in (out / "samples.txt").read_text()


def test_the_kernel_shown_is_the_layers_last_kernel(tmp_path, capsys, monkeypatch):
    shown = []
    real = _cli._Progress.update

    def spy(self, step, loss, kernel):
        shown.append(kernel)
        real(self, step, loss, kernel)

    monkeypatch.setattr(_cli._Progress, "update", spy)
    rc, _ = _demo(tmp_path)
    assert rc == 0
    text = capsys.readouterr().out
    assert shown and set(shown) == {shown[0]}
    assert set(shown[0].split("+")) <= set(available_kernels())
    assert f"kernel: {shown[0]} (" in text


def test_seeded_runs_repeat_exactly(tmp_path, capsys):
    assert _demo(tmp_path, name="a")[0] == 0
    assert _demo(tmp_path, name="b")[0] == 0
    assert _demo(tmp_path, "--seed", "1", name="c")[0] == 0
    capsys.readouterr()
    a, b, c = (tmp_path / n for n in "abc")
    assert (a / "losses.csv").read_text() == (b / "losses.csv").read_text()
    assert (a / "samples.txt").read_text() == (b / "samples.txt").read_text()
    for name in (*LAYER_FILES, HEAD_FILE):
        assert (a / "model" / name).read_bytes() == (b / "model" / name).read_bytes()
    assert (a / "losses.csv").read_text() != (c / "losses.csv").read_text()
    assert (a / "samples.txt").read_text() != (c / "samples.txt").read_text()


def test_the_run_leaves_the_global_rng_alone(tmp_path, capsys):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert _demo(tmp_path)[0] == 0
    assert torch.equal(torch.rand(3), expected)


def test_threads_are_set_for_the_run_only(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    assert _demo(tmp_path, "--threads", "1")[0] == 0
    assert ", CPU threads: 1\n" in capsys.readouterr().out
    assert torch.get_num_threads() == before


def test_without_matplotlib_it_says_how_to_get_the_chart(tmp_path, capsys, monkeypatch):
    assert _demo(tmp_path)[0] == 0
    assert (tmp_path / "out" / "loss.png").exists()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    capsys.readouterr()
    rc, out = _demo(tmp_path)  # the same folder: the previous chart is removed
    text = capsys.readouterr().out
    assert rc == 0
    assert "no loss curve: matplotlib is not installed (pip install matplotlib" in text
    assert not (out / "loss.png").exists()
    assert (out / "model" / HEAD_FILE).exists()


def test_ctrl_c_stops_after_saving(tmp_path, capsys, monkeypatch):
    calls = []
    real = _cli.train_step

    def interrupted_on_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(_cli, "train_step", interrupted_on_the_third)
    rc, out = main(["demo", *TINY, "--steps", "10", "--out", str(tmp_path / "o")]), tmp_path / "o"
    text = capsys.readouterr().out
    assert rc == _cli.INTERRUPTED == 130
    assert "interrupted (Ctrl-C) after 2 of 10 steps: saving what was trained" in text
    assert "reloaded it: it generates the same text" in text
    assert len((out / "losses.csv").read_text().splitlines()) == 3  # header + 2 steps
    for name in (*LAYER_FILES, HEAD_FILE):
        assert (out / "model" / name).exists()


def test_a_reload_that_differs_is_a_failure(tmp_path, capsys, monkeypatch):
    real = _cli.load_model

    def perturbed(folder):
        model, vocab = real(folder)
        with __import__("torch").no_grad():
            model.dense.bias.add_(5.0 * __import__("torch").arange(len(vocab)))
        return model, vocab

    monkeypatch.setattr(_cli, "load_model", perturbed)
    rc, _ = _demo(tmp_path)
    captured = capsys.readouterr()
    assert rc == 1
    assert "lstmcompat demo: error: the reloaded model generated a different text" \
        in captured.err
    assert "reloaded it" not in captured.out


def test_a_text_file_of_ones_own(tmp_path, capsys):
    path = tmp_path / "mine.txt"
    path.write_text("to be or not to be, that is the question. " * 20)
    rc, out = _demo(tmp_path, "--text", str(path))
    text = capsys.readouterr().out
    assert rc == 0
    assert f"text: {path}, 840 characters, 15 distinct" in text
    after = text.split("--- sample after training ---\n", 1)[1].split("\n---\n", 1)[0]
    assert after.startswith("t")  # no 'T' in the text: the prompt is its first character
    assert len(after) == 26 and set(after) <= set(path.read_text())


def test_missing_or_short_text_is_an_error_on_stderr(tmp_path, capsys):
    rc, _ = _demo(tmp_path, "--text", str(tmp_path / "nope.txt"))
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("lstmcompat demo: error: `--text` file ")
    assert "does not exist" in err and "Traceback" not in err
    short = tmp_path / "short.txt"
    short.write_text("abc")
    rc, _ = _demo(tmp_path, "--text", str(short))
    err = capsys.readouterr().err
    assert rc == 1
    assert "has 3 characters; the demo needs at least 13 (--seq-len + 1)" in err


@pytest.mark.parametrize("argv, message", [
    (["--steps", "-1"], "`--steps` must be at least 0, got -1"),
    (["--hidden", "0"], "`--hidden` must be at least 1, got 0"),
    (["--lr", "0"], "`--lr` must be positive, got 0.0"),
    (["--threads", "0"], "`--threads` must be at least 1, got 0"),
    (["--device", "nonsense"], "`--device` 'nonsense' is not a torch device"),
    (["--prompt", "\u2603"], "`--prompt` has characters the training text does not"),
])
def test_bad_values_are_errors_naming_the_option(tmp_path, capsys, argv, message):
    rc, out = _demo(tmp_path, *argv)
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("lstmcompat demo: error: ") and message in err
    assert not out.exists()  # nothing trained or written


def test_cuda_without_cuda_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    rc, _ = _demo(tmp_path, "--device", "cuda")
    assert rc == 1
    assert "CUDA is not available here (use --device cpu)" in capsys.readouterr().err


def test_zero_steps_still_saves_and_checks(tmp_path, capsys):
    rc, out = _demo(tmp_path, "--steps", "0")
    text = capsys.readouterr().out
    assert rc == 0 and "trained 0 steps" in text
    assert "reloaded it: it generates the same text" in text


def test_plain_lines_come_at_least_every_few_seconds(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_cli, "_PLAIN_SECONDS", 0.0)
    rc, _ = _demo(tmp_path, "--steps", "25")
    text = capsys.readouterr().out
    assert rc == 0
    assert [f"step {k}/25:" in text for k in (1, 2, 3, 24, 25)] == [True] * 5
    monkeypatch.setattr(_cli, "_PLAIN_SECONDS", 1e9)
    rc, _ = _demo(tmp_path, "--steps", "25")
    text = capsys.readouterr().out
    assert "step 2/25:" in text and "step 1/25:" not in text and "step 3/25:" not in text


def test_a_terminal_gets_a_tqdm_bar(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    rc, _ = _demo(tmp_path)
    text = capsys.readouterr().out
    assert rc == 0
    assert "training: 100%" in text and "3/3" in text  # tqdm's bar
    assert "chars/s, kernel " in text
    assert "step 3/3:" not in text  # no plain lines


def test_defaults_are_the_documented_run():
    import argparse

    p = argparse.ArgumentParser()
    _cli.configure(p)
    args = p.parse_args([])
    assert (args.steps, args.device, args.seed, args.out, args.text) == (
        1200, "cpu", 0, "lstmcompat-demo", None)
    assert (args.hidden, args.embedding, args.seq_len, args.batch) == (128, 32, 100, 32)
    assert p.parse_args(["-o", "x"]).out == "x"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_a_real_ctrl_c_saves_and_exits_130(tmp_path):
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lstmcompat", "demo", *TINY, "--steps", "1000000", "-o",
         str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while not (lines and lines[-1] == "---\n"):  # the first sample is printed
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        time.sleep(1.5)  # training
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted (Ctrl-C) after " in rest and " of 1000000 steps" in rest
    assert "reloaded it: it generates the same text" in rest
    assert (out / "model" / HEAD_FILE).exists() and (out / "losses.csv").exists()
