"""C++/OpenMP kernel of ``adaptive_kde`` (fastcam._C.cpu, csrc/cpu/adaptive_kde.cpp)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..._ext import load_extension
from ..reference.adaptive_kde import M_BANDWIDTHS, MAX_ITER, TOL


def adaptive_kde(samples: Tensor, grid_size: int | None = None) -> tuple[Tensor, Tensor]:
    """See :func:`fastcam.kernels.reference.adaptive_kde`: samples (N, S) -> density
    (N, Z) float64 on linspace(0, 1, Z) (Z = grid_size, default S) and peaks (N,)
    int64. Computed in float64 whatever the input dtype."""
    _C = load_extension()
    x = samples.to(torch.float64).contiguous()
    N, S = x.shape
    Z = S if grid_size is None else int(grid_size)
    density = x.new_empty(N, Z)
    peaks = torch.empty(N, dtype=torch.long)
    if N == 0:
        return density, peaks
    _C.cpu.adaptive_kde(x.data_ptr(), density.data_ptr(), peaks.data_ptr(), N, S, Z,
                        M_BANDWIDTHS, MAX_ITER, TOL, torch.get_num_threads())
    return density, peaks
