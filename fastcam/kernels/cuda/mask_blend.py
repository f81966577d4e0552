"""CUDA kernels of ``mask_blend`` (fastcam._C.cuda, csrc/cuda/mask_blend.cu), launched
on the current stream of the tensors' device, asynchronously."""
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
    with torch.cuda.device(x.device):
        out = x.new_empty(n, C, H, W)
        stats = x.new_empty(n, 2)  # scratch: (min, max - min) of each upsampled map
        stream = torch.cuda.current_stream(x.device).cuda_stream
        _C.cuda.mask_blend(x.data_ptr(), ptr(baseline), maps.data_ptr(), index.data_ptr(),
                           ptr(mean), ptr(inv_std), out.data_ptr(), stats.data_ptr(), n, C, H,
                           W, h, w, float(eps), bool(align_corners), stream, dtype_name(x, "CUDA"))
    return out
