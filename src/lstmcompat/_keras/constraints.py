# Interim shim: replaced by the full tf_keras-exact module at merge.
import torch

class NonNeg:
    def __call__(self, w): return w * (w >= 0).to(w.dtype)
    def get_config(self): return {}

def get(identifier):
    if identifier is None: return None
    if isinstance(identifier, str): return {"non_neg": NonNeg}[identifier]()
    return identifier

def serialize(c):
    if c is None: return None
    return {"module": "keras.constraints", "class_name": type(c).__name__, "config": c.get_config(), "registered_name": None}

def apply_constraints(module):
    with torch.no_grad():
        for m in module.modules():
            for name, c in getattr(m, "_constraints", {}).items():
                p = getattr(m, name)
                p.data.copy_(c(p.data))

def attach_constraints(optimizer, module):
    return optimizer.register_step_post_hook(lambda *a, **k: apply_constraints(module))
