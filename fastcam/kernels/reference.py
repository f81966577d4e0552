"""Eager-PyTorch definitions of fastcam's ops: the oracle every backend is tested
against. Written for clarity, not speed; differentiable by autograd."""
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
    out, _, _ = cam_combine_with_stats(A, w if w.dim() == 3 else w[:, None], size,
                                       relu, normalize, align_corners)
    return out[:, 0] if w.dim() == 2 else out


def cam_combine_with_stats(A: Tensor, w: Tensor, size: tuple[int, int], relu: bool,
                           normalize: bool, align_corners: bool) -> tuple[Tensor, Tensor, Tensor]:
    """cam_combine for w (B,G,K), also returning what the compiled kernels save for
    the backward pass: the pre-ReLU low-resolution sum s (B,G,h,w) and per-map
    stats (B,G,2) = (min, max − min) of the upsampled map before scaling."""
    s = torch.einsum("bgk,bkhw->bghw", w, A)
    r = torch.relu(s) if relu else s
    u = F.interpolate(r, size=tuple(size), mode="bilinear", align_corners=align_corners)
    lo = u.amin(dim=(-2, -1), keepdim=True)
    rng = u.amax(dim=(-2, -1), keepdim=True) - lo
    if normalize:
        pos = rng > 0
        u = torch.where(pos, (u - lo) / torch.where(pos, rng, torch.ones_like(rng)),
                        torch.zeros_like(u))
    stats = torch.cat([lo, rng], dim=-1).flatten(-2)
    return u, s, stats.detach()


def cam_combine_backward(grad_out: Tensor, A: Tensor, w: Tensor, size: tuple[int, int],
                         relu: bool, normalize: bool, align_corners: bool) -> tuple[Tensor, Tensor]:
    """Gradients (dA, dw) of cam_combine_with_stats' first output: its
    vector-Jacobian product by ``torch.func.vjp``, which also works inside a
    custom op's implementation, where the autograd dispatch keys are excluded
    (``torch.autograd.grad`` there finds no graph, even under enable_grad)."""
    def first(A_, w_):
        return cam_combine_with_stats(A_, w_, size, relu, normalize, align_corners)[0]

    _, vjp = torch.func.vjp(first, A.detach(), w.detach())
    gA, gw = vjp(grad_out.to(A.dtype))
    return gA, gw


def _norm(v: Tensor, mean: Tensor | None, std: Tensor | None) -> Tensor:
    if mean is None:
        return v
    return (v - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def mask_blend(x: Tensor, maps: Tensor, index: Tensor, baseline: Tensor | None = None,
               mean: Tensor | None = None, std: Tensor | None = None, eps: float = 0.0,
               align_corners: bool = False) -> Tensor:
    """Perturbed copies from low-resolution maps (Score-CAM's ``X ∘ H_k``):

    ``out[j] = norm(x[i] ⊙ m_j + baseline[i] ⊙ (1 − m_j))``, i = index[j],
    ``m_j = (u − min u)/(max u − min u + eps)`` with ``u = up(maps[j])`` bilinear to
    x's size (0 where the denominator is 0), ``norm(v) = (v − mean)/std`` per
    channel when mean/std are given. x, baseline (B,C,H,W); maps (n,h,w).

    Note: bilinear interpolation of a constant non-zero map is constant only up
    to rounding, and min-max scaling magnifies that noise; backends agree
    exactly on all-zero (dead) channels, which is the case that occurs."""
    H, W = x.shape[-2:]
    u = F.interpolate(maps[:, None], size=(H, W), mode="bilinear", align_corners=align_corners)
    lo = u.amin(dim=(-2, -1), keepdim=True)
    den = u.amax(dim=(-2, -1), keepdim=True) - lo + eps
    m = torch.where(den > 0, (u - lo) / torch.where(den > 0, den, torch.ones_like(den)),
                    torch.zeros_like(u))
    xi = x[index]
    v = xi * m if baseline is None else xi * m + baseline[index] * (1 - m)
    return _norm(v, mean, std)


def rank_reveal(rank: Tensor, counts: Tensor, index: Tensor, src: Tensor | None,
                dst: Tensor | None, mean: Tensor | None = None,
                std: Tensor | None = None) -> Tensor:
    """Perturbed copies revealing pixels in order (RISE insertion/deletion):

    ``out[j] = norm(where(rank[i] < counts[j], src[i], dst[i]))``, i = index[j];
    rank (B, H·W) is each pixel's position in the order (0 = first); src/dst
    (B,C,H,W), None meaning zeros."""
    ref = src if src is not None else dst
    B, C, H, W = ref.shape
    keep = (rank[index] < counts[:, None]).view(-1, 1, H, W)
    s = src[index] if src is not None else torch.zeros((), dtype=ref.dtype, device=ref.device)
    d = dst[index] if dst is not None else torch.zeros((), dtype=ref.dtype, device=ref.device)
    return _norm(torch.where(keep, s, d).expand(len(index), C, H, W), mean, std)
