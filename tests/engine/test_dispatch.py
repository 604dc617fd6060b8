"""Dispatch details: single-step preference, describe hooks, forced kernels."""

import pytest
import torch

from lstmcompat._engine import (
    CellSpec,
    Weights,
    available_kernels,
    choose,
    run_explained,
    run_reference,
)


def _weights(spec, depth=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, p = spec.units, spec.output_size
    return Weights(W=torch.randn(depth, 4 * u, generator=g) * 0.5,
                   R=torch.randn(p, 4 * u, generator=g) * 0.5,
                   b=torch.randn(4 * u, generator=g) * 0.5)


@pytest.mark.parametrize("kw,what", [(dict(steps=1), "a single step"),
                                     (dict(batch=1), "batch 1")])
def test_one_step_or_batch_one_prefers_the_compiled_loop(kw, what):
    from lstmcompat._engine.fused import _extension

    spec = CellSpec(units=4)
    name, why = choose(spec, **kw)
    if _extension.backend() is None:  # no compiler: torch.lstm keeps these shapes
        assert name == "native"
    else:
        assert name == "fused" and what in why
    assert choose(spec, steps=5, batch=8)[0] == "native"
    assert choose(spec, **kw, kernel="native")[0] == "native"
    assert choose(spec, **kw, device="meta")[0] == "native"  # not on CPU: no claim


def test_training_on_cpu_prefers_the_compiled_loop():
    """Calls that will be differentiated go to ``fused`` (its hand-written backward
    beats torch.lstm's forward+backward); inference keeps torch.lstm."""
    from lstmcompat._engine.fused import _extension

    spec = CellSpec(units=8, forget_bias=1.0)
    name, why = choose(spec, steps=50, batch=32, grad=True)
    if _extension.backend() is None:
        assert name == "native"
    else:
        assert name == "fused" and "training on CPU" in why and "instead of native" in why
    assert choose(spec, steps=50, batch=32)[0] == "native"
    assert choose(spec, steps=50, batch=32, grad=True, device="meta")[0] == "native"
    assert choose(spec, steps=50, batch=32, grad=True, kernel="native")[0] == "native"
    # a kernel that is the first exact one anyway keeps its own reason
    name, why = choose(CellSpec(units=8, recurrent_activation="hard_sigmoid"), grad=True)
    assert name == "fused" and "hard_sigmoid" in why


def test_run_decides_training_from_the_tensors():
    from lstmcompat._engine.fused import _extension

    if _extension.backend() is None:
        pytest.skip("no compiled loop: torch.lstm runs both")
    spec = CellSpec(units=4)
    w = _weights(spec)
    x, h0, c0 = torch.randn(6, 3, 3), torch.zeros(3, 4), torch.zeros(3, 4)
    assert run_explained(spec, x, w, h0, c0)[3][0] == "native"
    xg = x.clone().requires_grad_()
    out = run_explained(spec, xg, w, h0, c0)
    assert out[3][0] == "fused"
    with torch.no_grad():
        assert run_explained(spec, xg, w, h0, c0)[3][0] == "native"
    want = run_reference(spec, xg, w, h0, c0)
    for a, b in zip(out[:3], want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    ga = torch.autograd.grad(out[0].sum(), xg)[0]
    gb = torch.autograd.grad(want[0].sum(), xg)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)


def test_preference_never_overrides_exactness():
    spec = CellSpec(units=4, activation=lambda t: t * 2)  # unknown derivative: not fused
    assert choose(spec, steps=1, batch=1)[0] == "reference"


@pytest.mark.parametrize("act", ["hard_sigmoid", "keras3_hard_sigmoid"])
def test_fused_reason_says_which_time_loop(act):
    name, why = choose(CellSpec(units=4, recurrent_activation=act))
    assert name == "fused" and f"recurrent_activation={act!r}" in why
    assert "[compiled C++ time loop]" in why or "[pure-PyTorch loop" in why


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("spec", [
    CellSpec(units=4),
    CellSpec(units=4, recurrent_activation="hard_sigmoid", forget_bias=1.0),
])
def test_single_step_path_equals_reference(spec, grad):
    w = _weights(spec)
    x = torch.randn(1, 2, 3)
    h0, c0 = torch.randn(2, 4), torch.randn(2, 4)
    ref = run_reference(spec, x, w, h0, c0)
    with torch.set_grad_enabled(grad):
        out, h, c, (name, _) = run_explained(spec, x, w, h0, c0)
    assert name == "fused"
    for a, b in zip((out, h, c), ref):
        torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-6)


