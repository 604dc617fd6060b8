"""Triton kernels for one LSTM step (forward and backward), for :mod:`.`'s time loops.

Imported only through :func:`lstmcompat._engine.gpu.kernels` (Triton is optional).
Every kernel works on one step of the time-major buffers described in
:mod:`lstmcompat._engine.fused._loops` (gate blocks ``i, f, g, o`` of ``U``
columns each in ``Z``; ``Pn`` is the output size: ``num_proj`` or ``U``), over a
grid of (batch block, unit or feature block) programs. Programs never depend on
each other within a launch; steps are ordered by the launches.

Only Triton's built-ins are used (no ``@triton.jit`` helpers of ``triton.language``
such as ``tl.zeros``), so that the kernels also run under the interpreter in a
process where Triton was imported normally.

Numbers: ``tl.dot`` runs with ``input_precision="ieee"`` (no TF32), and tanh is
Eigen's rational function (as TensorFlow's CPU kernels and the compiled CPU
loop), so results agree with the ``reference`` kernel to float32 rounding.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..fused import _acts

# The activation table's codes and constants (a kernel reads only constexpr globals).
_LINEAR = tl.constexpr(_acts.code("linear"))
_TANH = tl.constexpr(_acts.code("tanh"))
_SIGMOID = tl.constexpr(_acts.code("sigmoid"))
_HARD_SIGMOID = tl.constexpr(_acts.code("hard_sigmoid"))
_RELU = tl.constexpr(_acts.code("relu"))
_SOFTSIGN = tl.constexpr(_acts.code("softsign"))
_EXPONENTIAL = tl.constexpr(_acts.code("exponential"))
_ELU = tl.constexpr(_acts.code("elu"))
_SELU = tl.constexpr(_acts.code("selu"))
_SWISH = tl.constexpr(_acts.code("swish"))
_KERAS3_HARD_SIGMOID = tl.constexpr(_acts.code("keras3_hard_sigmoid"))
_SELU_ALPHA = tl.constexpr(_acts.TABLE["selu"].constants["alpha"])
_SELU_SCALE = tl.constexpr(_acts.TABLE["selu"].constants["scale"])
#: ``tl.minimum``/``tl.maximum`` propagate NaN, as TF's and torch's do (by default
#: Triton's return the other operand).
_NAN: tl.constexpr = tl.PropagateNan.ALL


@triton.jit
def _tanh(x):
    if x.dtype == tl.float64:
        e = tl.exp(-2.0 * tl.abs(x))
        t = (1.0 - e) / (1.0 + e)
        y = tl.where(x < 0, -t, t)
    else:
        lim = 7.99881172180175781
        xc = tl.minimum(tl.maximum(x, -lim, propagate_nan=_NAN), lim, propagate_nan=_NAN)
        x2 = xc * xc
        p = tl.fma(x2, -2.76076847742355e-16, 2.00018790482477e-13)
        p = tl.fma(x2, p, -8.60467152213735e-11)
        p = tl.fma(x2, p, 5.12229709037114e-08)
        p = tl.fma(x2, p, 1.48572235717979e-05)
        p = tl.fma(x2, p, 6.37261928875436e-04)
        p = tl.fma(x2, p, 4.89352455891786e-03)
        p = xc * p
        q = tl.fma(x2, 1.19825839466702e-06, 1.18534705686654e-04)
        q = tl.fma(x2, q, 2.26843463243900e-03)
        q = tl.fma(x2, q, 4.89352518554385e-03)
        y = tl.where(tl.abs(x) < 0.0004, x, p / q)
    return y


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _div6(x):
    """``x / 6`` correctly rounded, as TF's and torch's division (Triton's ``/`` on float32
    is an approximate division on the GPU)."""
    if x.dtype == tl.float64:
        y = x / 6.0
    else:
        y = tl.math.div_rn(x, tl.full(x.shape, 6.0, x.dtype))
    return y


@triton.jit
def _act(x, A: tl.constexpr):
    """The activation with code ``A`` (:data:`lstmcompat._engine.fused._acts.TABLE`); a
    code without a branch does not compile."""
    if A == _LINEAR:
        y = x
    elif A == _TANH:
        y = _tanh(x)
    elif A == _SIGMOID:
        y = _sigmoid(x)
    elif A == _HARD_SIGMOID:
        y = tl.minimum(tl.maximum(x * 0.2 + 0.5, 0.0, propagate_nan=_NAN), 1.0, propagate_nan=_NAN)
    elif A == _RELU:
        y = tl.where(x < 0, 0.0, x)
    elif A == _SOFTSIGN:
        y = x / (1.0 + tl.abs(x))
    elif A == _EXPONENTIAL:
        y = tl.exp(x)
    elif A == _ELU:
        y = tl.where(x > 0, x, tl.exp(x) - 1.0)
    elif A == _SELU:
        y = _SELU_SCALE * tl.where(x > 0, x, _SELU_ALPHA * (tl.exp(x) - 1.0))
    elif A == _SWISH:
        y = x * _sigmoid(x)
    elif A == _KERAS3_HARD_SIGMOID:  # relu6(x + 3) / 6, a correctly rounded division
        s = x + 3.0
        r = tl.minimum(tl.maximum(s, 0.0, propagate_nan=_NAN), 6.0, propagate_nan=_NAN)
        y = _div6(r)
    else:
        tl.static_assert(False, "unknown activation code")
    return y


@triton.jit
def _gact(g, x, y, A: tl.constexpr):
    """The gradient w.r.t. ``x`` given the gradient ``g`` w.r.t. ``y = act(x)``, formed as
    the CPU backwards form it (:mod:`lstmcompat._engine.fused._acts`): selections select
    (an exact 0 even where ``g`` is NaN), ``elu``/``selu`` take their slope from ``y``,
    ``keras3_hard_sigmoid`` multiplies by its mask (as TF)."""
    if A == _LINEAR:
        d = g
    elif A == _TANH:
        d = g * (1.0 - y * y)
    elif A == _SIGMOID:
        d = g * (1.0 - y) * y
    elif A == _HARD_SIGMOID:
        t = x * 0.2 + 0.5
        d = tl.where((t >= 0.0) & (t <= 1.0), g * 0.2, 0.0)
    elif A == _RELU:
        d = tl.where(y <= 0, 0.0, g)
    elif A == _SOFTSIGN:
        s = tl.abs(x) + 1.0
        sg = tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, x))
        d = g / s + (-g * x / (s * s)) * sg
    elif A == _EXPONENTIAL:
        d = g * y
    elif A == _ELU:
        d = g * tl.where(y < 0, y + 1.0, 1.0)
    elif A == _SELU:
        d = g * tl.where(y < 0, y + _SELU_SCALE * _SELU_ALPHA, _SELU_SCALE)
    elif A == _SWISH:
        s = _sigmoid(x)
        d = g * s * (1.0 + x * (1.0 - s))
    elif A == _KERAS3_HARD_SIGMOID:  # TF's Relu6Grad: g times the 0/1 mask (NaN/inf g
        s = x + 3.0  # gives NaN), then / 6
        gm = g * tl.where((s > 0.0) & (s < 6.0), 1.0, 0.0)
        d = _div6(gm)
    else:
        tl.static_assert(False, "unknown activation code")
    return d


@triton.jit
def _clip(v, lo, hi):
    """TF's ``clip_by_value``: ``maximum(minimum(v, hi), lo)``, NaN-propagating (``lo``
    wins when ``lo > hi``: a negative clip)."""
    return tl.maximum(tl.minimum(v, hi, propagate_nan=_NAN), lo, propagate_nan=_NAN)


@triton.jit
def _tile(B, N, BB: tl.constexpr, BN: tl.constexpr):
    """This program's batch rows ``rb`` and columns ``rn`` (units or features), their
    in-range masks, and the ``(BB, BN)`` mask of the tile."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    mb = rb < B
    mn = rn < N
    return rb, rn, mb, mn, mb[:, None] & mn[None, :]


