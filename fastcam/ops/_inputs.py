"""Input preparation shared by the ops: the checks and conversions after which
every kernel may assume valid input."""
from __future__ import annotations

import torch
from torch import Tensor

KERNEL_DTYPES = (torch.float32, torch.float64)


def kernel_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel computes in: float32/float64 as given, else float32."""
    return dtype if dtype in KERNEL_DTYPES else torch.float32


def as_kernel_input(t: Tensor | None, like: Tensor) -> Tensor | None:
    """``t`` contiguous, on ``like``'s device, in ``like``'s kernel dtype (None passes)."""
    if t is None:
        return None
    return t.to(device=like.device, dtype=kernel_dtype(like.dtype)).contiguous()


def as_index(t: Tensor, like: Tensor) -> Tensor:
    """An integer tensor as the kernels take it: int64, contiguous, on ``like``'s device."""
    return t.to(device=like.device, dtype=torch.long).contiguous()


def check_per_channel(C: int, mean: Tensor | None, std: Tensor | None) -> None:
    """mean and std hold one value per channel (the kernels read mean[c], std[c])."""
    for name, t in (("mean", mean), ("std", std)):
        if t is not None and t.numel() != C:
            raise ValueError(f"{name} must have one value per channel ({C}), got {t.numel()}")


def check_index(index: Tensor, size: int, name: str = "index") -> Tensor:
    """``index`` if every entry lies in [0, size), else a ValueError naming the
    first bad entry. Reads min and max back to the host (one device sync): call
    it once per caller and pass ``check_index=False`` to the ops on its chunks."""
    if index.numel():
        lo, hi = (int(v) for v in torch.stack([index.min(), index.max()]).tolist())
        if lo < 0 or hi >= size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must lie in [0, {size}), got {bad}")
    return index
