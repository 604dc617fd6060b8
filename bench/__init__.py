"""A source checkout's shortcut to :mod:`lstmcompat.bench` (the suite ships in the package).

``python -m bench`` runs the suite and writes this folder's ``RESULTS.md`` and
``results.png``, the measurements the README quotes; ``python -m bench.ab OLD_SRC
NEW_SRC`` is :mod:`lstmcompat.bench.ab` (``AB.md`` holds one of its runs). Not part of
the installed package.
"""
