"""TorchCAM 0.5.0's numerics, for the methods' ``mode="torchcam"``.

TorchCAM (``torchcam.methods.core._CAM``) makes a layer's map at the layer's
resolution: ``cam = ReLU(Σ_k w_k A_k)`` (gradient methods), then ``_normalize``:
``(cam − min) / (max − min + 1e-8)`` per map. Several layers are fused by
``fuse_cams``: each map resized bilinearly (align_corners=False) to the largest
layer's shape and the element-wise maximum taken, LayerCAM's maps first scaled
by ``tanh(2·cam)`` (its paper's eq. 9). fastcam's native maps in that mode are
the normalised low-resolution map upsampled bilinearly to the input size.
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Mode = Literal["pytorch-grad-cam", "torchcam"]
MODES: tuple[str, ...] = ("pytorch-grad-cam", "torchcam")
#: TorchCAM's ``_CAM._normalize`` eps
EPS = 1e-8


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else ``ValueError``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    return mode


def normalize(cams: Tensor, eps: float = EPS, spatial_dims: int = 2) -> Tensor:
    """TorchCAM's ``_normalize`` (not in place): ``(m − min) / (max − min + eps)``
    over the last ``spatial_dims`` dims (TorchCAM's default for its (N, h, w)
    or (N, d, h, w) maps: all but the batch dim)."""
    dims = tuple(range(-spatial_dims, 0))
    shifted = cams - cams.amin(dim=dims, keepdim=True)
    return shifted / (shifted.amax(dim=dims, keepdim=True) + eps)


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, h, w) -> (B, H, W), bilinear, align_corners=False."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def combine(A: Tensor, w: Tensor, size: tuple[int, int]) -> Tensor:
    """One layer's map at ``size``: ``up(normalize(ReLU(Σ_k w_k A_k)))``."""
    low = torch.relu(torch.einsum("bk,bkhw->bhw", w.to(A.dtype), A))
    return upsample(normalize(low), size)


def fuse_cams(cams: Sequence[Tensor], target_shape: Optional[tuple[int, int]] = None,
              layercam: bool = False) -> Tensor:
    """TorchCAM's ``fuse_cams`` of per-layer maps (B, h_l, w_l) (normalised ones,
    as TorchCAM's extractors return them): LayerCAM's ``tanh(2·cam)`` scaling
    when ``layercam``, bilinear resizing to ``target_shape`` (default: the
    largest h and w), element-wise maximum. One map is returned as it is."""
    cams = list(cams)
    if not cams:
        raise ValueError("fuse_cams needs at least one map")
    if len(cams) == 1:
        return cams[0]
    shape = target_shape or tuple(max(s) for s in zip(*[tuple(c.shape[-2:]) for c in cams]))
    if layercam:
        cams = [torch.tanh(2.0 * c) for c in cams]
    fused = upsample(cams[0], shape)
    for c in cams[1:]:
        fused = torch.maximum(fused, upsample(c, shape))
    return fused
