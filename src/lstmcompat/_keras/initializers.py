# Interim shim: replaced by the full tf_keras-exact module at merge.
import math
import torch

class GlorotUniform:
    def __init__(self, seed=None): self.seed = seed
    def __call__(self, shape, dtype=torch.float32):
        fan_in, fan_out = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[0])
        lim = math.sqrt(6.0 / (fan_in + fan_out))
        return torch.empty(shape, dtype=dtype).uniform_(-lim, lim)
    def get_config(self): return {"seed": self.seed}

class Orthogonal:
    def __init__(self, gain=1.0, seed=None): self.gain, self.seed = gain, seed
    def __call__(self, shape, dtype=torch.float32):
        t = torch.empty(shape, dtype=dtype)
        torch.nn.init.orthogonal_(t, self.gain)
        return t
    def get_config(self): return {"gain": self.gain, "seed": self.seed}

class Zeros:
    def __call__(self, shape, dtype=torch.float32): return torch.zeros(shape, dtype=dtype)
    def get_config(self): return {}

class Ones:
    def __call__(self, shape, dtype=torch.float32): return torch.ones(shape, dtype=dtype)
    def get_config(self): return {}

_M = {"glorot_uniform": GlorotUniform, "orthogonal": Orthogonal, "zeros": Zeros, "ones": Ones}

def get(identifier):
    if identifier is None: return None
    if isinstance(identifier, str): return _M[identifier]()
    return identifier

def serialize(init):
    return {"module": "keras.initializers", "class_name": type(init).__name__, "config": init.get_config(), "registered_name": None}
