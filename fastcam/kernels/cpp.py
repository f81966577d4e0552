"""C++/OpenMP kernels (fastcam._C) for CPU tensors: the ``cpp`` backend."""
from __future__ import annotations

import torch
from torch import Tensor

from .._ext import load_extension
from ._host import dtype_name, ptr


def cam_combine_forward(A: Tensor, w: Tensor, H: int, W: int, relu: bool, normalize: bool,
                        align_corners: bool) -> tuple[Tensor, Tensor, Tensor]:
    """A (B,K,h,w) and w (B,G,K), contiguous, same dtype -> (out, s_low, stats)."""
    _C = load_extension()
    B, K, h, wd = A.shape
    G = w.shape[1]
    out = A.new_empty(B, G, H, W)
    s_low = A.new_empty(B, G, h, wd)
    stats = A.new_empty(B, G, 2)
    _C.cam_combine_forward_cpu(A.data_ptr(), w.data_ptr(), out.data_ptr(), s_low.data_ptr(),
                               stats.data_ptr(), B, G, K, h, wd, H, W, relu, normalize,
                               align_corners, torch.get_num_threads(), dtype_name(A, "C++"))
    return out, s_low, stats


def cam_combine_backward(grad_out: Tensor, out: Tensor, A: Tensor, w: Tensor, s_low: Tensor,
                         stats: Tensor, relu: bool, normalize: bool,
                         align_corners: bool) -> tuple[Tensor, Tensor]:
    """Exact gradients (dA, dw) given the forward's saved tensors (all contiguous)."""
    _C = load_extension()
    B, K, h, wd = A.shape
    G, H, W = out.shape[1:]
    grad_A = torch.empty_like(A)
    grad_w = torch.empty_like(w)
    _C.cam_combine_backward_cpu(grad_out.data_ptr(), out.data_ptr(), A.data_ptr(), w.data_ptr(),
                                s_low.data_ptr(), stats.data_ptr(), grad_A.data_ptr(),
                                grad_w.data_ptr(), B, G, K, h, wd, H, W, relu, normalize,
                                align_corners, torch.get_num_threads(), dtype_name(A, "C++"))
    return grad_A, grad_w


def mask_blend(x: Tensor, maps: Tensor, index: Tensor, baseline: Tensor | None,
               mean: Tensor | None, inv_std: Tensor | None, eps: float,
               align_corners: bool) -> Tensor:
    """See reference.mask_blend (here with 1/std). All contiguous, index int64."""
    _C = load_extension()
    B, C, H, W = x.shape
    n, h, w = maps.shape
    out = x.new_empty(n, C, H, W)
    _C.mask_blend_cpu(x.data_ptr(), ptr(baseline), maps.data_ptr(), index.data_ptr(),
                      ptr(mean), ptr(inv_std), out.data_ptr(), n, C, H, W, h, w, float(eps),
                      align_corners, torch.get_num_threads(), dtype_name(x, "C++"))
    return out


def rank_reveal(rank: Tensor, counts: Tensor, index: Tensor, src: Tensor | None,
                dst: Tensor | None, mean: Tensor | None, inv_std: Tensor | None) -> Tensor:
    """See reference.rank_reveal (here with 1/std). All contiguous, rank/counts/index int64."""
    _C = load_extension()
    ref = src if src is not None else dst
    B, C, H, W = ref.shape
    n = index.numel()
    out = ref.new_empty(n, C, H, W)
    _C.rank_reveal_cpu(ptr(src), ptr(dst), rank.data_ptr(), counts.data_ptr(),
                       index.data_ptr(), ptr(mean), ptr(inv_std), out.data_ptr(), n, C, H * W,
                       torch.get_num_threads(), dtype_name(ref, "C++"))
    return out


def adaptive_kde(samples: Tensor, grid_size: int | None = None) -> tuple[Tensor, Tensor]:
    """See reference_kde.adaptive_kde: samples (N, S) -> density (N, Z) float64 on
    linspace(0, 1, Z) (Z = grid_size, default S) and peaks (N,) int64. Computed in
    float64 whatever the input dtype."""
    from . import reference_kde as _kde

    _C = load_extension()
    x = samples.to(torch.float64).contiguous()
    N, S = x.shape
    Z = S if grid_size is None else int(grid_size)
    density = x.new_empty(N, Z)
    peaks = torch.empty(N, dtype=torch.long)
    if N == 0:
        return density, peaks
    _C.adaptive_kde_cpu(x.data_ptr(), density.data_ptr(), peaks.data_ptr(), N, S, Z,
                        _kde.M_BANDWIDTHS, _kde.MAX_ITER, _kde.TOL, torch.get_num_threads())
    return density, peaks
