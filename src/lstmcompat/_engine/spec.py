"""What the math of one LSTM recurrence is (``CellSpec``) and its weights (``Weights``).

Both front-ends translate their arguments into these two objects; every kernel
consumes nothing else. Weights are in the canonical layout (gate order
``i, f, g, o``, see :mod:`lstmcompat._engine.gates`):

* ``W``  input kernel      ``(depth, 4*units)``
* ``R``  recurrent kernel  ``(out, 4*units)`` where ``out = num_proj or units``
* ``b``  bias ``(4*units,)`` or ``None``
* ``w_i, w_f, w_o`` peephole diagonals ``(units,)`` (only with ``use_peepholes``)
* ``P``  projection kernel ``(units, num_proj)`` (only with ``num_proj``)

One step, for previous state ``(h, c)`` and input ``x`` (``d_x``/``d_h`` are
the dropout masks of gate ``k``, when present)::

    z_k = (x * d_x[k]) @ W_k + (h * d_h[k]) @ R_k + b_k
    i = ract(z_i + w_i * c)
    f = ract(z_f + forget_bias + w_f * c)
    c' = f * c + i * act(z_g)
    c' = clip(c', -cell_clip, cell_clip)            # if cell_clip is not None
    o = ract(z_o + w_o * c')
    h' = o * act(c')
    h' = h' @ P                                     # if num_proj
    h' = clip(h', -proj_clip, proj_clip)            # if proj_clip is not None

``clip(t, lo, hi)`` is TensorFlow's ``clip_by_value``, ``maximum(minimum(t, hi),
lo)``, for every clip value (:func:`lstmcompat._engine.reference.clip_by_value`):
NaN stays NaN, a NaN clip gives NaN, a negative clip gives ``-clip`` everywhere (the
lower bound wins), and the gradient passes where ``lo <= t <= hi`` only. With
``cell_clip_gradient="identity"`` the cell clip's gradient is the identity instead
(TF's fused block ops ``LSTMBlockCell``/``BlockLSTM``, whose backward ignores the
clip): the forward values are the same.

Masked steps follow ``mask_mode``: ``"carry"`` (Keras) outputs the previous
step's output (zeros before the first valid step) and keeps ``(h, c)``;
``"zero"`` (TF1 ``sequence_length``) outputs zeros and keeps ``(h, c)``. A masked
step is still computed and differentiated (with zero gradients), as TF's
``where`` does: NaN or inf in it reaches the gradients as ``0 * NaN``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from .. import _activations

MaskMode = Literal["carry", "zero"]
ClipGradient = Literal["clip_by_value", "identity"]
ActivationLike = str | Callable[[torch.Tensor], torch.Tensor]


def _normalise_activation(act: ActivationLike | None) -> ActivationLike:
    name = _activations.canonical_name(act)
    return name if name is not None else act  # type: ignore[return-value]


@dataclass(frozen=True)
class CellSpec:
    """The math of one LSTM recurrence: frozen and hashable.

    Attributes:
        units: number of cell units ``u``.
        activation: cell-candidate and output activation (Keras name or callable).
        recurrent_activation: gate activation (Keras name or callable).
        forget_bias: constant added to the forget gate pre-activation at run time.
        use_peepholes: diagonal peephole connections (TF1 ``use_peepholes``).
        cell_clip: clip the cell state to ``[-cell_clip, cell_clip]`` (``None``: off; any
            float, as TF: see the module docstring for negative and NaN values).
        num_proj: projection size (``None``: no projection).
        proj_clip: clip the (projected) output (``None``: off).
        mask_mode: ``"carry"`` (Keras) or ``"zero"`` (TF1 ``sequence_length``).
        cell_clip_gradient: ``"clip_by_value"`` (the gradient passes only where
            ``c`` was not clipped, TF's ``clip_by_value``) or ``"identity"`` (it
            always passes, as TF's block ops' hand-written backward).
        matmul_dtype: ``None`` (every product in the weights' type), or
            ``torch.bfloat16`` / ``torch.float16``: the input and recurrent products
            (forward and backward) take operands rounded to that type and give results
            in the weights' type; everything else is unchanged (mixed precision under
            ``torch.autocast``, see :mod:`lstmcompat._engine.precision`).
    """

    units: int
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    forget_bias: float = 0.0
    use_peepholes: bool = False
    cell_clip: float | None = None
    num_proj: int | None = None
    proj_clip: float | None = None
    mask_mode: MaskMode = "carry"
    cell_clip_gradient: ClipGradient = "clip_by_value"
    matmul_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", _normalise_activation(self.activation))
        object.__setattr__(
            self, "recurrent_activation", _normalise_activation(self.recurrent_activation)
        )
        object.__setattr__(self, "forget_bias", float(self.forget_bias))
        if self.mask_mode not in ("carry", "zero"):
            raise ValueError(f"`mask_mode` must be 'carry' or 'zero', got {self.mask_mode!r}.")
        if self.cell_clip_gradient not in ("clip_by_value", "identity"):
            raise ValueError("`cell_clip_gradient` must be 'clip_by_value' or 'identity', got "
                             f"{self.cell_clip_gradient!r}.")
        if self.matmul_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError("`matmul_dtype` must be None, torch.bfloat16 or torch.float16, "
                             f"got {self.matmul_dtype!r}.")

    @property
    def output_size(self) -> int:
        """Size of ``h`` (the projection size when projecting)."""
        return self.num_proj if self.num_proj is not None else self.units

    def activation_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return _activations.get(self.activation)

    def recurrent_activation_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return _activations.get(self.recurrent_activation)


class Weights(NamedTuple):
    """Weights in the canonical layout (see the module docstring)."""

    W: torch.Tensor
    R: torch.Tensor
    b: torch.Tensor | None = None
    w_i: torch.Tensor | None = None
    w_f: torch.Tensor | None = None
    w_o: torch.Tensor | None = None
    P: torch.Tensor | None = None


class Dropout(NamedTuple):
    """Per-sequence (variational) dropout masks, already scaled by ``1/(1-rate)``.

    ``x`` is ``(G, batch, depth)`` and ``h`` is ``(G, batch, out)`` with ``G`` 1
    (one mask shared by all four gates) or 4 (one per gate, canonical order).
    """

    x: torch.Tensor | None = None
    h: torch.Tensor | None = None


def check_weights(spec: CellSpec, w: Weights) -> None:
    """Raise ``ValueError`` when ``w`` does not fit ``spec`` (internal consistency check)."""
    u, p = spec.units, spec.output_size
    if w.W.dim() != 2 or w.W.shape[1] != 4 * u:
        raise ValueError(f"input kernel must be (depth, {4 * u}), got {tuple(w.W.shape)}")
    if tuple(w.R.shape) != (p, 4 * u):
        raise ValueError(f"recurrent kernel must be ({p}, {4 * u}), got {tuple(w.R.shape)}")
    if w.b is not None and tuple(w.b.shape) != (4 * u,):
        raise ValueError(f"bias must be ({4 * u},), got {tuple(w.b.shape)}")
    if spec.use_peepholes and any(t is None for t in (w.w_i, w.w_f, w.w_o)):
        raise ValueError("use_peepholes needs w_i, w_f and w_o")
    if spec.num_proj is not None and (w.P is None or tuple(w.P.shape) != (u, spec.num_proj)):
        raise ValueError(f"projection kernel must be ({u}, {spec.num_proj})")