def test_environment_forces_a_kernel(monkeypatch):
    spec = CellSpec(units=4)
    w = _weights(spec)
    x = torch.randn(5, 2, 3)
    h0 = c0 = torch.zeros(2, 4)
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "reference")
    *_, (name, why) = run_explained(spec, x, w, h0, c0)
    assert name == "reference" and "requested explicitly" in why
    monkeypatch.setenv("LSTMCOMPAT_KERNEL", "no-such-kernel")
    with pytest.raises(ValueError, match="Unknown `kernel`"):
        run_explained(spec, x, w, h0, c0)


# ----------------------------------------------------------------- kernel records

def test_every_kernel_is_one_record():
    from lstmcompat._engine import dispatch
    from lstmcompat._engine.dispatch import Kernel, Streaming, kernel_record

    assert available_kernels() == ["native", "fused", "triton", "reference"]
    for name in available_kernels():
        k = kernel_record(name)
        assert isinstance(k, Kernel) and k.name == name
        assert callable(k.run) and callable(k.cannot)
    assert isinstance(kernel_record("fused").streaming, Streaming)
    assert kernel_record("fused").preferred is not None
    assert kernel_record("triton").first_use is not None  # a tiny case against reference
    assert kernel_record("fused").first_use is not None  # builds or loads the extension
    assert not kernel_record("native").runs_padded_steps
    assert all(kernel_record(n).streaming is None for n in ("native", "triton", "reference"))
    for parallel in ("_RUNNERS", "_DESCRIBE", "_PREFERRED", "_PRIORITY"):
        assert not hasattr(dispatch, parallel)


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the kernel registry and of the first-use checks' results."""
    from lstmcompat._engine import dispatch

    monkeypatch.setattr(dispatch, "_KERNELS", dict(dispatch._KERNELS))
    monkeypatch.setattr(dispatch, "_FAILED", {})
    monkeypatch.setattr(dispatch, "_CHECKED", set())
    dispatch.clear_choice_cache()
    yield dispatch
    monkeypatch.undo()
    dispatch.clear_choice_cache()


def _recording(calls, run=run_reference):
    def runner(spec, x, w, h0, c0, **kw):
        calls.append(kw)
        return run(spec, x, w, h0, c0, **kw)
    return runner


