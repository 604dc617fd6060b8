"""lstmcompat's benchmark suite (not collected by pytest). Run ``python -m bench``
or ``lstmcompat bench``; see :mod:`bench.suite`."""
