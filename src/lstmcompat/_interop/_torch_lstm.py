"""``to_torch_lstm`` / ``from_torch_lstm``: convert to and from ``torch.nn.LSTM``.

``torch.nn.LSTM`` computes, per layer and direction (gate order ``i, f, g, o``)::

    gates = x W_ih^T + b_ih + h W_hh^T + b_hh
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(c')
    h' = h' W_hr^T                                     # proj_size > 0

which is the Keras ``LSTM`` with ``activation="tanh"``,
``recurrent_activation="sigmoid"`` and the TF1 ``LSTMCell`` without peepholes
or clips (its ``forget_bias`` folded into a bias, its projection kernel
``W_hr^T``). Every gate reordering goes through :mod:`lstmcompat._engine.gates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from .. import _activations
from .._dtypes import dtype_name
from .._engine import gates

__all__ = ["from_torch_lstm", "to_torch_lstm"]

_APIS = ("keras", "tf1")


@dataclass
class _Direction:
    """One layer direction in torch's layout."""

    w_ih: torch.Tensor  # (4H, input)
    w_hh: torch.Tensor  # (4H, P or H)
    b_ih: torch.Tensor | None  # (4H,)
    b_hh: torch.Tensor | None  # (4H,)
    w_hr: torch.Tensor | None  # (P, H)
    hidden: int
    proj: int  # 0: none
    input_size: int
    what: str  # "layer 0", "layer 1 (backward)"

    @property
    def output_size(self) -> int:
        return self.proj or self.hidden


def _refuse(what: str, option: str, value: Any, why: str) -> ValueError:
    return ValueError(f"{what} cannot become a torch.nn.LSTM: its `{option}` is {value!r} "
                      f"and {why}")


def _check_activation(what: str, option: str, fn: Any, expected: str, hint: str = "") -> None:
    name = _activations.canonical_name(fn) if not isinstance(fn, str) else fn
    if name != expected:
        shown = name if name is not None else getattr(fn, "__name__", fn)
        raise _refuse(what, option, shown, f"torch.nn.LSTM always uses {expected} there{hint}")


def _check_direction(layer: Any, what: str, backward: bool) -> None:
    if layer.stateful:
        raise _refuse(what, "stateful", True, "torch.nn.LSTM keeps no state between calls")
    if layer.go_backwards != backward:
        why = ("torch.nn.LSTM runs forward (a backward layer maps only as the second of a "
               "(forward, backward) pair: bidirectional)" if not backward else
               "the second layer of a (forward, backward) pair must have go_backwards=True")
        raise _refuse(what, "go_backwards", layer.go_backwards, why)


def _from_cudnn(layer: Any, what: str, backward: bool = False) -> _Direction:
    """A CuDNNLSTM: cuDNN's reading of its kernels, its two biases as ``b_ih`` and
    ``b_hh`` (torch's LSTM adds them as cuDNN does: on a GPU it is cuDNN's call)."""
    from .._keras.cudnn_lstm import cudnn_to_keras
    if not layer.built:
        raise ValueError(f"{what}: input size unknown: build it first (call it once, or "
                         f"`layer.build(input_shape)`, or pass `input_shape`)")
    _check_direction(layer, what, backward)
    u = layer.units
    bias = layer.bias.detach()
    kernel, recurrent, _ = cudnn_to_keras(layer.kernel.detach(), layer.recurrent_kernel.detach(),
                                          bias)
    return _Direction(
        w_ih=gates.permute(kernel, "keras", "torch", dim=1).t(),
        w_hh=gates.permute(recurrent, "keras", "torch", dim=1).t(),
        b_ih=gates.permute(bias[:4 * u], "keras", "torch"),
        b_hh=gates.permute(bias[4 * u:], "keras", "torch"),
        w_hr=None, hidden=u, proj=0, input_size=kernel.shape[0], what=what)