def test_run_calls_the_chosen_record_with_one_input_contract(registry):
    """A registered record is what ``run`` calls: every runner gets ``mask`` (never
    ``lengths``), ``reverse``, ``dropout`` and ``batch_first``."""
    from lstmcompat._engine.dispatch import Kernel, register_kernel

    calls = []
    register_kernel(Kernel("mine", _recording(calls), lambda spec, **_: None), priority=0)
    assert available_kernels()[0] == "mine"
    spec = CellSpec(units=4)
    w = _weights(spec)
    x, h0, c0 = torch.randn(5, 3, 3), torch.zeros(3, 4), torch.zeros(3, 4)
    mask = torch.ones(5, 3, dtype=torch.bool)
    mask[3:, 1] = False  # right-padded
    out, h, c, (name, why) = run_explained(spec, x, w, h0, c0, mask=mask)
    assert name == "mine" and why.startswith("mine: the fastest kernel that is exact")
    assert set(calls[0]) == {"mask", "reverse", "dropout", "batch_first"}
    assert torch.equal(calls[0]["mask"], mask)
    run_explained(spec, x, w, h0, c0)
    assert calls[1]["mask"] is None  # no mask, or an all-true one: None
    # native takes the same contract: a right-padded mask, not lengths
    from lstmcompat._engine.dispatch import kernel_record

    got = kernel_record("native").run(spec, x, w, h0, c0, mask=mask, reverse=False,
                                      dropout=None, batch_first=False)
    for a, b in zip(got, run_reference(spec, x, w, h0, c0, mask=mask)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_run_py_names_no_kernel():
    import importlib
    import re
    from pathlib import Path

    run_module = importlib.import_module("lstmcompat._engine.run")
    source = Path(run_module.__file__).read_text()
    for name in available_kernels():
        assert not re.search(rf"\b{name}\b", source), f"run.py names the kernel {name!r}"


def test_compiled_sources_read_no_environment():
    import re
    from pathlib import Path

    import lstmcompat._engine.fused as fused

    csrc = Path(fused.__file__).with_name("csrc")
    sources = [p for p in csrc.rglob("*") if p.suffix in (".cpp", ".cc", ".h", ".hpp", ".cu")]
    assert sources
    for path in sources:
        found = re.findall(r"\w*getenv\w*|\benviron\b|\b_?environ_?\w*\(", path.read_text())
        assert not found, f"{path.name} reads the environment: {found}"


# --------------------------------------------------------------------- streaming

def test_choose_explains_streaming_like_any_choice(monkeypatch):
    import lstmcompat._engine.fused as fused
    from lstmcompat._engine import dispatch

    spec = CellSpec(units=4)
    name, why = choose(spec)
    assert "streaming" not in why  # asked only with streaming=True
    name, why = choose(spec, streaming=True)
    if fused.compiled_loop(binding=True)[0]:
        assert name == "fused" and "a single step on CPU" in why
        assert why.endswith("; single-step streaming: the compiled Streamer reads the "
                            "module's parameters in place")
    else:
        assert "; not streaming: " in why
    # the same as one step, plus what streaming adds
    assert why.startswith(choose(spec, steps=1)[1] + "; ")
    cases = [
        (dict(kernel="fused"), "fused", "not streaming: a kernel is forced"),
        (dict(kernel="reference"), "reference", "not streaming: a kernel is forced"),
        (dict(device="cuda"), "native", "not streaming: native has no single-step streaming"),
        (dict(dropout_kind="other"), None, "not streaming: dropout masks"),
        (dict(dtype=torch.float16), "native", "not streaming: native has no"),
    ]
    for kw, want, because in cases:
        name, why = choose(spec, streaming=True, **kw)
        assert (want is None or name == want) and because in why, (kw, why)
    odd = CellSpec(units=4, activation=lambda t: t * 2)
    name, why = choose(odd, streaming=True)
    assert name == "reference" and "not streaming: reference has no single-step" in why
    # a fact looked up without side effects: the compiled binding is missing
    monkeypatch.setattr(fused, "compiled_loop", lambda binding=False: (False, "no binding here"))
    dispatch.clear_choice_cache()
    try:
        name, why = choose(CellSpec(units=4, recurrent_activation="hard_sigmoid"),
                           streaming=True)
        assert name == "fused" and why.endswith("; not streaming: no binding here")
    finally:
        monkeypatch.undo()
        dispatch.clear_choice_cache()


# ------------------------------------------------------------------------ purity

def test_choose_on_a_clean_cache_builds_nothing(monkeypatch, tmp_path):
    """``choose`` never builds or loads the extension: with an empty cache directory
    and a builder that fails the test if called, every kind of call is answered in
    milliseconds, and nothing is loaded or written."""
    import time

    from lstmcompat._engine import dispatch
    from lstmcompat._engine.fused import _build, _extension

    def refuse(*a, **k):
        raise AssertionError("choose built or loaded the compiled extension")

    monkeypatch.setenv("LSTMCOMPAT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_extension, "_state", None)  # as in a fresh process
    for fn in ("build", "_load", "_import_module", "backend", "status", "_get"):
        monkeypatch.setattr(_build if fn == "build" else _extension, fn, refuse)
    monkeypatch.setattr(torch.ops, "load_library", refuse)
    dispatch.clear_choice_cache()
    try:
        calls = [dict(), dict(steps=1), dict(batch=1), dict(grad=True, steps=9, batch=9),
                 dict(streaming=True), dict(streaming=True, dtype=torch.float64),
                 dict(device="cuda"), dict(kernel="fused"), dict(mask_kind="general")]
        specs = [CellSpec(units=8), CellSpec(units=8, recurrent_activation="hard_sigmoid"),
                 CellSpec(units=8, use_peepholes=True, num_proj=4, cell_clip=1.0)]
        for spec in specs:
            for kw in calls:
                start = time.perf_counter()
                name, why = choose(spec, **kw)
                took = time.perf_counter() - start
                assert took < 0.05, (kw, took)  # a build takes 20 s or more
        assert _extension._state is None
        assert list(tmp_path.iterdir()) == []
    finally:
        monkeypatch.undo()
        dispatch.clear_choice_cache()


def test_the_first_real_run_builds_and_reports_what_ran(registry, monkeypatch):
    """``choose`` before the build reads an expectation; the first real run builds (here:
    fails to), and its ``last_kernel`` already says what ran, as does ``choose`` after."""
    from lstmcompat._engine.fused import _build, _extension

    loads = []

    def failing_load():
        loads.append(1)
        return None, "compiled extension unavailable: test"

    monkeypatch.setattr(_extension, "_state", None)
    monkeypatch.setattr(_extension, "_load", failing_load)
    registry.clear_choice_cache()
    spec = CellSpec(units=4, recurrent_activation="hard_sigmoid")
    assert "[compiled C++ time loop]" in choose(spec)[1]  # expected: a compiler is here
    assert _extension._state is None and loads == []
    if _build.find_compiler() is None:
        pytest.skip("no C++ compiler: nothing is expected to be built")
    w = _weights(spec)
    x, h0, c0 = torch.randn(3, 2, 3), torch.zeros(2, 4), torch.zeros(2, 4)
    *_, (name, why) = run_explained(spec, x, w, h0, c0)
    assert loads == [1]
    assert name == "fused"
    assert "[pure-PyTorch loop (compiled extension unavailable: test)]" in why
    assert choose(spec)[1] == why
    # one step on CPU: fused claims it only with the compiled loop, so native runs it
    *_, (name, why) = run_explained(CellSpec(units=4), x[:1], w, h0, c0)
    assert name == "native" and loads == [1]


# ------------------------------------------------------------ first-use checks

def test_a_passing_first_use_check_runs_once_per_device(registry):
    from lstmcompat._engine.dispatch import Kernel, register_kernel

    checked, calls = [], []

    def check(spec, device):
        checked.append(device)
        return None

    register_kernel(Kernel("mine", _recording(calls), lambda spec, **_: None,
                           first_use=check),
                    priority=0)
    spec = CellSpec(units=4)
    w = _weights(spec)
    x, h0, c0 = torch.randn(3, 2, 3), torch.zeros(2, 4), torch.zeros(2, 4)
    for _ in range(3):
        assert run_explained(spec, x, w, h0, c0)[3][0] == "mine"
    assert checked == [torch.device("cpu")] and len(calls) == 3


@pytest.mark.parametrize("failure", ["wrong", "raises"])
def test_a_failing_first_use_check_falls_back_with_one_warning(registry, failure):
    """A kernel whose check fails is never run: the call goes to the next exact kernel
    (here ``native``, exact for this spec), with one warning for the process, and
    ``choose`` says why from then on; forcing the kernel raises."""
    import warnings

    from lstmcompat._engine.dispatch import Kernel, register_kernel

    calls = []

    def check(spec, device):
        if failure == "raises":
            raise RuntimeError("ptxas fatal: unsupported GPU\nmore lines")
        return "outputs differ from the reference by up to 1"

    register_kernel(Kernel("mine", _recording(calls), lambda spec, **_: None,
                           first_use=check),
                    priority=0)
    spec = CellSpec(units=4)
    assert choose(spec)[0] == "mine"  # not checked yet: choose runs no check
    w = _weights(spec)
    x, h0, c0 = torch.randn(3, 2, 3), torch.zeros(2, 4), torch.zeros(2, 4)
    because = ("RuntimeError: ptxas fatal: unsupported GPU" if failure == "raises"
               else "outputs differ from the reference by up to 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            out, h, c, (name, why) = run_explained(spec, x, w, h0, c0)
            assert name == "native"
            assert f"not mine: it failed its first-use check on cpu ({because})" in why
    ours = [m for m in caught if "first-use check" in str(m.message)]
    assert len(ours) == 1 and ours[0].category is RuntimeWarning
    assert because in str(ours[0].message)
    assert calls == []
    name, why = choose(spec)
    assert name == "native" and because in why
    with pytest.raises(ValueError, match="`kernel='mine'` cannot run this call exactly: it "
                                         "failed its first-use check"):
        run_explained(spec, x, w, h0, c0, kernel="mine")
    for a, b in zip((out, h, c), run_reference(spec, x, w, h0, c0)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _triton_takes_cpu_calls(dispatch, monkeypatch, fake_run):
    """Simulate a GPU on CPU: the triton record takes this call (fused steps aside) and
    its first-use check runs ``fake_run`` as the Triton runner."""
    import dataclasses

    from lstmcompat._engine import gpu

    t, f = dispatch.kernel_record("triton"), dispatch.kernel_record("fused")
    dispatch._KERNELS["triton"] = dataclasses.replace(t, cannot=lambda spec, **_: None)
    dispatch._KERNELS["fused"] = dataclasses.replace(
        f, cannot=lambda spec, **_: "stepped aside for this test")
    monkeypatch.setattr(gpu, "run_triton", fake_run)
    dispatch.clear_choice_cache()


@pytest.mark.parametrize("failure", ["wrong numbers", "compile error"])
def test_triton_self_check_failure_falls_back_to_reference(registry, monkeypatch, failure):
    import warnings

    calls = []

    def fake_triton(spec, x, w, h0, c0, **kw):
        calls.append(x.device)
        if failure == "compile error":
            raise RuntimeError("PassManager::run failed")
        return tuple(t + 1 for t in run_reference(spec, x, w, h0, c0, **kw))

    _triton_takes_cpu_calls(registry, monkeypatch, fake_triton)
    spec = CellSpec(5, recurrent_activation="hard_sigmoid", use_peepholes=True, num_proj=3)
    assert choose(spec)[0] == "triton"
    w = Weights(W=torch.randn(3, 20) * 0.5, R=torch.randn(3, 20) * 0.5, b=torch.randn(20),
                w_i=torch.randn(5), w_f=torch.randn(5), w_o=torch.randn(5),
                P=torch.randn(5, 3))
    x, h0, c0 = torch.randn(4, 2, 3), torch.zeros(2, 3), torch.zeros(2, 5)
    because = ("RuntimeError: PassManager::run failed" if failure == "compile error"
               else "outputs differs from the reference by up to 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            out, h, c, (name, why) = run_explained(spec, x, w, h0, c0)
            assert name == "reference", why
            assert f"not triton: it failed its first-use check on cpu ({because}" in why, why
    assert len(calls) == 1  # the check ran once; the kernel never ran a real call
    assert len([m for m in caught if "first-use check" in str(m.message)]) == 1
    assert because in choose(spec)[1]
    with pytest.raises(ValueError, match="first-use check"):
        run_explained(spec, x, w, h0, c0, kernel="triton")
    for a, b in zip((out, h, c), run_reference(spec, x, w, h0, c0)):
        torch.testing.assert_close(a, b)
