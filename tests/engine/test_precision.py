"""Mixed precision (torch.autocast): every kernel computes the reference's numbers with
low-precision products (``CellSpec.matmul_dtype``), the engine switches to it under
autocast, and the outputs come back in the autocast type (states in float32)."""

from __future__ import annotations

import pytest
import torch

from lstmcompat._engine import CellSpec, Dropout, Weights, run_explained
from lstmcompat._engine.fused import TORCH_BACKEND, _extension
from lstmcompat._engine.fused._function import run_sequence
from lstmcompat._engine.precision import autocast_dtype, lowp_matmul, products, rounded
from lstmcompat._engine.reference import run_reference

BF16 = torch.bfloat16


def _weights(spec: CellSpec, D: int, g: torch.Generator) -> Weights:
    u, p = spec.units, spec.output_size

    def r(*s: int, scale: float = 0.4) -> torch.Tensor:
        return (torch.randn(*s, generator=g) * scale).requires_grad_()

    peep = dict(w_i=r(u), w_f=r(u), w_o=r(u)) if spec.use_peepholes else {}
    P = r(u, spec.num_proj) if spec.num_proj else None
    return Weights(r(D, 4 * u, scale=1 / D ** 0.5), r(p, 4 * u, scale=1 / p ** 0.5), r(4 * u),
                   P=P, **peep)


SPECS = {
    "keras": CellSpec(9, recurrent_activation="hard_sigmoid"),
    "sigmoid": CellSpec(9),
    "tf1_all": CellSpec(9, use_peepholes=True, cell_clip=0.8, num_proj=5, proj_clip=0.6,
                        forget_bias=1.0, mask_mode="zero"),
    # wide enough for the compiled loops' two threads (and their shared bf16 copies)
    "wide": CellSpec(192, recurrent_activation="hard_sigmoid"),
}


def _case(name: str, T: int, B: int, mask: str, dropout: str, seed: int = 0):
    spec = SPECS[name]
    g = torch.Generator().manual_seed(seed)
    D = 7
    w = _weights(spec, D, g)
    x = torch.randn(T, B, D, generator=g).requires_grad_()
    h0 = torch.randn(B, spec.output_size, generator=g).requires_grad_()
    c0 = torch.randn(B, spec.units, generator=g).requires_grad_()
    m = None
    if mask == "holes":
        m = torch.rand(T, B, generator=g) < 0.7
    elif mask == "padded":
        lengths = torch.randint(0, T + 1, (B,), generator=g)
        m = torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)
    d = None
    if dropout != "none":
        G = 1 if dropout == "shared" else 4
        d = Dropout(x=(torch.rand(G, B, D, generator=g) < 0.8).float() / 0.8,
                    h=(torch.rand(G, B, spec.output_size, generator=g) < 0.8).float() / 0.8)
    return spec, x, w, h0, c0, m, d


def _run(run, spec, x, w, h0, c0, m, d, reverse=False):
    """Outputs, final state and every gradient of one call under autocast (bfloat16)."""
    with torch.autocast("cpu", dtype=BF16):
        out = run(spec, x, w, h0, c0, m, d, reverse)
    o, h, c = out[:3]
    loss = (o.float() ** 2).sum() + (h * 0.5).sum() + (c * 0.3).sum()
    tensors = [x, h0, c0, *(t for t in w if t is not None)]
    return [o, h, c, *torch.autograd.grad(loss, tensors)]


def _engine(kernel):
    def run(spec, x, w, h0, c0, m, d, reverse):
        return run_explained(spec, x, w, h0, c0, mask=m, dropout=d, reverse=reverse,
                             kernel=kernel)
    return run


def _fused_torch(spec, x, w, h0, c0, m, d, reverse):
    """The fused kernel on its pure-PyTorch loops (the compiled ones are the default)."""
    md = autocast_dtype("cpu", w.W.dtype)
    with torch.autocast("cpu", enabled=False):
        import dataclasses
        o, h, c = run_sequence(dataclasses.replace(spec, matmul_dtype=md), TORCH_BACKEND, x, w,
                               h0, c0, mask=m, dropout=d, reverse=reverse)
    return o.to(md), h, c