@triton.jit
def _bounds(BOUNDS):
    """``(-cell_clip, cell_clip, -proj_clip, proj_clip)`` in the data's dtype."""
    return tl.load(BOUNDS), tl.load(BOUNDS + 1), tl.load(BOUNDS + 2), tl.load(BOUNDS + 3)


@triton.jit
def _row_mask(MASK, rb, mb):
    """This step's mask for the batch rows ``rb``, as a ``(BB, 1)`` bool column."""
    return (tl.load(MASK + rb, mask=mb, other=0) != 0)[:, None]


@triton.jit
def _emit_h(r, H, HN, OUT, MASK, OMASK, RPRE, offs, m2, rb, mb, plo, phi,
            HAS_MASK: tl.constexpr, PCLIP: tl.constexpr, SAVE_RPRE: tl.constexpr):
    """From the step's (projected) output ``r``: save it before the clip, clip it, hold
    the previous ``h`` on masked rows, write the new state and this step's outputs."""
    if SAVE_RPRE:
        tl.store(RPRE + offs, r, mask=m2)
    hn = r
    if PCLIP:
        hn = _clip(r, plo, phi)
    if HAS_MASK:
        m = _row_mask(MASK, rb, mb)
        hn = tl.where(m, hn, tl.load(H + offs, mask=m2, other=0.0))
        tl.store(HN + offs, hn, mask=m2)
        tl.store(OUT + offs, tl.where(_row_mask(OMASK, rb, mb), hn, 0.0), mask=m2)
    else:
        tl.store(OUT + offs, hn, mask=m2)


