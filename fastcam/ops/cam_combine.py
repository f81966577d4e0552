"""The fused CAM op: ``minmax(up(ReLU(Σ_k w_k A_k)))``, forward and backward.

Every CAM method ends in this op (CAM/Grad-CAM/Grad-CAM++ eq. "L = ReLU(Σ_k α_k A^k)",
Opti-CAM's S(u) differentiated w.r.t. its channel weights, ADVISE's per-group
candidates with w of shape (B,G,K)). Registered with ``torch.library.custom_op``
so fake tensors and torch.compile see it as one opaque op.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

from ..kernels import reference as _reference
from ._dispatch import kernel_for
from ._inputs import kernel_dtype

Size = Union[int, Sequence[int]]


@torch.library.custom_op("fastcam::cam_combine_forward", mutates_args=())
def _cam_combine_forward(A: Tensor, w: Tensor, H: int, W: int, relu: bool, normalize: bool,
                     align_corners: bool) -> tuple[Tensor, Tensor, Tensor]:
    fn = kernel_for("cam_combine_forward", A.device)
    if fn is None:
        out, s, stats = _reference.cam_combine_forward(A, w, H, W, relu, normalize, align_corners)
        return out.detach().clone(), s.detach().clone(), stats.clone()
    return fn(A, w, H, W, relu, normalize, align_corners)


@_cam_combine_forward.register_fake
def _(A, w, H, W, relu, normalize, align_corners):
    B, G = w.shape[:2]
    return (A.new_empty(B, G, H, W), A.new_empty(B, G, A.shape[2], A.shape[3]),
            A.new_empty(B, G, 2))


@torch.library.custom_op("fastcam::cam_combine_backward", mutates_args=())
def _cam_combine_backward(grad_out: Tensor, out: Tensor, A: Tensor, w: Tensor, s_low: Tensor,
                     stats: Tensor, relu: bool, normalize: bool,
                     align_corners: bool) -> tuple[Tensor, Tensor]:
    fn = kernel_for("cam_combine_backward", A.device)
    if fn is None:
        return _reference.cam_combine_backward(grad_out, out, A, w, s_low, stats, relu,
                                               normalize, align_corners)
    return fn(grad_out.contiguous(), out, A, w, s_low, stats, relu, normalize, align_corners)


@_cam_combine_backward.register_fake
def _(grad_out, out, A, w, s_low, stats, relu, normalize, align_corners):
    return torch.empty_like(A), torch.empty_like(w)


def _setup_context(ctx, inputs, output):
    A, w, H, W, relu, normalize, align_corners = inputs
    out, s_low, stats = output
    ctx.save_for_backward(A, w, out, s_low, stats)
    ctx.flags = (relu, normalize, align_corners)


def _backward(ctx, grad_out, _grad_s, _grad_stats):
    A, w, out, s_low, stats = ctx.saved_tensors
    if grad_out is None:
        return None, None, None, None, None, None, None
    gA, gw = _cam_combine_backward(grad_out, out, A, w, s_low, stats, *ctx.flags)
    return gA, gw, None, None, None, None, None


_cam_combine_forward.register_autograd(_backward, setup_context=_setup_context)


def _as_size(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be a positive int or (H, W), got {size}")
    return size


def cam_combine(A: Tensor, w: Tensor, size: Size, relu: bool = True, normalize: bool = True,
                align_corners: bool = False) -> Tensor:
    """Class activation maps from activations and channel weights, fused.

    ``out = minmax(up(ReLU(Σ_k w_k A_k)))`` with ``up`` bilinear interpolation to
    ``size`` (align_corners=False by default) and ``minmax`` per-map scaling to
    [0, 1] (a constant map becomes 0, never NaN). Differentiable w.r.t. A and w.

    Args:
        A: activations (B, K, h, w), floating point.
        w: channel weights (B, K) -> maps (B, H, W); or (B, G, K) -> (B, G, H, W),
           G maps per image (e.g. ADVISE's channel groups).
        size: output (H, W), or one int for a square map.
        relu, normalize: switch the ReLU and the min-max scaling off.
        align_corners: the bilinear convention (True = pytorch-grad-cam's Score-CAM).
    """
    if not isinstance(A, Tensor) or A.dim() != 4 or not A.is_floating_point():
        raise ValueError(f"A must be a 4-D float tensor (B,K,h,w), got "
                         f"{getattr(A, 'shape', type(A))} {getattr(A, 'dtype', '')}")
    if not isinstance(w, Tensor) or w.dim() not in (2, 3):
        raise ValueError(f"w must be (B,K) or (B,G,K), got {getattr(w, 'shape', type(w))}")
    if w.shape[0] != A.shape[0] or w.shape[-1] != A.shape[1]:
        raise ValueError(f"w {tuple(w.shape)} does not match A {tuple(A.shape)}: "
                         "expected (B,K) or (B,G,K) with A's B and K")
    if w.device != A.device:
        raise ValueError(f"A is on {A.device} but w on {w.device}")
    H, W = _as_size(size)
    squeeze = w.dim() == 2
    w3 = w[:, None] if squeeze else w
    if w3.shape[0] * w3.shape[1] and not A.shape[2] * A.shape[3]:
        raise ValueError(f"A's maps of size {tuple(A.shape[2:])} cannot be upsampled")
    dtype = kernel_dtype(A.dtype)
    out, _, _ = _cam_combine_forward(A.to(dtype).contiguous(), w3.to(dtype).contiguous(), H, W,
                                 bool(relu), bool(normalize), bool(align_corners))
    out = out.to(A.dtype)
    return out[:, 0] if squeeze else out
