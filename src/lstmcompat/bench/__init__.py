"""lstmcompat's benchmark suite: the public API against ``torch.nn.LSTM`` (and TensorFlow).

``lstmcompat bench`` (or ``python -m lstmcompat.bench``) runs it, see :mod:`.suite`;
``python -m lstmcompat.bench.ab OLD_SRC NEW_SRC`` measures two source trees against each
other, see :mod:`.ab`. matplotlib draws the chart when installed (``pip install
'lstmcompat[bench]'``). TensorFlow is measured only when asked (``--tf PYTHON``), in that
interpreter: :mod:`.tf_worker` runs there as a script and is never imported here.

``import lstmcompat`` does not import this package.
"""
