# Interim shim: replaced by the full tf_keras-exact module at merge.
import torch

class L2:
    def __init__(self, l2=0.01): self.l2 = l2
    def __call__(self, x): return self.l2 * torch.sum(torch.square(x))
    def get_config(self): return {"l2": self.l2}

class L1:
    def __init__(self, l1=0.01): self.l1 = l1
    def __call__(self, x): return self.l1 * torch.sum(torch.abs(x))
    def get_config(self): return {"l1": self.l1}

def get(identifier):
    if identifier is None: return None
    if isinstance(identifier, str): return {"l1": L1, "l2": L2}[identifier]()
    return identifier

def serialize(reg):
    if reg is None: return None
    return {"module": "keras.regularizers", "class_name": type(reg).__name__, "config": reg.get_config(), "registered_name": None}
