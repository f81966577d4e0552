"""C++/OpenMP kernel of ``rank_reveal`` (fastcam._C.cpu, csrc/cpu/rank_reveal.cpp)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..._ext import load_extension
from .._host import dtype_name, ptr


def rank_reveal(rank: Tensor, counts: Tensor, index: Tensor, src: Tensor | None,
                dst: Tensor | None, mean: Tensor | None, inv_std: Tensor | None) -> Tensor:
    """See :func:`fastcam.kernels.reference.rank_reveal` (here with 1/std). All
    contiguous, rank/counts/index int64."""
    _C = load_extension()
    ref = src if src is not None else dst
    B, C, H, W = ref.shape
    n = index.numel()
    out = ref.new_empty(n, C, H, W)
    _C.cpu.rank_reveal(ptr(src), ptr(dst), rank.data_ptr(), counts.data_ptr(),
                       index.data_ptr(), ptr(mean), ptr(inv_std), out.data_ptr(), n, C, H * W,
                       torch.get_num_threads(), dtype_name(ref, "C++"))
    return out