def _close(a: torch.Tensor, b: torch.Tensor, what: str, loose: float = 3e-2) -> None:
    """``a`` computes what ``b`` does with the same low-precision products.

    Two float32 implementations differ in the order of their sums (~1e-7), and now and
    then that puts one value on the other side of a bfloat16 rounding step: one operand
    of a later product then differs by a bfloat16 step (2**-8 relative), and what depends
    on it by about that much times its weight. So: the typical (median) value agrees to
    float32 precision (products in float32 instead of bfloat16 move it by ~1e-3), and
    every value within a few bfloat16 steps."""
    a, b = a.detach().double(), b.detach().double()
    scale = max(b.abs().max().item(), 1e-3)
    err = (a - b).abs() / scale
    assert err.median().item() <= 1e-5, f"{what}: median error {err.median().item():.2e}"
    assert err.max().item() <= loose, f"{what}: {err.max().item():.2e}"


def _compare(got, want):
    names = ["outputs", "h", "c", "dx", "dh0", "dc0", "dW", "dR", "db", "dP/peep", "...",
             "...", "..."]
    assert got[0].dtype == BF16 and want[0].dtype == BF16
    same = (got[0] == want[0]).double().mean().item()
    assert same >= 0.9, f"outputs: only {same:.1%} the same bfloat16 values"
    _close(got[0], want[0], "outputs")
    for i, (a, b) in enumerate(zip(got[1:], want[1:]), start=1):
        assert a.dtype == torch.float32, names[i]
        _close(a, b, names[i])


KERNELS = {"fused": _engine("fused"), "fused_torch_loops": _fused_torch}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("mask", ["none", "holes", "padded"])
def test_kernels_match_the_reference_under_autocast(kernel, name, mask):
    T, B = (5, 6) if name == "wide" else (7, 5)
    case = _case(name, T, B, mask, "none")
    _compare(_run(KERNELS[kernel], *case), _run(_engine("reference"), *case))


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("dropout", ["shared", "per_gate"])
@pytest.mark.parametrize("reverse", [False, True])
def test_dropout_and_reverse_under_autocast(kernel, dropout, reverse):
    case = _case("keras", 6, 4, "holes", dropout, seed=3)
    _compare(_run(KERNELS[kernel], *case, reverse=reverse),
             _run(_engine("reference"), *case, reverse=reverse))


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("T", [1, 2, 3])
def test_short_sequences_under_autocast(kernel, T):
    # one step takes the single-step path; fewer than 4 steps the unpacked products
    case = _case("tf1_all", T, 3, "none", "none", seed=T)
    _compare(_run(KERNELS[kernel], *case), _run(_engine("reference"), *case))


def test_the_reference_rounds_every_product_operand():
    # The definition, independently, in float64: products of bfloat16-rounded operands.
    spec, x, w, h0, c0, _, _ = _case("keras", 4, 3, "none", "none", seed=5)
    with torch.no_grad():
        lo = dict(spec.__dict__, matmul_dtype=BF16)
        out, h, c = run_reference(CellSpec(**lo), x, w, h0, c0)

        def r(t):
            return t.to(BF16).double()

        u = spec.units
        hh, cc = h0.double(), c0.double()
        for t in range(4):
            z = r(x[t]) @ r(w.W) + r(hh) @ r(w.R) + w.b.double()
            i, f = (torch.clamp(0.2 * z[:, :2 * u] + 0.5, 0, 1)).split(u, dim=1)
            cc = f * cc + i * torch.tanh(z[:, 2 * u:3 * u])
            hh = torch.clamp(0.2 * z[:, 3 * u:] + 0.5, 0, 1) * torch.tanh(cc)
            assert (out[t].double() - hh).abs().max() < 1e-5
    assert (c.double() - cc).abs().max() < 1e-5


def test_lowp_matmul_gradients_round_their_operands():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 6, generator=g, requires_grad=True)
    b = torch.randn(6, 4, generator=g, requires_grad=True)
    gy = torch.randn(5, 4, generator=g)
    y = lowp_matmul(a, b, BF16)
    da, db = torch.autograd.grad(y, [a, b], gy)
    r = lambda t: t.detach().to(BF16).double()  # noqa: E731
    assert y.dtype == da.dtype == db.dtype == torch.float32
    assert torch.allclose(y.double(), r(a) @ r(b), atol=1e-5, rtol=0)
    assert torch.allclose(da.double(), r(gy) @ r(b).t(), atol=1e-5, rtol=0)
    assert torch.allclose(db.double(), r(a).t() @ r(gy), atol=1e-5, rtol=0)
    assert torch.equal(lowp_matmul(a, b, None), a @ b)


