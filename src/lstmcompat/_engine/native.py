"""The ``native`` kernel: PyTorch's own fused LSTM (``torch.lstm``).

oneDNN on CPU, cuDNN on GPU. It has the reference's semantics for the specs that
:func:`lstmcompat._engine.dispatch.choose` admits: sigmoid gates, tanh
activation, no peepholes or clips, a projection smaller than ``units``, the
forget bias folded into the bias, no dropout mask or one shared input mask
(applied to the inputs first), and masks that are right-padded (every
sequence a valid prefix), run as a packed sequence; length-0 sequences are
left out of the call (zero outputs, initial state). In
``"carry"`` mode the padded steps then repeat the last valid output, as Keras
does. ``torch.nn.LSTM`` is never held or subclassed: this is a functional call.
"""

from __future__ import annotations

import warnings

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .dispatch import DropoutKind, MaskKind
from .spec import CellSpec, Dropout, Weights

# torch warns once that oneDNN has no projection support and it uses its own
# loop; the result is the same, and the choice of kernel is ours to explain.
_ONEDNN_PROJ = "LSTM with projections is not supported with oneDNN"


def native_cannot(spec: CellSpec, *, device: torch.device, dtype: torch.dtype,
                  mask_kind: MaskKind, dropout_kind: DropoutKind, reverse: bool) -> str | None:
    """Why ``torch.lstm`` cannot compute this call exactly, or ``None`` when it can.

    Low-precision products (``spec.matmul_dtype``, under ``torch.autocast``) are no
    reason: torch.lstm then computes everything in the weights' type (float32
    products, slightly more precise than the rule; torch.lstm's own autocast path
    would round the cell state too). ``fused`` claims those calls on CPU where its
    bfloat16 products are faster (:func:`~.fused.fused_preferred`).
    """
    if spec.recurrent_activation != "sigmoid":
        return f"recurrent_activation={spec.recurrent_activation!r} (torch.lstm gates are sigmoid)"
    if spec.activation != "tanh":
        return f"activation={spec.activation!r} (torch.lstm uses tanh)"
    if spec.use_peepholes:
        return "peepholes"
    if spec.cell_clip is not None:
        return "cell_clip"
    if spec.proj_clip is not None:
        return "proj_clip"
    if spec.num_proj is not None and spec.num_proj >= spec.units:
        return f"num_proj={spec.num_proj} >= units={spec.units} (torch.lstm needs proj_size < hidden_size)"
    if dropout_kind == "other":
        return "per-gate or recurrent dropout masks"
    if mask_kind == "general":
        return "a mask that is not a right-padded prefix"
    if mask_kind == "right_padded" and reverse:
        return "a mask with reversed processing"
    if not dtype.is_floating_point:
        return f"dtype {dtype}"
    return None


def _params(spec: CellSpec, w: Weights) -> tuple[list[torch.Tensor], bool]:
    params = [w.W.t(), w.R.t()]
    has_bias = w.b is not None or spec.forget_bias != 0.0
    if has_bias:
        u = spec.units
        b = w.b if w.b is not None else w.W.new_zeros(4 * u)
        if spec.forget_bias != 0.0:
            fb = torch.zeros_like(b)
            fb[u:2 * u] = torch.tensor(spec.forget_bias, dtype=torch.float64)  # no overflow error
            b = b + fb
        params += [b, torch.zeros_like(b)]
    if spec.num_proj is not None:
        params.append(w.P.t())
    return params, has_bias


