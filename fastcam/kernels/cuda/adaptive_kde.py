"""CUDA kernel of ``adaptive_kde`` (fastcam._C.cuda, csrc/cuda/adaptive_kde.cu)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..._ext import load_extension
from ..reference.adaptive_kde import M_BANDWIDTHS, MAX_ITER, TOL


def adaptive_kde(samples: Tensor, grid_size: int | None = None) -> tuple[Tensor, Tensor]:
    """See :func:`fastcam.kernels.reference.adaptive_kde`: samples (N, S) on a CUDA
    device -> density (N, Z) float64 on linspace(0, 1, Z) (Z = grid_size, default
    S) and peaks (N,) int64, on the same device. Computed in float64 whatever the
    input dtype. One thread per channel; waits once for the current stream (the
    channels' grid sizes are read back to build their tables)."""
    _C = load_extension()
    x = samples.to(torch.float64).contiguous()
    N, S = x.shape
    Z = S if grid_size is None else int(grid_size)
    M = M_BANDWIDTHS
    with torch.cuda.device(x.device):
        density = x.new_empty(N, Z)
        peaks = torch.empty(N, dtype=torch.long, device=x.device)
        if N == 0:
            return density, peaks
        # A channel's internal grid has at most Z points: rows for Z are enough.
        stride = _C.cuda.adaptive_kde_scratch_size(Z, M)
        grid = torch.empty(N, dtype=torch.int32, device=x.device)
        scratch = x.new_empty(N, stride)
        stream = torch.cuda.current_stream(x.device).cuda_stream
        _C.cuda.adaptive_kde(x.data_ptr(), density.data_ptr(), peaks.data_ptr(),
                             grid.data_ptr(), scratch.data_ptr(), stride, N, S, Z, M,
                             MAX_ITER, TOL, stream)
    return density, peaks