def _from_keras(layer: Any, what: str, backward: bool = False) -> _Direction:
    if not layer.built:
        raise ValueError(f"{what}: input size unknown: build it first (call it once, or "
                         f"`layer.build(input_shape)`, or pass `input_shape`)")
    _check_activation(what, "activation", layer.activation, "tanh")
    _check_activation(what, "recurrent_activation", layer.recurrent_activation, "sigmoid",
                      " (Keras's default recurrent_activation is hard_sigmoid: pass "
                      "`recurrent_activation=\"sigmoid\"`)")
    for option in ("dropout", "recurrent_dropout"):
        if getattr(layer, option):
            raise _refuse(what, option, getattr(layer, option),
                          "torch.nn.LSTM has no variational dropout (its `dropout` drops "
                          "between layers)")
    _check_direction(layer, what, backward)
    u = layer.units
    kernel, recurrent = layer.kernel.detach(), layer.recurrent_kernel.detach()
    bias = None if layer.bias is None else layer.bias.detach()
    return _Direction(
        w_ih=gates.permute(kernel, "keras", "torch", dim=1).t(),
        w_hh=gates.permute(recurrent, "keras", "torch", dim=1).t(),
        b_ih=None if bias is None else gates.permute(bias, "keras", "torch"),
        b_hh=None, w_hr=None, hidden=u, proj=0, input_size=kernel.shape[0], what=what)


def _from_cell(cell: Any, what: str) -> _Direction:
    if not cell.built:
        raise ValueError(f"{what}: input size unknown: build it first (run it once, or "
                         f"`cell.build((None, depth))`)")
    _check_activation(what, "activation", cell._activation, "tanh")
    if cell._use_peepholes:
        raise _refuse(what, "use_peepholes", True, "torch.nn.LSTM has no peepholes")
    if cell._cell_clip is not None:
        raise _refuse(what, "cell_clip", cell._cell_clip, "torch.nn.LSTM does not clip")
    u, p = cell._num_units, cell._num_proj
    if p is not None and cell._proj_clip is not None:
        raise _refuse(what, "proj_clip", cell._proj_clip, "torch.nn.LSTM does not clip")
    if p is not None and p >= u:
        raise _refuse(what, "num_proj", p, f"torch.nn.LSTM needs proj_size < hidden_size "
                                           f"(`num_units`={u})")
    depth = cell._input_depth
    kernel, bias = cell.kernel.detach(), cell.bias.detach()
    b_hh = torch.zeros_like(bias)
    f = gates.TORCH.index("f")
    b_hh[f * u:(f + 1) * u] = cell._forget_bias  # added at run time, as TF adds it
    return _Direction(
        w_ih=gates.permute(kernel[:depth], "tf1", "torch", dim=1).t(),
        w_hh=gates.permute(kernel[depth:], "tf1", "torch", dim=1).t(),
        b_ih=gates.permute(bias, "tf1", "torch"), b_hh=b_hh,
        w_hr=None if p is None else cell.proj_kernel.detach().t(),
        hidden=u, proj=p or 0, input_size=depth, what=what)


def _direction(module: Any, what: str, backward: bool = False) -> tuple[_Direction, str]:
    """``(direction, family)`` of one layer; ``family`` is ``"keras"`` or ``"tf1"``."""
    from .._keras.cudnn_lstm import CuDNNLSTM
    from .._keras.lstm import LSTM
    from .._tf1 import BasicLSTMCell, CudnnCompatibleLSTMCell, LSTMBlockCell, LSTMCell
    if type(module) is LSTM:
        return _from_keras(module, what, backward), "keras"
    if type(module) is CuDNNLSTM:
        return _from_cudnn(module, what, backward), "keras"
    # The family cells that run a sequence cell by cell (not LSTMBlockFusedCell, which
    # the runners refuse) have LSTMCell's weights and math.
    if type(module) in (LSTMCell, BasicLSTMCell, LSTMBlockCell, CudnnCompatibleLSTMCell):
        return _from_cell(module, what), "tf1"
    raise TypeError(f"{what}: `module` must be an LSTM, a CuDNNLSTM, a Bidirectional, an "
                    f"LSTMCell, a MultiRNNCell of LSTMCells, or a list of those layers or of "
                    f"(forward, backward) pairs; got {type(module).__name__}")