@triton.jit
def fwd_step(Z, R, H, C, DMH, PEEP, CN, CPRE, HU, HN, OUT, MASK, OMASK, RPRE,
             B, U, Pn, BOUNDS,
             ACT: tl.constexpr, RACT: tl.constexpr, G: tl.constexpr,
             PEEPHOLES: tl.constexpr, CLIP: tl.constexpr, PCLIP: tl.constexpr,
             HAS_P: tl.constexpr, HAS_MASK: tl.constexpr, SAVE_CPRE: tl.constexpr,
             SAVE_RPRE: tl.constexpr, BB: tl.constexpr, BU: tl.constexpr, BK: tl.constexpr):
    """One forward step for a block of batch rows and units.

    ``Z`` (B, 4U): the input projection of this step, overwritten with the gate
    pre-activations (recurrent term and peepholes added). ``H``/``C``: the previous
    state; ``CN``: the new cell (held on masked rows). With ``HAS_P`` it writes
    ``HU = o * act(c')`` for the projection, else the new ``h`` (``HN``; the
    outputs ``OUT``, where ``OMASK`` says a row outputs its state).
    """
    clo, chi, plo, phi = _bounds(BOUNDS)
    rb, ru, mb, mu, m2 = _tile(B, U, BB, BU)
    zoff = rb[:, None] * (4 * U) + ru[None, :]
    zi = tl.load(Z + zoff, mask=m2, other=0.0)
    zf = tl.load(Z + zoff + U, mask=m2, other=0.0)
    zg = tl.load(Z + zoff + 2 * U, mask=m2, other=0.0)
    zo = tl.load(Z + zoff + 3 * U, mask=m2, other=0.0)
    rk = tl.arange(0, BK)
    for k0 in range(0, Pn, BK):
        kk = k0 + rk
        mk = kk < Pn
        hoff = rb[:, None] * Pn + kk[None, :]
        hm = mb[:, None] & mk[None, :]
        h = tl.load(H + hoff, mask=hm, other=0.0)
        roff = kk[:, None] * (4 * U) + ru[None, :]
        rm = mk[:, None] & mu[None, :]
        if G == 4:  # one recurrent dropout mask per gate
            zi += tl.dot(h * tl.load(DMH + hoff, mask=hm, other=0.0),
                         tl.load(R + roff, mask=rm, other=0.0), input_precision="ieee")
            zf += tl.dot(h * tl.load(DMH + B * Pn + hoff, mask=hm, other=0.0),
                         tl.load(R + roff + U, mask=rm, other=0.0), input_precision="ieee")
            zg += tl.dot(h * tl.load(DMH + 2 * B * Pn + hoff, mask=hm, other=0.0),
                         tl.load(R + roff + 2 * U, mask=rm, other=0.0), input_precision="ieee")
            zo += tl.dot(h * tl.load(DMH + 3 * B * Pn + hoff, mask=hm, other=0.0),
                         tl.load(R + roff + 3 * U, mask=rm, other=0.0), input_precision="ieee")
        else:
            if G == 1:
                h = h * tl.load(DMH + hoff, mask=hm, other=0.0)
            zi += tl.dot(h, tl.load(R + roff, mask=rm, other=0.0), input_precision="ieee")
            zf += tl.dot(h, tl.load(R + roff + U, mask=rm, other=0.0), input_precision="ieee")
            zg += tl.dot(h, tl.load(R + roff + 2 * U, mask=rm, other=0.0),
                         input_precision="ieee")
            zo += tl.dot(h, tl.load(R + roff + 3 * U, mask=rm, other=0.0),
                         input_precision="ieee")
    coff = rb[:, None] * U + ru[None, :]
    c = tl.load(C + coff, mask=m2, other=0.0)
    if PEEPHOLES:
        zi = zi + tl.load(PEEP + ru, mask=mu, other=0.0)[None, :] * c
        zf = zf + tl.load(PEEP + U + ru, mask=mu, other=0.0)[None, :] * c
    i = _act(zi, RACT)
    f = _act(zf, RACT)
    g = _act(zg, ACT)
    cp = f * c + i * g
    cn = cp
    if CLIP:
        cn = _clip(cp, clo, chi)
    if PEEPHOLES:
        zo = zo + tl.load(PEEP + 2 * U + ru, mask=mu, other=0.0)[None, :] * cn
    hu = _act(zo, RACT) * _act(cn, ACT)
    tl.store(Z + zoff, zi, mask=m2)
    tl.store(Z + zoff + U, zf, mask=m2)
    tl.store(Z + zoff + 2 * U, zg, mask=m2)
    tl.store(Z + zoff + 3 * U, zo, mask=m2)
    if SAVE_CPRE:
        tl.store(CPRE + coff, cp, mask=m2)
    if HAS_MASK:
        cn = tl.where(_row_mask(MASK, rb, mb), cn, c)
    tl.store(CN + coff, cn, mask=m2)
    if HAS_P:
        tl.store(HU + coff, hu, mask=m2)
    else:
        _emit_h(hu, H, HN, OUT, MASK, OMASK, RPRE, coff, m2, rb, mb, plo, phi,
                HAS_MASK, PCLIP, SAVE_RPRE)