@pytest.mark.parametrize("layout", ["plain", "a_t", "b_t", "both_t", "bf16_in", "float64"])
def test_products_of_any_layout(layout):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(37, 19, generator=g)
    b = torch.randn(19, 23, generator=g)
    if layout in ("a_t", "both_t"):
        a = a.t().contiguous().t()
    if layout in ("b_t", "both_t"):
        b = b.t().contiguous().t()
    if layout == "bf16_in":
        a = a.to(BF16)
    if layout == "float64":
        a, b = a.double(), b.double()
    got = products(a, b, BF16)
    want = a.to(BF16).double() @ b.to(BF16).double()
    assert got.dtype == (torch.float64 if layout == "float64" else torch.float32)
    assert got.shape == (37, 23) and (got.double() - want).abs().max() < 1e-5
    assert products(torch.ones(3, 0), torch.ones(0, 2), BF16).eq(0).all()
    if a.dtype == b.dtype:
        assert torch.equal(products(a, b, None), a @ b)


def _compiled_bf16():
    """The compiled backend, when it has a bfloat16 GEMM (else the test is skipped)."""
    ext = _extension.backend()
    if ext is None or not ext.bf16_gemm:
        pytest.skip("no compiled bfloat16 GEMM here")
    return ext


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def test_the_compiled_bf16_gemm_is_used_when_built():
    ext = _extension.backend()
    if ext is None:
        pytest.skip("no compiled extension here")
    from lstmcompat._engine.fused import _build

    # A bfloat16 GEMM is what makes bfloat16 faster on CPU: the build's own on a CPU
    # with AVX-512 BF16 and no AMX (there MKL's is no faster than its float GEMM),
    # else MKL's whenever torch exports it.
    flags = _cpu_flags()
    own = "avx512_bf16" in flags and "amx_bf16" not in flags
    assert ("avx512-bf16-gemm" in ext.features()) == own
    assert ext.bf16_gemm == (own or _build._has_bf16_gemm_symbols())


# sizes about the compiled GEMM's edges: tiles of 6 rows and 64 columns (vectors of 16),
# row blocks of 96, k in pairs and passes of 1024
GEMM_SIZES = [(1, 1, 1), (2, 3, 5), (6, 2, 16), (7, 17, 33), (13, 64, 65), (97, 31, 129),
              (5, 1025, 70), (3, 2050, 17), (200, 1, 80)]


@pytest.mark.parametrize("M,K,N", GEMM_SIZES)
@pytest.mark.parametrize("a_layout", ["rows", "transposed", "bf16"])
@pytest.mark.parametrize("b_layout", ["rows", "transposed", "bf16"])
def test_the_compiled_bf16_gemm_at_its_edges(M, K, N, a_layout, b_layout):
    ext = _compiled_bf16()
    g = torch.Generator().manual_seed(M * 1000 + K + N)
    a = torch.randn(M, K, generator=g)
    b = torch.randn(K, N, generator=g)
    # values that round differently in bfloat16, and exact zeros next to large ones
    a[0, 0] = 1 + 2 ** -8
    b[-1, -1] = 0.0
    for name, t in (("a", a_layout), ("b", b_layout)):
        v = a if name == "a" else b
        v = v.t().contiguous().t() if t == "transposed" else v.to(BF16) if t == "bf16" else v
        if name == "a":
            a = v
        else:
            b = v
    got = ext.ops.mm_bf16(a, b)
    want = a.to(BF16).double() @ b.to(BF16).double()
    assert got.dtype == torch.float32 and got.shape == (M, N)
    scale = want.abs().max().item() + 1e-30
    assert (got.double() - want).abs().max().item() <= 1e-6 * scale * max(1, K) ** 0.5


def test_the_compiled_bf16_gemm_propagates_nan_and_inf():
    ext = _compiled_bf16()
    a = torch.ones(7, 5)
    b = torch.ones(5, 20)
    a[1, 2] = float("nan")
    a[3, 0] = float("inf")
    got = ext.ops.mm_bf16(a, b)
    want = a.to(BF16).float() @ b.to(BF16).float()
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())
    assert torch.equal(got[~want.isnan() & ~want.isinf()], want[~want.isnan() & ~want.isinf()])


def test_rounding_is_round_to_nearest_even():
    x = torch.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8, float("nan"), float("inf"), -0.0])
    y = rounded(x, BF16)
    assert y[0] == 1.0 and y[1] == 1 + 2 ** -6 and y[2].isnan() and y[3] == float("inf")
    assert rounded(x, None) is x


def test_autocast_dtype():
    assert autocast_dtype("cpu", torch.float32) is None
    with torch.autocast("cpu", dtype=BF16):
        assert autocast_dtype("cpu", torch.float32) == BF16
        assert autocast_dtype("cpu", torch.float64) is None  # autocast leaves float64 alone
        assert autocast_dtype("cuda", torch.float32) is None
        assert autocast_dtype("meta", torch.float32) is None  # no autocast there
    with torch.autocast("cpu", dtype=torch.float16):
        assert autocast_dtype("cpu", torch.float32) == torch.float16