def _bidirectional_pair(bi: Any, what: str) -> list[Any]:
    """A Bidirectional as one (forward, backward) pair, when torch's output is its own."""
    if bi.merge_mode != "concat":
        raise _refuse(what, "merge_mode", bi.merge_mode, "torch.nn.LSTM concatenates the two "
                      "directions (merge_mode='concat'); merge its output halves yourself")
    if bi.dtype != bi.forward_layer.dtype:
        raise _refuse(what, "dtype", str(bi.dtype).replace("torch.", ""),
                      f"it rounds the inputs of its {bi.forward_layer.dtype} layers to it "
                      "(Keras's autocast), which torch.nn.LSTM does not do")
    return [bi.forward_layer, bi.backward_layer]


def _flatten_cells(multi: Any) -> list[Any]:
    from .._tf1 import MultiRNNCell
    out: list[Any] = []
    for c in multi.cells:
        out += _flatten_cells(c) if isinstance(c, MultiRNNCell) else [c]
    return out


def _layers(module: Any) -> list[list[Any]]:
    """The module as layers of one or two (forward, backward) modules."""
    from .._keras.bidirectional import Bidirectional
    from .._tf1 import MultiRNNCell
    if isinstance(module, MultiRNNCell):
        return [[c] for c in _flatten_cells(module)]
    if isinstance(module, Bidirectional):
        return [_bidirectional_pair(module, "Bidirectional")]
    if isinstance(module, (list, tuple)):
        if not module:
            raise ValueError("`module` is an empty list: give at least one layer")
        layers = []
        for item in module:
            if isinstance(item, Bidirectional):
                layers.append(_bidirectional_pair(item, f"layer {len(layers)}"))
            elif isinstance(item, (list, tuple)):
                if len(item) != 2:
                    raise ValueError(f"`module`: a bidirectional layer is a (forward, "
                                     f"backward) pair, got {len(item)} modules")
                layers.append(list(item))
            else:
                layers.append([item])
        if len({len(layer) for layer in layers}) > 1:
            raise ValueError("`module` mixes (forward, backward) pairs and single layers; "
                             "torch.nn.LSTM is bidirectional in every layer or in none")
        return layers
    return [[module]]


