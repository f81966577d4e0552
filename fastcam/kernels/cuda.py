"""CUDA kernels (fastcam._C, built with nvcc) for CUDA tensors.

Same interface as :mod:`fastcam.kernels.cpu`. The kernels are launched on the
current stream of the tensors' device, asynchronously, like any torch op."""
from __future__ import annotations

import torch
from torch import Tensor

from .._ext import load_extension

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def _dtype_name(t: Tensor) -> str:
    try:
        return _DTYPES[t.dtype]
    except KeyError:
        raise TypeError(f"fastcam CUDA kernels take float32 or float64, got {t.dtype}") from None


def _extension():
    _C = load_extension()
    if not _C.cuda_compiled:
        raise RuntimeError("fastcam._C was built without CUDA kernels (rebuild with nvcc "
                           "available, FASTCAM_CUDA=ON)")
    return _C


def _check_cuda(*tensors: Tensor) -> None:
    device = tensors[0].device
    for t in tensors:
        if t.device.type != "cuda" or t.device != device:
            raise ValueError(f"fastcam CUDA kernels take CUDA tensors on one device, got "
                             f"{[str(x.device) for x in tensors]}")


def cam_combine_forward(A: Tensor, w: Tensor, H: int, W: int, relu: bool, normalize: bool,
                        align_corners: bool) -> tuple[Tensor, Tensor, Tensor]:
    """A (B,K,h,w) and w (B,G,K), contiguous, same dtype -> (out, s_low, stats)."""
    _C = _extension()
    _check_cuda(A, w)
    B, K, h, wd = A.shape
    G = w.shape[1]
    with torch.cuda.device(A.device):
        out = A.new_empty(B, G, H, W)
        s_low = A.new_empty(B, G, h, wd)
        stats = A.new_empty(B, G, 2)
        stream = torch.cuda.current_stream(A.device).cuda_stream
        _C.cam_combine_forward_cuda(A.data_ptr(), w.data_ptr(), out.data_ptr(),
                                    s_low.data_ptr(), stats.data_ptr(), B, G, K, h, wd, H, W,
                                    relu, normalize, align_corners, stream, _dtype_name(A))
    return out, s_low, stats


def cam_combine_backward(grad_out: Tensor, out: Tensor, A: Tensor, w: Tensor, s_low: Tensor,
                         stats: Tensor, relu: bool, normalize: bool,
                         align_corners: bool) -> tuple[Tensor, Tensor]:
    """Exact gradients (dA, dw) given the forward's saved tensors (all contiguous)."""
    _C = _extension()
    _check_cuda(grad_out, out, A, w, s_low, stats)
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
                                     stream, _dtype_name(A))
    return grad_A, grad_w
