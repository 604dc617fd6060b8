"""Regenerate ``csrc/activation_codes.h`` from the engine's activation table.

    python tools/gen_activation_codes.py

The table (:data:`lstmcompat._engine.fused._acts.TABLE`) is the one source of the
activations' codes and constants; the compiled switch (``csrc/activations.h``)
names them through this header. ``tests/engine/test_activation_table.py`` fails
while the header is not current. The extension's cache key hashes the header,
so the next run rebuilds it.
"""

from __future__ import annotations

from lstmcompat._engine.fused import _acts

if __name__ == "__main__":
    _acts.HEADER.write_text(_acts.cpp_header())
    print(f"wrote {_acts.HEADER}")
