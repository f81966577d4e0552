"""Token-to-grid transforms for transformer target layers
(``pytorch_grad_cam.utils.reshape_transforms``).

Pass one as ``reshape_transform=``: the target layer's output (B, N, D) becomes
a CNN-like activation (B, D, h, w), and its gradient is transformed the same way.
:func:`fasterrcnn_reshape_transform` does the same for a detection backbone's
feature pyramid.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["vit_reshape_transform", "swinT_reshape_transform", "fasterrcnn_reshape_transform"]


def _tokens_to_grid(tokens: Tensor, height: int, width: int) -> Tensor:
    B, N, D = tokens.shape
    if N != height * width:
        raise ValueError(f"{N} tokens do not form a {height}x{width} grid; pass height= and width=")
    return tokens.reshape(B, height, width, D).permute(0, 3, 1, 2)


def vit_reshape_transform(tensor: Tensor, height: int = 14, width: int = 14) -> Tensor:
    """ViT: drop the class token (the first), lay the ``height·width`` patch tokens
    out row by row: (B, 1 + h·w, D) -> (B, D, h, w). Defaults: ViT-B/16 at 224 px."""
    return _tokens_to_grid(tensor[:, 1:, :], height, width)


def swinT_reshape_transform(tensor: Tensor, height: int = 7, width: int = 7) -> Tensor:
    """Swin (timm layout, no class token): (B, h·w, D) -> (B, D, h, w);
    a (B, h, w, D) output (torchvision's Swin) is permuted to (B, D, h, w)."""
    if tensor.dim() == 4:
        return tensor.permute(0, 3, 1, 2)
    return _tokens_to_grid(tensor, height, width)


def fasterrcnn_reshape_transform(x: Mapping[str, Tensor]) -> Tensor:
    """A feature pyramid (torchvision's FPN output: an ordered dict of (B, K_l, h_l, w_l)
    levels including ``'pool'``) -> one (B, Σ K_l, h, w) activation at the
    ``'pool'`` level's size: each level's absolute value resized bilinearly
    (``align_corners=False``), concatenated along the channels in the dict's
    order — pytorch-grad-cam's transform for Faster R-CNN target layers."""
    if "pool" not in x:
        raise ValueError("fasterrcnn_reshape_transform needs the FPN's dict of levels with a "
                         f"'pool' level; got keys {list(x)}")
    size = tuple(x["pool"].shape[-2:])
    return torch.cat([F.interpolate(level.abs(), size=size, mode="bilinear", align_corners=False)
                      for level in x.values()], dim=1)
