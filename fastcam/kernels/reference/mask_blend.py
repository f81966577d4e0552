"""Eager-PyTorch definition of the ``mask_blend`` op: perturbed copies of images
from low-resolution maps (Score-CAM's ``X ∘ H_k``, blends with a baseline)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._normalize import normalize


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
    return normalize(v, mean, std)