def to_torch_lstm(module: Any, *, batch_first: bool | None = None) -> torch.nn.LSTM:
    """A ``torch.nn.LSTM`` computing what ``module`` computes (same outputs and final states).

    Accepts:

    * an :class:`~lstmcompat.LSTM` (``activation="tanh"``,
      ``recurrent_activation="sigmoid"``);
    * a :class:`~lstmcompat.CuDNNLSTM`: its kernels as cuDNN reads them, its input
      and recurrent biases as ``bias_ih`` and ``bias_hh`` (so on a GPU torch's call
      is cuDNN's, as TensorFlow's layer);
    * a :class:`~lstmcompat.Bidirectional` with ``merge_mode="concat"`` (or a list
      of them) -> ``bidirectional=True``: the sequence output is the wrapper's
      ``return_sequences=True`` output;
    * an :class:`~lstmcompat.LSTMCell` (tanh, no peepholes or clips, ``num_proj``
      smaller than ``num_units``) -- its ``forget_bias`` goes into ``bias_hh``'s
      forget block, its projection kernel becomes ``weight_hr`` (``proj_size``);
      likewise a :class:`~lstmcompat.BasicLSTMCell` (tanh),
      :class:`~lstmcompat.CudnnCompatibleLSTMCell` or
      :class:`~lstmcompat.LSTMBlockCell` (no peepholes, ``cell_clip`` off);
    * a :class:`~lstmcompat.MultiRNNCell` of such cells (nested ones flattened),
      or a list of ``LSTM`` layers, each feeding the next -> ``num_layers > 1``;
    * a list of ``(forward, backward)`` pairs -> ``bidirectional=True``: pairs of
      ``LSTMCell`` (as run by ``bidirectional_dynamic_rnn``, layer by layer on the
      concatenated outputs), or pairs of ``LSTM`` whose backward layer has
      ``go_backwards=True`` (Keras's ``Bidirectional`` pair).

    This is what :func:`from_torch_lstm` returns, so the two round-trip.
    Stacked layers must have one hidden size (and one projection size), each
    layer's input the previous layer's output, one dtype and device (torch's
    layout). Regularizers, constraints and ``unroll`` do not change the
    computation and are dropped; weight sharing between cells is not kept (each
    layer gets a copy). torch's LSTM takes no mask: pass padded sequences (or a
    ``PackedSequence``) instead.

    Args:
        module: what to convert (see above).
        batch_first: the returned LSTM's layout. ``None``: ``not time_major`` for
            Keras layers (a different value raises ``ValueError``), ``True`` for
            cells (``dynamic_rnn``'s default batch-major layout).

    Returns:
        A ``torch.nn.LSTM`` with the module's dtype and device, ``dropout=0``.

    Raises:
        TypeError: ``module`` is of another class.
        ValueError: what torch's LSTM cannot express, naming the option:
            ``activation``/``recurrent_activation`` other than tanh/sigmoid (Keras's
            default ``hard_sigmoid``), ``use_peepholes``, ``cell_clip``,
            ``proj_clip``, ``num_proj >= num_units``, ``dropout``,
            ``recurrent_dropout``, ``stateful``, ``go_backwards`` (outside a
            pair); an unbuilt module ("input size unknown"); layers that do not
            stack.

    Examples:
        >>> import torch, lstmcompat
        >>> layer = lstmcompat.LSTM(4, recurrent_activation="sigmoid", return_sequences=True,
        ...                         input_shape=(None, 3))
        >>> lstm = lstmcompat.to_torch_lstm(layer)
        >>> x = torch.randn(2, 5, 3)
        >>> torch.allclose(lstm(x)[0], layer(x), atol=1e-6)
        True
    """
    layers = _layers(module)
    bidirectional = len(layers[0]) == 2
    dirs: list[list[_Direction]] = []
    families: set[str] = set()
    time_major: set[bool] = set()
    params: list[torch.Tensor] = []
    for k, layer in enumerate(layers):
        row = []
        for d, m in enumerate(layer):
            what = f"layer {k}" + (" (backward)" if d == 1 else "") if len(layers) > 1 \
                or bidirectional else type(m).__name__
            direction, family = _direction(m, what, backward=d == 1)
            families.add(family)
            if family == "keras":
                time_major.add(m.time_major)
            row.append(direction)
            params.append(direction.w_ih)
        dirs.append(row)
    if len(families) > 1:
        raise ValueError("`module` mixes Keras LSTM layers and TF1 cells; convert one kind")
    if len(time_major) > 1:
        raise ValueError("`module`'s layers disagree on `time_major`; torch.nn.LSTM has one "
                         "layout")
    if families == {"keras"}:
        natural = not time_major.pop()
        if batch_first is not None and bool(batch_first) != natural:
            raise ValueError(f"`batch_first`={batch_first} disagrees with the layers' "
                             f"`time_major`={not natural}")
        batch_first = natural
    elif batch_first is None:
        batch_first = True
    first = dirs[0][0]
    hidden, proj = first.hidden, first.proj
    dtypes = {p.dtype for p in params}
    devices = {p.device for p in params}
    if len(dtypes) > 1 or len(devices) > 1:
        raise ValueError("`module`'s layers have different dtypes or devices "
                         f"({sorted(map(dtype_name, dtypes))}, {sorted(map(str, devices))}); "
                         "convert them to one first")
    for k, row in enumerate(dirs):
        for direction in row:
            if (direction.hidden, direction.proj) != (hidden, proj):
                raise ValueError(
                    f"{direction.what} has {direction.hidden} units"
                    f"{f' and projection {direction.proj}' if direction.proj else ''} but "
                    f"{first.what} has {hidden}{f' and projection {proj}' if proj else ''}: "
                    "torch.nn.LSTM stacks layers of one size")
            expected = first.input_size if k == 0 else len(row) * dirs[k - 1][0].output_size
            if direction.input_size != expected:
                raise ValueError(
                    f"{direction.what} reads {direction.input_size} input features but "
                    f"{'the first layer reads' if k == 0 else 'the layer below outputs'} "
                    f"{expected}: torch.nn.LSTM feeds each layer the previous one's output")
    has_bias = any(d.b_ih is not None or d.b_hh is not None for row in dirs for d in row)
    dtype, device = dtypes.pop(), devices.pop()
    lstm = torch.nn.LSTM(first.input_size, hidden, num_layers=len(dirs), bias=has_bias,
                         batch_first=bool(batch_first), bidirectional=bidirectional,
                         proj_size=proj, device=device, dtype=dtype)
    with torch.no_grad():
        for k, row in enumerate(dirs):
            for d, direction in enumerate(row):
                sfx = f"_l{k}" + ("_reverse" if d == 1 else "")
                getattr(lstm, "weight_ih" + sfx).copy_(direction.w_ih)
                getattr(lstm, "weight_hh" + sfx).copy_(direction.w_hh)
                if has_bias:
                    for name, b in (("bias_ih", direction.b_ih), ("bias_hh", direction.b_hh)):
                        target = getattr(lstm, name + sfx)
                        if b is None:
                            target.zero_()
                        else:
                            target.copy_(b)
                if proj:
                    getattr(lstm, "weight_hr" + sfx).copy_(direction.w_hr)
    return lstm


