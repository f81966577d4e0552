"""C++/OpenMP kernels of ``cam_combine`` (fastcam._C.cpu, csrc/cpu/cam_combine.cpp)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..._ext import load_extension
from .._host import dtype_name


def cam_combine_forward(A: Tensor, w: Tensor, H: int, W: int, relu: bool, normalize: bool,
                        align_corners: bool) -> tuple[Tensor, Tensor, Tensor]:
    """A (B,K,h,w) and w (B,G,K), contiguous, same dtype -> (out, s_low, stats)
    (see :func:`fastcam.kernels.reference.cam_combine_forward`)."""
    _C = load_extension()
    B, K, h, wd = A.shape
    G = w.shape[1]
    out = A.new_empty(B, G, H, W)
    s_low = A.new_empty(B, G, h, wd)
    stats = A.new_empty(B, G, 2)
    _C.cpu.cam_combine_forward(A.data_ptr(), w.data_ptr(), out.data_ptr(), s_low.data_ptr(),
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
    _C.cpu.cam_combine_backward(grad_out.data_ptr(), out.data_ptr(), A.data_ptr(), w.data_ptr(),
                                s_low.data_ptr(), stats.data_ptr(), grad_A.data_ptr(),
                                grad_w.data_ptr(), B, G, K, h, wd, H, W, relu, normalize,
                                align_corners, torch.get_num_threads(), dtype_name(A, "C++"))
    return grad_A, grad_w
