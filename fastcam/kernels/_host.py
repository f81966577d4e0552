"""Host-side helpers shared by the compiled backends' Python launchers."""
from __future__ import annotations

import torch
from torch import Tensor

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def dtype_name(t: Tensor, backend: str) -> str:
    """The dtype name the extension's entry points take ("float32"/"float64")."""
    try:
        return _DTYPES[t.dtype]
    except KeyError:
        raise TypeError(f"fastcam {backend} kernels take float32 or float64, got {t.dtype}") from None


def ptr(t: Tensor | None) -> int:
    """A tensor's data pointer, 0 for an absent optional tensor."""
    return 0 if t is None else t.data_ptr()