@triton.jit
def fwd_proj(RP, H, HN, OUT, MASK, OMASK, RPRE, B, Pn, BOUNDS,
             PCLIP: tl.constexpr, HAS_MASK: tl.constexpr, SAVE_RPRE: tl.constexpr,
             BB: tl.constexpr, BP: tl.constexpr):
    """The end of a projected step: ``RP = HU @ P`` (B, Pn) to the new ``h`` and outputs."""
    _, _, plo, phi = _bounds(BOUNDS)
    rb, rp, mb, _, m2 = _tile(B, Pn, BB, BP)
    offs = rb[:, None] * Pn + rp[None, :]
    r = tl.load(RP + offs, mask=m2, other=0.0)
    _emit_h(r, H, HN, OUT, MASK, OMASK, RPRE, offs, m2, rb, mb, plo, phi,
            HAS_MASK, PCLIP, SAVE_RPRE)


@triton.jit
def _dh_total(DH, DOUT, ACC, MASK, RPRE, offs, m2, rb, mb, plo, phi,
              HAS_MASK: tl.constexpr, CARRY: tl.constexpr, PCLIP: tl.constexpr):
    """Gradient w.r.t. a step's (projected) output before its clip: the state gradient
    ``DH`` plus this step's output gradient, under the masking rule (``ACC`` holds
    output gradients of masked "carry" steps until the last valid step takes them)."""
    dh = tl.load(DH + offs, mask=m2, other=0.0)
    g = tl.load(DOUT + offs, mask=m2, other=0.0)
    if HAS_MASK:
        m = _row_mask(MASK, rb, mb)
        if CARRY:
            tot = g + tl.load(ACC + offs, mask=m2, other=0.0)
            d = tl.where(m, dh + tot, 0.0)
            tl.store(ACC + offs, tl.where(m, 0.0, tot), mask=m2)
        else:
            d = tl.where(m, dh + g, 0.0)
    else:
        d = dh + g
    if PCLIP:
        rp = tl.load(RPRE + offs, mask=m2, other=0.0)
        d = tl.where((rp >= plo) & (rp <= phi), d, 0.0)
    return d


