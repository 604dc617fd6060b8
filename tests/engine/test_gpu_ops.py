"""The Triton kernels' ``torch.library.triton_op`` steps (``gpu/_ops.py``):
``lstmcompat::triton_forward_step`` / ``triton_backward_step`` against one step of the
pure-PyTorch loops (on CPU the kernels run under Triton's interpreter), their fake
implementations, ``opcheck``, and on CUDA ``torch.compile`` through them."""

from __future__ import annotations

import pytest
import torch

from lstmcompat._engine import CellSpec
from lstmcompat._engine.fused import _acts, _loops

pytest.importorskip("triton")
from lstmcompat._engine.gpu import _ops  # noqa: E402  (needs Triton)

SPECS = {
    "keras_default": CellSpec(5, recurrent_activation="hard_sigmoid", mask_mode="carry"),
    "tf1_everything": CellSpec(5, use_peepholes=True, cell_clip=0.5, num_proj=3, proj_clip=0.3,
                               mask_mode="zero"),
    "clips_no_projection": CellSpec(4, use_peepholes=True, cell_clip=0.4, proj_clip=0.2,
                                    mask_mode="carry"),
}
CUDA = torch.cuda.is_available()


def _case(spec: CellSpec, B: int, masked: bool, dropout: bool, device="cpu",
          dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    u, p = spec.units, spec.output_size

    def t(*shape, scale=0.7):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(device, dtype)

    mask = None
    if masked:
        mask = torch.tensor([True, False] * B)[:B].to(device)
    return dict(z=t(B, 4 * u), R=t(p, 4 * u, scale=0.5), h=t(B, p), c=t(B, u),
                dmh=(t(4, B, p) > 0).to(dtype) if dropout else None,
                peep=t(3, u) if spec.use_peepholes else None,
                P=t(u, p) if spec.num_proj is not None else None, mask=mask)


def _bounds(spec: CellSpec, like: torch.Tensor) -> torch.Tensor:
    a, b = spec.cell_clip or 0.0, spec.proj_clip or 0.0
    return torch.tensor([-a, a, -b, b], dtype=like.dtype, device=like.device)


def _forward_args(spec, a, omask=None):
    m8 = None if a["mask"] is None else a["mask"].to(torch.uint8)
    om8 = m8 if omask is None else omask.to(torch.uint8)
    return (a["z"], a["R"], a["h"], a["c"], a["dmh"], a["peep"], a["P"], m8, om8,
            _bounds(spec, a["z"]), _acts.code(spec.activation),
            _acts.code(spec.recurrent_activation), spec.cell_clip is not None,
            spec.proj_clip is not None)


def _reference_forward(spec, a):
    """One step of the pure-PyTorch loop (a Keras mask: rows not yet seen output 0)."""
    Z = a["z"].clone().unsqueeze(0)
    res = _loops.forward_loop(spec, Z, a["R"], a["h"], a["c"], a["dmh"], a["peep"], a["P"],
                              None if a["mask"] is None else a["mask"].unsqueeze(0), True)
    return Z[0], res


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dropout", [False, True])
def test_forward_step_equals_one_step_of_the_pytorch_loop(name, masked, dropout):
    spec = SPECS[name]
    a = _case(spec, 3, masked, dropout)
    before = {k: None if v is None else v.clone() for k, v in a.items()}
    z, h, c, out, cpre, rpre = _ops.triton_forward_step(*_forward_args(spec, a))
    want_z, want = _reference_forward(spec, a)
    torch.testing.assert_close(z, want_z)
    torch.testing.assert_close(h, want.h)
    torch.testing.assert_close(c, want.c)
    torch.testing.assert_close(out, want.outputs[0])
    if spec.cell_clip is not None:
        torch.testing.assert_close(cpre, want.Cpre[0])
    else:
        assert cpre.numel() == 0
    if spec.proj_clip is not None:
        torch.testing.assert_close(rpre, want.Rpre[0])
    else:
        assert rpre.numel() == 0
    for k, v in a.items():  # functional: no input changed
        assert v is None or torch.equal(v, before[k]), k


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("masked", [False, True])
def test_backward_step_equals_one_step_of_the_pytorch_loop(name, masked):
    spec = SPECS[name]
    a = _case(spec, 3, masked, False)
    z, _, c, _, cpre, rpre = _ops.triton_forward_step(*_forward_args(spec, a))
    g = torch.Generator().manual_seed(2)
    dout, dh, dc = (torch.randn(t.shape, generator=g, dtype=torch.float64)
                    for t in (a["h"], a["h"], a["c"]))
    carry = spec.mask_mode == "carry"
    acc = torch.zeros_like(dh) if masked and carry else None
    m8 = None if a["mask"] is None else a["mask"].to(torch.uint8)
    got = _ops.triton_backward_step(
        z, c, a["c"], cpre if spec.cell_clip is not None else None,
        rpre if spec.proj_clip is not None else None, a["R"], None, a["peep"], a["P"], m8,
        dout, dh, dc, acc, _bounds(spec, z), _acts.code(spec.activation),
        _acts.code(spec.recurrent_activation), carry)
    dz, dh0, dc0, _, hu, drp, _ = got
    mask = None if a["mask"] is None else a["mask"].unsqueeze(0)
    empty = z.new_empty(0)
    want = _loops.backward_loop(
        spec, z.unsqueeze(0), c.unsqueeze(0), cpre.unsqueeze(0) if cpre.numel() else empty,
        rpre.unsqueeze(0) if rpre.numel() else empty, a["c"], a["R"], None, a["peep"], a["P"],
        mask, dout.unsqueeze(0), dh, dc)
    torch.testing.assert_close(dz, want.dZ[0])
    torch.testing.assert_close(dh0, want.dh0)
    torch.testing.assert_close(dc0, want.dc0)
    if spec.num_proj is not None:
        torch.testing.assert_close(hu, want.HU[0])
        torch.testing.assert_close(drp, want.dRp[0])
    else:
        assert hu.numel() == drp.numel() == 0


@pytest.mark.parametrize("name", sorted(SPECS))
def test_fake_implementations_give_the_shapes_for_any_batch(name):
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    spec = SPECS[name]
    u, p = spec.units, spec.output_size
    real = _case(spec, 3, True, True)
    want = _ops.triton_forward_step(*_forward_args(spec, real))
    with FakeTensorMode(shape_env=ShapeEnv()) as mode:
        fake = {k: None if v is None else mode.from_tensor(v) for k, v in _case(
            spec, 7, True, True).items()}
        got = _ops.triton_forward_step(*_forward_args(spec, fake))
        back = _ops.triton_backward_step(
            got[0], got[2], fake["c"], got[4] if spec.cell_clip is not None else None,
            got[5] if spec.proj_clip is not None else None, fake["R"], None, fake["peep"],
            fake["P"], fake["mask"].to(torch.uint8), got[3], got[1], got[2],
            torch.zeros_like(got[1]), _bounds(spec, got[0]), 0, 0, True)
    assert [tuple(t.shape) for t in got] == [(7, *t.shape[1:]) if t.dim() == 2 else (0,)
                                             for t in want]
    assert tuple(back[0].shape) == (7, 4 * u)
    assert tuple(back[1].shape) == (7, p)
    assert tuple(back[2].shape) == (7, u)
    assert tuple(back[4].shape) == ((7, u) if spec.num_proj is not None else (0,))
    assert tuple(back[6].shape) == ((7, u) if spec.use_peepholes else (0,))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_opcheck_schema_and_fake_on_cpu(name):
    # the interpreted kernels cannot run on fake tensors (they read data pointers), so
    # on CPU only the schema and fake checks run; test_opcheck_on_cuda runs them all
    spec = SPECS[name]
    a = _case(spec, 3, True, True, dtype=torch.float32)
    torch.library.opcheck(_ops.triton_forward_step, _forward_args(spec, a),
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(SPECS))
def test_opcheck_on_cuda(name):
    spec = SPECS[name]
    a = _case(spec, 3, True, True, device="cuda", dtype=torch.float32)
    torch.library.opcheck(_ops.triton_forward_step, _forward_args(spec, a))
    z, h, c, out, cpre, rpre = _ops.triton_forward_step(*_forward_args(spec, a))
    m8 = a["mask"].to(torch.uint8)
    carry = spec.mask_mode == "carry"
    torch.library.opcheck(_ops.triton_backward_step, (
        z, c, a["c"], cpre if spec.cell_clip is not None else None,
        rpre if spec.proj_clip is not None else None, a["R"], a["dmh"], a["peep"], a["P"], m8,
        out, h, c, torch.zeros_like(h) if carry else None, _bounds(spec, z),
        _acts.code(spec.activation), _acts.code(spec.recurrent_activation), carry))


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_compiled_step_sees_the_kernels_and_matches_eager():
    spec = SPECS["tf1_everything"]
    args = _forward_args(spec, _case(spec, 3, True, True, device="cuda", dtype=torch.float32))
    want = _ops.triton_forward_step(*args)
    torch._dynamo.reset()
    got = torch.compile(_ops.triton_forward_step, fullgraph=True, backend="inductor")(*args)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_torch_export_keeps_the_step_as_an_operator_for_any_batch():
    spec = SPECS["tf1_everything"]

    class Step(torch.nn.Module):
        def forward(self, z, R, h, c, peep, P, mask, bounds):
            return _ops.triton_forward_step(z, R, h, c, None, peep, P, mask, mask, bounds,
                                            _acts.code("tanh"), _acts.code("sigmoid"), True,
                                            True)

    def inputs(B):
        a = _case(spec, B, True, False, dtype=torch.float32)
        m8 = a["mask"].to(torch.uint8)
        return a["z"], a["R"], a["h"], a["c"], a["peep"], a["P"], m8, _bounds(spec, a["z"])

    batch = torch.export.Dim("batch")
    shapes = ({0: batch}, None, {0: batch}, {0: batch}, None, None, {0: batch}, None)
    ep = torch.export.export(Step(), inputs(3), dynamic_shapes=shapes)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "lstmcompat.triton_forward_step.default" in targets, targets
    for B in (2, 5):
        for a, b in zip(ep.module()(*inputs(B)), Step()(*inputs(B)), strict=True):
            torch.testing.assert_close(a, b)
