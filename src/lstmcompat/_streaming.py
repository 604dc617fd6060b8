"""Streaming inference shared by both front-ends (``LSTMCell`` and a stateful ``LSTM``).

A module fed one time step per call (batch 1, real-time inference) would spend
most of each call on Python checks. Such a module asks the engine once per
configuration (:func:`lstmcompat._engine.start_stream`: ``choose`` decides, with
``streaming=True``, like any other choice) and keeps the answer in
``self._stream``: a :class:`~lstmcompat._engine.Stream` whose compiled stepper
holds the module's configuration (no weights), reads the module's parameters
on every call, checks that they and the inputs qualify, and runs the step on
the parameters' own storage; when it returns ``None`` the module takes its
general path (same numbers). A streamed call's ``last_kernel`` is the
stream's ``kernel``: ``choose``'s own ``(name, reason)``.

``self._stream`` is ``None`` (not decided yet), ``False`` (this configuration
does not stream) or the stream. It is decided for the module's configuration
at that time (its parameters' device and dtype, a forced kernel, including
``LSTMCOMPAT_KERNEL`` as it is then), so setting any attribute of the module
(``train()``/``eval()``, a dropout rate, a replaced parameter, ...) resets it
to ``None``.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


class StreamingModule:
    """Mixin (before ``torch.nn.Module`` in the bases) holding ``_stream``."""

    _stream: Any = None

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        # the general path re-sets some attributes to the same value on every call
        if d.get("_stream") is not None and d.get(name, _MISSING) is not value:
            d["_stream"] = None
        super().__setattr__(name, value)  # type: ignore[misc]

    def __getstate__(self) -> dict[str, Any]:
        # the compiled streamer is a cache: not copied or pickled, rebuilt on use
        state = dict(super().__getstate__())  # type: ignore[misc]
        state.pop("_stream", None)
        state.pop("_lock", None)  # a stateful layer's call lock: made anew on use
        return state
