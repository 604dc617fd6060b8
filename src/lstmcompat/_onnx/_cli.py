"""``lstmcompat export-onnx``: a file's LSTM module to ONNX (listed in ``lstmcompat.__main__``)."""

from __future__ import annotations

import argparse

import torch

from .._interop._cli import add_module_arguments, add_out_argument, guard, module_from, with_out


def _export(args: argparse.Namespace) -> int:
    from . import DEFAULT_OPSET, export_onnx

    module = module_from(args)
    if hasattr(module, "_input_features"):  # a Keras LSTM
        depth = module._input_features
    else:
        depth = getattr(module, "_input_depth", None)
        if depth is None and hasattr(module, "_cell_list"):
            depth = module._cell_list[0]._input_depth
    dtype = next(module.parameters()).dtype
    example = torch.zeros(1, 1, int(depth), dtype=dtype)
    rep = export_onnx(module, args.out, example, mask=args.mask,
                      sequence_length=args.sequence_length, initial_state=args.initial_state,
                      time_major=args.time_major or None, form=args.form,
                      opset=args.opset or DEFAULT_OPSET)
    print(f"wrote {rep.path}: {type(module).__name__} ({module!r})")
    print(f"inputs: {', '.join(rep.inputs)}; outputs: {', '.join(rep.outputs)} "
          "(batch and time axes dynamic)")
    for k, (form, why) in enumerate(rep.layers):
        what = "one ONNX LSTM node" if form == "node" else "a Scan loop of the reference step"
        print(f"layer {k}: {what} ({why})")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    """The ``lstmcompat export-onnx`` subcommand."""
    p.description = ("Export the LSTM module of PATH (a file written by lstmcompat.save, "
                     "or one weight set of a TF checkpoint or Keras file) to ONNX, and say "
                     "which form each layer took (one ONNX LSTM node where exact, else a "
                     "Scan loop) and why.")
    p.add_argument("path", help="an lstmcompat .safetensors file, a checkpoint prefix or "
                                "directory, or a Keras file")
    add_out_argument(p, "the .onnx file to write")
    add_module_arguments(p)
    p.add_argument("--opset", type=int, help="the ONNX opset (default 17, at least 14)")
    p.add_argument("--form", choices=("auto", "node", "loop"), default="auto",
                   help="one LSTM node per layer where exact (auto), always (node: an "
                        "error where not exact) or a Scan loop (loop)")
    p.add_argument("--mask", action="store_true",
                   help="a Keras LSTM: add the bool input `mask` (batch, time)")
    p.add_argument("--sequence-length", action="store_true",
                   help="TF1 cells: add the int64 input `sequence_length` (batch,)")
    p.add_argument("--initial-state", action="store_true", help="add the initial state inputs")
    p.add_argument("--time-major", action="store_true",
                   help="TF1 cells: inputs and outputs (time, batch, ...)")
    p.set_defaults(func=guard(with_out(p, _export)))