@triton.jit
def bwd_out(DH, DOUT, ACC, MASK, RPRE, DRP, B, Pn, BOUNDS,
            HAS_MASK: tl.constexpr, CARRY: tl.constexpr, PCLIP: tl.constexpr,
            BB: tl.constexpr, BP: tl.constexpr):
    """Projected steps: the gradient w.r.t. the projection's output, into ``DRP``."""
    _, _, plo, phi = _bounds(BOUNDS)
    rb, rp, mb, _, m2 = _tile(B, Pn, BB, BP)
    offs = rb[:, None] * Pn + rp[None, :]
    d = _dh_total(DH, DOUT, ACC, MASK, RPRE, offs, m2, rb, mb, plo, phi, HAS_MASK, CARRY, PCLIP)
    tl.store(DRP + offs, d, mask=m2)


@triton.jit
def bwd_step(Z, CN, CPREV, CPRE, DHU, DH, DOUT, ACC, RPRE, DC, DZ, HU, PEEP, MASK, CNH,
             B, U, BOUNDS,
             ACT: tl.constexpr, RACT: tl.constexpr, PEEPHOLES: tl.constexpr,
             CLIP: tl.constexpr, PCLIP: tl.constexpr, HAS_P: tl.constexpr,
             HAS_MASK: tl.constexpr, CARRY: tl.constexpr, BB: tl.constexpr, BU: tl.constexpr):
    """Pointwise gradient of one step: ``DZ`` (w.r.t. the saved pre-activations ``Z``;
    on masked rows 0, or NaN where their step is not finite) and ``DC`` updated in place to the previous cell's gradient.
    The gradient w.r.t. ``o * act(c')`` is ``DHU`` with a projection (and ``HU`` is
    saved for ``dP``), else formed here from ``DH`` and ``DOUT``. A held (masked) row is
    differentiated too, with zero gradients, as the reference does (NaN or inf in its
    step reach the gradients as 0 * NaN), on its new cell formed again (``CN`` holds the
    previous one); with peepholes that cell goes to ``CNH`` for ``w_o``'s gradient."""
    clo, chi, plo, phi = _bounds(BOUNDS)
    rb, ru, mb, mu, m2 = _tile(B, U, BB, BU)
    coff = rb[:, None] * U + ru[None, :]
    zoff = rb[:, None] * (4 * U) + ru[None, :]
    if HAS_P:
        dhu = tl.load(DHU + coff, mask=m2, other=0.0)
    else:
        dhu = _dh_total(DH, DOUT, ACC, MASK, RPRE, coff, m2, rb, mb, plo, phi,
                        HAS_MASK, CARRY, PCLIP)
    dc = tl.load(DC + coff, mask=m2, other=0.0)
    dcn = dc
    if HAS_MASK:
        m = _row_mask(MASK, rb, mb)
        dcn = tl.where(m, dc, 0.0)
    zi = tl.load(Z + zoff, mask=m2, other=0.0)
    zf = tl.load(Z + zoff + U, mask=m2, other=0.0)
    zg = tl.load(Z + zoff + 2 * U, mask=m2, other=0.0)
    zo = tl.load(Z + zoff + 3 * U, mask=m2, other=0.0)
    cn = tl.load(CN + coff, mask=m2, other=0.0)
    cprev = tl.load(CPREV + coff, mask=m2, other=0.0)
    i = _act(zi, RACT)
    f = _act(zf, RACT)
    g = _act(zg, ACT)
    o = _act(zo, RACT)
    if CLIP:
        cp = tl.load(CPRE + coff, mask=m2, other=0.0)
    if HAS_MASK:
        if CLIP:
            cnew = _clip(cp, clo, chi)
        else:
            cnew = f * cprev + i * g
        cn = tl.where(m, cn, cnew)
        if PEEPHOLES:
            tl.store(CNH + coff, cn, mask=m2)
    a = _act(cn, ACT)
    if HAS_P:
        tl.store(HU + coff, o * a, mask=m2)
    dzo = _gact(dhu * a, zo, o, RACT)
    dct = dcn + _gact(dhu * o, cn, a, ACT)
    if PEEPHOLES:
        dct = dct + dzo * tl.load(PEEP + 2 * U + ru, mask=mu, other=0.0)[None, :]
    if CLIP:
        dct = tl.where((cp >= clo) & (cp <= chi), dct, 0.0)
    dzi = _gact(dct * g, zi, i, RACT)
    dzf = _gact(dct * cprev, zf, f, RACT)
    tl.store(DZ + zoff, dzi, mask=m2)
    tl.store(DZ + zoff + U, dzf, mask=m2)
    tl.store(DZ + zoff + 2 * U, _gact(dct * i, zg, g, ACT), mask=m2)
    tl.store(DZ + zoff + 3 * U, dzo, mask=m2)
    dcp = dct * f
    if PEEPHOLES:
        dcp = dcp + dzi * tl.load(PEEP + ru, mask=mu, other=0.0)[None, :] \
            + dzf * tl.load(PEEP + U + ru, mask=mu, other=0.0)[None, :]
    if HAS_MASK:
        dcp = tl.where(m, dcp, dcp + dc)
    tl.store(DC + coff, dcp, mask=m2)


