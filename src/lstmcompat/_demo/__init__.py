"""``lstmcompat demo``: a character-level language model on two stacked
:class:`lstmcompat.LSTM` layers, trained on a bundled public-domain text
(:mod:`._text`), saved and reloaded with :func:`lstmcompat.save` /
:func:`lstmcompat.load` (:mod:`._model`); the command itself is :mod:`._cli`.
"""
