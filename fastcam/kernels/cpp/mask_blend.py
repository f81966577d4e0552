"""C++/OpenMP kernel of ``mask_blend`` (fastcam._C.cpu, csrc/cpu/mask_blend.cpp)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..._ext import load_extension
from .._host import dtype_name, ptr


def mask_blend(x: Tensor, maps: Tensor, index: Tensor, baseline: Tensor | None,
               mean: Tensor | None, inv_std: Tensor | None, eps: float,
               align_corners: bool) -> Tensor:
    """See :func:`fastcam.kernels.reference.mask_blend` (here with 1/std). All
    contiguous, index int64."""
    _C = load_extension()
    B, C, H, W = x.shape
    n, h, w = maps.shape
    out = x.new_empty(n, C, H, W)
    _C.cpu.mask_blend(x.data_ptr(), ptr(baseline), maps.data_ptr(), index.data_ptr(),
                      ptr(mean), ptr(inv_std), out.data_ptr(), n, C, H, W, h, w, float(eps),
                      align_corners, torch.get_num_threads(), dtype_name(x, "C++"))
    return out