def run_native(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor, c0: torch.Tensor,
               *, mask: torch.Tensor | None = None, reverse: bool = False,
               dropout: Dropout | None = None, batch_first: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as :func:`~lstmcompat._engine.reference.run_reference`; a ``mask``
    must be right-padded (every sequence a valid prefix, as ``choose`` admits it):
    it runs as a packed sequence of those lengths."""
    lengths = None
    if mask is not None:
        lengths = mask.sum(dim=1 if batch_first else 0).to("cpu", torch.int64)
    return _run_lengths(spec, x, w, h0, c0, lengths, reverse, dropout, batch_first)


def _run_lengths(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor,
                 c0: torch.Tensor, lengths: torch.Tensor | None, reverse: bool,
                 dropout: Dropout | None, batch_first: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`run_native` with the mask given as ``lengths`` (``(B,)`` int64 on CPU)."""
    time_dim = 1 if batch_first else 0
    if lengths is not None and not bool((lengths > 0).all()):
        return _without_empty_rows(spec, x, w, h0, c0, lengths, reverse, dropout, batch_first)
    if dropout is not None and dropout.x is not None:
        x = x * dropout.x[0].unsqueeze(time_dim)
    if reverse:
        x = x.flip(time_dim)
    if x.is_cuda:
        # cuDNN's RNN runs float32 in TF32 unless told not to: ~1e-3 off TensorFlow.
        cudnn = torch.backends.cudnn
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                         deterministic=cudnn.deterministic, allow_tf32=False):
            return _run(spec, x, w, h0, c0, lengths, batch_first)
    return _run(spec, x, w, h0, c0, lengths, batch_first)


def _lstm(spec: CellSpec, *args: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.lstm(*args)``; with a projection, oneDNN's warning is ignored around the
    call only, leaving the process's warning filters as they were."""
    if spec.num_proj is None:
        return torch.lstm(*args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ONEDNN_PROJ)
        return torch.lstm(*args)


def _run(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor, c0: torch.Tensor,
         lengths: torch.Tensor | None, batch_first: bool
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    time_dim = 1 if batch_first else 0
    params, has_bias = _params(spec, w)
    hx = (h0.unsqueeze(0), c0.unsqueeze(0))
    if lengths is None:
        out, h, c = _lstm(spec, x, hx, params, has_bias, 1, 0.0, False, False, batch_first)
        return out, h[0], c[0]
    T = x.shape[time_dim]
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    sorted_idx, unsorted_idx = packed.sorted_indices, packed.unsorted_indices
    hx = (hx[0].index_select(1, sorted_idx), hx[1].index_select(1, sorted_idx))
    data, h, c = _lstm(spec, packed.data, packed.batch_sizes, hx, params, has_bias, 1, 0.0,
                       False, False)
    out, _ = pad_packed_sequence(
        packed._replace(data=data), batch_first=batch_first, total_length=T
    )
    h, c = h[0].index_select(0, unsorted_idx), c[0].index_select(0, unsorted_idx)
    if spec.mask_mode == "carry":
        # Padded steps repeat the last valid output (Keras), not zeros.
        steps = torch.arange(T, device=lengths.device)
        last = (lengths - 1).to(steps.device)
        idx = torch.minimum(steps.unsqueeze(1), last.unsqueeze(0))  # (T, B)
        if batch_first:
            idx = idx.t()
        idx = idx.to(out.device).unsqueeze(-1).expand_as(out)
        out = out.gather(time_dim, idx)
    return out, h, c


def _without_empty_rows(spec: CellSpec, x: torch.Tensor, w: Weights, h0: torch.Tensor,
                        c0: torch.Tensor, lengths: torch.Tensor, reverse: bool,
                        dropout: Dropout | None, batch_first: bool
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Length-0 rows output zeros (both mask modes) and keep their initial state."""
    bdim = 0 if batch_first else 1
    shape = list(x.shape[:2]) + [spec.output_size]
    keep = (lengths > 0).nonzero().squeeze(1)
    if keep.numel() == 0:
        return x.new_zeros(shape), h0, c0
    idx = keep.to(x.device)
    sub_dropout = None
    if dropout is not None:
        sub_dropout = Dropout(*(None if m is None else m.index_select(1, idx) for m in dropout))
    out, h, c = _run_lengths(spec, x.index_select(bdim, idx), w, h0.index_select(0, idx),
                             c0.index_select(0, idx), lengths.index_select(0, keep), reverse,
                             sub_dropout, batch_first)
    return (x.new_zeros(shape).index_copy(bdim, idx, out), h0.index_copy(0, idx, h),
            c0.index_copy(0, idx, c))