def test_matmul_dtype_is_checked():
    with pytest.raises(ValueError, match="matmul_dtype"):
        CellSpec(3, matmul_dtype=torch.float64)


def test_under_autocast_fused_is_preferred_and_native_computes_in_float32():
    spec, x, w, h0, c0, _, _ = _case("sigmoid", 5, 4, "none", "none")
    with torch.no_grad():
        with torch.autocast("cpu", dtype=BF16):
            _, _, _, (name, why) = run_explained(spec, x, w, h0, c0)
            native = run_explained(spec, x, w, h0, c0, kernel="native")
        if _extension.backend() is not None:
            assert name == "fused" and "bfloat16" in why
        want = run_explained(spec, x, w, h0, c0, kernel="reference")
    # native ignores the rule: float32 products, the outputs in the autocast type
    assert native[0].dtype == BF16 and native[1].dtype == torch.float32
    assert torch.equal(native[0], want[0].to(BF16)) or \
        (native[0].float() - want[0]).abs().max() <= want[0].abs().max() * 2 ** -7
    assert (native[2] - want[2]).abs().max() < 1e-5


def test_float16_products_on_cpu():
    # float16 autocast on CPU: the same rule (float GEMMs of float16-rounded operands)
    case = _case("keras", 5, 3, "holes", "none", seed=7)

    def run(kernel):
        with torch.autocast("cpu", dtype=torch.float16):
            o, h, c, _ = run_explained(*case[:5], mask=case[5], kernel=kernel)
        return o, h, c

    got, want = run("fused"), run("reference")
    assert got[0].dtype == torch.float16
    _close(got[0], want[0], "outputs")
    _close(got[2], want[2], "c")


