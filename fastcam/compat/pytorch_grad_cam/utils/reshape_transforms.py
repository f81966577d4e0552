"""Token-to-grid transforms for transformer target layers
(``pytorch_grad_cam.utils.reshape_transforms``).

Pass one as ``reshape_transform=``: the target layer's output (B, N, D) becomes
a CNN-like activation (B, D, h, w), and its gradient is transformed the same way.
"""
from __future__ import annotations

from torch import Tensor

__all__ = ["vit_reshape_transform", "swinT_reshape_transform"]


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
