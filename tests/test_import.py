"""``import lstmcompat`` changes no process-wide state, and the warning torch gives
inside a kernel is silenced around that call only.

Each check runs in a fresh interpreter (what an import does happens once per process;
torch's oneDNN warning is given once per process).
"""

from __future__ import annotations

_SNAPSHOT = """
import json, logging, os, random, sys, threading, warnings
import numpy as np
import torch


def snapshot():
    return dict(
        warning_filters=[repr(f) for f in warnings.filters],
        showwarning=repr(warnings.showwarning),
        torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
        torch_rng=torch.get_rng_state().tolist(),
        numpy_rng=np.random.get_state()[1].tolist(),
        python_rng=repr(random.getstate()),
        environ=dict(os.environ),
        sys_path=list(sys.path),
        default_dtype=str(torch.get_default_dtype()),
        deterministic=torch.are_deterministic_algorithms_enabled(),
        grad_enabled=torch.is_grad_enabled(),
        matmul_precision=torch.get_float32_matmul_precision(),
        mkldnn=torch.backends.mkldnn.enabled,
        cudnn=torch.backends.cudnn.enabled,
        root_logging=[logging.root.level, repr(logging.root.handlers)],
        threads=threading.active_count(),
        excepthook=repr(sys.excepthook),
    )
"""


def test_import_changes_no_global_state(python_json):
    # torch and numpy are imported first: what they do on import is theirs.
    changed = python_json(_SNAPSHOT + """
before = snapshot()
import lstmcompat
import lstmcompat.__main__  # the command line's module too
after = snapshot()
print(json.dumps(sorted(k for k in before if before[k] != after[k])))
""")
    assert changed == []


def test_oneDNN_projection_warning_silenced_around_the_call_only(python_json):
    # torch warns (once per process, with autograd recording) that oneDNN has no
    # projection and it runs its own loop; the native kernel makes that call.
    out = python_json("""
import json, warnings
import torch
import lstmcompat

before = list(warnings.filters)
cell = lstmcompat.LSTMCell(8, num_proj=3)
x = torch.randn(2, 5, 4)
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    inside = list(warnings.filters)
    out, _ = lstmcompat.dynamic_rnn(cell, x, dtype="float32")
    out.sum().backward()
    left = list(warnings.filters) == inside
print(json.dumps(dict(kernel=cell.last_kernel[0], left=left,
                      after=list(warnings.filters) == before,
                      messages=[str(w.message) for w in seen])))
""", LSTMCOMPAT_KERNEL="native")
    assert out["kernel"] == "native"
    assert out["messages"] == []
    assert out["left"] and out["after"]
