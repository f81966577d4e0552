"""CUDA kernels (fastcam._C, built with nvcc) for CUDA tensors: the ``cuda`` backend.

Same interface as :mod:`fastcam.kernels.cpp`. The kernels are launched on the
current stream of the tensors' device, asynchronously, like any torch op."""
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
    with torch.cuda.device(A.device):
        out = A.new_empty(B, G, H, W)
        s_low = A.new_empty(B, G, h, wd)
        stats = A.new_empty(B, G, 2)
        stream = torch.cuda.current_stream(A.device).cuda_stream
        _C.cam_combine_forward_cuda(A.data_ptr(), w.data_ptr(), out.data_ptr(),
                                    s_low.data_ptr(), stats.data_ptr(), B, G, K, h, wd, H, W,
                                    relu, normalize, align_corners, stream, dtype_name(A, "CUDA"))
    return out, s_low, stats


def cam_combine_backward(grad_out: Tensor, out: Tensor, A: Tensor, w: Tensor, s_low: Tensor,
                         stats: Tensor, relu: bool, normalize: bool,
                         align_corners: bool) -> tuple[Tensor, Tensor]:
    """Exact gradients (dA, dw) given the forward's saved tensors (all contiguous)."""
    _C = load_extension()
    B, K, h, wd = A.shape
    G, H, W = out.shape[1:]
    with torch.cuda.device(A.device):
        grad_A = torch.empty_like(A)
        grad_w = torch.empty_like(w)
        grad_s = A.new_empty(B, G, h, wd)  # scratch: gradient w.r.t. s_low
        stream = torch.cuda.current_stream(A.device).cuda_stream
        _C.cam_combine_backward_cuda(grad_out.data_ptr(), out.data_ptr(), A.data_ptr(),
                                     w.data_ptr(), s_low.data_ptr(), stats.data_ptr(),
                                     grad_s.data_ptr(), grad_A.data_ptr(), grad_w.data_ptr(),
                                     B, G, K, h, wd, H, W, relu, normalize, align_corners,
                                     stream, dtype_name(A, "CUDA"))
    return grad_A, grad_w


def mask_blend(x: Tensor, maps: Tensor, index: Tensor, baseline: Tensor | None,
               mean: Tensor | None, inv_std: Tensor | None, eps: float,
               align_corners: bool) -> Tensor:
    """See reference.mask_blend (here with 1/std). All contiguous, index int64."""
    _C = load_extension()
    B, C, H, W = x.shape
    n, h, w = maps.shape
    with torch.cuda.device(x.device):
        out = x.new_empty(n, C, H, W)
        stats = x.new_empty(n, 2)  # scratch: (min, max - min) of each upsampled map
        stream = torch.cuda.current_stream(x.device).cuda_stream
        _C.mask_blend_cuda(x.data_ptr(), ptr(baseline), maps.data_ptr(), index.data_ptr(),
                           ptr(mean), ptr(inv_std), out.data_ptr(), stats.data_ptr(), n, C, H,
                           W, h, w, float(eps), bool(align_corners), stream, dtype_name(x, "CUDA"))
    return out


def rank_reveal(rank: Tensor, counts: Tensor, index: Tensor, src: Tensor | None,
                dst: Tensor | None, mean: Tensor | None, inv_std: Tensor | None) -> Tensor:
    """See reference.rank_reveal (here with 1/std). All contiguous, rank/counts/index int64."""
    _C = load_extension()
    ref = src if src is not None else dst
    B, C, H, W = ref.shape
    n = index.numel()
    with torch.cuda.device(ref.device):
        out = ref.new_empty(n, C, H, W)
        stream = torch.cuda.current_stream(ref.device).cuda_stream
        _C.rank_reveal_cuda(ptr(src), ptr(dst), rank.data_ptr(), counts.data_ptr(),
                            index.data_ptr(), ptr(mean), ptr(inv_std), out.data_ptr(), n, C,
                            H * W, stream, dtype_name(ref, "CUDA"))
    return out


def adaptive_kde(samples: Tensor, grid_size: int | None = None) -> tuple[Tensor, Tensor]:
    """See reference_kde.adaptive_kde: samples (N, S) on a CUDA device -> density
    (N, Z) float64 on linspace(0, 1, Z) (Z = grid_size, default S) and peaks (N,)
    int64, on the same device. Computed in float64 whatever the input dtype. One
    thread per channel; waits once for the current stream (the channels' grid
    sizes are read back to build their tables)."""
    from . import reference_kde as _kde

    _C = load_extension()
    x = samples.to(torch.float64).contiguous()
    N, S = x.shape
    Z = S if grid_size is None else int(grid_size)
    M = _kde.M_BANDWIDTHS
    with torch.cuda.device(x.device):
        density = x.new_empty(N, Z)
        peaks = torch.empty(N, dtype=torch.long, device=x.device)
        if N == 0:
            return density, peaks
        # A channel's internal grid has at most Z points: rows for Z are enough.
        stride = _C.adaptive_kde_scratch_size(Z, M)
        grid = torch.empty(N, dtype=torch.int32, device=x.device)
        scratch = x.new_empty(N, stride)
        stream = torch.cuda.current_stream(x.device).cuda_stream
        _C.adaptive_kde_cuda(x.data_ptr(), density.data_ptr(), peaks.data_ptr(),
                             grid.data_ptr(), scratch.data_ptr(), stride, N, S, Z, M,
                             _kde.MAX_ITER, _kde.TOL, stream)
    return density, peaks