# ------------------------------------------------------------------------ from torch


def _keras_layer(lstm: torch.nn.LSTM, sfx: str, input_size: int, backward: bool) -> Any:
    from .._keras.lstm import LSTM
    p = {n: t.detach() for n, t in lstm.named_parameters() if n.endswith(sfx)}
    w_ih, w_hh = p["weight_ih" + sfx], p["weight_hh" + sfx]
    layer = LSTM(lstm.hidden_size, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=lstm.bias, return_sequences=True, go_backwards=backward,
                 time_major=not lstm.batch_first, input_shape=(None, input_size),
                 dtype=w_ih.dtype)
    weights = [gates.permute(w_ih.t(), "torch", "keras", dim=1),
               gates.permute(w_hh.t(), "torch", "keras", dim=1)]
    if lstm.bias:
        weights.append(gates.permute(p["bias_ih" + sfx] + p["bias_hh" + sfx], "torch", "keras"))
    with torch.no_grad():
        for param, value in zip(layer.weights, weights, strict=True):
            param.copy_(value)
    return layer.to(w_ih.device)


def _tf1_cell(lstm: torch.nn.LSTM, sfx: str, input_size: int) -> Any:
    from .._tf1 import LSTMCell
    p = {n: t.detach() for n, t in lstm.named_parameters() if n.endswith(sfx)}
    w_ih, w_hh = p["weight_ih" + sfx], p["weight_hh" + sfx]
    cell = LSTMCell(lstm.hidden_size, num_proj=lstm.proj_size or None, forget_bias=0.0,
                    dtype=w_ih.dtype)
    cell.build((None, input_size))
    bias = (p["bias_ih" + sfx] + p["bias_hh" + sfx]) if lstm.bias else torch.zeros_like(
        w_ih[:, 0])
    with torch.no_grad():
        cell.kernel.copy_(gates.permute(torch.cat([w_ih.t(), w_hh.t()]), "torch", "tf1", dim=1))
        cell.bias.copy_(gates.permute(bias, "torch", "tf1"))
        if lstm.proj_size:
            cell.proj_kernel.copy_(p["weight_hr" + sfx].t())
    return cell.to(w_ih.device)


