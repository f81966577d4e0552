"""Eager-PyTorch definition of the ``cam_combine`` op: ``minmax(up(ReLU(Σ_k w_k A_k)))``
(CAM/Grad-CAM's "L = ReLU(Σ_k α_k A^k)", bilinear upsampling, per-map min-max
scaling), and the forward/backward entry points with the compiled backends'
interface."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cam_combine(A: Tensor, w: Tensor, size: tuple[int, int], relu: bool = True,
                normalize: bool = True, align_corners: bool = False) -> Tensor:
    """``minmax(up(ReLU(Σ_k w_k A_k)))`` per map.

    A: (B,K,h,w). w: (B,K) -> output (B,H,W), or (B,G,K) -> (B,G,H,W).
    ``up`` is bilinear interpolation to ``size`` (align_corners=False: half-pixel
    centres). ``minmax`` maps each map to [0, 1]; a constant map becomes all zeros
    (finite, never NaN), and its gradient is zero. The gradients of min and max
    are spread evenly over tied elements (torch.amin/amax's convention).
    """
    H, W = size
    out, _, _ = cam_combine_forward(A, w if w.dim() == 3 else w[:, None], H, W,
                                    relu, normalize, align_corners)
    return out[:, 0] if w.dim() == 2 else out


def cam_combine_forward(A: Tensor, w: Tensor, H: int, W: int, relu: bool, normalize: bool,
                        align_corners: bool) -> tuple[Tensor, Tensor, Tensor]:
    """cam_combine for w (B,G,K) and output size (H, W), also returning what the
    compiled kernels save for the backward pass: the pre-ReLU low-resolution sum
    s (B,G,h,w) and per-map stats (B,G,2) = (min, max − min) of the upsampled map
    before scaling. Differentiable by autograd (the output; stats are detached)."""
    s = torch.einsum("bgk,bkhw->bghw", w, A)
    r = torch.relu(s) if relu else s
    u = F.interpolate(r, size=(int(H), int(W)), mode="bilinear", align_corners=align_corners)
    lo = u.amin(dim=(-2, -1), keepdim=True)
    rng = u.amax(dim=(-2, -1), keepdim=True) - lo
    if normalize:
        pos = rng > 0
        u = torch.where(pos, (u - lo) / torch.where(pos, rng, torch.ones_like(rng)),
                        torch.zeros_like(u))
    stats = torch.cat([lo, rng], dim=-1).flatten(-2)
    return u, s, stats.detach()


def cam_combine_backward(grad_out: Tensor, out: Tensor, A: Tensor, w: Tensor, s_low: Tensor,
                         stats: Tensor, relu: bool, normalize: bool,
                         align_corners: bool) -> tuple[Tensor, Tensor]:
    """Gradients (dA, dw) of cam_combine_forward's first output, with the compiled
    backends' arguments (``out`` gives the size; s_low and stats are recomputed,
    not read). The vector-Jacobian product is ``torch.func.vjp``'s, which also
    works inside a custom op's implementation, where the autograd dispatch keys
    are excluded (``torch.autograd.grad`` there finds no graph, even under
    enable_grad)."""
    H, W = out.shape[-2:]

    def first(A_, w_):
        return cam_combine_forward(A_, w_, H, W, relu, normalize, align_corners)[0]

    _, vjp = torch.func.vjp(first, A.detach(), w.detach())
    gA, gw = vjp(grad_out.to(A.dtype))
    return gA, gw