def test_float64_is_left_alone_by_autocast():
    spec, x, w, h0, c0, _, _ = _case("keras", 5, 3, "none", "none")
    w64 = Weights(*(None if t is None else t.detach().double() for t in w))
    args = (spec, x.detach().double(), w64, h0.detach().double(), c0.detach().double())
    want = run_explained(*args)
    with torch.autocast("cpu", dtype=BF16):
        got = run_explained(*args)
    assert got[0].dtype == torch.float64 and torch.equal(got[0], want[0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_matches_the_reference(dtype):
    spec, x, w, h0, c0, m, _ = _case("tf1_all", 6, 4, "holes", "none")
    dev = torch.device("cuda")
    args = [spec, x.detach().to(dev), Weights(*(None if t is None else t.detach().to(dev)
                                                 for t in w)),
            h0.detach().to(dev), c0.detach().to(dev)]
    with torch.autocast("cuda", dtype=dtype):
        got = run_explained(*args, mask=m.to(dev))
        want = run_explained(*args, mask=m.to(dev), kernel="reference")
    assert got[0].dtype == dtype
    assert (got[0].float() - want[0].float()).abs().max() < 2e-2
    _close(got[2].cpu(), want[2].cpu(), "c")


def test_the_compiled_loop_rounds_as_torch_does():
    # The compiled backward returns its bfloat16 copy of dZ (the operand of the weight
    # gradients): the same bits as torch's cast, NaN and infinities included.
    ext = _compiled_bf16()
    spec = CellSpec(16, matmul_dtype=BF16)
    g = torch.Generator().manual_seed(0)
    T, B, u = 5, 3, 16
    Z = torch.randn(T, B, 4 * u, generator=g) * 3
    R = torch.randn(u, 4 * u, generator=g)
    h0, c0 = torch.randn(B, u, generator=g), torch.randn(B, u, generator=g)
    fwd = ext.forward_loop(spec, Z, R, h0, c0, None, None, None, None, True)
    dout = torch.randn(T, B, u, generator=g) * 1e3
    dout[0, 0, :3] = torch.tensor([float("nan"), float("inf"), 2 ** -130])
    res = ext.backward_loop(spec, Z, fwd.C, fwd.Cpre, fwd.Rpre, c0, R, None, None, None, None,
                            dout, torch.zeros(B, u), torch.zeros(B, u))
    want = res.dZ.to(BF16)
    got = res.dZ_lowp
    assert got.dtype == BF16 and got.shape == want.shape
    same = (got.view(torch.int16) == want.view(torch.int16)) | (got.isnan() & want.isnan())
    assert bool(same.all())


@pytest.mark.parametrize("mask", [False, True])
def test_the_lean_compiled_backward_keeps_only_the_bfloat16_dz(mask):
    # lean (the engine's own calls): no float dZ, db summed by the loop; everything else
    # exactly as without it
    ext = _compiled_bf16()
    spec = CellSpec(24, matmul_dtype=BF16)
    g = torch.Generator().manual_seed(2)
    T, B, u = 6, 5, 24
    Z = torch.randn(T, B, 4 * u, generator=g)
    R = torch.randn(u, 4 * u, generator=g) * 0.3
    h0, c0 = torch.randn(B, u, generator=g), torch.randn(B, u, generator=g)
    m = torch.rand(T, B, generator=g) > 0.3 if mask else None
    fwd = ext.forward_loop(spec, Z, R, h0, c0, None, None, None, m, True)
    dout = torch.randn(T, B, u, generator=g)
    args = (spec, Z, fwd.C, fwd.Cpre, fwd.Rpre, c0, R, None, None, None, m, dout,
            torch.randn(B, u, generator=g), torch.randn(B, u, generator=g))
    full, lean = ext.backward_loop(*args), ext.backward_loop(*args, lean=True)
    assert full.dZ.shape == (T, B, 4 * u) and lean.dZ.numel() == 0
    assert torch.equal(lean.dZ_lowp.view(torch.int16), full.dZ_lowp.view(torch.int16))
    assert torch.equal(lean.dh0, full.dh0) and torch.equal(lean.dc0, full.dc0)
    want = full.dZ.double().sum((0, 1))
    assert lean.db.shape == (4 * u,)
    assert (lean.db.double() - want).abs().max().item() <= 1e-5 * want.abs().max().item()


@pytest.mark.parametrize("spec", [
    CellSpec(20, matmul_dtype=BF16),
    CellSpec(20, recurrent_activation="hard_sigmoid", forget_bias=1.0, matmul_dtype=BF16),
    CellSpec(20, use_peepholes=True, cell_clip=0.5, num_proj=12, proj_clip=0.3,
             mask_mode="zero", matmul_dtype=BF16),
], ids=["keras", "hard_sigmoid", "tf1_all"])
@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("save", [False, True])
def test_the_input_product_in_the_compiled_loop(spec, mask, save):
    # input_in_loop: each step multiplies [x_s, h] by [W; R] at once; the same numbers as
    # the separate input product up to the order of the float sums
    ext = _compiled_bf16()
    assert ext.input_in_loop(spec, torch.float32, None)
    assert not ext.input_in_loop(spec, torch.float64, None)
    assert not ext.input_in_loop(spec, torch.float32, torch.ones(1, 2, 3))
    assert not ext.input_in_loop(CellSpec(20), torch.float32, None)
    g = torch.Generator().manual_seed(4)
    T, B, D, u = 7, 5, 9, spec.units
    p = spec.output_size
    x = torch.randn(T, B, D, generator=g)
    W = torch.randn(D, 4 * u, generator=g) * 0.4
    R = torch.randn(p, 4 * u, generator=g) * 0.4
    b = torch.randn(4 * u, generator=g)
    h0, c0 = torch.randn(B, p, generator=g), torch.randn(B, u, generator=g)
    peep = torch.randn(3, u, generator=g) if spec.use_peepholes else None
    P = torch.randn(u, p, generator=g) * 0.5 if spec.num_proj else None
    m = torch.rand(T, B, generator=g) > 0.3 if mask else None
    Z = products(x.view(T * B, D), W, BF16).view(T, B, 4 * u)
    Zg = torch.full_like(Z, float("nan"))  # the loop writes every pre-activation
    want = ext.forward_loop(spec, Z, R, h0, c0, None, peep, P, m, save, b)
    got = ext.forward_loop(spec, Zg, R, h0, c0, None, peep, P, m, save, b, xw=(x, W))
    assert want.XH is None
    for name, a, w in zip(("Z", *want._fields[:7]), (Zg, *got[:7]), (Z, *want[:7])):
        assert a.shape == w.shape, name
        if w.numel():
            assert (a - w).abs().max().item() <= 1e-5 * (1 + w.abs().max().item()), name
    if not save:
        assert got.XH is None
    else:  # the kept left operands: [x_s, h_{s-1}] in bfloat16, as torch casts them
        Hs = got.Hs if got.Hs.numel() else got.outputs
        hprev = torch.cat([h0.unsqueeze(0), Hs[:-1]])
        assert torch.equal(got.XH, torch.cat([x, hprev], dim=2).to(BF16))
    with pytest.raises(RuntimeError, match="x and W"):
        ext.ops.forward(Z, R, h0, c0, None, None, None, None, 1, 3, None, None, True, False,
                        None, 1, x, None)