def from_torch_lstm(lstm: torch.nn.LSTM, api: Literal["keras", "tf1"] = "keras") -> Any:
    """lstmcompat modules computing what a ``torch.nn.LSTM`` computes.

    The gate blocks are reordered (torch ``i, f, g, o`` -> Keras ``i, f, c, o``
    or TF1 ``i, j, f, o``), ``bias_ih + bias_hh`` becomes the one bias, and the
    dtype and device are the LSTM's.

    Returned, by ``api`` and the LSTM's shape:

    ============  ======================  =========================================
    ``api``       ``num_layers == 1``     ``num_layers > 1``
    ============  ======================  =========================================
    ``"keras"``   ``LSTM``                ``list[LSTM]`` (run one after the other)
    ``"tf1"``     ``LSTMCell``            ``MultiRNNCell`` of ``LSTMCell``
    ============  ======================  =========================================

    With ``bidirectional=True`` both APIs return a list with one ``(forward,
    backward)`` pair per layer: ``"tf1"``: two ``LSTMCell`` to run with
    ``bidirectional_dynamic_rnn`` layer by layer, each layer reading the previous
    one's concatenated outputs; ``"keras"``: two ``LSTM``, the backward one with
    ``go_backwards=True`` (its output sequence is in processing order: reverse it
    along time, as Keras's ``Bidirectional`` does, before concatenating).

    Keras layers are ``activation="tanh"``, ``recurrent_activation="sigmoid"``,
    ``return_sequences=True`` (torch's output; set ``return_state=True`` for
    ``h`` and ``c``), ``time_major=not lstm.batch_first``, built for the input
    size. TF1 cells are ``forget_bias=0.0`` (the folded biases are exactly the
    cell's ``bias``) and ``num_proj=proj_size`` (``None`` for 0); run them with
    ``time_major=not lstm.batch_first``.

    Args:
        lstm: a ``torch.nn.LSTM``.
        api: ``"keras"`` or ``"tf1"``.

    Raises:
        TypeError: ``lstm`` is not a ``torch.nn.LSTM``.
        ValueError: an unknown ``api``; ``proj_size > 0`` with ``api="keras"``
            (Keras's LSTM has no projection: use ``"tf1"``); ``dropout > 0`` with
            several layers (torch drops between layers in training, which neither
            API does: set ``lstm.dropout = 0`` first for an inference copy).

    Examples:
        >>> import torch, lstmcompat
        >>> lstm = torch.nn.LSTM(3, 4, batch_first=True)
        >>> cell = lstmcompat.from_torch_lstm(lstm, api="tf1")
        >>> x = torch.randn(2, 5, 3)
        >>> out, state = lstmcompat.dynamic_rnn(cell, x, dtype=torch.float32)
        >>> torch.allclose(out, lstm(x)[0], atol=1e-6)
        True
    """
    if not isinstance(lstm, torch.nn.LSTM):
        raise TypeError(f"`lstm` must be a torch.nn.LSTM, got {type(lstm).__name__}.")
    if not isinstance(api, str) or api not in _APIS:
        raise ValueError(f"`api` must be one of {', '.join(map(repr, _APIS))}, got {api!r}.")
    if lstm.num_layers > 1 and lstm.dropout:
        raise ValueError(f"`lstm` has `dropout`={lstm.dropout} between its layers, which "
                         f"neither lstmcompat API applies there; set `lstm.dropout = 0` "
                         f"first to convert it for inference")
    if api == "keras" and lstm.proj_size:
        raise ValueError(f"`lstm` has `proj_size`={lstm.proj_size} and Keras's LSTM has no "
                         f"projection; use `api=\"tf1\"` (LSTMCell's `num_proj`)")
    dirs = 2 if lstm.bidirectional else 1
    out_size = lstm.proj_size or lstm.hidden_size
    layers: list[Any] = []
    for k in range(lstm.num_layers):
        input_size = lstm.input_size if k == 0 else dirs * out_size
        row = []
        for d in range(dirs):
            sfx = f"_l{k}" + ("_reverse" if d == 1 else "")
            row.append(_keras_layer(lstm, sfx, input_size, backward=d == 1) if api == "keras"
                       else _tf1_cell(lstm, sfx, input_size))
        layers.append(tuple(row) if lstm.bidirectional else row[0])
    if lstm.bidirectional:
        return layers
    if len(layers) == 1:
        return layers[0]
    if api == "keras":
        return layers
    from .._tf1 import MultiRNNCell
    multi = MultiRNNCell(layers)
    multi._dtype = layers[0].dtype
    multi.built = True
    return multi

