"""CUDA kernel of ``rank_reveal`` (fastcam._C.cuda, csrc/cuda/rank_reveal.cu), launched
on the current stream of the tensors' device, asynchronously."""
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
    with torch.cuda.device(ref.device):
        out = ref.new_empty(n, C, H, W)
        stream = torch.cuda.current_stream(ref.device).cuda_stream
        _C.cuda.rank_reveal(ptr(src), ptr(dst), rank.data_ptr(), counts.data_ptr(),
                            index.data_ptr(), ptr(mean), ptr(inv_std), out.data_ptr(), n, C,
                            H * W, stream, dtype_name(ref, "CUDA"))
    return out