@triton.jit
def bwd_dh(DZ, R, DMH, DH, DHP, MASK, B, U, Pn,
           G: tl.constexpr, HAS_MASK: tl.constexpr,
           BB: tl.constexpr, BP: tl.constexpr, BK: tl.constexpr):
    """``DHP = sum_k (DZ_k @ R_k^T) * dmh_k`` (the previous ``h``'s gradient), plus the
    held gradient ``DH`` on masked rows."""
    rb, rp, mb, mp, m2 = _tile(B, Pn, BB, BP)
    offs = rb[:, None] * Pn + rp[None, :]
    rk = tl.arange(0, BK)
    acc = tl.full((BB, BP), 0.0, DZ.dtype.element_ty)
    for k in tl.static_range(4):
        part = tl.full((BB, BP), 0.0, DZ.dtype.element_ty)
        for u0 in range(0, U, BK):
            uu = u0 + rk
            mk = uu < U
            dz = tl.load(DZ + rb[:, None] * (4 * U) + k * U + uu[None, :],
                         mask=mb[:, None] & mk[None, :], other=0.0)
            rt = tl.load(R + rp[None, :] * (4 * U) + k * U + uu[:, None],
                         mask=mk[:, None] & mp[None, :], other=0.0)
            part += tl.dot(dz, rt, input_precision="ieee")
        if G == 4:
            part = part * tl.load(DMH + k * B * Pn + offs, mask=m2, other=0.0)
        acc += part
    if G == 1:
        acc = acc * tl.load(DMH + offs, mask=m2, other=0.0)
    if HAS_MASK:
        acc = tl.where(_row_mask(MASK, rb, mb), acc, acc + tl.load(DH + offs, mask=m2,
                                                                      other=0.0))
    tl.store(DHP + offs, acc, mask=m2)


@triton.jit
def act_kernel(X, G, Y, D, N, A: tl.constexpr, BLOCK: tl.constexpr):
    """``Y = act(X)`` and ``D`` its gradient given ``G`` (code ``A``), element-wise."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    x = tl.load(X + offs, mask=m, other=0.0)
    g = tl.load(G + offs, mask=m, other=0.0)
    y = _act(x, A)
    tl.store(Y + offs, y, mask=m)
    tl.store(D + offs, _gact(g, x, y, A), mask=m)


def eval_activation(x: torch.Tensor, g: torch.Tensor, code: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(act(x), the gradient w.r.t. x given g)`` through ``_act``/``_gact`` for the
    activation with ``code`` (the test that ties them to the activation table uses it)."""
    x, g = x.contiguous().view(-1), g.contiguous().view(-1)
    y, d = torch.empty_like(x), torch.empty_like(x)
    n = x.numel()
    act_kernel[(triton.cdiv(n, 128),)](x, g, y, d, n, A=code, BLOCK=128)
    return y, d
