"""Insertion and deletion AUC (Petsiuk et al., RISE, BMVC 2018).

Pixels are ordered by decreasing saliency (ties by pixel index). Deletion starts
from the image and, in each of ``steps`` steps, sets the next ⌈H·W/steps⌉ pixels
to 0 (224 pixels per step at 224×224 with the default 224 steps); insertion
starts from a blurred copy (Gaussian, kernel 11, σ 5, as RISE's code builds it)
and puts the image's pixels back in the same order. The score is the class
probability on each of the steps + 1 images; the AUC is the trapezoid rule over
[0, 1]: ``(Σ_t p_t − (p_0 + p_T)/2) / T``.

All B·(steps + 1) copies are built chunk by chunk by the fused ``rank_reveal``
kernel and streamed through the model; memory is ``batch_size`` copies.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine import Precision, engine_for
from ..inputs import Normalize
from ..perturbation.masked_scores import class_score, reveal_scores
from ..progress import scope
from ..targets import TargetSpec
from ._common import check_maps, clean_probabilities


@functools.lru_cache(maxsize=None)
def _rise_kernel_values(size: int, sigma: float) -> tuple:
    # RISE blurs with gaussian_filter(delta, sigma) on a size×size grid (scipy's
    # default 'reflect' boundary, truncate 4σ): the same kernel, computed here.
    import numpy as np
    from scipy.ndimage import gaussian_filter

    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1
    return tuple(gaussian_filter(delta, sigma).ravel().tolist())


def rise_blur(x: Tensor, size: int = 11, sigma: float = 5.0) -> Tensor:
    """RISE's insertion substrate: each channel convolved with the 11×11 kernel,
    zero padding (as RISE's ``conv2d(x, kern, padding=klen//2)``)."""
    k = torch.tensor(_rise_kernel_values(size, sigma), dtype=x.dtype, device=x.device)
    C = x.shape[1]
    weight = k.view(1, 1, size, size).expand(C, 1, size, size)
    return F.conv2d(x, weight, padding=size // 2, groups=C)


def saliency_rank(maps: Tensor) -> Tensor:
    """(B, H·W) position of each pixel when pixels are sorted by decreasing
    saliency (stable: ties keep pixel order)."""
    flat = maps.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return rank


def _curve(model, x, maps, targets, normalize, batch_size, steps, insertion) -> Tensor:
    maps = check_maps(x, maps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    B, C, H, W = x.shape
    _, classes = clean_probabilities(model, x, targets,
                                     normalize, batch_size)
    per_step = math.ceil(H * W / steps)
    counts = torch.clamp(torch.arange(steps + 1, device=x.device) * per_step, max=H * W)
    counts = counts.repeat(B)
    index = torch.arange(B, device=x.device).repeat_interleave(steps + 1)
    rank = saliency_rank(maps)
    src, dst = (x, rise_blur(x)) if insertion else (None, x)
    scores = reveal_scores(model, rank, counts, index, src, dst,
                           class_score(classes, "probability"), chunk_size=batch_size,
                           normalize=normalize)
    return scores.view(B, steps + 1)


def auc(curve: Tensor) -> Tensor:
    """Trapezoid area under each row of ``curve`` (B, T+1) over [0, 1]."""
    T = curve.shape[1] - 1
    return (curve.sum(1) - (curve[:, 0] + curve[:, -1]) / 2) / T


def deletion_auc(model: nn.Module, x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
                 normalize: Normalize = None, batch_size: int = 64, steps: int = 224,
                 return_curve: bool = False, precision: Optional[Precision] = None,
                 progress: Optional[bool] = None):
    """Deletion AUC per image (B,) (lower is better). ``return_curve`` also returns
    the (B, steps+1) probabilities. ``precision``: how the model runs
    (:mod:`fastcam.engine`; None: fp32, or the Engine's when ``model`` is one).
    ``progress``: a bar over the B·(steps+1) passes (None: when stderr is a terminal)."""
    with scope(progress, "deletion"):
        curve = _curve(engine_for(model, precision), x, maps, targets, normalize, batch_size, steps,
                       insertion=False)
    return (auc(curve), curve) if return_curve else auc(curve)


def insertion_auc(model: nn.Module, x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
                  normalize: Normalize = None, batch_size: int = 64, steps: int = 224,
                  return_curve: bool = False, precision: Optional[Precision] = None,
                  progress: Optional[bool] = None):
    """Insertion AUC per image (B,) (higher is better). ``return_curve`` also
    returns the (B, steps+1) probabilities. ``precision``, ``progress``: as
    :func:`deletion_auc`."""
    with scope(progress, "insertion"):
        curve = _curve(engine_for(model, precision), x, maps, targets, normalize, batch_size, steps,
                       insertion=True)
    return (auc(curve), curve) if return_curve else auc(curve)
