"""Confidence-change metrics on the image masked by its saliency map.

N images, class c; p = softmax probability of c on the image x, o = on the
masked image x ⊙ S (S in [0, 1] at x's resolution). Each function returns the
per-image term (B,); the papers report the mean ×100.

Whether the mask is applied before or after mean/std normalisation changes
published Average Drop about 3×, so ``normalize`` is explicit: with
``(mean, std)``, x is pixel-space in [0, 1] and S multiplies it (masked pixels
black) before normalisation; with None, S multiplies the tensor given.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..inputs import Normalize
from ..targets import TargetSpec
from ._common import check_maps, clean_probabilities, masked_probabilities


def _p_and_o(model, x, maps, targets, normalize, batch_size, invert=False):
    maps = check_maps(x, maps)
    p, classes = clean_probabilities(model, x, targets, normalize, batch_size)
    o = masked_probabilities(model, x, 1 - maps if invert else maps, classes, normalize, batch_size)
    return p, o


def average_drop(model: nn.Module, x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
                 normalize: Normalize = None, batch_size: int = 32) -> Tensor:
    """Average Drop (Grad-CAM++ paper, eq. 21), per image: ``max(0, p − o) / p``.
    AD = 100 · mean (lower is better)."""
    p, o = _p_and_o(model, x, maps, targets, normalize, batch_size)
    return torch.clamp(p - o, min=0) / p


def average_increase(model: nn.Module, x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
                     normalize: Normalize = None, batch_size: int = 32) -> Tensor:
    """Average Increase / Increase in Confidence (Grad-CAM++ eq. 22), per image:
    ``1[p < o]``. AI = 100 · mean (higher is better)."""
    p, o = _p_and_o(model, x, maps, targets, normalize, batch_size)
    return (p < o).to(p.dtype)


def average_gain(model: nn.Module, x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
                 normalize: Normalize = None, batch_size: int = 32) -> Tensor:
    """Average Gain (Opti-CAM paper, eq. 13), per image: ``max(0, o − p) / (1 − p)``.
    AG = 100 · mean (higher is better)."""
    p, o = _p_and_o(model, x, maps, targets, normalize, batch_size)
    return torch.clamp(o - p, min=0) / (1 - p)


def average_drop_in_deletion(model: nn.Module, x: Tensor, maps: Tensor,
                             targets: TargetSpec = None, *, normalize: Normalize = None,
                             batch_size: int = 32) -> Tensor:
    """Average Drop in Deletion (LIFT-CAM paper), per image: ``(p − d) / p`` with d
    the probability on the deleted image ``x ⊙ (1 − S)``. ADD = 100 · mean
    (higher is better: deleting the salient region should hurt)."""
    p, d = _p_and_o(model, x, maps, targets, normalize, batch_size, invert=True)
    return (p - d) / p
