"""Finds the kernel function of an op for a device (see fastcam.backend)."""
from __future__ import annotations

import importlib
from typing import Callable, Optional

import torch

from .. import backend as _backend

_MODULES = {
    "cpp": "fastcam.kernels.cpp",
    "cuda": "fastcam.kernels.cuda",
    "triton": "fastcam.kernels.triton",
}


def kernel_for(op: str, device: torch.device) -> Optional[Callable]:
    """The compiled kernel ``op`` for tensors on ``device``, or None for the
    eager reference. An explicitly chosen backend that lacks the op is an error;
    under "auto" such an op runs the reference."""
    name = _backend.resolve(device)
    if name == "reference":
        return None
    module = importlib.import_module(_MODULES[name])
    fn = getattr(module, op, None)
    if fn is None:
        if _backend.get_backend() == "auto":
            return None
        raise RuntimeError(f"backend {name!r} has no kernel for {op}")
    return fn
