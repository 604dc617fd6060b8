"""``list_variables`` and ``load_variables``: any supported weight file, one answer shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._source import open_source

__all__ = ["list_variables", "load_variables"]


def list_variables(path: Any) -> list[tuple[str, tuple[int, ...]]]:
    """The variables of a weight file with their shapes, like ``tf.train.list_variables``.

    Args:
        path: a TF checkpoint prefix (``"model.ckpt-1000"``), its ``.index`` file, or
            a directory holding a ``checkpoint`` state file (its
            ``model_checkpoint_path`` may be relative to the directory); a Keras
            HDF5 file (tf_keras ``save_weights`` or ``model.save``), a Keras 3
            ``.weights.h5`` file or ``.keras`` archive; or a file written by
            :func:`lstmcompat.save`.

    Returns:
        ``[(name, shape), ...]``. TF checkpoints: sorted by name, including TF2's
        ``_CHECKPOINTABLE_OBJECT_GRAPH`` (as TensorFlow lists it), a partitioned
        variable once with its full shape. tf_keras HDF5 files: each weight's
        dataset path (``"lstm/lstm/lstm_cell/kernel:0"``; under ``model_weights/``
        for a full model) in the file's layer and ``weight_names`` order, the order
        Keras loads them in. Keras 3 ``.weights.h5``, sharded ``.weights.json`` and
        ``.keras`` files: each dataset of the object tree's ``vars`` groups
        (``"layers/lstm/cell/vars/0"``, in the inner weights file for ``.keras``)
        in the order Keras loads them, ``vars/10`` after ``vars/9``. Every name
        opens its dataset with ``h5py.File(path)[name]``. Datasets that no
        ``weight_names`` / ``vars`` group lists are not variables (Keras never
        reads them); a full model's optimizer state (``optimizer_weights/...``,
        ``optimizer/vars/...``) is listed after the model's weights, as it is a
        variable of the file (as ``tf.train.list_variables`` lists a checkpoint's
        optimizer slots). Keras files need h5py (``pip install 'lstmcompat[h5]'``).

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: nothing at ``path``.
        ValueError: a corrupt file, or one of no supported kind.
        ModuleNotFoundError: a Keras HDF5 file and no h5py installed.

    Examples:
        >>> import lstmcompat
        >>> lstmcompat.list_variables("train_dir")  # doctest: +SKIP
        [('global_step', ()), ('rnn/lstm_cell/bias', (16,)), ('rnn/lstm_cell/kernel', (7, 16))]
    """
    return open_source(path).variables()


def load_variables(path: Any) -> dict[str, np.ndarray]:
    """Every variable of a weight file, as TensorFlow (``load_checkpoint(path).get_tensor``)
    or h5py returns it.

    No TensorFlow, protobuf or pickle is used. Values keep the file's dtypes
    (bfloat16 as ``ml_dtypes.bfloat16`` when ml_dtypes is installed, else as
    float32, which holds every bfloat16 value exactly); string tensors come back
    as ``bytes`` (object arrays of ``bytes`` when not scalar). Checksums are
    verified.

    Args:
        path: any path :func:`list_variables` takes.

    Returns:
        ``{name: numpy.ndarray}`` for every name :func:`list_variables` gives, in
        its order.

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: nothing at ``path``, or a data shard is missing.
        ValueError: a corrupt file, or a dtype lstmcompat cannot read (quantized,
            resource, variant), naming the variable.

    Examples:
        >>> import lstmcompat
        >>> weights = lstmcompat.load_variables("train_dir/model.ckpt-1000")  # doctest: +SKIP
        >>> weights["rnn/lstm_cell/kernel"].shape  # doctest: +SKIP
        (7, 16)
    """
    source = open_source(path)
    return {name: source.read(name) for name, _ in source.variables()}
